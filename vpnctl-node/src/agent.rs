//! The node daemon's control loop: fetch the desired state, apply only the difference,
//! report.
//!
//! [`Agent::run`] first restores the interface from the local [`Cache`] without asking
//! anybody (a node that reboots while its control plane is away serves exactly what it
//! served before: "fail static"), then loops over four things at once:
//!
//! - a long poll of [`ControlPlane::desired`] after the applied revision. A delta is
//!   turned into [`PeerChange`]s against the peers the agent knows it applied and only
//!   those are applied, without reading the device (reading 10k peers costs ~77 ms, one
//!   change ~0.4 ms). A snapshot replaces the desired state and is reconciled against
//!   the live device. A delta that does not start at the applied revision makes the
//!   next poll ask for a snapshot (`after = 0`).
//! - a drift check every `reconcile_interval`: a full reconcile against the live device,
//!   which removes peers nobody asked for (reported as strays) and re-creates a
//!   vanished interface.
//! - a report after each apply and every `report_interval`.
//! - the shutdown future: the interface stays up unless
//!   [`AgentConfig::teardown_on_exit`] says otherwise.
//!
//! With [`Agent::with_metrics_listener`] it also serves `/healthz` and `/metrics`
//! ([`crate::metrics`]) for as long as it runs, and announces the listener's port in
//! every report. The loop writes [`NodeMetrics`] as it goes; the handlers only read.
//!
//! Control-plane failures never touch the interface, and the log gets one line per
//! change of state, not one per retry. A failed poll is retried with jittered
//! exponential backoff ([`Backoff`]), in two kinds:
//!
//! - the control plane is **unreachable** (refused, timed out, TLS failure):
//!   [`AgentConfig::reconnect`], capped at 2 s. Trying costs the absent server
//!   nothing, and a control plane that comes back is noticed within 2 s; the jitter
//!   spreads the nodes that lost it together over that window instead of bringing
//!   them back in one burst.
//! - the control plane **answered** with an error (a refusal, a server error):
//!   [`AgentConfig::retry`], up to 30 s, so that a struggling server is not pressed.
//!
//! Whenever a report gets through while the poll waits out a backoff, the poll is
//! retried at once (after a jitter of 125–250 ms): the control plane is back, and the
//! changes made meanwhile should not wait for the rest of the backoff.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, MissedTickBehavior};
use vpnctl_core::keys::{PrivateKey, PublicKey};
use vpnctl_core::reconcile::{PeerChange, PeerSpec, plan};
use vpnctl_core::time::Timestamp;
use vpnctl_core::wire::{self, DesiredUpdate, NodeDesired, NodeReport, PeerDelta};
pub use vpnctl_daemon::Backoff;

use crate::backend::{self, BackendError, DeviceState, WgBackend};
use crate::dns::{DnsConfig, DnsServer, DnsStats};
use crate::metrics::{MetricsListener, NodeMetrics};
use crate::netconf::{ExitConfig, ExitNetwork};
use crate::reconciler::{self, Cache, ReconcileError, ReconcileOutcome};
use crate::sysstats::SystemSampler;

/// How long one long poll may wait for news, as the protocol suggests.
pub const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(25);
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(15);
/// Polls while the control plane is unreachable: 250 ms doubling to 2 s, jittered.
pub const DEFAULT_RECONNECT: Backoff =
    Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
/// The wait before a poll that a successful report cut short.
const RESUME: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_millis(250));
/// Reconcile errors kept for the next report.
const MAX_ERRORS: usize = 16;

/// The control plane as the node sees it. Implemented by the HTTP client in the
/// binary and by in-process fakes in tests.
pub trait ControlPlane: Send + Sync + 'static {
    /// The desired state after revision `after` (0: "send me a snapshot"), waiting up
    /// to `wait` for a newer revision.
    fn desired(
        &self,
        after: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<DesiredUpdate, CpError>> + Send;

    fn report(&self, report: NodeReport) -> impl Future<Output = Result<(), CpError>> + Send;
}

/// Why a control-plane request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpError {
    /// No answer: connection refused, timeout, TLS failure, DNS…
    #[error("control plane unreachable: {0}")]
    Unreachable(String),
    /// An answer that says no (e.g. 401 for a revoked node token).
    #[error("control plane refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("control plane: {0}")]
    Other(String),
}

