//! Moving in from a hand-written wg-quick server without re-issuing a single config.
//!
//! ```text
//!  root ns: vpnctld 192.0.2.73 ─ veth ─ 192.0.2.74  node ns ("the VPS")
//!                                                    first: wg-quick server 10.66.0.1/24 :51820
//!                                                    then:  vpnctl-node, the same key and port
//!  client ns 192.0.2.2 ─ veth ─ 192.0.2.1 node ns    node ns 203.0.113.2 ─ veth ─ inet ns
//!                                                    203.0.113.1: dnsmasq 203.0.113.53 (the
//!                                                    client's DNS line), web 203.0.113.80
//! ```
//!
//! The client's config is written once, by hand, as the old server's admin wrote
//! it, and stays up the whole time. The server's `wg0.conf` is imported through the
//! API (dry run, then for real), the old server is stopped, `vpnctl-node join
//! --adopt-key wg0.conf` takes over its key and port, and the same client tunnel
//! pings the gateway, resolves a name and fetches a page.

mod system;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use system::{NodeDaemon, wait_for};
use vpnctl_core::legacy;
use vpnctl_core::{Health, KeyPair, PresharedKey};
use vpnctl_testbed::control_plane::{ControlPlane, nodes_add};
use vpnctl_testbed::internet::{Dnsmasq, WebServer, curl};
use vpnctl_testbed::{Names, Netns, RootLink, WgQuick, ping, veth};

const CP_ROOT: &str = "192.0.2.73";
const CP_NODE: &str = "192.0.2.74";
const NODE_UNDERLAY: &str = "192.0.2.1";
const CLIENT_UNDERLAY: &str = "192.0.2.2";
const RESOLVER: &str = "203.0.113.53";
const WEB_V4: &str = "203.0.113.80";
const PAGE: &str = "moved in, same config\n";
const URL: &str = "http://www.example.test/";

fn retry_curl(ns: &Netns, url: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        match curl(ns, url, Duration::from_secs(3), &[]) {
            Ok(page) => return page,
            Err(e) if start.elapsed() > within => panic!("{e} (for {within:?})"),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)]
