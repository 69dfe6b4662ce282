//! Latency of one peer change through the whole system on a node holding 10,000
//! peers: the API call returns → vpnctld wakes the node's long-poll with a delta →
//! the agent applies it to wireguard-go. Compared with `wg syncconf` of the same
//! change on the same interface (how most panels apply changes). Ignored by default
//! (about a minute); run with
//!
//! ```text
//! cargo test --release -p vpnctl-node --test measure_e2e -- --ignored --nocapture
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vpnctl_api::body::IssuePeerRequest;
use vpnctl_core::keys::{KeyPair, PrivateKey, PublicKey};
use vpnctl_core::reconcile::PeerChange;
use vpnctl_core::{IssuePeer, NewNode, NewUser, Scope};
use vpnctl_node::IfaceName;
use vpnctl_node::agent::{Agent, AgentConfig};
use vpnctl_node::backend::{BackendError, DeviceState, InterfaceSpec, UserspaceBackend, WgBackend};
use vpnctl_node::netconf::NoNetwork;
use vpnctl_node::reconciler::Cache;
use vpnctl_node::state_dir::{Credentials, Token};
use vpnctl_testbed::control_plane::ControlPlane;
use vpnctl_testbed::{Names, Netns, UapiGuard};

const PEERS: usize = 10_000;
const ROUNDS: usize = 40;

/// A backend that notes when each added key has been applied.
struct Timed<B> {
    inner: B,
    applied: Arc<(Mutex<HashMap<PublicKey, Instant>>, Condvar)>,
}

impl<B: WgBackend> WgBackend for Timed<B> {
    fn iface(&self) -> &IfaceName {
        self.inner.iface()
    }
    fn ensure(&mut self, spec: &InterfaceSpec) -> Result<(), BackendError> {
        self.inner.ensure(spec)
    }
    fn read(&self) -> Result<DeviceState, BackendError> {
        self.inner.read()
    }
    fn apply(&mut self, changes: &[PeerChange]) -> Result<(), BackendError> {
        self.inner.apply(changes)?;
        let now = Instant::now();
        let (map, cv) = &*self.applied;
        let mut map = map.lock().unwrap();
        for change in changes {
            if let PeerChange::Add(spec) = change {
                map.insert(spec.public_key, now);
            }
        }
        cv.notify_all();
        Ok(())
    }
    fn teardown(&mut self) -> Result<(), BackendError> {
        self.inner.teardown()
    }
}

fn wait_applied(
    applied: &(Mutex<HashMap<PublicKey, Instant>>, Condvar),
    key: &PublicKey,
) -> Instant {
    let (map, cv) = applied;
    let mut map = map.lock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(at) = map.get(key) {
            return *at;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "key never applied");
        map = cv.wait_timeout(map, left).unwrap().0;
    }
}