/// Settings of one agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node's WireGuard identity. Never leaves the node, never logged.
    pub private_key: PrivateKey,
    /// The listen port until the control plane's interface spec names one.
    pub listen_port: u16,
    /// Masquerade the pools (see [`ExitConfig::nat`]).
    pub nat: bool,
    pub poll_wait: Duration,
    pub reconcile_interval: Duration,
    pub report_interval: Duration,
    /// Waits before polling again after the control plane answered with an error.
    pub retry: Backoff,
    /// Waits before polling again while the control plane is unreachable; its cap is
    /// how long a returning control plane may go unnoticed.
    pub reconnect: Backoff,
    /// On shutdown, remove the interface and our NAT table. Off by default: the VPN
    /// keeps serving while the daemon restarts or is upgraded.
    pub teardown_on_exit: bool,
    /// The tunnel's resolver on the gateway addresses (see [`crate::dns`]); `None`:
    /// the node answers no DNS (configs must then name other resolvers).
    pub dns: Option<DnsSettings>,
}

/// Where the tunnel's resolver forwards to, and on which port it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    pub upstreams: Vec<std::net::SocketAddr>,
    /// [`crate::dns::DNS_PORT`] except in tests.
    pub port: u16,
}

impl AgentConfig {
    pub fn new(private_key: PrivateKey, listen_port: u16) -> Self {
        Self {
            private_key,
            listen_port,
            nat: true,
            poll_wait: DEFAULT_POLL_WAIT,
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            report_interval: DEFAULT_REPORT_INTERVAL,
            retry: Backoff::default(),
            reconnect: DEFAULT_RECONNECT,
            teardown_on_exit: false,
            dns: None,
        }
    }
}

/// A backend shared between the agent loop and its blocking calls.
pub type SharedBackend<B> = Arc<Mutex<B>>;

/// Why the agent stopped with an error. Only the teardown on exit can fail: every
/// failure while running is retried and reported instead.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("tearing down the interface: {0}")]
    Teardown(#[source] BackendError),
    #[error("removing the exit's network setup: {0}")]
    NetworkDown(#[source] crate::netconf::NetconfError),
}

/// What the log has last said about the control plane; a new line only on change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    Unknown,
    Up,
    Down(String),
}

