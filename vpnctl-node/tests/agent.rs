//! The agent loop over an in-process control plane and the simulated backend, in
//! tokio's paused time: snapshots and deltas, an unreachable control plane, restore
//! from the cache, drift, reports and shutdown; and, in real time over loopback HTTP,
//! the `/metrics` and `/healthz` listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use vpnctl_core::keys::{KeyPair, PresharedKey, PrivateKey, PublicKey};
use vpnctl_core::model::NodeId;
use vpnctl_core::reconcile::{PeerChange, PeerSpec};
use vpnctl_core::wire::{DesiredUpdate, InterfaceSpec, NodeDesired, NodeReport, PeerDelta};
use vpnctl_node::agent::{Agent, AgentConfig, AgentError, ControlPlane, CpError, SharedBackend};
use vpnctl_node::backend::{self, BackendError, DeviceState, SimBackend, WgBackend};
use vpnctl_node::iface::IfaceName;
use vpnctl_node::metrics::MetricsListener;
use vpnctl_node::netconf::{ExitConfig, ExitNetwork, NetconfError};
use vpnctl_node::reconciler::Cache;

// ---- a control plane we steer -------------------------------------------------------

#[derive(Clone)]
struct FakeCp(Arc<Inner>);

struct Inner {
    history: Mutex<Vec<NodeDesired>>,
    revision: watch::Sender<u64>,
    reachable: AtomicBool,
    /// Answers polls with 503 (the server is up but failing).
    refusing: AtomicBool,
    bad_delta_once: AtomicBool,
    afters: Mutex<Vec<u64>>,
    deltas_served: AtomicUsize,
    reports: mpsc::UnboundedSender<NodeReport>,
}

impl FakeCp {
    fn new(initial: Option<NodeDesired>) -> (Self, mpsc::UnboundedReceiver<NodeReport>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cp = Self(Arc::new(Inner {
            history: Mutex::new(Vec::new()),
            revision: watch::Sender::new(0),
            reachable: AtomicBool::new(true),
            refusing: AtomicBool::new(false),
            bad_delta_once: AtomicBool::new(false),
            afters: Mutex::new(Vec::new()),
            deltas_served: AtomicUsize::new(0),
            reports: tx,
        }));
        if let Some(d) = initial {
            cp.publish(d);
        }
        (cp, rx)
    }

    fn publish(&self, desired: NodeDesired) {
        let revision = desired.revision;
        self.0.history.lock().unwrap().push(desired);
        self.0.revision.send_replace(revision);
    }

    fn set_reachable(&self, up: bool) {
        self.0.reachable.store(up, Ordering::SeqCst);
    }

    fn set_refusing(&self, refusing: bool) {
        self.0.refusing.store(refusing, Ordering::SeqCst);
    }

    fn polls(&self) -> usize {
        self.0.afters.lock().unwrap().len()
    }

    fn afters(&self) -> Vec<u64> {
        self.0.afters.lock().unwrap().clone()
    }

    fn answer(&self, after: u64) -> DesiredUpdate {
        let history = self.0.history.lock().unwrap();
        let Some(current) = history.last() else {
            return DesiredUpdate::UpToDate { revision: 0 };
        };
        if current.revision <= after {
            return DesiredUpdate::UpToDate {
                revision: current.revision,
            };
        }
        if self.0.bad_delta_once.swap(false, Ordering::SeqCst) {
            return DesiredUpdate::Delta {
                from: after + 1000,
                to: current.revision,
                changes: vec![],
            };
        }
        let base = history.iter().find(|d| d.revision == after);
        match base {
            Some(old)
                if after != 0
                    && old.enabled == current.enabled
                    && old.interface == current.interface =>
            {
                self.0.deltas_served.fetch_add(1, Ordering::SeqCst);
                DesiredUpdate::Delta {
                    from: after,
                    to: current.revision,
                    changes: diff(&old.peers, &current.peers),
                }
            }
            _ => DesiredUpdate::Snapshot(current.clone()),
        }
    }
}

