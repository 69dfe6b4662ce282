//! The node daemon's optional plain-HTTP listener: `GET /healthz` and Prometheus
//! `GET /metrics` (`--metrics-listen`).
//!
//! The agent loop owns a [`NodeMetrics`] and writes to it as it goes (atomics and
//! small mutex-guarded records, nothing that blocks); the HTTP handlers only read
//! it. What comes from the device is updated on every read of it (every drift
//! check and every periodic report): the peers connected as of that read, and the
//! byte counters, which add up what each peer's WireGuard counters grew by since the
//! previous read, so that they never go down when a peer is removed or the interface
//! is re-created.
//!
//! - `/healthz` answers `200 ok` when the WireGuard interface is up, the last
//!   reconcile (delta, snapshot or drift check) succeeded and the exit network is set
//!   up; otherwise `503` and a one-line reason. An unreachable control plane does not
//!   make a node unhealthy: it keeps serving its last desired state. A tunnel
//!   resolver whose upstreams do not answer gives `200 degraded: DNS: …`: tunnels
//!   work, names do not.
//! - `/metrics` is the Prometheus text exposition (0.0.4) of the `vpnctl_node_*`
//!   series, kept in a [`prometheus_client`] registry: counters and the apply-time
//!   histogram are updated as things happen (see [`NodeMetrics::render`]).
//!
//! Neither needs authentication and neither shows a key or an address of a peer, but
//! they do tell who looks how busy the node is: bind the listener to a private address
//! or firewall it. The control plane only needs to reach the TCP port: its health
//! probe measures how long a TCP connect to `{endpoint host}:{port}` takes, and the
//! agent announces the port in every report (`NodeReport::health_port`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use vpnctl_core::keys::PublicKey;
use vpnctl_core::lifecycle::counter_delta;
use vpnctl_core::wire::SystemStats;
use vpnctl_daemon::metrics::{CONTENT_TYPE, latency_histogram};

use crate::backend::DeviceState;
use crate::dns::DnsStats;

/// A peer counts as connected while its last handshake is at most this old
/// (WireGuard re-handshakes every 2 minutes while traffic flows, and gives up on a
/// session after 3).
pub const CONNECTED_WITHIN: Duration = Duration::from_secs(180);

/// How long the listener waits for open requests when the agent stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The metrics listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen on {addr} for metrics: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A bound, not yet serving, metrics listener: binding happens at start-up so that a
/// taken port is a start-up error, and the bound port (also for `:0`) is known before
/// the first report.
#[derive(Debug)]
pub struct MetricsListener {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
}