impl Link {
    fn state_of(error: &CpError) -> String {
        match error {
            CpError::Unreachable(_) => "unreachable".into(),
            CpError::Rejected { status, .. } => format!("rejected {status}"),
            CpError::Other(_) => "failing".into(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The node daemon's loop over one control plane, one WireGuard backend and one exit
/// network. See the module docs.
pub struct Agent<C, B, N> {
    cp: Arc<C>,
    backend: SharedBackend<B>,
    network: Arc<Mutex<N>>,
    cache: Cache,
    config: AgentConfig,
    public_key: PublicKey,
    /// The desired state at the applied revision (`None` before the first one).
    desired: Option<NodeDesired>,
    /// The peers the agent put on the device, by key: the "actual" side of a delta.
    device: HashMap<PublicKey, PeerSpec>,
    /// The interface spec `ensure` and the exit network were last brought up with.
    brought_up: Option<Option<wire::InterfaceSpec>>,
    /// The device as last read: identity and per-peer stats.
    live: Option<DeviceState>,
    strays: Vec<PublicKey>,
    errors: VecDeque<String>,
    last_logged_error: Option<String>,
    need_snapshot: bool,
    link: Link,
    sampler: SystemSampler,
    metrics: Arc<NodeMetrics>,
    /// Served while [`Agent::run`] runs.
    metrics_listener: Option<MetricsListener>,
    /// The bound port of the metrics listener, announced in every report.
    health_port: Option<u16>,
    /// The tunnel's resolver while it runs, and the addresses it listens on.
    dns: Option<(Vec<std::net::IpAddr>, DnsServer)>,
    dns_stats: Arc<DnsStats>,
}

impl<C, B, N> fmt::Debug for Agent<C, B, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("public_key", &self.public_key)
            .field("revision", &self.desired.as_ref().map_or(0, |d| d.revision))
            .field("peers", &self.device.len())
            .finish_non_exhaustive()
    }
}

impl<C, B, N> Agent<C, B, N>
where
    C: ControlPlane,
    B: WgBackend + 'static,
    N: ExitNetwork,
{
    pub fn new(
        control_plane: C,
        backend: B,
        network: N,
        cache: Cache,
        config: AgentConfig,
    ) -> Self {
        let metrics = Arc::new(NodeMetrics::new());
        let dns_stats = Arc::new(DnsStats::default());
        if config.dns.is_some() {
            metrics.set_dns(Arc::clone(&dns_stats));
        }
        Self {
            cp: Arc::new(control_plane),
            backend: Arc::new(Mutex::new(backend)),
            network: Arc::new(Mutex::new(network)),
            cache,
            public_key: config.private_key.public_key(),
            config,
            desired: None,
            device: HashMap::new(),
            brought_up: None,
            live: None,
            strays: Vec::new(),
            errors: VecDeque::new(),
            last_logged_error: None,
            need_snapshot: false,
            link: Link::Unknown,
            sampler: SystemSampler::default(),
            metrics,
            metrics_listener: None,
            health_port: None,
            dns: None,
            dns_stats,
        }
    }

    /// Serves `/healthz` and `/metrics` on `listener` while the agent runs, and puts
    /// its port into every report ([`NodeReport::health_port`]).
    #[must_use]
    pub fn with_metrics_listener(mut self, listener: MetricsListener) -> Self {
        self.health_port = Some(listener.local_addr().port());
        self.metrics_listener = Some(listener);
        self
    }

    /// What `/metrics` and `/healthz` show; kept up to date with or without a listener.
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The backend, for looking at it while the agent runs (tests, `vpnctl demo`).
    pub fn backend(&self) -> SharedBackend<B> {
        Arc::clone(&self.backend)
    }

    fn applied_revision(&self) -> u64 {
        self.desired.as_ref().map_or(0, |d| d.revision)
    }

    /// Runs until `shutdown` completes. The interface stays up afterwards unless
    /// [`AgentConfig::teardown_on_exit`] is set.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        // Up before the restore, so that a slow start answers 503 rather than nothing.
        let server = self
            .metrics_listener
            .take()
            .map(|listener| listener.serve(Arc::clone(&self.metrics)));
        self.restore().await;

        let mut failures = 0u32;
        let mut poll = self.poll(Duration::ZERO);
        // When the poll waiting out a backoff will be sent; `None` while it is in flight.
        let mut poll_retry_at: Option<Instant> = None;
        let start = Instant::now();
        let mut drift = tokio::time::interval_at(
            start + self.config.reconcile_interval,
            self.config.reconcile_interval,
        );
        drift.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut periodic = tokio::time::interval_at(
            start + self.config.report_interval,
            self.config.report_interval,
        );
        periodic.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sending: Option<BoxFuture<Result<(), CpError>>> = None;
        // What the report in flight carries that must not get lost if it fails.
        let mut carried: (Vec<PublicKey>, Vec<String>) = (Vec::new(), Vec::new());
        // `Some(fresh)`: a report is due; `fresh` reads the device for current stats.
        let mut report_due: Option<bool> = Some(true);

        // Reports after applies are spaced out: a 10,000-peer report is ~1.5 MB of
        // JSON, and a burst of changes must not turn into a burst of reports.
        let mut next_report_at = tokio::time::Instant::now();
        loop {
            if sending.is_none()
                && report_due.is_some()
                && tokio::time::Instant::now() >= next_report_at
                && let Some(fresh) = report_due.take()
            {
                next_report_at = tokio::time::Instant::now() + MIN_REPORT_GAP;
                let report = self.build_report(fresh).await;
                carried = (report.strays_removed.clone(), report.errors.clone());
                let cp = Arc::clone(&self.cp);
                sending = Some(Box::pin(async move { cp.report(report).await }));
            }
            tokio::select! {
                () = &mut shutdown => break,
                result = &mut poll => {
                    poll_retry_at = None;
                    let delay = match result {
                        Ok(update) => {
                            failures = 0;
                            if self.control_plane_ok() {
                                // Tell it at once that this node is alive and where it is.
                                report_due.get_or_insert(false);
                            }
                            if self.on_update(update).await {
                                report_due.get_or_insert(false);
                                // The next poll is already in flight while the cache
                                // is written.
                                poll = self.poll(Duration::ZERO);
                                self.store_cache().await;
                                continue;
                            }
                            Duration::ZERO
                        }
                        Err(error) => {
                            failures = failures.saturating_add(1);
                            self.control_plane_failed(&error);
                            let backoff = match error {
                                CpError::Unreachable(_) => self.config.reconnect,
                                CpError::Rejected { .. } | CpError::Other(_) => self.config.retry,
                            };
                            let delay = backoff.delay(failures);
                            poll_retry_at = Some(Instant::now() + delay);
                            delay
                        }
                    };
                    poll = self.poll(delay);
                }
                _ = drift.tick() => {
                    if self.drift_check().await {
                        report_due.get_or_insert(false);
                    }
                }
                _ = periodic.tick() => report_due = Some(true),
                () = tokio::time::sleep_until(next_report_at),
                    if report_due.is_some() && sending.is_none() => {}
                result = async { sending.as_mut().expect("guarded").await }, if sending.is_some() => {
                    sending = None;
                    let (strays, errors) = std::mem::take(&mut carried);
                    self.metrics.count_report(result.is_ok());
                    match result {
                        Ok(()) => {
                            self.control_plane_ok();
                            // The control plane is back: the poll need not wait out
                            // its backoff. The failure count stays, so a poll that
                            // fails again keeps backing off.
                            let soon = RESUME.delay(1);
                            if poll_retry_at.is_some_and(|at| at > Instant::now() + soon) {
                                poll_retry_at = Some(Instant::now() + soon);
                                poll = self.poll(soon);
                            }
                        }
                        Err(error) => {
                            self.control_plane_failed(&error);
                            // Keep what only this report carried for the next one.
                            self.strays.splice(0..0, strays);
                            for e in errors.into_iter().rev() {
                                self.errors.push_front(e);
                            }
                            self.errors.truncate(MAX_ERRORS);
                        }
                    }
                }
            }
        }
        if let Some(server) = server {
            server.stop().await;
        }
        self.stop().await
    }

    /// The next long poll, after `delay`.
    /// Starts the next long-poll at once, as its own task: the request is in flight
    /// while the agent writes its cache or reports, so a change that arrives right
    /// after the previous one is not held up by them. Dropping the future aborts it.
    fn poll(&self, delay: Duration) -> BoxFuture<Result<DesiredUpdate, CpError>> {
        let after = if self.need_snapshot {
            0
        } else {
            self.applied_revision()
        };
        let wait = self.config.poll_wait;
        let cp = Arc::clone(&self.cp);
        let task = AbortOnDrop(tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            cp.desired(after, wait).await
        }));
        Box::pin(async move {
            let mut task = task;
            (&mut task.0)
                .await
                .unwrap_or_else(|e| Err(CpError::Other(format!("poll task: {e}"))))
        })
    }

    /// Notes an answer of the control plane; true when it was not known to be up.
    fn control_plane_ok(&mut self) -> bool {
        self.metrics.set_control_plane(true, SystemTime::now());
        let was = std::mem::replace(&mut self.link, Link::Up);
        match was {
            Link::Up => return false,
            Link::Unknown => tracing::info!("connected to the control plane"),
            Link::Down(_) => tracing::info!("control plane is back"),
        }
        true
    }

    fn control_plane_failed(&mut self, error: &CpError) {
        self.metrics.set_control_plane(false, SystemTime::now());
        let state = Link::state_of(error);
        if self.link != Link::Down(state.clone()) {
            tracing::warn!(
                %error,
                revision = self.applied_revision(),
                "control plane {state}: serving the last applied state, retrying with backoff"
            );
        }
        self.link = Link::Down(state);
    }

    fn record_error(&mut self, error: String) {
        self.metrics.count_error();
        if self.last_logged_error.as_deref() != Some(error.as_str()) {
            tracing::warn!(%error, "reconcile error");
            self.last_logged_error = Some(error.clone());
        }
        if self.errors.len() == MAX_ERRORS {
            self.errors.pop_front();
        }
        self.errors.push_back(error);
    }

    /// Start-up: the cached state, the interface and its peers, before any request.
    async fn restore(&mut self) {
        let cache = self.cache.clone();
        match blocking(move || cache.load()).await {
            Ok(Some(desired)) => {
                tracing::info!(
                    revision = desired.revision,
                    peers = desired.peers.len(),
                    "restoring the cached desired state"
                );
                // Assume the cached peers are ours, so that only others count as strays.
                self.device = desired
                    .peers
                    .iter()
                    .map(|p| (p.public_key, p.clone()))
                    .collect();
                self.desired = Some(desired);
            }
            Ok(None) => tracing::info!("no cached state: waiting for the control plane"),
            Err(e) => self.record_error(format!("{e}; waiting for a snapshot")),
        }
        self.bring_up().await;
        if self.desired.is_some() {
            self.full_reconcile().await;
        }
        self.publish_state();
    }

    /// Revision and peer counts for `/metrics`: after anything that may change them.
    fn publish_state(&self) {
        self.metrics.set_state(
            self.applied_revision(),
            self.effective_peers().len(),
            self.device.len(),
        );
    }

    /// `ensure` with the node key and listen port, then the exit network for the
    /// current interface spec. Returns whether the device is up.
    async fn bring_up(&mut self) -> bool {
        let spec = self.desired.as_ref().map(|d| d.interface.clone());
        let port = spec
            .as_ref()
            .map_or(self.config.listen_port, |s| s.listen_port);
        let identity = backend::InterfaceSpec {
            private_key: self.config.private_key.clone(),
            listen_port: port,
            transport: spec.as_ref().map(|s| s.transport.clone()),
        };
        let shared = Arc::clone(&self.backend);
        if let Err(e) = blocking(move || lock(&shared).ensure(&identity)).await {
            self.brought_up = None;
            self.metrics.set_interface(Err(e.to_string()));
            self.record_error(e.to_string());
            return false;
        }
        self.metrics.set_interface(Ok(()));
        if let Some(spec) = &spec {
            let exit = ExitConfig {
                iface: lock(&self.backend).iface().clone(),
                ipv4: spec.address_v4,
                ipv6: spec.address_v6,
                mtu: spec.mtu,
                nat: self.config.nat,
            };
            let network = Arc::clone(&self.network);
            if let Err(e) = blocking(move || lock(&network).up(&exit)).await {
                // The peers can still be applied; the next drift check tries again.
                self.brought_up = None;
                self.metrics.set_network(Err(e.to_string()));
                self.record_error(e.to_string());
                return true;
            }
            self.metrics.set_network(Ok(()));
        }
        if let Some(spec) = &spec {
            self.ensure_dns(spec);
        }
        self.brought_up = Some(spec);
        true
    }

    /// Runs the tunnel's resolver on the interface's gateway addresses (once, or again
    /// when they changed). Its sockets bind without the addresses (IP_FREEBIND), so it
    /// answers as soon as the interface carries them, and keeps its own state: it
    /// serves on from here whether or not the control plane is reachable.
    fn ensure_dns(&mut self, spec: &wire::InterfaceSpec) {
        let Some(settings) = &self.config.dns else {
            return;
        };
        let mut listen = vec![std::net::IpAddr::V4(spec.address_v4.addr())];
        listen.extend(spec.address_v6.map(|v6| std::net::IpAddr::V6(v6.addr())));
        if self.dns.as_ref().is_some_and(|(on, _)| *on == listen) {
            return;
        }
        // The old listeners go before the new ones bind.
        self.dns = None;
        let mut config = DnsConfig::new(listen.clone(), settings.upstreams.clone());
        config.port = settings.port;
        match DnsServer::start(config, Arc::clone(&self.dns_stats)) {
            Ok(server) => self.dns = Some((listen, server)),
            Err(e) => self.record_error(format!("DNS: {e}")),
        }
    }

    fn effective_peers(&self) -> Vec<PeerSpec> {
        match &self.desired {
            Some(d) if d.enabled => d.peers.clone(),
            _ => Vec::new(),
        }
    }

    /// Applies an update; true when the desired state changed (the caller then writes
    /// the cache and reports).
    async fn on_update(&mut self, update: DesiredUpdate) -> bool {
        if matches!(update, DesiredUpdate::UpToDate { .. }) {
            return false;
        }
        let started = std::time::Instant::now();
        let changed = self.apply_update(update).await;
        if changed {
            self.metrics.observe_apply(started.elapsed());
            self.publish_state();
        }
        changed
    }

    async fn apply_update(&mut self, update: DesiredUpdate) -> bool {
        match update {
            DesiredUpdate::UpToDate { .. } => false,
            DesiredUpdate::Delta { from, to, changes } => {
                let applies = self
                    .desired
                    .as_mut()
                    .is_some_and(|d| d.apply_delta(from, to, &changes));
                if !applies {
                    tracing::info!(
                        from,
                        to,
                        revision = self.applied_revision(),
                        "delta does not apply: asking for a snapshot"
                    );
                    self.need_snapshot = true;
                    return false;
                }
                self.need_snapshot = false;
                let enabled = self.desired.as_ref().is_some_and(|d| d.enabled);
                if enabled {
                    let planned = delta_changes(&self.device, &changes);
                    self.apply_planned(planned).await;
                }
                tracing::info!(revision = to, changes = changes.len(), "applied delta");
                true
            }
            DesiredUpdate::Snapshot(desired) => {
                self.need_snapshot = false;
                let interface_changed = self
                    .brought_up
                    .as_ref()
                    .is_none_or(|up| up.as_ref() != Some(&desired.interface));
                if !desired.enabled {
                    tracing::warn!(
                        revision = desired.revision,
                        "node is disabled: serving no peer"
                    );
                }
                tracing::info!(
                    revision = desired.revision,
                    peers = desired.peers.len(),
                    "applying snapshot"
                );
                self.desired = Some(desired);
                if interface_changed {
                    self.bring_up().await;
                }
                self.full_reconcile().await;
                true
            }
        }
    }

    /// The per-change path: apply planned changes without reading the device.
    async fn apply_planned(&mut self, changes: Vec<PeerChange>) {
        if changes.is_empty() {
            return;
        }
        let shared = Arc::clone(&self.backend);
        match blocking(move || reconciler::apply_changes(&mut *lock(&shared), changes)).await {
            Ok(outcome) => {
                self.metrics.set_reconcile(outcome_status(&outcome));
                self.absorb(&outcome);
            }
            Err(e) => {
                // Most likely the interface vanished: the drift check re-creates it.
                self.brought_up = None;
                if let ReconcileError::Apply(BackendError::NotRunning(_)) = &e {
                    self.metrics.set_interface(Err(e.to_string()));
                }
                self.metrics.set_reconcile(Err(e.to_string()));
                self.record_error(e.to_string());
            }
        }
    }

    /// Records what an apply did in the agent's view of the device.
    fn absorb(&mut self, outcome: &ReconcileOutcome) {
        for change in &outcome.applied {
            match change {
                PeerChange::Remove(key) => {
                    self.device.remove(key);
                }
                PeerChange::Add(spec) | PeerChange::Update { spec, .. } => {
                    self.device.insert(spec.public_key, spec.clone());
                }
            }
        }
        for failed in &outcome.failed {
            self.record_error(format!("{}: {}", failed.change, failed.error));
        }
    }

    /// Reconciles against the live device; true when something changed.
    async fn full_reconcile(&mut self) -> bool {
        let desired = self.effective_peers();
        let shared = Arc::clone(&self.backend);
        let wanted = desired.clone();
        let mut result =
            blocking(move || reconciler::reconcile(&mut *lock(&shared), &wanted)).await;
        // Whether the interface state is already known from a failed `bring_up`.
        let mut interface_known = false;
        if let Err(ReconcileError::Read(BackendError::NotRunning(_))) = &result {
            tracing::warn!("WireGuard interface is gone: bringing it up again");
            if self.bring_up().await {
                let shared = Arc::clone(&self.backend);
                result =
                    blocking(move || reconciler::reconcile(&mut *lock(&shared), &desired)).await;
            } else {
                interface_known = true;
            }
        }
        match result {
            Ok(outcome) => {
                self.metrics.set_interface(Ok(()));
                self.metrics.set_reconcile(outcome_status(&outcome));
                self.metrics.set_device(&outcome.live, SystemTime::now());
                let mut live = outcome.live.clone();
                let mut specs = live.specs();
                vpnctl_core::reconcile::apply(&mut specs, &outcome.applied);
                let strays: Vec<PublicKey> = outcome
                    .removed
                    .iter()
                    .filter(|k| !self.device.contains_key(*k))
                    .copied()
                    .collect();
                if !strays.is_empty() {
                    let keys: Vec<String> = strays.iter().map(PublicKey::to_base64).collect();
                    tracing::warn!(strays = ?keys, "removed peers that are not in the desired state");
                    self.metrics.count_strays(strays.len());
                    self.strays.extend(strays);
                }
                for failed in &outcome.failed {
                    self.record_error(format!("{}: {}", failed.change, failed.error));
                }
                self.device = specs.into_iter().map(|p| (p.public_key, p)).collect();
                live.peers
                    .retain(|p| self.device.contains_key(&p.spec.public_key));
                self.live = Some(live);
                !outcome.is_noop()
            }
            Err(e) => {
                self.brought_up = None;
                self.live = None;
                if let ReconcileError::Read(read) = &e
                    && !interface_known
                {
                    self.metrics.set_interface(Err(read.to_string()));
                }
                self.metrics.set_reconcile(Err(e.to_string()));
                self.record_error(e.to_string());
                false
            }
        }
    }

    /// The periodic check; true when it changed something worth a report.
    async fn drift_check(&mut self) -> bool {
        let wanted_spec = self.desired.as_ref().map(|d| d.interface.clone());
        if self.brought_up.as_ref() != Some(&wanted_spec) {
            self.bring_up().await;
        }
        if self.desired.is_none() {
            // Nothing known to reconcile to: never wipe peers on a guess.
            return false;
        }
        let changed = self.full_reconcile().await;
        self.publish_state();
        changed
    }

    async fn store_cache(&mut self) {
        let Some(desired) = self.desired.clone() else {
            return;
        };
        let cache = self.cache.clone();
        if let Err(e) = blocking(move || cache.store(&desired)).await {
            self.record_error(e.to_string());
        }
    }

    async fn build_report(&mut self, fresh: bool) -> NodeReport {
        if fresh || self.live.is_none() {
            let shared = Arc::clone(&self.backend);
            match blocking(move || lock(&shared).read()).await {
                Ok(state) => {
                    self.metrics.set_interface(Ok(()));
                    self.metrics.set_device(&state, SystemTime::now());
                    self.live = Some(state);
                }
                Err(e) => {
                    self.live = None;
                    self.metrics.set_interface(Err(e.to_string()));
                    if !matches!(e, BackendError::NotRunning(_)) {
                        self.record_error(e.to_string());
                    }
                }
            }
        }
        let mut keys: Vec<&PublicKey> = self.device.keys().collect();
        keys.sort_unstable();
        let live = self.live.as_ref();
        let peers = keys
            .into_iter()
            .map(|key| {
                let stats = live
                    .and_then(|l| l.peer(key))
                    .map(|p| p.stats.clone())
                    .unwrap_or_default();
                wire::PeerStats {
                    public_key: *key,
                    endpoint: stats.endpoint.map(|e| e.to_string()),
                    last_handshake: stats.last_handshake.map(Timestamp::from_system),
                    rx_bytes: stats.rx_bytes,
                    tx_bytes: stats.tx_bytes,
                }
            })
            .collect();
        let system = self.sampler.sample();
        self.metrics.set_system(&system);
        // A resolver that cannot reach its upstreams leaves the tunnels working but
        // names unresolved: the control plane hears it with every report.
        if self.dns.is_some()
            && let Some(problem) = self.dns_stats.health().problem()
            && !self.errors.contains(&problem)
        {
            self.errors.push_back(problem);
        }
        NodeReport {
            applied_revision: self.applied_revision(),
            interface_up: live.is_some(),
            listen_port: live.and_then(|l| l.listen_port),
            public_key: live.and_then(|l| l.public_key).or(Some(self.public_key)),
            peers,
            system,
            strays_removed: std::mem::take(&mut self.strays),
            errors: std::mem::take(&mut self.errors).into(),
            at: Timestamp::from_system(SystemTime::now()),
            health_port: self.health_port,
        }
    }

    async fn stop(self) -> Result<(), AgentError> {
        let backend = Arc::clone(&self.backend);
        let network = Arc::clone(&self.network);
        if self.config.teardown_on_exit {
            tracing::info!("shutting down: removing the interface");
            blocking(move || {
                let mut backend = lock(&backend);
                let iface = backend.iface().clone();
                backend.teardown().map_err(AgentError::Teardown)?;
                lock(&network).down(&iface).map_err(AgentError::NetworkDown)
            })
            .await
        } else {
            tracing::info!("shutting down: the interface stays up");
            lock(&backend).leave_running();
            Ok(())
        }
    }
}

