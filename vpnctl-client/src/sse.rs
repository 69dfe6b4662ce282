//! The Server-Sent Events body of `GET /v1/events/stream`, turned into [`Event`]s.
//!
//! Framing is the `sse-stream` crate's (lines ending in LF, CRLF or CR, split
//! anywhere across chunks; `data:` lines joined; comments and keep-alives; a leading
//! BOM; strict UTF-8). Here only the payload is read: each message's `data` is one
//! `Event` as JSON. A transport error is returned once and ends the stream.

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use sse_stream::SseByteStream;
use vpnctl_api::model::Event;

use crate::error::ClientError;

/// Turns an SSE body into the events it carries.
pub(crate) fn events<S>(body: S, url: String) -> impl Stream<Item = Result<Event, ClientError>>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    SseByteStream::new(body).filter_map(move |item| {
        let out = match item {
            // The server sends unnamed events (messages), each with data.
            Ok(sse) => match (sse.event.as_deref(), sse.data) {
                (None | Some("message"), Some(data)) => Some(
                    serde_json::from_str::<Event>(&data).map_err(|e| ClientError::Protocol {
                        url: url.clone(),
                        reason: format!("event stream: {e}"),
                    }),
                ),
                _ => None,
            },
            Err(sse_stream::Error::Body(e)) => Some(Err(match e.downcast::<reqwest::Error>() {
                Ok(e) => ClientError::from_reqwest(&url, &e),
                Err(e) => ClientError::Protocol {
                    url: url.clone(),
                    reason: format!("event stream: {e}"),
                },
            })),
            Err(e) => Some(Err(ClientError::Protocol {
                url: url.clone(),
                reason: format!("event stream: {e}"),
            })),
        };
        std::future::ready(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use vpnctl_api::model::{Actor, EventKind, UserId};
    use vpnctl_api::time::Timestamp;

    fn event_json(seq: u64) -> String {
        serde_json::to_string(&Event {
            seq,
            at: Timestamp(1_800_000_000),
            actor: Actor::System,
            kind: EventKind::UserCreated { user: UserId(7) },
        })
        .unwrap()
    }

    async fn read(chunks: Vec<&[u8]>) -> Vec<Result<Event, ClientError>> {
        let body = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, reqwest::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        events(body, "http://127.0.0.1:1/v1/events/stream".into())
            .collect()
            .await
    }

    #[tokio::test]
    async fn events_split_anywhere_with_any_line_ending() {
        let one = event_json(1);
        let two = event_json(2);
        let text = format!(
            "\u{feff}: keep-alive\r\n\r\nid: 1\r\ndata: {one}\r\n\r\nevent: other\ndata: x\n\ndata: {two}\r\r"
        );
        let bytes = text.as_bytes();
        // Every split point, including inside the BOM and between CR and LF.
        for cut in 0..bytes.len() {
            let got = read(vec![&bytes[..cut], &bytes[cut..]]).await;
            let seqs: Vec<u64> = got
                .into_iter()
                .map(|e| e.unwrap_or_else(|e| panic!("cut {cut}: {e}")).seq)
                .collect();
            assert_eq!(seqs, [1, 2], "cut at {cut}");
        }
    }

    /// A stream cut off mid-chunk (a control plane that stopped, a connection that
    /// broke) is an outage to retry, not an answer this client cannot read: a
    /// follower that took it for one stopped for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_cut_off_is_transient() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let one = event_json(1);
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request).await.unwrap();
            let event = format!("data: {one}\n\n");
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        x-stream-after: 0\r\ntransfer-encoding: chunked\r\n\r\n";
            let body = format!("{:x}\r\n{event}\r\n40\r\ndata: {{\"seq\"", event.len());
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(body.as_bytes()).await.unwrap();
            conn.flush().await.unwrap();
            // Closed mid-chunk, without the last chunk.
        });
        let api = crate::ApiClient::new(&url, None, None).unwrap();
        let (start, stream) = api.events_stream_at(Some(0), None).await.unwrap();
        assert_eq!(start.after, Some(0));
        let got: Vec<_> = stream.collect().await;
        server.await.unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].as_ref().map(|e| e.seq).ok(), Some(1));
        let cut = got[1].as_ref().expect_err("cut off");
        assert!(cut.is_transient(), "{cut:?}");
    }

    #[tokio::test]
    async fn a_payload_that_is_no_event_is_a_protocol_error() {
        let got = read(vec![b"data: {\"not\": \"an event\"}\n\n"]).await;
        assert_eq!(got.len(), 1);
        assert!(
            matches!(&got[0], Err(ClientError::Protocol { reason, .. }) if reason.starts_with("event stream: ")),
            "{got:?}"
        );
    }
}
