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
    // With --follow the stream opens first, and the history is what came before
    // where it began: one log, so nothing falls between the two, and a restore of
    // the store afterwards is told (the stream knows the log by its identity).
    let mut follower = args.follow.then(|| api.follow(None));
    let mut before = None;
    if let Some(follower) = follower.as_mut() {
        match follower.next().await? {
            Followed::Open => before = follower.after().map(|a| a.saturating_add(1)),
            Followed::Away(e) => return Err(e.into()),
            // Not at a first open, without a place to resume from.
            Followed::Event(_) | Followed::Gap | Followed::Restored => {}
        }
    }
    // The newest `limit`, read backwards from the end of the log a page at a time
    // (the log may hold millions; only what is shown is read).
    let mut recent: VecDeque<Event> = VecDeque::with_capacity(args.limit.min(PAGE));
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
    let Some(mut follower) = follower else {
        if as_json {
            return json(out, &recent);
        }
        for event in &recent {
            print(out, event, as_json)?;
        }
        return Ok(());
    };
    for event in &recent {
        print(out, event, as_json)?;
    }
    out.flush()?;
    // Across the stream's hourly ends and the control plane's restarts: each
    // reconnect replays what was missed, so every event is printed once, in order.
    let mut away = false;
    // A gap before anything was printed is older than this command: not worth a
    // word.
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