/// The changes a delta makes to the peers the agent applied: only the touched keys are
/// looked at, so the cost follows the size of the delta, not of the device.
fn delta_changes(device: &HashMap<PublicKey, PeerSpec>, deltas: &[PeerDelta]) -> Vec<PeerChange> {
    let mut last: HashMap<&PublicKey, &PeerDelta> = HashMap::with_capacity(deltas.len());
    for delta in deltas {
        last.insert(delta.public_key(), delta);
    }
    let mut wanted = Vec::new();
    let mut actual = Vec::new();
    for (key, delta) in last {
        if let Some(have) = device.get(key) {
            actual.push(have.clone());
        }
        if let PeerDelta::Upsert(spec) = delta {
            wanted.push(spec.clone());
        }
    }
    plan(&wanted, &actual)
}

/// The health of the last apply for `/healthz`: how many changes the device refused
/// and the first reason, but no peer's key (the endpoint is unauthenticated).
fn outcome_status(outcome: &ReconcileOutcome) -> Result<(), String> {
    match outcome.failed.first() {
        None => Ok(()),
        Some(first) => Err(format!(
            "{} of {} changes refused, first: {}",
            outcome.failed.len(),
            outcome.failed.len() + outcome.applied.len(),
            first.error
        )),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the device as it was: keep going.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs blocking backend, network or file work off the async threads. A panic in `f`
/// panics here; if the runtime shuts down before `f` ran, this never returns (the
/// runtime drops the caller's task too) rather than panicking on the way out.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => std::future::pending().await,
    }
}