fn pct(mut v: Vec<Duration>, p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: about a minute, needs root"]
async fn api_to_interface_latency_on_10k_peers() {
    vpnctl_testbed::require_root_and_tools();
    let _serial = vpnctl_testbed::serial();
    let names = Names::new();
    let ns = Netns::new(&names.netns("node"));
    let iface = IfaceName::new(&names.iface("wg")).unwrap();
    let _uapi = UapiGuard::new(iface.as_str());
    let dir = tempfile::tempdir().unwrap();

    // Control plane on loopback with 10,000 peers on one node.
    let mut server = ControlPlane::start().await;
    let vpn = server.vpn.clone();
    let node_key = PrivateKey::generate();
    let mut new = NewNode::new(
        "bench",
        "bench",
        "192.0.2.1:51820".parse().unwrap(),
        "198.18.0.0/16".parse().unwrap(),
    );
    new.public_key = Some(node_key.public_key());
    let node = vpn.register_node(new).unwrap();
    let user = vpn
        .create_user(NewUser {
            name: "bench".into(),
            device_limit: Some(100_000),
            ..NewUser::default()
        })
        .unwrap();
    vpn.issue_peers(
        (0..PEERS)
            .map(|i| IssuePeer {
                user: user.id,
                node: node.id,
                device: format!("d{i}"),
                public_key: Some(KeyPair::generate().public),
            })
            .collect(),
    )
    .unwrap();
    let (_, node_token) = vpn
        .create_token(Scope::Node(node.id), "bench node")
        .unwrap();
    let url = server.url.clone();

    // The agent in this process, wireguard-go in the namespace (UAPI is machine-wide).
    let applied = Arc::new((Mutex::new(HashMap::new()), Condvar::new()));
    let backend = Timed {
        inner: UserspaceBackend::new(iface.clone()).with_launcher([
            "ip",
            "netns",
            "exec",
            ns.name(),
            "wireguard-go",
        ]),
        applied: Arc::clone(&applied),
    };
    let cp = vpnctl_node::http::connect(&Credentials {
        api_url: url.clone(),
        fingerprint: String::new(),
        node_id: node.id,
        token: Token::new(node_token.expose()),
    })
    .unwrap();
    let mut agent_config = AgentConfig::new(node_key.clone(), 51820);
    agent_config.reconcile_interval = Duration::from_secs(3600);
    agent_config.report_interval = Duration::from_secs(3600);
    agent_config.teardown_on_exit = true;
    let agent = Agent::new(
        cp,
        backend,
        NoNetwork,
        Cache::new(dir.path().join("cache.json")),
        agent_config,
    );
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let cold = Instant::now();
    let agent_task = tokio::spawn(agent.run(async move {
        let _ = agent_stopped.await;
    }));
    let last = vpn
        .peers(vpnctl_core::PeerFilter::default())
        .unwrap()
        .pop()
        .unwrap();
    let applied_for_wait = Arc::clone(&applied);
    tokio::task::spawn_blocking(move || wait_applied(&applied_for_wait, &last.public_key))
        .await
        .unwrap();
    eprintln!(
        "cold start to 10,000 peers applied (snapshot + apply): {:?}",
        cold.elapsed()
    );

    // One change at a time through the API.
    let admin = server.admin();
    let mut latencies = Vec::new();
    let mut api_calls = Vec::new();
    for i in 0..ROUNDS {
        // One change at a time, as an admin or the bot makes them.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let key = KeyPair::generate().public;
        let start = Instant::now();
        admin
            .issue_peer(&IssuePeerRequest {
                user: user.id,
                node: node.id,
                device: format!("m{i}"),
                public_key: Some(key),
            })
            .await
            .unwrap();
        api_calls.push(start.elapsed());
        let applied = Arc::clone(&applied);
        let at = tokio::task::spawn_blocking(move || wait_applied(&applied, &key))
            .await
            .unwrap();
        latencies.push(at - start);
    }
    eprintln!(
        "API issue -> applied on a {PEERS}-peer wireguard-go interface, {ROUNDS} runs: p50 {:?} p90 {:?} max {:?}",
        pct(latencies.clone(), 50),
        pct(latencies.clone(), 90),
        pct(latencies.clone(), 100),
    );

    eprintln!(
        "  of which the API call itself (HTTP + durable commit): p50 {:?}",
        pct(api_calls, 50)
    );

    // The same change the way most panels apply it: `wg syncconf` of the full config.
    let conf = dir.path().join("sync.conf");
    let mut syncs = Vec::new();
    for _ in 0..5 {
        let shown = vpnctl_testbed::run_ok("wg", &["showconf", iface.as_str()]);
        let mut text = shown;
        text.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = 198.18.250.{}/32\n",
            KeyPair::generate().public,
            syncs.len() + 1
        ));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&conf)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
        drop(f);
        let start = Instant::now();
        vpnctl_testbed::run_ok("wg", &["syncconf", iface.as_str(), conf.to_str().unwrap()]);
        syncs.push(start.elapsed());
    }
    let ours = pct(latencies, 50);
    let theirs = pct(syncs, 50);
    eprintln!(
        "wg syncconf of the same one-peer change: p50 {theirs:?} ({:.1}x slower than the whole API path)",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );

    let _ = stop_agent.send(());
    let _ = agent_task.await;
    server.stop().await;
}
