//! The tunnel's DNS resolver: a forwarder on the node's gateway addresses.
//!
//! Client configs say `DNS = <gateway>` (core's default), so every device asks the
//! node for names. The node relays each query, byte for byte, to its upstream
//! resolvers — by default the ones the VPS itself uses (`/etc/resolv.conf`), or those
//! the admin sets on the node daemon — and relays the answer back. It keeps no cache
//! and no state of its own: it starts from the daemon's local settings, so it keeps
//! answering when the control plane is away (fail static).
//!
//! - Reachable only from inside the tunnel: it listens on the gateway addresses only,
//!   and the node's nftables table drops port 53 to them from any other interface
//!   (see [`crate::netconf`]).
//! - Fails fast: an upstream that refuses or does not answer within
//!   [`DnsConfig::attempt_timeout`] is skipped; when none answers, the client gets
//!   SERVFAIL at once instead of waiting for its own timeout.
//! - UDP and TCP (clients retry over TCP when an answer is truncated), with a bound
//!   on queries in flight and on TCP connections.
//! - Sockets are bound with `IP_FREEBIND`, so they may start before the interface has
//!   its address and keep working when wireguard-go re-creates the interface.
//!
//! [`DnsStats`] counts what happened, for `/metrics`, `/healthz` and the reports.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// DNS listens here.
pub const DNS_PORT: u16 = 53;
/// The largest DNS message (TCP length prefix).
const MAX_MESSAGE: usize = 65_535;
/// A DNS header.
const HEADER: usize = 12;

/// How the forwarder runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The gateway addresses (the interface's own) to answer on.
    pub listen: Vec<IpAddr>,
    /// The port, [`DNS_PORT`] except in tests.
    pub port: u16,
    /// Resolvers asked in order; the first that answers wins.
    pub upstreams: Vec<SocketAddr>,
    /// How long one upstream may take before the next one is asked.
    pub attempt_timeout: Duration,
    /// Queries (UDP and TCP together) relayed at once; more are dropped (UDP) or wait
    /// (TCP) — a client retries.
    pub max_in_flight: usize,
    /// TCP connections at once.
    pub max_tcp_connections: usize,
    /// A TCP connection without a query for this long is closed.
    pub tcp_idle: Duration,
    /// How often the upstreams are asked (for the root's name servers) when no
    /// client asks anything, so that `/metrics`, `/healthz` and the reports know
    /// whether names resolve before a user finds out; `None`: never.
    pub probe_every: Option<Duration>,
}

impl DnsConfig {
    /// The defaults for `listen` and `upstreams`: 1.5 s per upstream, 1,024 queries in
    /// flight, 128 TCP connections idle for at most 10 s.
    pub fn new(listen: Vec<IpAddr>, upstreams: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            port: DNS_PORT,
            upstreams,
            attempt_timeout: Duration::from_millis(1500),
            max_in_flight: 1024,
            max_tcp_connections: 128,
            tcp_idle: Duration::from_secs(10),
            probe_every: Some(Duration::from_secs(30)),
        }
    }
}

/// Why the forwarder cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no upstream resolver: set one with --dns-upstream, or list a nameserver in {0}")]
    NoUpstream(String),
    #[error("upstream {0} is one of the addresses this resolver listens on (a loop)")]
    Loop(SocketAddr),
    #[error("cannot listen on {addr} ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: io::Error,
    },
}

/// The nameservers of a resolv.conf text, as upstreams on port 53. Loopback stubs
/// (systemd-resolved's 127.0.0.53) are kept: the daemon runs on the host and reaches
/// them.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|addr| {
            // IPv6 nameservers may carry a zone (`fe80::1%eth0`), which a plain
            // SocketAddr cannot: those are skipped.
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, DNS_PORT))
        })
        .collect()
}

