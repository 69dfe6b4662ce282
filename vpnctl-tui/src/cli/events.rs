//! `vpnctl events`: the audit log, as the dashboard's Events tab words it, and
//! (`--follow`) each new event as the control plane commits it.

use std::collections::VecDeque;
use std::io::Write;

use futures_util::StreamExt as _;
use vpnctl_client::ApiClient;
use vpnctl_core::Event;

use super::{CliError, EventsArgs, json};
use crate::ui::event_text;
use crate::when;

/// The API's page size for `GET /v1/events`.
const PAGE: usize = 1_000;

pub(super) async fn run(
    api: &ApiClient,
    args: &EventsArgs,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    // The newest `limit`, read backwards from the end of the log a page at a time
    // (the log may hold millions; only what is shown is read).
    let mut recent: VecDeque<Event> = VecDeque::with_capacity(args.limit.min(PAGE));
    let mut before: Option<u64> = None;
    while recent.len() < args.limit {
        let want = (args.limit - recent.len()).min(PAGE);
        let page = api.events_before(before, Some(want)).await?;
        let done = page.len() < want;
        before = page.first().map(|e| e.seq);
        for event in page.into_iter().rev() {
            recent.push_front(event);
        }
        if done || before.is_none() {
            break;
        }
    }
    if as_json && !args.follow {
        return json(out, &recent);
    }
    for event in &recent {
        print(out, event, as_json)?;
    }
    if !args.follow {
        return Ok(());
    }
    out.flush()?;
    // Followed from the last event shown (or from what comes next, with `--limit
    // 0`), across the stream's hourly ends and the control plane's restarts: each
    // reconnect replays what was missed, so every event is printed once, in order.
    // An empty log read for history: follow from its start, so nothing committed
    // since that read is missed.
    let mut after = recent
        .back()
        .map(|e| e.seq)
        .or((args.limit > 0).then_some(0));
    let mut away = false;
    loop {
        match api.events_stream_at(after).await {
            Ok((start, stream)) => {
                // Opened at the end of the log: a reconnect resumes where it began.
                after = after.or(start);
                let opened = tokio::time::Instant::now();
                if std::mem::take(&mut away) {
                    eprintln!("vpnctl events: following again");
                }
                let mut stream = std::pin::pin!(stream);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(event) => {
                            after = Some(event.seq);
                            print(out, &event, as_json)?;
                            out.flush()?;
                        }
                        // An event this version cannot read would come again
                        // on every reconnect: stop and say so.
                        Err(e) if !e.is_transient() => return Err(e.into()),
                        Err(e) => {
                            tracing::debug!(error = %e, "event stream broke");
                            break;
                        }
                    }
                }
                // Ended: the hourly limit, a restart, a broken connection.
                // Reconnect at once, unless it ended as soon as it began.
                if opened.elapsed() >= RETRY {
                    continue;
                }
            }
            Err(e) if e.status() == Some(409) => {
                eprintln!(
                    "vpnctl events: the event log went back (the store was restored from a \
                     backup); following from its end"
                );
                after = None;
                continue;
            }
            Err(e) if e.is_transient() => {
                if !std::mem::replace(&mut away, true) {
                    eprintln!("vpnctl events: {e}; retrying every {RETRY:?}");
                }
            }
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// How often `--follow` tries again while the control plane is away.
const RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// One line per event: `#seq time actor: what`, or one JSON object per line.
fn print(out: &mut dyn Write, event: &Event, as_json: bool) -> Result<(), CliError> {
    if as_json {
        serde_json::to_writer(&mut *out, event)
            .map_err(|e| CliError::Io(std::io::Error::from(e)))?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "#{:<6} {:<17} {:<14} {}",
            event.seq,
            when::show(event.at),
            event.actor.to_string(),
            event_text(event)
        )?;
    }
    Ok(())
}