/// The shortest time between two reports.
const MIN_REPORT_GAP: Duration = Duration::from_secs(1);

/// A task handle that aborts the task when dropped (a long-poll must not outlive the
/// agent).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnctl_core::keys::{KeyPair, PresharedKey};

    fn peer(i: u8) -> PeerSpec {
        PeerSpec::new(
            KeyPair::generate().public,
            Some(PresharedKey::generate()),
            [format!("10.8.0.{i}/32").parse().unwrap()],
            None,
        )
    }

    #[test]
    fn delta_changes_touch_only_the_named_keys() {
        let (a, b, c) = (peer(2), peer(3), peer(4));
        let device: HashMap<PublicKey, PeerSpec> = [&a, &b]
            .into_iter()
            .map(|p| (p.public_key, p.clone()))
            .collect();
        let mut b2 = b.clone();
        b2.persistent_keepalive = Some(25);
        let deltas = vec![
            PeerDelta::Remove(a.public_key),
            PeerDelta::Upsert(b2.clone()),
            PeerDelta::Upsert(c.clone()),
            // Removing a peer we never had is no change.
            PeerDelta::Remove(KeyPair::generate().public),
        ];
        let changes = delta_changes(&device, &deltas);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(changes[0], PeerChange::Remove(a.public_key));
        assert!(matches!(
            &changes[1],
            PeerChange::Update { spec, persistent_keepalive: true, preshared_key: false, allowed_ips: false } if *spec == b2
        ));
        assert_eq!(changes[2], PeerChange::Add(c));
        // An upsert of what is already there changes nothing.
        assert!(delta_changes(&device, &[PeerDelta::Upsert(a)]).is_empty());
    }
}