/// The host's own resolvers, from `path` (normally `/etc/resolv.conf`).
pub fn system_upstreams(path: &Path) -> Result<Vec<SocketAddr>, DnsError> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let upstreams = parse_resolv_conf(&text);
    if upstreams.is_empty() {
        return Err(DnsError::NoUpstream(path.display().to_string()));
    }
    Ok(upstreams)
}

/// What the forwarder did, shared with `/metrics`, `/healthz` and the reports.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Queries received (UDP and TCP).
    pub queries: AtomicU64,
    /// Answers relayed from an upstream.
    pub answered: AtomicU64,
    /// SERVFAIL sent because no upstream answered.
    pub servfail: AtomicU64,
    /// Queries dropped: malformed, or too many in flight.
    pub dropped: AtomicU64,
    /// Failed attempts at one upstream (refused, timed out, bad answer).
    pub upstream_failures: AtomicU64,
    last: Mutex<Outcome>,
}

#[derive(Debug, Default, Clone)]
struct Outcome {
    /// The latest relay: did an upstream answer?
    ok: Option<bool>,
    error: Option<String>,
    at: Option<Instant>,
}

/// The resolver's state as health checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsHealth {
    /// Nothing asked yet.
    Idle,
    /// The latest query was answered by an upstream.
    Ok,
    /// The latest query found no upstream that answered.
    Failing(String),
}

impl DnsHealth {
    /// The problem in one line, for reports and `/healthz`; `None` unless failing.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Failing(e) => Some(format!("DNS: no upstream resolver answers ({e})")),
            Self::Idle | Self::Ok => None,
        }
    }
}

impl DnsStats {
    pub fn health(&self) -> DnsHealth {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match (last.ok, &last.error) {
            (None, _) => DnsHealth::Idle,
            (Some(true), _) => DnsHealth::Ok,
            (Some(false), e) => DnsHealth::Failing(e.clone().unwrap_or_default()),
        }
    }

    /// The outcome of a relay; `client` counts it as an answered or failed query.
    fn record(&self, result: &Result<Vec<u8>, String>, client: bool) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.at = Some(Instant::now());
        match result {
            Ok(_) => {
                if client {
                    self.answered.fetch_add(1, Ordering::Relaxed);
                }
                last.ok = Some(true);
                last.error = None;
            }
            Err(e) => {
                if client {
                    self.servfail.fetch_add(1, Ordering::Relaxed);
                }
                last.ok = Some(false);
                last.error = Some(e.clone());
            }
        }
    }
}

/// A running forwarder; dropping it (or [`DnsServer::stop`]) stops it.
#[derive(Debug)]
pub struct DnsServer {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    bound: Vec<SocketAddr>,
}

impl DnsServer {
    /// Binds every listen address (UDP and TCP) and starts serving.
    pub fn start(config: DnsConfig, stats: Arc<DnsStats>) -> Result<Self, DnsError> {
        if config.upstreams.is_empty() {
            return Err(DnsError::NoUpstream("the settings".into()));
        }
        let own: Vec<SocketAddr> = config
            .listen
            .iter()
            .map(|ip| SocketAddr::new(*ip, config.port))
            .collect();
        if let Some(looped) = config.upstreams.iter().find(|u| own.contains(u)) {
            return Err(DnsError::Loop(*looped));
        }
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            upstreams: config.upstreams.clone(),
            attempt_timeout: config.attempt_timeout,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            stats,
        });
        let tcp_slots = Arc::new(Semaphore::new(config.max_tcp_connections.max(1)));
        let mut tasks = JoinSet::new();
        let mut bound = Vec::new();
        for addr in own {
            let udp = bind_udp(addr)?;
            // With port 0 (tests) TCP takes the port UDP got.
            let addr = udp.local_addr().unwrap_or(addr);
            let tcp = bind_tcp(addr)?;
            bound.push(addr);
            tasks.spawn(serve_udp(udp, shared.clone(), stopped.clone()));
            tasks.spawn(serve_tcp(
                tcp,
                shared.clone(),
                tcp_slots.clone(),
                config.tcp_idle,
                stopped.clone(),
            ));
        }
        if let Some(every) = config.probe_every {
            tasks.spawn(probe(shared.clone(), every, stopped.clone()));
        }
        tracing::info!(listen = ?bound, upstreams = ?config.upstreams, "DNS forwarder up");
        Ok(Self { stop, tasks, bound })
    }

    /// The UDP addresses it answers on (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// Stops serving and waits for the listeners to close.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
    }
}