fn diff(old: &[PeerSpec], new: &[PeerSpec]) -> Vec<PeerDelta> {
    let old: BTreeMap<PublicKey, &PeerSpec> = old.iter().map(|p| (p.public_key, p)).collect();
    let new: BTreeMap<PublicKey, &PeerSpec> = new.iter().map(|p| (p.public_key, p)).collect();
    let mut out: Vec<PeerDelta> = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| PeerDelta::Remove(*k))
        .collect();
    out.extend(
        new.iter()
            .filter(|(k, spec)| old.get(*k) != Some(*spec))
            .map(|(_, spec)| PeerDelta::Upsert((*spec).clone())),
    );
    out
}

fn unreachable() -> CpError {
    CpError::Unreachable("connection refused".into())
}

impl ControlPlane for FakeCp {
    fn desired(
        &self,
        after: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<DesiredUpdate, CpError>> + Send {
        let cp = self.clone();
        async move {
            cp.0.afters.lock().unwrap().push(after);
            if !cp.0.reachable.load(Ordering::SeqCst) {
                return Err(unreachable());
            }
            if cp.0.refusing.load(Ordering::SeqCst) {
                return Err(CpError::Rejected {
                    status: 503,
                    message: "store unavailable".into(),
                });
            }
            let mut rx = cp.0.revision.subscribe();
            let _ = tokio::time::timeout(wait, rx.wait_for(|rev| *rev > after)).await;
            if !cp.0.reachable.load(Ordering::SeqCst) {
                return Err(unreachable());
            }
            Ok(cp.answer(after))
        }
    }

    fn report(&self, report: NodeReport) -> impl Future<Output = Result<(), CpError>> + Send {
        let cp = self.clone();
        async move {
            if !cp.0.reachable.load(Ordering::SeqCst) {
                return Err(unreachable());
            }
            let _ = cp.0.reports.send(report);
            Ok(())
        }
    }
}

// ---- a simulated device that counts reads, and a network that records -------------

#[derive(Debug)]
struct CountingSim {
    sim: SimBackend,
    reads: AtomicUsize,
    ensured_ports: Vec<u16>,
    /// Makes `ensure` fail, like a wireguard-go that does not come up.
    refuse_ensure: bool,
    /// Makes the device reject every removal.
    refuse_removals: bool,
}

impl WgBackend for CountingSim {
    fn iface(&self) -> &IfaceName {
        self.sim.iface()
    }
    fn ensure(&mut self, spec: &backend::InterfaceSpec) -> Result<(), BackendError> {
        self.ensured_ports.push(spec.listen_port);
        if self.refuse_ensure {
            return Err(BackendError::SocketTimeout(self.sim.iface().clone()));
        }
        self.sim.ensure(spec)
    }
    fn read(&self) -> Result<DeviceState, BackendError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.sim.read()
    }
    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        if self.refuse_removals && changes.iter().any(|c| matches!(c, PeerChange::Remove(_))) {
            return Err(BackendError::Rejected {
                iface: self.sim.iface().clone(),
                op: "peer removal",
                source: std::io::Error::other("peer is pinned"),
            });
        }
        self.sim.apply(changes)
    }
    fn teardown(&mut self) -> Result<(), BackendError> {
        self.sim.teardown()
    }
}

#[derive(Clone, Default)]
struct RecordingNetwork(Arc<Mutex<Vec<String>>>);

