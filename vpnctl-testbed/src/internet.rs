//! The "internet" a test tunnel browses: an authoritative DNS server for a test zone
//! ([`Dnsmasq`]), a web server ([`WebServer`]) that records who connected, and a
//! minimal DNS client ([`lookup`]) for asking from inside any namespace.
//!
//! The DNS server is dnsmasq (Debian's `dnsmasq-base`, installed by
//! `scripts/install-test-deps.sh`): an implementation independent of ours, so that
//! the node's forwarder is tested against a real resolver, not against itself. The
//! web server runs in the test process on a listener bound inside the namespace
//! ([`Netns::enter`]).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;

use crate::Netns;
use crate::process::ChildGuard;

/// dnsmasq answering for fixed names in a namespace; stopped on drop.
#[derive(Debug)]
pub struct Dnsmasq {
    child: Option<ChildGuard>,
    listen: IpAddr,
}

impl Dnsmasq {
    /// Serves `records` (a name and its addresses, v4 and/or v6) on `listen`:53 in
    /// `ns`; other names get no answer from upstream (it has none). Waits until it
    /// answers. The address must already be on an interface of `ns`.
    pub fn start(ns: &Netns, listen: IpAddr, records: &[(&str, &[IpAddr])]) -> Self {
        let mut cmd = ns.command("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--port=53",
            "--user=root",
            "--pid-file=",
            "--log-facility=-",
        ])
        .arg(format!("--listen-address={listen}"));
        for (name, addrs) in records {
            let mut record = format!("--host-record={name}");
            for a in *addrs {
                record.push(',');
                record.push_str(&a.to_string());
            }
            cmd.arg(record);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = ChildGuard::spawn(&mut cmd)
            .expect("spawn dnsmasq (scripts/install-test-deps.sh installs it)");
        let server = Self {
            child: Some(child),
            listen,
        };
        let probe = records.first().map_or("localhost", |(n, _)| *n);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lookup(
            ns,
            SocketAddr::new(listen, 53),
            probe,
            Duration::from_millis(200),
        )
        .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "dnsmasq on {listen} never answered"
            );
        }
        server
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen, 53)
    }

    /// Stops it (an unreachable resolver from now on).
    pub fn stop(&mut self) {
        self.child.take();
    }
}

/// What a DNS server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The response code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED).
    pub rcode: u8,
    /// The A records in the answer.
    pub addrs: Vec<IpAddr>,
    pub took: Duration,
}

/// Asks `server` for the A records of `name` from inside `ns`, over UDP, waiting at
/// most `timeout`. `Err` when nothing came back in time.
pub fn lookup(
    ns: &Netns,
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Answer, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    let socket = ns
        .enter(|| UdpSocket::bind(bind))
        .map_err(|e| format!("bind in {}: {e}", ns.name()))?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let id: u16 = 0x5151;
    let mut query = Vec::new();
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        query.push(u8::try_from(label.len()).map_err(|_| "label too long")?);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let started = Instant::now();
    socket
        .send_to(&query, server)
        .map_err(|e| format!("send to {server}: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let (len, from) = socket
            .recv_from(&mut buf)
            .map_err(|e| format!("no answer from {server} within {timeout:?}: {e}"))?;
        let msg = &buf[..len];
        if from == server && len >= 12 && msg[..2] == id.to_be_bytes() && msg[2] & 0x80 != 0 {
            return Ok(Answer {
                rcode: msg[3] & 0x0F,
                addrs: a_records(msg),
                took: started.elapsed(),
            });
        }
    }
}

/// The A records of a response (enough of the format for tests: names are skipped,
/// compressed or not).
fn a_records(msg: &[u8]) -> Vec<IpAddr> {
    fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let len = *msg.get(at)?;
            if len == 0 {
                return Some(at + 1);
            }
            if len & 0xC0 == 0xC0 {
                return Some(at + 2);
            }
            at += 1 + usize::from(len);
        }
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
    let (qd, an) = (count(4), count(6));
    let mut at = 12;
    let mut out = Vec::new();
    for _ in 0..qd {
        let Some(next) = skip_name(msg, at) else {
            return out;
        };
        at = next + 4;
    }
    for _ in 0..an {
        let Some(next) = skip_name(msg, at) else {
            return out;
        };
        let Some(header) = msg.get(next..next + 10) else {
            return out;
        };
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let rdlen = usize::from(u16::from_be_bytes([header[8], header[9]]));
        let data = next + 10;
        if rtype == 1
            && rdlen == 4
            && let Some(d) = msg.get(data..data + 4)
        {
            out.push(IpAddr::from([d[0], d[1], d[2], d[3]]));
        }
        at = data + rdlen;
    }
    out
}

/// A web server inside a namespace, answering every `GET` with a fixed page and
/// remembering the address of every client that connected.
#[derive(Debug)]
pub struct WebServer {
    clients: Arc<Mutex<Vec<SocketAddr>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WebServer {
    /// Serves `page` on each of `addrs` (port included) in `ns`; the addresses must be
    /// on interfaces of `ns`. Must be called inside a tokio runtime.
    pub fn start(ns: &Netns, addrs: &[SocketAddr], page: &'static str) -> Self {
        let clients: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let mut tasks = Vec::new();
        for addr in addrs {
            let listener = ns
                .enter(|| std::net::TcpListener::bind(addr))
                .unwrap_or_else(|e| panic!("bind {addr} in {}: {e}", ns.name()));
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let seen = clients.clone();
            let app = Router::new().route(
                "/",
                get(move |ConnectInfo(client): ConnectInfo<SocketAddr>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().expect("lock").push(client);
                        page
                    }
                }),
            );
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await;
            }));
        }
        Self { clients, tasks }
    }

    /// Every client that fetched the page, in order.
    pub fn clients(&self) -> Vec<SocketAddr> {
        self.clients.lock().expect("lock").clone()
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `curl` in `ns` as a user would run it (the namespace's resolv.conf decides how
/// names resolve): the page, or curl's error text. `extra` adds flags such as `-6`.
pub fn curl(ns: &Netns, url: &str, timeout: Duration, extra: &[&str]) -> Result<String, String> {
    let secs = timeout.as_secs_f64().to_string();
    let mut cmd: Command = ns.command("curl");
    cmd.args(["--silent", "--show-error", "--fail", "--max-time", &secs])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null());
    let out = cmd.output().map_err(|e| format!("spawn curl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "curl {url} in {} failed ({}): {}",
            ns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
