//! `vpnctl events`: the audit log, as the dashboard's Events tab words it, and
//! (`--follow`) each new event as the control plane commits it.

use std::collections::VecDeque;
use std::io::Write;

use vpnctl_client::{ApiClient, FOLLOW_RETRY, Followed};
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
    let after = recent
        .back()
        .map(|e| e.seq)
        .or((args.limit > 0).then_some(0));
    let mut follower = api.follow(after);
    let mut away = false;
    // A gap before anything was printed (an empty log whose events were all pruned,
    // followed from 0) is older than this command: not worth a word.
    let mut printed = !recent.is_empty();
    loop {
        match follower.next().await? {
            Followed::Open => {
                if std::mem::take(&mut away) {
                    eprintln!("vpnctl events: following again");
                }
            }
            Followed::Event(event) => {
                print(out, &event, as_json)?;
                out.flush()?;
                printed = true;
            }
            Followed::Gap => {
                if printed {
                    eprintln!(
                        "vpnctl events: events were pruned from the log before they \
                         could be shown (retention); following on"
                    );
                }
            }
            Followed::Restored => eprintln!(
                "vpnctl events: the store was restored from a backup (its next events \
                 reuse numbers shown above); following the end of the restored log"
            ),
            Followed::Away(e) => {
                if !std::mem::replace(&mut away, true) {
                    eprintln!("vpnctl events: {e}; retrying every {FOLLOW_RETRY:?}");
                }
            }
        }
    }
}

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
