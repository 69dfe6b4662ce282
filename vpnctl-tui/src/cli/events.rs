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
    // The API lists oldest first from a sequence number: page through, keep the last.
    let mut recent: VecDeque<Event> = VecDeque::with_capacity(args.limit.min(PAGE));
    let mut after: Option<u64> = None;
    loop {
        let page = api.events(after, Some(PAGE)).await?;
        let full = page.len() == PAGE;
        if let Some(last) = page.last() {
            after = Some(last.seq);
        }
        for event in page {
            if recent.len() == args.limit {
                recent.pop_front();
            }
            if args.limit > 0 {
                recent.push_back(event);
            }
        }
        if !full {
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
    let stream = api.events_stream(after.or(Some(0))).await?;
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let event = item?;
        print(out, &event, as_json)?;
        out.flush()?;
    }
    Err(CliError::Incomplete(
        "the event stream ended (the control plane stopped or the connection broke)".into(),
    ))
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
