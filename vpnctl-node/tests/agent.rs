//! The agent loop over an in-process control plane and the simulated backend, in
//! tokio's paused time: snapshots and deltas, an unreachable control plane, restore
//! from the cache, drift, reports and shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use vpnctl_core::keys::{KeyPair, PresharedKey, PrivateKey, PublicKey};
use vpnctl_core::model::NodeId;
use vpnctl_core::reconcile::{PeerChange, PeerSpec};
use vpnctl_core::wire::{DesiredUpdate, InterfaceSpec, NodeDesired, NodeReport, PeerDelta};
use vpnctl_node::agent::{Agent, AgentConfig, AgentError, ControlPlane, CpError, SharedBackend};
use vpnctl_node::backend::{self, BackendError, DeviceState, SimBackend, WgBackend};
use vpnctl_node::iface::IfaceName;
use vpnctl_node::netconf::{ExitConfig, ExitNetwork, NetconfError};
use vpnctl_node::reconciler::Cache;

// ---- a control plane we steer -------------------------------------------------------

#[derive(Clone)]
struct FakeCp(Arc<Inner>);

struct Inner {
    history: Mutex<Vec<NodeDesired>>,
    revision: watch::Sender<u64>,
    reachable: AtomicBool,
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
}

impl WgBackend for CountingSim {
    fn iface(&self) -> &IfaceName {
        self.sim.iface()
    }
    fn ensure(&mut self, spec: &backend::InterfaceSpec) -> Result<(), BackendError> {
        self.ensured_ports.push(spec.listen_port);
        self.sim.ensure(spec)
    }
    fn read(&self) -> Result<DeviceState, BackendError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.sim.read()
    }
    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
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
    };
    let network = RecordingNetwork::default();
    let cache = Cache::new(dir.path().join("cache.json"));
    let agent = Agent::new(cp, backend, network.clone(), cache.clone(), config);
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
    // Backoff 0.5 s doubling to a 30 s cap: about 8 tries in two minutes, not hundreds.
    assert!((3..=20).contains(&retries), "{retries} retries in 120 s");

    // A change made meanwhile arrives once the control plane is back.
    cp.publish(desired(2, vec![a.clone(), b.clone(), c.clone()]));
    cp.set_reachable(true);
    let caught_up = report_where(&mut reports, |r| r.applied_revision == 2).await;
    assert_eq!(caught_up.peers.len(), 3);
    assert_eq!(node.peers(), desired(2, vec![a, b, c]).peers);
    node.stop().await;
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