struct Shared {
    upstreams: Vec<SocketAddr>,
    attempt_timeout: Duration,
    in_flight: Arc<Semaphore>,
    stats: Arc<DnsStats>,
}

fn socket(addr: SocketAddr, ty: socket2::Type) -> io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, ty, None)?;
    match addr {
        SocketAddr::V4(_) => s.set_freebind_v4(true)?,
        SocketAddr::V6(_) => {
            s.set_only_v6(true)?;
            s.set_freebind_v6(true)?;
        }
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, DnsError> {
    socket(addr, socket2::Type::DGRAM)
        .and_then(|s| UdpSocket::from_std(s.into()))
        .map_err(|source| DnsError::Bind {
            addr,
            proto: "udp",
            source,
        })
}

fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, DnsError> {
    socket(addr, socket2::Type::STREAM)
        .and_then(|s| {
            s.listen(128)?;
            TcpListener::from_std(s.into())
        })
        .map_err(|source| DnsError::Bind {
            addr,
            proto: "tcp",
            source,
        })
}

async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stopped.changed() => return,
        };
        let (len, client) = match received {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "DNS receive failed");
                continue;
            }
        };
        shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let query = buf[..len].to_vec();
        if !is_query(&query) {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // A full queue drops the query: the client retries, nothing piles up.
        let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let shared = shared.clone();
        let socket = socket.clone();
        tokio::spawn(async move {
            let answer = relay(&shared, &query, Transport::Udp).await;
            let _ = socket.send_to(&answer, client).await;
            drop(permit);
        });
    }
}

async fn serve_tcp(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        // Over the limit: close at once rather than queue.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = serve_tcp_client(stream, &shared, idle).await;
            drop(slot);
        });
    }
}

