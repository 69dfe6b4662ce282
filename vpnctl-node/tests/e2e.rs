//! The whole system on real WireGuard: an in-process `vpnctld` (TLS, pinned), the real
//! `vpnctl-node` binary in a node namespace running wireguard-go, and a client
//! namespace that brings up the config our API hands out with the official `wg-quick`.
//!
//! ```text
//!  root ns (this test)         node ns                          inet ns
//!  vpnctld 192.0.2.65 ─ veth ─ 192.0.2.66
//!                              vpnctl-node + wireguard-go 198.18.0.1/16
//!  client ns                   NAT ─ veth 203.0.113.2 ↔ 203.0.113.1
//!  wg-quick ─ veth 192.0.2.2 ↔ 192.0.2.1:51820
//! ```
//!
//! One test walks through every phase in order, because the phases build on each
//! other (and on one expensive set-up): tunnel + NAT + report, revoke and re-issue,
//! zero loss during churn of 1,000 other peers, fail-static with the control plane
//! down (including a "reboot" of the node daemon), catch-up, and stray removal.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vpnctl_client::ApiClient;
use vpnctl_client::api::{CreateUser, IssuePeerRequest, RegisterNode};
use vpnctl_core::{EventKind, KeyPair, NodeId, PeerId, Region, UserId, Vpnctl};
use vpnctl_server::{InitOptions, Server, ServerConfig};
use vpnctl_testbed::{ChildGuard, ContinuousPing, Names, Netns, WgQuick, ping, veth};

const CP_ROOT: &str = "192.0.2.65";
const CP_NODE: &str = "192.0.2.66";
const NODE_UNDERLAY: &str = "192.0.2.1";
const CLIENT_UNDERLAY: &str = "192.0.2.2";
/// The tunnel pool is 198.18.0.0/16 (RFC 2544 benchmarking range): 1,000 churn peers
/// do not fit a /24 documentation range.
const GATEWAY: &str = "198.18.0.1";
const INET_HOST: &str = "203.0.113.1";
const WG_PORT: u16 = 51820;

/// The control plane, restartable on the same address and store.
struct ControlPlane {
    vpn: Vpnctl,
    config: ServerConfig,
    url: String,
    fingerprint: vpnctl_client::Fingerprint,
    admin: vpnctl_core::Secret,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), vpnctl_server::ServerError>>>,
}

impl ControlPlane {
    async fn start(data: &Path) -> Self {
        let listen = format!("{CP_ROOT}:0").parse().unwrap();
        let init = vpnctl_server::init(&InitOptions {
            data: data.to_owned(),
            listen,
            public_url: None,
        })
        .expect("vpnctld init");
        let vpn = Vpnctl::open_dir(data).expect("open store");
        let mut config = ServerConfig::new(data.to_owned(), listen);
        config.tls = true;
        let mut cp = Self {
            vpn,
            config,
            url: String::new(),
            fingerprint: init.fingerprint,
            admin: init.admin_token,
            stop: None,
            task: None,
        };
        cp.serve().await;
        cp
    }

    async fn serve(&mut self) {
        let server = Server::bind_with(self.config.clone(), self.vpn.clone())
            .await
            .expect("bind vpnctld");
        // Restarts come back on the same port: the node's credentials name it.
        self.config.listen = server.local_addr();
        self.url = server.base_url().to_owned();
        assert_eq!(server.fingerprint(), Some(self.fingerprint));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(server.serve(async move {
            let _ = rx.await;
        })));
    }

    async fn kill(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    fn admin(&self) -> ApiClient {
        ApiClient::new(&self.url, Some(self.admin.clone()), Some(self.fingerprint)).unwrap()
    }
}

/// A veth pair between the root namespace (this test, where vpnctld listens) and the
/// node namespace. Deleting the namespace destroys both ends; Drop also deletes the
/// root end in case the namespace outlives us.
struct RootLink {
    root_end: String,
}

impl RootLink {
    fn new(names: &Names, ns: &Netns) -> Self {
        let root_end = names.iface("cpr");
        let ns_end = names.iface("cpn");
        vpnctl_testbed::run_ok(
            "ip",
            &[
                "link",
                "add",
                &root_end,
                "type",
                "veth",
                "peer",
                "name",
                &ns_end,
                "netns",
                ns.name(),
            ],
        );
        let link = Self { root_end };
        vpnctl_testbed::run_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{CP_ROOT}/30"),
                "dev",
                &link.root_end,
            ],
        );
        vpnctl_testbed::run_ok("ip", &["link", "set", &link.root_end, "up"]);
        ns.ip(&["addr", "add", &format!("{CP_NODE}/30"), "dev", &ns_end]);
        ns.ip(&["link", "set", &ns_end, "up"]);
        link
    }
}

impl Drop for RootLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_end])
            .stderr(Stdio::null())
            .status();
    }
}

/// The real `vpnctl-node` binary inside the node namespace.
struct NodeDaemon {
    ns: String,
    state: PathBuf,
    iface: String,
}

