//! The API's own accept loop (hyper's HTTP/1.1 connection builder): connection caps
//! overall and per source address, a TLS handshake timeout, a header read timeout
//! (which also closes keep-alive connections that send no next request), an idle
//! timeout for connections where no byte moves while no handler runs (a client that
//! stops reading its answer), and graceful shutdown.
//!
//! Slowloris-style clients (connect, handshake, send half a request, wait) hold one
//! slot each until the header timeout; no address holds more than its share, so
//! everyone else keeps being served.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::limits::Limits;

/// What the loop accepts on.
pub enum Listener {
    Plain(TcpListener),
    Tls(TcpListener, TlsAcceptor),
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Listener::Plain",
            Self::Tls(..) => "Listener::Tls",
        })
    }
}

/// Open connections, overall and per address.
#[derive(Debug, Default)]
struct Slots {
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One held connection slot; released on drop.
#[derive(Debug)]
struct Slot {
    slots: Arc<Slots>,
    addr: IpAddr,
}

impl Slots {
    fn acquire(self: &Arc<Self>, addr: IpAddr, limits: &Limits) -> Option<Slot> {
        let mut per = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.total.load(Ordering::Relaxed) >= limits.max_connections {
            return None;
        }
        let held = per.entry(addr).or_insert(0);
        if *held >= limits.max_connections_per_address {
            return None;
        }
        *held += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            slots: Arc::clone(self),
            addr,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per = self
            .slots
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = per.get_mut(&self.addr) {
            *held -= 1;
            if *held == 0 {
                per.remove(&self.addr);
            }
        }
        self.slots.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// When a byte last moved on a connection, and how many handlers run on it.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Marks a handler as running until dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when bytes move. When dropped it lingers: it keeps reading
/// (and discarding) what the client still sends for a moment, so that a client whose
/// request was answered early (a 413 for an oversized body) reads the answer instead
/// of a connection reset. The lingering keeps the connection's slot.
struct Tracked<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    inner: Option<T>,
    activity: Arc<Activity>,
    slot: Option<Slot>,
}

/// Longest lingering after close, and most bytes read meanwhile.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 32 << 20;

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Tracked<T> {
    fn drop(&mut self) {
        let (Some(mut inner), slot) = (self.inner.take(), self.slot.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let _slot = slot;
            // The client sees the end at once; only its late bytes are read.
            let _ = tokio::time::timeout(LINGER, inner.shutdown()).await;
            let mut buf = vec![0u8; 16 * 1024];
            let mut read = 0;
            let _ = tokio::time::timeout(LINGER, async {
                while let Ok(n) = inner.read(&mut buf).await {
                    read += n;
                    if n == 0 || read > LINGER_BYTES {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Tracked<T> {
    fn inner(&mut self) -> Pin<&mut T> {
        Pin::new(self.inner.as_mut().expect("taken only on drop"))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner().poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner().poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner().poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner().poll_shutdown(cx)
    }
}

/// Resolves when the connection has been idle too long: no byte moved for `idle`
/// while no handler runs.
async fn idle_watch(activity: Arc<Activity>, idle: Duration) {
    let every = (idle / 4).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        if activity.busy.load(Ordering::Relaxed) == 0 && activity.idle_for() >= idle {
            return;
        }
    }
}

/// How long shutdown waits for in-flight requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts and serves until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish (at most [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve(
    listener: Listener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (tcp, tls) = match listener {
        Listener::Plain(tcp) => (tcp, None),
        Listener::Tls(tcp, acceptor) => (tcp, Some(acceptor)),
    };
    let limits = Arc::new(limits);
    let slots = Arc::new(Slots::default());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = tcp.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = slots.acquire(addr.ip(), &limits) else {
            tracing::debug!(%addr, "connection refused: connection limit reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            app: app.clone(),
            limits: Arc::clone(&limits),
            addr,
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => conn.serve(stream, slot).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(conn.limits.handshake_timeout(), handshake).await {
                        Ok(Ok(tls)) => conn.serve(tls, slot).await,
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(tcp);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running at shutdown were cut off");
    }
    Ok(())
}

/// One accepted connection.
struct Conn {
    app: Router,
    limits: Arc<Limits>,
    addr: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Conn {
    async fn serve<T>(self, stream: T, slot: Slot)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            app,
            limits,
            addr,
            watcher,
        } = self;
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: Some(stream),
            activity: Arc::clone(&activity),
            slot: Some(slot),
        });
        let handler_activity = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let busy = Busy::new(&handler_activity);
            req.extensions_mut().insert(ConnectInfo(addr));
            let app = app.clone();
            async move {
                let response = app.oneshot(req.map(Body::new)).await;
                drop(busy);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout())
            .keep_alive(true);
        let connection = watcher.watch(builder.serve_connection(io, service));
        tokio::select! {
            served = connection => {
                if let Err(e) = served {
                    tracing::debug!(%addr, error = %e, "connection ended");
                }
            }
            () = idle_watch(activity, limits.idle_timeout()) => {
                tracing::debug!(%addr, "connection closed: idle");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_overall_and_per_address_and_released() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_address: 2,
            ..Limits::default()
        };
        let slots = Arc::new(Slots::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = slots.acquire(a, &limits).unwrap();
        let _a2 = slots.acquire(a, &limits).unwrap();
        assert!(slots.acquire(a, &limits).is_none(), "per address");
        let _b1 = slots.acquire(b, &limits).unwrap();
        assert!(slots.acquire(b, &limits).is_none(), "overall");
        drop(a1);
        assert!(slots.acquire(b, &limits).is_some());
    }
}