async fn serve_tcp_client(
    mut stream: TcpStream,
    shared: &Shared,
    idle: Duration,
) -> io::Result<()> {
    loop {
        let Some(query) = tokio::time::timeout(idle, read_framed(&mut stream))
            .await
            .ok()
            .transpose()?
            .flatten()
        else {
            return Ok(());
        };
        shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        if !is_query(&query) {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let _permit = shared.in_flight.acquire().await;
        let answer = relay(shared, &query, Transport::Tcp).await;
        write_framed(&mut stream, &answer).await?;
    }
}

/// Reads one length-prefixed message; `None` at a clean end of stream.
async fn read_framed(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&message[..usize::from(len)]);
    stream.write_all(&out).await
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

/// Asks the upstreams for the root's name servers every `every` (and at once), so
/// that a dead upstream shows before a user asks.
async fn probe(shared: Arc<Shared>, every: Duration, mut stopped: watch::Receiver<bool>) {
    // `. IN NS`, recursion desired.
    let query = [
        0x7E, 0x57, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1,
    ];
    loop {
        let result = ask_upstreams(&shared, &query, Transport::Udp).await;
        shared.stats.record(&result, false);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Asks the upstreams in order; the answer, or SERVFAIL for `query`.
async fn relay(shared: &Shared, query: &[u8], transport: Transport) -> Vec<u8> {
    let result = ask_upstreams(shared, query, transport).await;
    shared.stats.record(&result, true);
    match result {
        Ok(answer) => answer,
        Err(e) => {
            tracing::debug!(error = %e, "no upstream answered; SERVFAIL");
            servfail(query)
        }
    }
}

/// The first answer of an upstream, or why none came.
async fn ask_upstreams(
    shared: &Shared,
    query: &[u8],
    transport: Transport,
) -> Result<Vec<u8>, String> {
    let mut last_error = String::new();
    let mut result = Err(String::new());
    for upstream in &shared.upstreams {
        let attempt = async {
            match transport {
                Transport::Udp => ask_udp(*upstream, query).await,
                Transport::Tcp => ask_tcp(*upstream, query).await,
            }
        };
        match tokio::time::timeout(shared.attempt_timeout, attempt).await {
            Ok(Ok(answer)) if is_answer_to(&answer, query) => {
                result = Ok(answer);
                break;
            }
            Ok(Ok(_)) => last_error = format!("{upstream}: answer does not match the query"),
            Ok(Err(e)) => last_error = format!("{upstream}: {e}"),
            Err(_) => {
                last_error = format!(
                    "{upstream}: no answer within {} ms",
                    shared.attempt_timeout.as_millis()
                );
            }
        }
        shared
            .stats
            .upstream_failures
            .fetch_add(1, Ordering::Relaxed);
    }
    if result.is_err() {
        result = Err(last_error);
    }
    result
}

async fn ask_udp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // A fresh socket per query: a random source port, and only the upstream's
    // answers reach it (connected), so nothing can be spoofed in from elsewhere.
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let len = socket.recv(&mut buf).await?;
        let answer = &buf[..len];
        // Keep listening past stray datagrams until the attempt times out.
        if is_answer_to(answer, query) {
            return Ok(answer.to_vec());
        }
    }
}

async fn ask_tcp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    write_framed(&mut stream, query).await?;
    read_framed(&mut stream)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed without an answer"))
}

/// A standard query: a full header, QR clear, at least one question.
fn is_query(message: &[u8]) -> bool {
    message.len() >= HEADER
        && message[2] & 0x80 == 0
        && u16::from_be_bytes([message[4], message[5]]) >= 1
}

/// An answer (QR set) with the query's id.
fn is_answer_to(answer: &[u8], query: &[u8]) -> bool {
    answer.len() >= HEADER && answer[..2] == query[..2] && answer[2] & 0x80 != 0
}