impl RecordingNetwork {
    fn log(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl ExitNetwork for RecordingNetwork {
    fn up(&mut self, cfg: &ExitConfig) -> Result<(), NetconfError> {
        cfg.validate()?;
        self.0.lock().unwrap().push(format!(
            "up {} {} mtu {} nat {}",
            cfg.iface, cfg.ipv4, cfg.mtu, cfg.nat
        ));
        Ok(())
    }
    fn down(&mut self, iface: &IfaceName) -> Result<(), NetconfError> {
        self.0.lock().unwrap().push(format!("down {iface}"));
        Ok(())
    }
}

// ---- fixtures ----------------------------------------------------------------------

fn peer(i: u8) -> PeerSpec {
    PeerSpec::new(
        KeyPair::generate().public,
        Some(PresharedKey::generate()),
        [format!("10.8.0.{i}/32").parse().unwrap()],
        None,
    )
}

fn iface_spec(listen_port: u16, mtu: u16) -> InterfaceSpec {
    InterfaceSpec {
        listen_port,
        address_v4: "10.8.0.1/16".parse().unwrap(),
        address_v6: None,
        mtu,
        transport: vpnctl_core::transport::Transport::Wireguard,
    }
}

fn desired(revision: u64, mut peers: Vec<PeerSpec>) -> NodeDesired {
    peers.sort_by_key(|p| p.public_key);
    NodeDesired {
        node: NodeId(1),
        revision,
        enabled: true,
        interface: iface_spec(51820, 1420),
        peers,
    }
}

struct Running {
    backend: SharedBackend<CountingSim>,
    network: RecordingNetwork,
    public_key: PublicKey,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AgentError>>,
    _dir: tempfile::TempDir,
    cache: Cache,
}

impl Running {
    fn peers(&self) -> Vec<PeerSpec> {
        let mut peers = self.backend.lock().unwrap().sim.read().unwrap().specs();
        peers.sort_by_key(|p| p.public_key);
        peers
    }

    fn reads(&self) -> usize {
        self.backend.lock().unwrap().reads.load(Ordering::SeqCst)
    }

    async fn stop(mut self) -> Self {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
        self
    }
}

fn start_with(cp: FakeCp, tune: impl FnOnce(&mut AgentConfig), dir: tempfile::TempDir) -> Running {
    launch(cp, tune, dir, None)
}

fn launch(
    cp: FakeCp,
    tune: impl FnOnce(&mut AgentConfig),
    dir: tempfile::TempDir,
    metrics: Option<MetricsListener>,
) -> Running {
    let private = PrivateKey::generate();
    let public_key = private.public_key();
    let mut config = AgentConfig::new(private, 51820);
    config.reconcile_interval = Duration::from_secs(3600);
    config.report_interval = Duration::from_secs(3600);
    tune(&mut config);
    let backend = CountingSim {
        sim: SimBackend::new(IfaceName::new("sim0").unwrap()),
        reads: AtomicUsize::new(0),
        ensured_ports: Vec::new(),
        refuse_ensure: false,
        refuse_removals: false,
    };
    let network = RecordingNetwork::default();
    let cache = Cache::new(dir.path().join("cache.json"));
    let mut agent = Agent::new(cp, backend, network.clone(), cache.clone(), config);
    if let Some(listener) = metrics {
        agent = agent.with_metrics_listener(listener);
    }
    let backend = agent.backend();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async move {
        let _ = stopped.await;
    }));
    Running {
        backend,
        network,
        public_key,
        stop: Some(stop),
        task,
        _dir: dir,
        cache,
    }
}

fn start(cp: FakeCp, tune: impl FnOnce(&mut AgentConfig)) -> Running {
    start_with(cp, tune, tempfile::tempdir().unwrap())
}