impl MetricsListener {
    pub async fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let bind_error = |source| MetricsError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `/healthz` and `/metrics` from `metrics` until [`MetricsServer::stop`]
    /// or until the returned handle is dropped.
    pub fn serve(self, metrics: Arc<NodeMetrics>) -> MetricsServer {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(metrics);
        let local_addr = self.local_addr;
        let task = tokio::spawn(async move {
            let served = axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "metrics listener failed");
            }
        });
        tracing::info!(addr = %local_addr, "serving /metrics and /healthz");
        MetricsServer {
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A running metrics listener. Dropping it aborts the listener at once.
#[derive(Debug)]
pub struct MetricsServer {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MetricsServer {
    /// Stops accepting connections and waits briefly for requests in flight.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.as_mut()
            && tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_ok()
        {
            self.task = None;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The routes of the listener, for serving them elsewhere.
pub fn router(metrics: Arc<NodeMetrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .with_state(metrics)
}

async fn healthz(State(metrics): State<Arc<NodeMetrics>>) -> Response {
    match metrics.health() {
        Ok(()) => match metrics.dns_problem() {
            None => (StatusCode::OK, "ok\n").into_response(),
            // Tunnels work, names do not: degraded, not down.
            Some(problem) => (StatusCode::OK, format!("degraded: {problem}\n")).into_response(),
        },
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn prometheus(State(metrics): State<Arc<NodeMetrics>>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()).into_response()
}

/// What the agent has last seen, for `/healthz` and `/metrics`. Written only by the
/// agent loop, as things happen; reading never waits for it.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    peers: Gauge<u64, AtomicU64>,
    peers_desired: Gauge<u64, AtomicU64>,
    peers_connected: Gauge<u64, AtomicU64>,
    /// Monotonic totals over every peer ever seen; see [`NodeMetrics::set_device`].
    received_bytes: Counter,
    sent_bytes: Counter,
    /// The `(rx, tx)` counters of each peer on the interface as of the last read.
    last_traffic: Mutex<HashMap<PublicKey, (u64, u64)>>,
    applied_revision: Gauge<u64, AtomicU64>,
    interface_up: Gauge,
    apply_duration: Histogram,
    reconcile_errors: Counter,
    drift_removed: Counter,
    control_plane_reachable: Gauge,
    /// Unix seconds of the last answer of the control plane; 0: never.
    last_sync: Gauge,
    reports: Counter,
    report_failures: Counter,
    system: Arc<SystemCollector>,
    dns: Arc<DnsCollector>,
    health: Mutex<Health>,
}

#[derive(Debug)]
struct Health {
    /// `Err(reason)` while the WireGuard interface is down or unreadable.
    interface: Result<(), String>,
    /// The last apply or reconcile; `None` before the first one.
    reconcile: Option<Result<(), String>>,
    /// Addresses, forwarding and NAT of the exit.
    network: Result<(), String>,
}

/// The host's load and memory, exposed once the agent sampled them.
#[derive(Debug, Default)]
struct SystemCollector(Mutex<Option<SystemStats>>);

impl Collector for SystemCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(system) = lock(&self.0).clone() else {
            return Ok(());
        };
        let load = ConstGauge::new(system.load1);
        load.encode(encoder.encode_descriptor(
            "vpnctl_node_load1",
            "One-minute load average of the host.",
            None,
            load.metric_type(),
        )?)?;
        let memory: [(&str, &str, u64); 2] = [
            (
                "vpnctl_node_memory_used_bytes",
                "Memory in use on the host (total minus available).",
                system.mem_used_bytes,
            ),
            (
                "vpnctl_node_memory_total_bytes",
                "Memory of the host.",
                system.mem_total_bytes,
            ),
        ];
        for (name, help, bytes) in memory {
            let gauge = ConstGauge::new(bytes);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// The tunnel resolver's counters, read at scrape time, once the agent runs one.
#[derive(Debug, Default)]
struct DnsCollector(Mutex<Option<Arc<DnsStats>>>);

impl Collector for DnsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(stats) = lock(&self.0).clone() else {
            return Ok(());
        };
        let counters: [(&str, &str, &AtomicU64); 5] = [
            (
                "vpnctl_node_dns_queries",
                "DNS queries from the tunnel (UDP and TCP)",
                &stats.queries,
            ),
            (
                "vpnctl_node_dns_answered",
                "DNS queries answered by an upstream resolver",
                &stats.answered,
            ),
            (
                "vpnctl_node_dns_servfail",
                "DNS queries answered SERVFAIL because no upstream resolver answered",
                &stats.servfail,
            ),
            (
                "vpnctl_node_dns_dropped",
                "DNS queries dropped: malformed, or too many in flight",
                &stats.dropped,
            ),
            (
                "vpnctl_node_dns_upstream_failures",
                "Failed attempts at one upstream resolver (refused, timed out, bad answer)",
                &stats.upstream_failures,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value.load(std::sync::atomic::Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let up = ConstGauge::new(i64::from(stats.health().problem().is_none()));
        up.encode(encoder.encode_descriptor(
            "vpnctl_node_dns_upstream_up",
            "Whether the upstream resolvers answered the last query or probe (1) or not (0)",
            None,
            up.metric_type(),
        )?)?;
        Ok(())
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let peers = Gauge::<u64, AtomicU64>::default();
        let peers_desired = Gauge::<u64, AtomicU64>::default();
        let peers_connected = Gauge::<u64, AtomicU64>::default();
        let received_bytes = Counter::default();
        let sent_bytes = Counter::default();
        let applied_revision = Gauge::<u64, AtomicU64>::default();
        let interface_up = Gauge::default();
        let apply_duration = latency_histogram();
        let reconcile_errors = Counter::default();
        let drift_removed = Counter::default();
        let control_plane_reachable = Gauge::default();
        let last_sync = Gauge::default();
        let reports = Counter::default();
        let report_failures = Counter::default();
        let system = Arc::new(SystemCollector::default());
        let dns = Arc::new(DnsCollector::default());
        registry.register(
            "vpnctl_node_peers",
            "Peers the agent has put on the WireGuard interface",
            peers.clone(),
        );
        registry.register(
            "vpnctl_node_peers_desired",
            "Peers in the applied desired state (0 while the node is disabled)",
            peers_desired.clone(),
        );
        registry.register(
            "vpnctl_node_peers_connected",
            "Peers with a handshake in the last 180 seconds, as of the last device read",
            peers_connected.clone(),
        );
        registry.register(
            "vpnctl_node_received_bytes",
            "Bytes received from peers, over every peer the interface has had while the agent ran",
            received_bytes.clone(),
        );
        registry.register(
            "vpnctl_node_sent_bytes",
            "Bytes sent to peers, over every peer the interface has had while the agent ran",
            sent_bytes.clone(),
        );
        registry.register(
            "vpnctl_node_applied_revision",
            "Revision of the desired state the node has applied",
            applied_revision.clone(),
        );
        registry.register(
            "vpnctl_node_interface_up",
            "Whether the WireGuard interface is up",
            interface_up.clone(),
        );
        registry.register(
            "vpnctl_node_apply_duration_seconds",
            "Time to apply a desired-state update (delta or snapshot) to the interface",
            apply_duration.clone(),
        );
        registry.register(
            "vpnctl_node_reconcile_errors",
            "Errors while applying, reconciling or caching the desired state",
            reconcile_errors.clone(),
        );
        registry.register(
            "vpnctl_node_drift_removed",
            "Peers found on the interface that nobody asked for, and removed",
            drift_removed.clone(),
        );
        registry.register(
            "vpnctl_node_control_plane_reachable",
            "Whether the last request to the control plane (poll or report) succeeded",
            control_plane_reachable.clone(),
        );
        registry.register(
            "vpnctl_node_last_sync_timestamp_seconds",
            "Unix time of the last successful request to the control plane (0: never)",
            last_sync.clone(),
        );
        registry.register(
            "vpnctl_node_reports",
            "Reports the control plane accepted",
            reports.clone(),
        );
        registry.register(
            "vpnctl_node_report_failures",
            "Reports that did not reach the control plane",
            report_failures.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&system)));
        registry.register_collector(Box::new(Arc::clone(&dns)));
        Self {
            registry,
            peers,
            peers_desired,
            peers_connected,
            received_bytes,
            sent_bytes,
            last_traffic: Mutex::new(HashMap::new()),
            applied_revision,
            interface_up,
            apply_duration,
            reconcile_errors,
            drift_removed,
            control_plane_reachable,
            last_sync,
            reports,
            report_failures,
            system,
            dns,
            health: Mutex::new(Health {
                interface: Err("the interface is not up yet".into()),
                reconcile: None,
                network: Ok(()),
            }),
        }
    }
}

impl NodeMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Ok` when the node serves its desired state, else why not (one line).
    pub fn health(&self) -> Result<(), String> {
        let health = lock(&self.health);
        if let Err(reason) = &health.interface {
            return Err(format!("interface down: {reason}"));
        }
        match &health.reconcile {
            None => return Err("no desired state applied yet".into()),
            Some(Err(reason)) => return Err(format!("last reconcile failed: {reason}")),
            Some(Ok(())) => {}
        }
        if let Err(reason) = &health.network {
            return Err(format!("exit network setup failed: {reason}"));
        }
        Ok(())
    }

    /// What is wrong with the tunnel's resolver, if it runs and is failing. The node
    /// still serves its tunnels then: `/healthz` says so with 200.
    pub fn dns_problem(&self) -> Option<String> {
        lock(&self.dns.0)
            .as_ref()
            .and_then(|stats| stats.health().problem())
    }

    pub(crate) fn set_dns(&self, stats: Arc<DnsStats>) {
        *lock(&self.dns.0) = Some(stats);
    }

    pub fn interface_up(&self) -> bool {
        lock(&self.health).interface.is_ok()
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        vpnctl_daemon::metrics::encode(&mut out, &self.registry);
        out
    }

    // ---- written by the agent ------------------------------------------------------

    pub(crate) fn set_state(&self, revision: u64, desired: usize, on_device: usize) {
        self.applied_revision.set(revision);
        self.peers_desired.set(count(desired));
        self.peers.set(count(on_device));
    }

    /// Peers connected and traffic totals from a read of the device.
    ///
    /// The byte totals are Prometheus counters, so they must never go down: each read
    /// adds what every peer's counters grew by since the previous read
    /// ([`counter_delta`]: a smaller reading means that peer's counter restarted, and
    /// all of it is new). A peer that is gone from the interface is forgotten (its
    /// bytes stay in the totals); if its key comes back, its counters count from its
    /// new reading.
    pub(crate) fn set_device(&self, live: &DeviceState, now: SystemTime) {
        let (mut connected, mut rx, mut tx) = (0usize, 0u64, 0u64);
        let mut last = lock(&self.last_traffic);
        let mut seen = HashMap::with_capacity(live.peers.len());
        for peer in &live.peers {
            let stats = &peer.stats;
            // A handshake "in the future" (clock step) counts as recent.
            if stats.last_handshake.is_some_and(|at| {
                now.duration_since(at)
                    .map_or(true, |d| d <= CONNECTED_WITHIN)
            }) {
                connected += 1;
            }
            let key = peer.spec.public_key;
            let reading = (stats.rx_bytes, stats.tx_bytes);
            // A key listed twice in one read counts against its first listing.
            let (last_rx, last_tx) = seen
                .get(&key)
                .or_else(|| last.get(&key))
                .copied()
                .unwrap_or((0, 0));
            rx = rx.saturating_add(counter_delta(last_rx, reading.0));
            tx = tx.saturating_add(counter_delta(last_tx, reading.1));
            seen.insert(key, reading);
        }
        *last = seen;
        self.peers_connected.set(count(connected));
        self.received_bytes.inc_by(rx);
        self.sent_bytes.inc_by(tx);
    }

    pub(crate) fn observe_apply(&self, took: Duration) {
        self.apply_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn count_error(&self) {
        self.reconcile_errors.inc();
    }

    pub(crate) fn count_strays(&self, n: usize) {
        self.drift_removed.inc_by(count(n));
    }

    pub(crate) fn set_control_plane(&self, reachable: bool, at: SystemTime) {
        self.control_plane_reachable.set(i64::from(reachable));
        if reachable {
            let secs = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.last_sync.set(i64::try_from(secs).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn count_report(&self, delivered: bool) {
        if delivered {
            self.reports.inc();
        } else {
            self.report_failures.inc();
        }
    }

    pub(crate) fn set_system(&self, stats: &SystemStats) {
        *lock(&self.system.0) = Some(stats.clone());
    }

    pub(crate) fn set_interface(&self, status: Result<(), String>) {
        self.interface_up.set(i64::from(status.is_ok()));
        lock(&self.health).interface = status.map_err(one_line);
    }

    pub(crate) fn set_reconcile(&self, status: Result<(), String>) {
        lock(&self.health).reconcile = Some(status.map_err(one_line));
    }

    pub(crate) fn set_network(&self, status: Result<(), String>) {
        lock(&self.health).network = status.map_err(one_line);
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn one_line(text: String) -> String {
    if text.contains(['\n', '\r']) {
        text.split(['\n', '\r'])
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        text
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{LivePeer, PeerStats};
    use vpnctl_core::keys::KeyPair;
    use vpnctl_core::reconcile::PeerSpec;

    fn live_peer(handshake: Option<SystemTime>, rx: u64, tx: u64) -> LivePeer {
        LivePeer {
            spec: PeerSpec::new(
                KeyPair::generate().public,
                None,
                ["10.8.0.2/32".parse().unwrap()],
                None,
            ),
            stats: PeerStats {
                last_handshake: handshake,
                rx_bytes: rx,
                tx_bytes: tx,
                ..PeerStats::default()
            },
        }
    }

    fn keyed_peer(key: PublicKey, rx: u64, tx: u64) -> LivePeer {
        let mut peer = live_peer(None, rx, tx);
        peer.spec.public_key = key;
        peer
    }

    fn device(peers: Vec<LivePeer>) -> DeviceState {
        DeviceState {
            public_key: None,
            listen_port: Some(51820),
            peers,
        }
    }

    fn totals(m: &NodeMetrics) -> (u64, u64) {
        (m.received_bytes.get(), m.sent_bytes.get())
    }

    #[test]
    fn traffic_totals_never_go_down() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (a, b) = (KeyPair::generate().public, KeyPair::generate().public);
        let m = NodeMetrics::new();
        let mut previous = (0, 0);
        let mut read = |peers: Vec<LivePeer>, expected: (u64, u64)| {
            m.set_device(&device(peers), now);
            let got = totals(&m);
            assert_eq!(got, expected);
            assert!(got.0 >= previous.0 && got.1 >= previous.1, "went down");
            previous = got;
        };

        // Readings grow: the totals grow by the growth.
        read(
            vec![keyed_peer(a, 100, 1000), keyed_peer(b, 10, 20)],
            (110, 1020),
        );
        read(
            vec![keyed_peer(a, 150, 1500), keyed_peer(b, 10, 25)],
            (160, 1525),
        );
        // An unchanged read adds nothing.
        read(
            vec![keyed_peer(a, 150, 1500), keyed_peer(b, 10, 25)],
            (160, 1525),
        );
        // `a` is removed: its bytes stay counted, nothing drops.
        read(vec![keyed_peer(b, 12, 30)], (162, 1530));
        // `b`'s counters restarted (smaller reading): only the new reading is added.
        read(vec![keyed_peer(b, 5, 4)], (167, 1534));
        // `a` comes back: it counts from its new reading, not from its old one.
        read(vec![keyed_peer(a, 7, 9), keyed_peer(b, 6, 4)], (175, 1543));
        // The interface is re-created: every counter starts over.
        read(vec![], (175, 1543));
        read(vec![keyed_peer(a, 1, 2), keyed_peer(b, 3, 4)], (179, 1549));

        let text = m.render();
        assert!(
            text.contains("vpnctl_node_received_bytes_total 179\n"),
            "{text}"
        );
        assert!(
            text.contains("vpnctl_node_sent_bytes_total 1549\n"),
            "{text}"
        );
        assert!(!text.contains("drops"), "{text}");
    }

    #[test]
    fn health_names_the_first_problem() {
        let m = NodeMetrics::new();
        assert_eq!(
            m.health().unwrap_err(),
            "interface down: the interface is not up yet"
        );
        m.set_interface(Ok(()));
        assert_eq!(m.health().unwrap_err(), "no desired state applied yet");
        m.set_reconcile(Err("applying changes:\nrefused".into()));
        assert_eq!(
            m.health().unwrap_err(),
            "last reconcile failed: applying changes: refused"
        );
        m.set_reconcile(Ok(()));
        assert_eq!(m.health(), Ok(()));
        m.set_network(Err("nft: not found".into()));
        assert_eq!(
            m.health().unwrap_err(),
            "exit network setup failed: nft: not found"
        );
        m.set_network(Ok(()));
        m.set_interface(Err("WireGuard interface wg0 is not running".into()));
        assert_eq!(
            m.health().unwrap_err(),
            "interface down: WireGuard interface wg0 is not running"
        );
    }

    #[test]
    fn device_read_counts_connected_peers_and_sums_traffic() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let live = DeviceState {
            public_key: None,
            listen_port: Some(51820),
            peers: vec![
                live_peer(Some(now - Duration::from_secs(30)), 100, 1000),
                live_peer(Some(now - Duration::from_secs(181)), 10, 20),
                live_peer(Some(now + Duration::from_secs(5)), 1, 2),
                live_peer(None, 0, 0),
            ],
        };
        let m = NodeMetrics::new();
        m.set_device(&live, now);
        m.set_state(7, 5, 4);
        m.observe_apply(Duration::from_millis(3));
        let text = m.render();
        for line in [
            "vpnctl_node_peers 4\n",
            "vpnctl_node_peers_desired 5\n",
            "vpnctl_node_peers_connected 2\n",
            "vpnctl_node_received_bytes_total 111\n",
            "vpnctl_node_sent_bytes_total 1022\n",
            "vpnctl_node_applied_revision 7\n",
            "vpnctl_node_interface_up 0\n",
            "# TYPE vpnctl_node_sent_bytes_total counter\n",
            "vpnctl_node_apply_duration_seconds_bucket{le=\"0.005\"} 1\n",
            "vpnctl_node_apply_duration_seconds_count 1\n",
            "vpnctl_node_last_sync_timestamp_seconds 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("vpnctl_node_load1"), "no sample yet");
        assert!(
            text.contains(
                "# HELP vpnctl_node_peers Peers the agent has put on the WireGuard interface.\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("..\n"),
            "help texts end in one period: {text}"
        );
        m.set_system(&SystemStats {
            load1: 0.5,
            mem_total_bytes: 1 << 30,
            ..SystemStats::default()
        });
        m.set_control_plane(true, now);
        let text = m.render();
        assert!(text.contains("vpnctl_node_load1 0.5\n"), "{text}");
        assert!(text.contains("vpnctl_node_memory_total_bytes 1073741824\n"));
        assert!(text.contains("vpnctl_node_last_sync_timestamp_seconds 1700000000\n"));
        assert!(text.contains("vpnctl_node_control_plane_reachable 1\n"));
    }
}
