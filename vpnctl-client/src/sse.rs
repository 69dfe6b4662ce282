//! A minimal Server-Sent Events reader for `GET /v1/events/stream`.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use vpnctl_api::model::Event;

use crate::error::ClientError;

struct Reader<S> {
    body: S,
    url: String,
    buf: Vec<u8>,
    data: String,
    event: String,
    done: bool,
}

/// Turns an SSE body into the events it carries (`data:` holds one `Event` as JSON).
pub(crate) fn events<S>(body: S, url: String) -> impl Stream<Item = Result<Event, ClientError>>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    let reader = Reader {
        body,
        url,
        buf: Vec::new(),
        data: String::new(),
        event: String::new(),
        done: false,
    };
    futures_util::stream::unfold(reader, |mut r| async move {
        loop {
            while let Some(pos) = r.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = r.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let line = String::from_utf8_lossy(&line);
                if line.is_empty() {
                    let data = std::mem::take(&mut r.data);
                    let kind = std::mem::take(&mut r.event);
                    if !data.is_empty() && matches!(kind.as_str(), "" | "message" | "event") {
                        let parsed = serde_json::from_str::<Event>(&data).map_err(|e| {
                            ClientError::Protocol {
                                url: r.url.clone(),
                                reason: format!("event stream: {e}"),
                            }
                        });
                        return Some((parsed, r));
                    }
                    continue;
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "data" => {
                        if !r.data.is_empty() {
                            r.data.push('\n');
                        }
                        r.data.push_str(value);
                    }
                    "event" => value.clone_into(&mut r.event),
                    _ => {}
                }
            }
            if r.done {
                return None;
            }
            match r.body.next().await {
                Some(Ok(chunk)) => r.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    r.done = true;
                    let err = ClientError::from_reqwest(&r.url, &e);
                    return Some((Err(err), r));
                }
                None => r.done = true,
            }
        }
    })
}