/// The first report that satisfies `pred`, within a minute of (paused) time.
async fn report_where(
    rx: &mut mpsc::UnboundedReceiver<NodeReport>,
    pred: impl Fn(&NodeReport) -> bool,
) -> NodeReport {
    let wait = async {
        loop {
            let report = rx.recv().await.expect("control plane gone");
            if pred(&report) {
                return report;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("no such report within a minute")
}

// ---- tests -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn applies_a_snapshot_then_deltas_without_reading_the_device() {
    let (a, b, c) = (peer(2), peer(3), peer(4));
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![a.clone(), b.clone()])));
    let node = start(cp.clone(), |_| {});

    let first = report_where(&mut reports, |r| r.applied_revision == 1).await;
    assert_eq!(node.peers(), desired(1, vec![a.clone(), b.clone()]).peers);
    assert!(first.interface_up);
    assert_eq!(first.listen_port, Some(51820));
    assert_eq!(first.public_key, Some(node.public_key));
    assert_eq!(first.peers.len(), 2);
    assert_eq!(
        first.health_port, None,
        "no metrics listener, no health port"
    );
    assert_eq!(
        node.network.log(),
        vec!["up sim0 10.8.0.1/16 mtu 1420 nat true"]
    );
    let reads = node.reads();

    let mut b2 = b.clone();
    b2.persistent_keepalive = Some(25);
    cp.publish(desired(2, vec![b2.clone(), c.clone()]));
    let second = report_where(&mut reports, |r| r.applied_revision == 2).await;
    assert_eq!(node.peers(), desired(2, vec![b2.clone(), c.clone()]).peers);
    assert_eq!(second.peers.len(), 2);
    assert_eq!(cp.0.deltas_served.load(Ordering::SeqCst), 1);
    assert_eq!(
        node.reads(),
        reads,
        "a delta must not read the whole device"
    );

    // The next poll asks after the applied revision; the cache holds it, 0600.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(cp.afters().last(), Some(&2));
    let cached = node.cache.load().unwrap().unwrap();
    assert_eq!(cached, desired(2, vec![b2, c]));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(node.cache.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn keeps_serving_while_the_control_plane_is_away_and_catches_up() {
    let (a, b, c) = (peer(2), peer(3), peer(4));
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![a.clone(), b.clone()])));
    let node = start(cp.clone(), |c| c.report_interval = Duration::from_secs(15));
    report_where(&mut reports, |r| r.applied_revision == 1).await;

    cp.set_reachable(false);
    let polls_before = cp.polls();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        node.peers().len(),
        2,
        "peers must stay while the control plane is away"
    );
    let retries = cp.polls() - polls_before;
    // Unreachable: 0.25 s doubling to a 2 s cap, jittered in its upper half: about 80
    // tries in two minutes (a refused connection costs the absent server nothing).
    assert!((60..=125).contains(&retries), "{retries} retries in 120 s");

    // A change made meanwhile arrives once the control plane is back.
    cp.publish(desired(2, vec![a.clone(), b.clone(), c.clone()]));
    cp.set_reachable(true);
    let caught_up = report_where(&mut reports, |r| r.applied_revision == 2).await;
    assert_eq!(caught_up.peers.len(), 3);
    assert_eq!(node.peers(), desired(2, vec![a, b, c]).peers);
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_control_plane_that_answers_with_errors_is_not_pressed() {
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![peer(2)])));
    let node = start(cp.clone(), |_| {});
    report_where(&mut reports, |r| r.applied_revision == 1).await;

    cp.set_refusing(true);
    let polls_before = cp.polls();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let retries = cp.polls() - polls_before;
    // Backoff 0.5 s doubling to a 30 s cap: about 8 tries in two minutes, not hundreds.
    assert!((3..=20).contains(&retries), "{retries} retries in 120 s");
    assert_eq!(node.peers().len(), 1);
    node.stop().await;
}

/// Runs an agent (settings changed by `tune`) on revision 1, takes the control plane
/// away for `outage`, brings it back with revision 2 at the worst moment (just after a
/// failed poll), and returns how long (in paused time) revision 2 took to reach the
/// device.
async fn time_to_catch_up(tune: impl FnOnce(&mut AgentConfig), outage: Duration) -> Duration {
    let (a, b) = (peer(2), peer(3));
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![a.clone()])));
    let node = start(cp.clone(), tune);
    report_where(&mut reports, |r| r.applied_revision == 1).await;

    cp.set_reachable(false);
    tokio::time::sleep(outage).await;
    let polls = cp.polls();
    while cp.polls() == polls {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cp.publish(desired(2, vec![a.clone(), b.clone()]));
    let back = tokio::time::Instant::now();
    cp.set_reachable(true);
    report_where(&mut reports, |r| r.applied_revision == 2).await;
    let took = back.elapsed();
    assert_eq!(node.peers(), desired(2, vec![a, b]).peers);
    node.stop().await;
    took
}