/// The end of the first question (name, type, class), if it is well formed.
fn question_end(message: &[u8]) -> Option<usize> {
    let mut at = HEADER;
    loop {
        let len = usize::from(*message.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        // Queries carry no compression pointers; anything else is malformed.
        if len & 0xC0 != 0 {
            return None;
        }
        at += 1 + len;
    }
    let end = at + 4;
    (end <= message.len()).then_some(end)
}

/// SERVFAIL for `query`: its id, opcode and RD bit, its first question echoed.
fn servfail(query: &[u8]) -> Vec<u8> {
    let question = question_end(query).map_or(&[][..], |end| &query[HEADER..end]);
    let mut out = Vec::with_capacity(HEADER + question.len());
    out.extend_from_slice(&query[..2]);
    // QR, the query's opcode and RD; RA; RCODE 2.
    out.push(0x80 | (query[2] & 0x79));
    out.push(0x80 | 2);
    let qdcount: u16 = if question.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(question);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (type A), id `id`.
    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut q = Vec::new();
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(u8::try_from(label.len()).unwrap());
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    /// A fake upstream on loopback answering every UDP and TCP query with a fixed
    /// A record 192.0.2.7 (and counting them).
    async fn upstream(ip: &str) -> (SocketAddr, Arc<AtomicU64>) {
        let udp = UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), 0))
            .await
            .unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let n = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((len, from)) = udp.recv_from(&mut buf).await {
                n.fetch_add(1, Ordering::Relaxed);
                let _ = udp.send_to(&answer(&buf[..len]), from).await;
            }
        });
        let n = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                n.fetch_add(1, Ordering::Relaxed);
                if let Ok(Some(q)) = read_framed(&mut s).await {
                    let _ = write_framed(&mut s, &answer(&q)).await;
                }
            }
        });
        (addr, seen)
    }

    fn answer(query: &[u8]) -> Vec<u8> {
        let end = question_end(query).unwrap();
        let mut a = query[..end].to_vec();
        a[2] |= 0x80;
        a[3] = 0x80;
        a[7] = 1; // ANCOUNT
        a.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        a
    }

    fn config(listen: &str, upstreams: Vec<SocketAddr>) -> DnsConfig {
        let mut c = DnsConfig::new(vec![listen.parse().unwrap()], upstreams);
        c.port = 0;
        c.attempt_timeout = Duration::from_millis(300);
        c.probe_every = None;
        c
    }

    async fn ask(server: SocketAddr, q: &[u8]) -> Vec<u8> {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(q, server).await.unwrap();
        let mut buf = [0u8; 1500];
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
            .await
            .expect("an answer, not silence")
            .unwrap();
        buf[..len].to_vec()
    }

    fn rcode(a: &[u8]) -> u8 {
        a[3] & 0x0F
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.test\nnameserver 127.0.0.53\nnameserver  2001:db8::53 # v6\n;nameserver 9.9.9.9\nnameserver fe80::1%eth0\noptions edns0\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
        assert!(parse_resolv_conf("").is_empty());
    }

    #[test]
    fn servfail_echoes_id_question_and_rd() {
        let q = query(0xBEEF, "www.example.test");
        let a = servfail(&q);
        assert_eq!(&a[..2], &[0xBE, 0xEF]);
        assert_eq!(a[2], 0x81, "QR and RD");
        assert_eq!(rcode(&a), 2);
        assert_eq!(&a[4..6], &[0, 1]);
        assert_eq!(&a[HEADER..], &q[HEADER..]);
        // A malformed question still gets a header-only SERVFAIL with the id.
        let mut bad = q.clone();
        bad[HEADER] = 0xC0;
        let a = servfail(&bad);
        assert_eq!(a.len(), HEADER);
        assert_eq!(&a[4..6], &[0, 0]);
    }

    #[tokio::test]
    async fn relays_over_udp_and_tcp() {
        let (up, seen) = upstream("127.0.0.1").await;
        let stats = Arc::new(DnsStats::default());
        let server = DnsServer::start(config("127.0.0.2", vec![up]), stats.clone()).unwrap();
        let addr = server.local_addrs()[0];
        let q = query(7, "www.example.test");
        let a = ask(addr, &q).await;
        assert_eq!(rcode(&a), 0);
        assert_eq!(&a[a.len() - 4..], &[192, 0, 2, 7]);
        assert_eq!(stats.health(), DnsHealth::Ok);

        // TCP on the same address and port.
        let mut s = TcpStream::connect(addr).await.unwrap();
        write_framed(&mut s, &query(8, "mail.example.test"))
            .await
            .unwrap();
        let a = read_framed(&mut s).await.unwrap().unwrap();
        assert_eq!(&a[..2], &[0, 8]);
        assert_eq!(rcode(&a), 0);
        assert_eq!(seen.load(Ordering::Relaxed), 2);
        assert_eq!(stats.queries.load(Ordering::Relaxed), 2);
        assert_eq!(stats.answered.load(Ordering::Relaxed), 2);
        server.stop().await;
    }

    #[tokio::test]
    async fn unreachable_upstreams_give_servfail_fast() {
        // One upstream refuses (nothing listens: ICMP port unreachable), one is
        // silent (a socket that never answers).
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let refused = {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.local_addr().unwrap()
        };
        let stats = Arc::new(DnsStats::default());
        let cfg = config("127.0.0.3", vec![refused, silent.local_addr().unwrap()]);
        let server = DnsServer::start(cfg, stats.clone()).unwrap();
        let started = Instant::now();
        let a = ask(server.local_addrs()[0], &query(9, "www.example.test")).await;
        let took = started.elapsed();
        assert_eq!(rcode(&a), 2, "SERVFAIL");
        assert_eq!(&a[..2], &[0, 9]);
        // Refused at once, the silent one times out once: well under a client's 5 s.
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(matches!(stats.health(), DnsHealth::Failing(e) if e.contains("no answer")));
        assert_eq!(stats.servfail.load(Ordering::Relaxed), 1);
        assert_eq!(stats.upstream_failures.load(Ordering::Relaxed), 2);
        drop(silent);
        server.stop().await;
    }

    #[tokio::test]
    async fn the_second_upstream_answers_when_the_first_fails() {
        let refused = {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.local_addr().unwrap()
        };
        let (up, _) = upstream("127.0.0.1").await;
        let stats = Arc::new(DnsStats::default());
        let server =
            DnsServer::start(config("127.0.0.4", vec![refused, up]), stats.clone()).unwrap();
        let a = ask(server.local_addrs()[0], &query(10, "www.example.test")).await;
        assert_eq!(rcode(&a), 0);
        assert_eq!(stats.health(), DnsHealth::Ok);
    }

    #[tokio::test]
    async fn malformed_and_looping_input_is_refused() {
        let (up, seen) = upstream("127.0.0.1").await;
        let stats = Arc::new(DnsStats::default());
        let server = DnsServer::start(config("127.0.0.5", vec![up]), stats.clone()).unwrap();
        let addr = server.local_addrs()[0];
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // Too short, and an answer posing as a query: dropped, never relayed.
        s.send_to(&[1, 2, 3], addr).await.unwrap();
        let mut response = query(11, "x.test");
        response[2] |= 0x80;
        s.send_to(&response, addr).await.unwrap();
        // A good query after them still works.
        let a = ask(addr, &query(12, "x.test")).await;
        assert_eq!(rcode(&a), 0);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);

        // An upstream that is the resolver itself is a loop.
        let mut looped = DnsConfig::new(vec!["127.0.0.6".parse().unwrap()], vec![]);
        looped.upstreams = vec!["127.0.0.6:53".parse().unwrap()];
        assert!(matches!(
            DnsServer::start(looped, stats.clone()),
            Err(DnsError::Loop(_))
        ));
        assert!(matches!(
            DnsServer::start(DnsConfig::new(vec![], vec![]), stats),
            Err(DnsError::NoUpstream(_))
        ));
    }

    #[tokio::test]
    async fn the_probe_finds_a_dead_upstream_without_any_client() {
        let refused = {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.local_addr().unwrap()
        };
        let stats = Arc::new(DnsStats::default());
        let mut cfg = config("127.0.0.7", vec![refused]);
        cfg.probe_every = Some(Duration::from_millis(50));
        let server = DnsServer::start(cfg, stats.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.health() == DnsHealth::Idle {
            assert!(Instant::now() < deadline, "no probe ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let problem = stats.health().problem().unwrap();
        assert!(
            problem.starts_with("DNS: no upstream resolver answers"),
            "{problem}"
        );
        assert_eq!(
            stats.queries.load(Ordering::Relaxed),
            0,
            "probes are no queries"
        );
        assert_eq!(stats.servfail.load(Ordering::Relaxed), 0);
        server.stop().await;
    }

    #[tokio::test]
    async fn binds_before_the_address_exists() {
        // 192.0.2.53 is on no interface here: IP_FREEBIND still lets it bind, as the
        // daemon does before wireguard-go has given the interface its address.
        let stats = Arc::new(DnsStats::default());
        let cfg = config("192.0.2.53", vec!["127.0.0.1:53".parse().unwrap()]);
        let server = DnsServer::start(cfg, stats).expect("freebind");
        assert_eq!(
            server.local_addrs()[0].ip(),
            "192.0.2.53".parse::<IpAddr>().unwrap()
        );
    }
}