async fn a_wg_quick_server_moves_in_and_its_clients_keep_their_configs() {
    vpnctl_testbed::require_root_and_tools();
    let _serial = vpnctl_testbed::serial();
    let names = Names::new();
    let node_ns = Netns::new(&names.netns("vps"));
    let client_ns = Netns::new(&names.netns("cli"));
    let inet_ns = Netns::new(&names.netns("inet"));
    let under = names.iface("u");
    veth(
        &under,
        &node_ns,
        &format!("{NODE_UNDERLAY}/26"),
        &client_ns,
        &format!("{CLIENT_UNDERLAY}/26"),
    );
    let up = names.iface("i");
    veth(&up, &node_ns, "203.0.113.2/24", &inet_ns, "203.0.113.1/24");
    node_ns.ip(&["route", "add", "default", "via", "203.0.113.1"]);
    for addr in [format!("{RESOLVER}/32"), format!("{WEB_V4}/32")] {
        inet_ns.ip(&["addr", "add", &addr, "dev", "lo"]);
    }
    let _link = RootLink::new(&names, "cp", &node_ns, CP_ROOT, CP_NODE);
    let web_v4: IpAddr = WEB_V4.parse().unwrap();
    let _resolver = Dnsmasq::start(
        &inet_ns,
        RESOLVER.parse().unwrap(),
        &[("www.example.test", &[web_v4])],
    );
    let web = WebServer::start(&inet_ns, &[SocketAddr::new(web_v4, 80)], PAGE);
    node_ns.set_resolv_conf(&format!("nameserver {RESOLVER}\n"));
    client_ns.set_resolv_conf("");

    // ---- the old server, as its admin wrote it (two clients; one is online)
    let (server, alice, bob) = (
        KeyPair::generate(),
        KeyPair::generate(),
        KeyPair::generate(),
    );
    let psk = PresharedKey::generate();
    let wg0 = format!(
        "[Interface]\nAddress = 10.66.0.1/24\nListenPort = 51820\nPrivateKey = {}\n\n\
         # alice\n[Peer]\nPublicKey = {}\nPresharedKey = {}\nAllowedIPs = 10.66.0.5/32\n\n\
         ### Client bob\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.66.0.3/32\n",
        server.private.expose_base64(),
        alice.public,
        psk.expose_base64(),
        bob.public,
    );
    let old = WgQuick::up(&node_ns, &names.iface("old"), &wg0);
    let alice_conf = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 10.66.0.5/32\nDNS = {RESOLVER}\n\n\
         [Peer]\nPublicKey = {}\nPresharedKey = {}\nEndpoint = {NODE_UNDERLAY}:51820\n\
         AllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 5\n",
        alice.private.expose_base64(),
        server.public,
        psk.expose_base64(),
    );
    let client = WgQuick::up(&client_ns, &names.iface("c"), &alice_conf);
    assert!(
        ping(&client_ns, "10.66.0.1", 3),
        "the old server serves the client"
    );

    // ---- the control plane; the node added as `vpnctl nodes add` adds it
    let mut cp = ControlPlane::builder()
        .tls()
        .listen_on(CP_ROOT.parse().unwrap())
        .start()
        .await;
    let admin = cp.admin();
    let node = cp
        .register(&nodes_add(
            "old-vps",
            "test",
            &format!("{NODE_UNDERLAY}:51820"),
            "10.66.0.0/24",
        ))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let wg0_path = dir.path().join("wg0.conf");
    std::fs::write(&wg0_path, &wg0).unwrap();

    // `vpnctl import wg-quick wg0.conf --node old-vps --dry-run`, then for real.
    let parsed = legacy::parse_wg_quick(&wg0).unwrap();
    let dry = admin
        .import_peers(node.id, &parsed.request(true))
        .await
        .unwrap();
    assert!(!dry.applied && dry.conflicts.is_empty() && dry.peers.len() == 2);
    assert!(
        admin.users().await.unwrap().is_empty(),
        "a dry run writes nothing"
    );
    let done = admin
        .import_peers(node.id, &parsed.request(false))
        .await
        .unwrap();
    assert!(done.applied, "{done:?}");
    let mut users: Vec<String> = admin
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);

    // ---- the switch: the old server stops, vpnctl-node adopts its key and port
    drop(old);
    let daemon = NodeDaemon {
        ns: node_ns.name().to_owned(),
        state: dir.path().join("node"),
        iface: names.iface("wg"),
        run_args: Vec::new(),
        fast: true,
    };
    let (join, _) = admin.create_join_token(node.id, Some(600)).await.unwrap();
    let out = daemon
        .command(&["join", "--adopt-key", wg0_path.to_str().unwrap()])
        .env("VPNCTL_NODE_JOIN_TOKEN", join.encode())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "join --adopt-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&server.public.to_string()), "{stdout}");
    assert!(
        !stdout.contains(&server.private.expose_base64())
            && !String::from_utf8_lossy(&out.stderr).contains(&server.private.expose_base64()),
        "join never prints the adopted private key"
    );
    let _running = daemon.run();
    wait_for("the node's interface", Duration::from_secs(20), || {
        daemon.interface_exists()
    });

    // ---- the unchanged client: gateway, names and pages through the new node
    wait_for(
        "the client to reach the new node",
        Duration::from_secs(30),
        || ping(&client_ns, "10.66.0.1", 1),
    );
    assert_eq!(
        retry_curl(&client_ns, URL, Duration::from_secs(20)),
        PAGE,
        "the old config browses through vpnctl-node; log:\n{}",
        daemon.log()
    );
    assert_eq!(
        web.clients().last().map(SocketAddr::ip),
        Some("203.0.113.2".parse::<IpAddr>().unwrap()),
        "through the node's NAT"
    );
    let n = admin.node(node.id).await.unwrap();
    assert_eq!(n.node.public_key, Some(server.public));
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin.node(node.id).await.unwrap().health.status != Health::Up {
        assert!(Instant::now() < deadline, "the node never reported up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(client);
    cp.stop().await;
}