#[tokio::test(start_paused = true)]
async fn a_returning_control_plane_is_noticed_within_two_seconds() {
    // Defaults, except no periodic report: the poll alone must notice. After five
    // minutes a backoff that grew without bound would be at its cap.
    let took = time_to_catch_up(|_| {}, Duration::from_secs(300)).await;
    assert!(took <= Duration::from_secs(2), "the change took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_report_that_gets_through_cuts_the_poll_backoff_short() {
    // Polls that back off for 15-30 s; reports every second.
    let took = time_to_catch_up(
        |c| {
            c.reconnect =
                vpnctl_node::agent::Backoff::new(Duration::from_secs(30), Duration::from_secs(30));
            c.report_interval = Duration::from_secs(1);
        },
        Duration::from_secs(120),
    )
    .await;
    assert!(took <= Duration::from_secs(2), "the change took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn restores_from_the_cache_with_the_control_plane_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut cached = desired(5, vec![peer(2), peer(3), peer(4)]);
    cached.interface = iface_spec(40000, 1380);
    Cache::new(dir.path().join("cache.json"))
        .store(&cached)
        .unwrap();

    let (cp, mut reports) = FakeCp::new(None);
    cp.set_reachable(false);
    let node = start_with(cp.clone(), |_| {}, dir);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(node.peers(), cached.peers, "not restored from the cache");
    assert_eq!(node.backend.lock().unwrap().ensured_ports, vec![40000]);
    assert_eq!(
        node.network.log(),
        vec!["up sim0 10.8.0.1/16 mtu 1380 nat true"]
    );
    assert!(cp.afters().iter().all(|&after| after == 5));

    // Back online with a newer state: the node moves on from revision 5.
    let newer = NodeDesired {
        revision: 6,
        peers: cached.peers[..1].to_vec(),
        ..cached.clone()
    };
    cp.publish(newer.clone());
    cp.set_reachable(true);
    report_where(&mut reports, |r| r.applied_revision == 6).await;
    assert_eq!(node.peers(), newer.peers);
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn drift_check_removes_and_reports_a_stray_peer() {
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![peer(2), peer(3)])));
    let node = start(cp, |c| c.reconcile_interval = Duration::from_secs(1));
    report_where(&mut reports, |r| r.applied_revision == 1).await;

    let stray = peer(99);
    node.backend
        .lock()
        .unwrap()
        .sim
        .apply(&[PeerChange::Add(stray.clone())])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        node.peers()
            .iter()
            .all(|p| p.public_key != stray.public_key),
        "stray still on the device after one interval"
    );
    let report = report_where(&mut reports, |r| !r.strays_removed.is_empty()).await;
    assert_eq!(report.strays_removed, vec![stray.public_key]);
    assert_eq!(report.applied_revision, 1);
    assert_eq!(report.peers.len(), 2);
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_delta_that_does_not_apply_leads_to_a_snapshot() {
    let (a, b) = (peer(2), peer(3));
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![a.clone()])));
    let node = start(cp.clone(), |_| {});
    report_where(&mut reports, |r| r.applied_revision == 1).await;

    cp.0.bad_delta_once.store(true, Ordering::SeqCst);
    cp.publish(desired(2, vec![a.clone(), b.clone()]));
    report_where(&mut reports, |r| r.applied_revision == 2).await;
    assert_eq!(node.peers(), desired(2, vec![a, b]).peers);
    let afters = cp.afters();
    let at = afters.iter().position(|&x| x == 1).unwrap();
    assert_eq!(&afters[at..at + 2], &[1, 0], "{afters:?}");
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn disabled_node_serves_nobody_and_interface_changes_re_run_netconf() {
    let peers = vec![peer(2), peer(3)];
    let (cp, mut reports) = FakeCp::new(Some(desired(1, peers.clone())));
    let node = start(cp.clone(), |_| {});
    report_where(&mut reports, |r| r.applied_revision == 1).await;

    cp.publish(NodeDesired {
        enabled: false,
        ..desired(2, peers.clone())
    });
    let disabled = report_where(&mut reports, |r| r.applied_revision == 2).await;
    assert!(node.peers().is_empty());
    assert!(disabled.peers.is_empty());
    assert!(
        disabled.strays_removed.is_empty(),
        "revoked peers are not strays"
    );

    cp.publish(NodeDesired {
        interface: iface_spec(51821, 1380),
        ..desired(3, peers.clone())
    });
    report_where(&mut reports, |r| r.applied_revision == 3).await;
    assert_eq!(node.peers(), desired(3, peers).peers);
    assert_eq!(
        node.network.log(),
        vec![
            "up sim0 10.8.0.1/16 mtu 1420 nat true",
            "up sim0 10.8.0.1/16 mtu 1380 nat true"
        ]
    );
    assert_eq!(
        node.backend.lock().unwrap().ensured_ports.last(),
        Some(&51821)
    );
    node.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_the_interface_up_unless_asked_to_take_it_down() {
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![peer(2)])));
    let node = start(cp.clone(), |_| {});
    report_where(&mut reports, |r| r.applied_revision == 1).await;
    let node = node.stop().await;
    assert_eq!(node.peers().len(), 1, "interface must keep serving");
    assert!(!node.network.log().iter().any(|l| l.starts_with("down")));

    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![peer(2)])));
    let node = start(cp, |c| c.teardown_on_exit = true);
    report_where(&mut reports, |r| r.applied_revision == 1).await;
    let node = node.stop().await;
    assert!(matches!(
        node.backend.lock().unwrap().sim.read(),
        Err(BackendError::NotRunning(_))
    ));
    assert_eq!(
        node.network.log().last().map(String::as_str),
        Some("down sim0")
    );
}

