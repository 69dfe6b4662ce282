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

mod system;

use std::time::{Duration, Instant};

use system::{NodeDaemon, WG_PORT, block, issue, wait_for, wg_peers};
use vpnctl_api::body::{CreateUser, IssuePeerRequest};
use vpnctl_core::{EventKind, KeyPair};
use vpnctl_testbed::control_plane::{ControlPlane, nodes_add};
use vpnctl_testbed::{ContinuousPing, Names, Netns, RootLink, WgQuick, ping, veth};

const CP_ROOT: &str = "192.0.2.65";
const CP_NODE: &str = "192.0.2.66";
const NODE_UNDERLAY: &str = "192.0.2.1";
const CLIENT_UNDERLAY: &str = "192.0.2.2";
/// The tunnel pool is 198.18.0.0/16 (RFC 2544 benchmarking range): 1,000 churn peers
/// do not fit a /24 documentation range.
const GATEWAY: &str = "198.18.0.1";
const INET_HOST: &str = "203.0.113.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_daemon_end_to_end() {
    vpnctl_testbed::require_root_and_tools();
    let _serial = vpnctl_testbed::serial();
    let names = Names::new();
    let node_ns = Netns::new(&names.netns("node"));
    let _node_ns_resolver = system::vps_resolver(&node_ns);
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
    let _link = RootLink::new(&names, "cp", &node_ns, CP_ROOT, CP_NODE);
    let dir = tempfile::tempdir().unwrap();

    // ---- control plane, node registered and enrolled by the real binary
    let mut cp = ControlPlane::builder()
        .tls()
        .listen_on(CP_ROOT.parse().unwrap())
        .start()
        .await;
    let admin = cp.admin();
    let mut new = nodes_add(
        "e2e",
        "test",
        &format!("{NODE_UNDERLAY}:{WG_PORT}"),
        "198.18.0.0/16",
    );
    // A handshake every second, so that the report with one comes soon.
    new.persistent_keepalive = Some(1);
    let node = cp.register(&new).await;
    let (join, _) = admin
        .create_join_token(node.id, Some(600))
        .await
        .expect("join token");
    let daemon = NodeDaemon {
        ns: node_ns.name().to_owned(),
        state: dir.path().join("node-state"),
        iface: names.iface("wg"),
        run_args: Vec::new(),
        fast: true,
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
            let report = block(admin.node_report(node.id));
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
    cp.stop().await;
    assert!(
        ping(&client_ns, GATEWAY, 3),
        "tunnel broke when the control plane stopped"
    );
    // A "reboot": the interface and its wireguard-go are gone too.
    daemon.crash(running, &node_ns);
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
    cp.restart().await;
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
    cp.stop().await;
}