impl NodeDaemon {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_vpnctl-node")])
            .args(["--state-dir", self.state.to_str().unwrap()])
            .args(["--interface", &self.iface, "--backend", "userspace"])
            .args(["--listen-port", &WG_PORT.to_string()])
            .args(["--reconcile-interval", "1s", "--report-interval", "1s"])
            .args(args)
            .env("RUST_LOG", "vpnctl_node=info")
            .stdin(Stdio::null());
        cmd
    }

    fn join(&self, token: &str) {
        let out = self
            .command(&["join"])
            .env("VPNCTL_NODE_JOIN_TOKEN", token)
            .output()
            .expect("run vpnctl-node join");
        assert!(
            out.status.success(),
            "join failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn run(&self) -> ChildGuard {
        let log = std::fs::File::create(self.state.with_extension("log")).unwrap();
        ChildGuard::spawn(self.command(&["run"]).stdout(Stdio::null()).stderr(log))
            .expect("spawn vpnctl-node run")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.with_extension("log")).unwrap_or_default()
    }
}

fn wg_peers(iface: &str) -> Vec<String> {
    let out = vpnctl_testbed::run("wg", &["show", iface, "peers"]).expect("wg show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn issue(admin: &ApiClient, user: UserId, node: NodeId, device: &str) -> (PeerId, String) {
    let issued = admin
        .issue_peer(&IssuePeerRequest {
            user,
            node,
            device: device.into(),
            public_key: None,
        })
        .await
        .expect("issue peer");
    (
        issued.peer.id,
        issued.config.expect("config of a generated key"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_daemon_end_to_end() {
    vpnctl_testbed::require_root_and_tools();
    let _serial = vpnctl_testbed::serial();
    let names = Names::new();
    let node_ns = Netns::new(&names.netns("node"));
    let client_ns = Netns::new(&names.netns("cli"));
    let inet_ns = Netns::new(&names.netns("inet"));
    veth(
        "u",
        &node_ns,
        &format!("{NODE_UNDERLAY}/26"),
        &client_ns,
        &format!("{CLIENT_UNDERLAY}/26"),
    );
    veth(
        "i",
        &node_ns,
        "203.0.113.2/24",
        &inet_ns,
        &format!("{INET_HOST}/24"),
    );
    let _link = RootLink::new(&names, &node_ns);
    let dir = tempfile::tempdir().unwrap();

    // ---- control plane, node registered and enrolled by the real binary
    let mut cp = ControlPlane::start(&dir.path().join("cp")).await;
    let admin = cp.admin();
    let node = admin
        .register_node(&RegisterNode {
            name: "e2e".into(),
            region: Region {
                code: "test".into(),
                name: "Test".into(),
            },
            endpoint: format!("{NODE_UNDERLAY}:{WG_PORT}"),
            ipv4_pool: "198.18.0.0/16".parse().unwrap(),
            listen_port: None,
            public_key: None,
            ipv6_pool: None,
            dns: Some(vec![GATEWAY.parse().unwrap()]),
            mtu: None,
            capacity: None,
            client_allowed_ips: None,
            persistent_keepalive: Some(1),
        })
        .await
        .expect("register node");
    let (join, _) = admin
        .create_join_token(node.id, Some(600))
        .await
        .expect("join token");
    let daemon = NodeDaemon {
        ns: node_ns.name().to_owned(),
        state: dir.path().join("node-state"),
        iface: names.iface("wg"),
    };
    daemon.join(&join.encode());
    let key_mode = std::fs::metadata(daemon.state.join("node.key")).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(key_mode.unwrap(), 0o600, "the node key is private");
    let enrolled = admin.node(node.id).await.unwrap().node;
    assert!(
        enrolled.public_key.is_some(),
        "enrollment recorded the node's public key"
    );
    let running = daemon.run();
    wait_for("the node interface", Duration::from_secs(15), || {
        vpnctl_testbed::run("wg", &["show", &daemon.iface]).is_ok_and(|o| o.status.success())
    });

    // ---- 1. a config from our API carries traffic to the node and (NAT) beyond
    let user = admin
        .create_user(&CreateUser {
            name: "e2e user".into(),
            telegram_id: None,
            role: None,
            until: None,
            device_limit: Some(2000),
            locale: None,
        })
        .await
        .expect("create user");
    let (peer, config) = issue(&admin, user.id, node.id, "laptop").await;
    assert_eq!(admin.peer_config(peer).await.unwrap(), config);
    let client_if = names.iface("c");
    let mut client = Some(WgQuick::up(&client_ns, &client_if, &config));
    wait_for("the client's first ping", Duration::from_secs(15), || {
        ping(&client_ns, GATEWAY, 1)
    });
    assert!(
        ping(&client_ns, INET_HOST, 3),
        "internet host not reachable through the tunnel (NAT)"
    );
    let key = admin.peer(peer).await.unwrap().public_key;
    wait_for(
        "a report with the handshake and bytes",
        Duration::from_secs(15),
        || {
            let report = futures_block(admin.node_report(node.id));
            report.ok().flatten().is_some_and(|r| {
                r.report.peers.iter().any(|p| {
                    p.public_key == key
                        && p.last_handshake.is_some()
                        && p.rx_bytes > 0
                        && p.tx_bytes > 0
                })
            })
        },
    );

    // ---- 2. revoking stops traffic within one reconcile; re-issuing restores it
    admin.revoke_peer(peer).await.unwrap();
    let revoked_at = Instant::now();
    wait_for(
        "the revoked key to leave the interface",
        Duration::from_secs(3),
        || !wg_peers(&daemon.iface).contains(&key.to_string()),
    );
    assert!(
        revoked_at.elapsed() < Duration::from_secs(2),
        "revocation took {:?}",
        revoked_at.elapsed()
    );
    assert!(
        !ping(&client_ns, GATEWAY, 2),
        "traffic still flows after revocation"
    );
    drop(client.take());
    let (_peer, config) = issue(&admin, user.id, node.id, "laptop").await;
    client = Some(WgQuick::up(&client_ns, &client_if, &config));
    wait_for("traffic after re-issue", Duration::from_secs(15), || {
        ping(&client_ns, GATEWAY, 1)
    });

    // ---- 3. a continuous ping loses nothing while 1,000 other peers come and go
    let pinger = ContinuousPing::start(&client_ns, GATEWAY, 150, 0.1);
    let mut churn = Vec::new();
    for i in 0..1000 {
        let issued = admin
            .issue_peer(&IssuePeerRequest {
                user: user.id,
                node: node.id,
                device: format!("churn{i}"),
                public_key: Some(KeyPair::generate().public),
            })
            .await
            .expect("issue churn peer");
        churn.push(issued.peer.id);
    }
    wait_for(
        "1,000 peers on the interface",
        Duration::from_secs(30),
        || wg_peers(&daemon.iface).len() >= 1001,
    );
    for id in churn {
        admin.revoke_peer(id).await.expect("revoke churn peer");
    }
    wait_for("the churn peers to leave", Duration::from_secs(30), || {
        wg_peers(&daemon.iface).len() == 1
    });
    let stats = tokio::task::spawn_blocking(move || pinger.finish())
        .await
        .unwrap();
    assert_eq!(stats.lost(), 0, "lost pings during churn: {stats:?}");

    // ---- 4. control plane down: the tunnel keeps working, a restarted daemon
    // restores the interface from its cache, and catches up when the control plane
    // returns.
    cp.kill().await;
    assert!(
        ping(&client_ns, GATEWAY, 3),
        "tunnel broke when the control plane stopped"
    );
    running.signal("KILL");
    drop(running);
    // A "reboot": the interface and its wireguard-go are gone too.
    for pid in node_ns.pids() {
        if std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "wireguard-go")
        {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
    wait_for(
        "the interface to disappear",
        Duration::from_secs(10),
        || !vpnctl_testbed::run("wg", &["show", &daemon.iface]).is_ok_and(|o| o.status.success()),
    );
    let _ = std::fs::remove_file(format!(
        "{}/{}.sock",
        vpnctl_testbed::UAPI_DIR,
        daemon.iface
    ));
    let running = daemon.run();
    wait_for(
        "the tunnel restored from the cache",
        Duration::from_secs(20),
        || ping(&client_ns, GATEWAY, 1),
    );
    // A change made while the control plane is down...
    let offline = cp
        .vpn
        .issue_peer(vpnctl_core::IssuePeer {
            user: user.id,
            node: node.id,
            device: "made-offline".into(),
            public_key: Some(KeyPair::generate().public),
        })
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(!wg_peers(&daemon.iface).contains(&offline.peer.public_key.to_string()));
    // ...arrives once it is back.
    cp.serve().await;
    wait_for("the node to catch up", Duration::from_secs(45), || {
        wg_peers(&daemon.iface).contains(&offline.peer.public_key.to_string())
    });
    assert!(ping(&client_ns, GATEWAY, 2));

    // ---- 5. a peer injected by hand is removed within one reconcile interval
    let stray = KeyPair::generate().public.to_string();
    vpnctl_testbed::run_ok(
        "wg",
        &[
            "set",
            &daemon.iface,
            "peer",
            &stray,
            "allowed-ips",
            "198.18.255.250/32",
        ],
    );
    assert!(wg_peers(&daemon.iface).contains(&stray));
    wait_for(
        "the stray peer to be removed",
        Duration::from_secs(3),
        || !wg_peers(&daemon.iface).contains(&stray),
    );
    let start = Instant::now();
    loop {
        let events = cp.vpn.recent_events(50).expect("events");
        let reported = events.iter().any(|e| {
            matches!(&e.kind, EventKind::Notice { node: Some(n), message, .. } if *n == node.id && message.contains(&stray))
        });
        if reported {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no event names the stray; daemon log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ping(&client_ns, GATEWAY, 2));

    running.signal("TERM");
    let log = daemon.log();
    assert!(
        !log.contains("PrivateKey"),
        "the daemon log mentions a private key"
    );
    drop(running);
    drop(client);
    cp.kill().await;
}

/// Runs a future to completion from synchronous test code on the multi-thread runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