#[tokio::test(start_paused = true)]
async fn periodic_reports_carry_stats_and_system_load() {
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![peer(2), peer(3)])));
    let node = start(cp, |c| c.report_interval = Duration::from_secs(15));
    report_where(&mut reports, |r| r.applied_revision == 1).await;
    let t0 = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    {
        let mut backend = node.backend.lock().unwrap();
        backend.sim.tick(t0);
        backend.sim.tick(t0 + Duration::from_secs(30));
    }
    let reads = node.reads();
    let report = report_where(&mut reports, |_| true).await;
    assert!(node.reads() > reads, "a periodic report reads fresh stats");
    let live = node.backend.lock().unwrap().sim.read().unwrap();
    for stats in &report.peers {
        let on_device = &live.peer(&stats.public_key).unwrap().stats;
        assert_eq!(stats.tx_bytes, on_device.tx_bytes);
        assert_eq!(
            stats.last_handshake.map(|t| t.0),
            on_device.last_handshake.map(|t| t
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64)
        );
    }
    assert!(report.system.mem_total_bytes > 0);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    node.stop().await;
}

// ---- /metrics and /healthz over real HTTP, in real time ----------------------------

/// A GET over a fresh loopback connection: status, headers and body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of headers");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("no status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// GETs `path` until `pred` holds for status and body, for up to 10 s.
async fn get_until(
    addr: SocketAddr,
    path: &str,
    pred: impl Fn(u16, &str) -> bool,
) -> (u16, String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, head, body) = http_get(addr, path).await;
        if pred(status, &body) {
            return (status, head, body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never matched; last {status}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of an unlabelled sample in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

async fn serving(cp: FakeCp, tune: impl FnOnce(&mut AgentConfig)) -> (Running, SocketAddr) {
    let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    assert_ne!(addr.port(), 0);
    let node = launch(cp, tune, tempfile::tempdir().unwrap(), Some(listener));
    (node, addr)
}

#[tokio::test]
async fn metrics_show_the_applied_state_and_reports_carry_the_health_port() {
    let peers: Vec<PeerSpec> = (2..5).map(peer).collect();
    let (cp, mut reports) = FakeCp::new(Some(desired(1, peers.clone())));
    let (node, addr) = serving(cp.clone(), |_| {}).await;

    let applied = report_where(&mut reports, |r| r.applied_revision == 1).await;
    assert_eq!(applied.health_port, Some(addr.port()));

    let (status, head, text) = get_until(addr, "/metrics", |_, body| {
        sample(body, "vpnctl_node_reports_total").is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(sample(&text, "vpnctl_node_peers"), Some(3.0), "{text}");
    assert_eq!(sample(&text, "vpnctl_node_peers_desired"), Some(3.0));
    assert_eq!(sample(&text, "vpnctl_node_applied_revision"), Some(1.0));
    assert_eq!(sample(&text, "vpnctl_node_interface_up"), Some(1.0));
    assert_eq!(
        sample(&text, "vpnctl_node_control_plane_reachable"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "vpnctl_node_reconcile_errors_total"),
        Some(0.0)
    );
    assert!(sample(&text, "vpnctl_node_last_sync_timestamp_seconds").unwrap() > 1.6e9);
    assert!(text.contains("# TYPE vpnctl_node_apply_duration_seconds histogram\n"));
    let applies = sample(&text, "vpnctl_node_apply_duration_seconds_count").unwrap();
    assert!(applies >= 1.0, "{text}");
    assert!(text.contains("vpnctl_node_apply_duration_seconds_bucket{le=\"+Inf\"} "));
    assert!(sample(&text, "vpnctl_node_memory_total_bytes").unwrap() > 0.0);
    // No key of a peer or of the node is exposed.
    assert!(!text.contains(&node.public_key.to_base64()));
    assert!(
        !peers
            .iter()
            .any(|p| text.contains(&p.public_key.to_base64()))
    );

    let (status, _, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // A delta: the gauges and the histogram follow.
    let more: Vec<PeerSpec> = peers.iter().cloned().chain([peer(5), peer(6)]).collect();
    cp.publish(desired(2, more));
    let report = report_where(&mut reports, |r| r.applied_revision == 2).await;
    assert_eq!(report.health_port, Some(addr.port()));
    let (_, _, text) = get_until(addr, "/metrics", |_, body| {
        sample(body, "vpnctl_node_applied_revision") == Some(2.0)
    })
    .await;
    assert_eq!(sample(&text, "vpnctl_node_peers"), Some(5.0), "{text}");
    assert!(sample(&text, "vpnctl_node_apply_duration_seconds_count").unwrap() > applies);

    let (status, _, _) = http_get(addr, "/nothing-here").await;
    assert_eq!(status, 404);

    // The listener stops with the agent.
    node.stop().await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "still listening after the agent stopped");
}

#[tokio::test]
async fn healthz_fails_while_the_interface_is_down_and_recovers() {
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![peer(2), peer(3)])));
    let (node, addr) = serving(cp, |c| {
        c.reconcile_interval = Duration::from_millis(100);
    })
    .await;
    report_where(&mut reports, |r| r.applied_revision == 1).await;
    get_until(addr, "/healthz", |status, _| status == 200).await;

    // The interface vanishes and cannot be brought back.
    {
        let mut backend = node.backend.lock().unwrap();
        backend.refuse_ensure = true;
        backend.sim.teardown().unwrap();
    }
    let (_, _, body) = get_until(addr, "/healthz", |status, _| status == 503).await;
    assert!(body.starts_with("interface down: "), "{body}");
    assert!(body.contains("sim0"), "{body}");
    assert_eq!(body.trim_end().lines().count(), 1, "{body}");
    let (_, _, text) = http_get(addr, "/metrics").await;
    assert_eq!(
        sample(&text, "vpnctl_node_interface_up"),
        Some(0.0),
        "{text}"
    );
    assert!(sample(&text, "vpnctl_node_reconcile_errors_total").unwrap() >= 1.0);

    // The next drift check brings it back with its peers.
    node.backend.lock().unwrap().refuse_ensure = false;
    let (_, _, body) = get_until(addr, "/healthz", |status, _| status == 200).await;
    assert_eq!(body, "ok\n");
    assert_eq!(node.peers().len(), 2);
    node.stop().await;
}

#[tokio::test]
async fn healthz_names_a_refused_change() {
    let (cp, mut reports) = FakeCp::new(Some(desired(1, vec![peer(2)])));
    let (node, addr) = serving(cp, |c| {
        c.reconcile_interval = Duration::from_millis(100);
    })
    .await;
    report_where(&mut reports, |r| r.applied_revision == 1).await;
    get_until(addr, "/healthz", |status, _| status == 200).await;

    // A peer someone added by hand that the device will not let go of is drift the
    // agent cannot fix: its reconcile fails, the interface stays up.
    let stuck = peer(9);
    let stuck_key = stuck.public_key;
    node.backend
        .lock()
        .unwrap()
        .sim
        .apply(&[PeerChange::Add(stuck)])
        .unwrap();
    node.backend.lock().unwrap().refuse_removals = true;
    let (_, _, body) = get_until(addr, "/healthz", |status, _| status == 503).await;
    assert!(
        body.starts_with("last reconcile failed: 1 of 1 changes refused, first: "),
        "{body}"
    );
    assert!(body.contains("peer is pinned"), "{body}");
    assert!(
        !body.contains(&stuck_key.to_base64()),
        "an unauthenticated endpoint names no peer: {body}"
    );
    node.backend.lock().unwrap().refuse_removals = false;
    get_until(addr, "/healthz", |status, _| status == 200).await;
    node.stop().await;
}
