//! Tunnels that browse, as a user gets them: a node added with the defaults of
//! `vpnctl nodes add`, a config used exactly as issued (its `DNS =` line applied by
//! `wg-quick`), names resolved through the tunnel by the node's own resolver from
//! the VPS's resolvers, and a web page fetched with `curl`. IPv6 never leaves around
//! the tunnel; with an IPv6 pool it goes through it.
//!
//! ```text
//!  root ns: vpnctld 192.0.2.73 ─ veth ─ 192.0.2.74  node ns ("the VPS")
//!                                                    vpnctl-node A: wg 198.18.0.1/24 :51820
//!                                                    vpnctl-node B: wg 198.18.1.1/24, fd00:b::1/64 :51821
//!  client ns 192.0.2.2 ─ veth ─ 192.0.2.1 node ns    node ns 203.0.113.2, 2001:db8:1::2
//!  client ns 2001:db8:2::2 ─ veth ─ 2001:db8:2::1     ─ veth ─ inet ns 203.0.113.1, 2001:db8:1::1
//!  (the client's own IPv6 route, outside the tunnel)  inet ns: dnsmasq 203.0.113.53 (the
//!                                                    VPS's resolver, example.test), web
//!                                                    203.0.113.80 and [2001:db8:80::80]
//! ```
//!
//! One test walks the phases in order on one set-up: resolve and browse; no IPv6
//! leak; the resolver is not reachable from outside; names keep resolving with the
//! control plane gone and after a daemon restart; an unreachable upstream gives a
//! fast SERVFAIL, reported by the node; IPv6 through the tunnel with an IPv6 pool.

mod system;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use system::{NodeDaemon, block, issue, wait_for};
use vpnctl_api::body::CreateUser;
use vpnctl_core::{Health, NodeId};
use vpnctl_testbed::control_plane::{ControlPlane, nodes_add};
use vpnctl_testbed::internet::{Dnsmasq, WebServer, curl, lookup};
use vpnctl_testbed::{Names, Netns, RootLink, WgQuick, veth};

const CP_ROOT: &str = "192.0.2.73";
const CP_NODE: &str = "192.0.2.74";
const NODE_UNDERLAY: &str = "192.0.2.1";
const CLIENT_UNDERLAY: &str = "192.0.2.2";
const RESOLVER: &str = "203.0.113.53";
const WEB_V4: &str = "203.0.113.80";
const WEB_V6: &str = "2001:db8:80::80";
const NODE_V6_UPLINK: &str = "2001:db8:1::2";
const CLIENT_V6: &str = "2001:db8:2::2";
const PAGE: &str = "hello through the tunnel\n";
const URL: &str = "http://www.example.test/";
const METRICS: &str = "192.0.2.74:9586";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_configs_resolve_browse_and_never_leak_ipv6() {
    vpnctl_testbed::require_root_and_tools();
    let _serial = vpnctl_testbed::serial();
    let names = Names::new();
    let node_ns = Netns::new(&names.netns("vps"));
    let client_ns = Netns::new(&names.netns("cli"));
    let inet_ns = Netns::new(&names.netns("inet"));

    // ---- the network: client ↔ VPS, VPS ↔ internet, client's own IPv6 ↔ internet
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
    node_ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{NODE_V6_UPLINK}/64"),
        "dev",
        &format!("{up}a"),
        "nodad",
    ]);
    inet_ns.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::1/64",
        "dev",
        &format!("{up}b"),
        "nodad",
    ]);
    node_ns.ip(&["route", "add", "default", "via", "203.0.113.1"]);
    node_ns.ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]);
    let side = names.iface("s");
    veth(
        &side,
        &client_ns,
        "198.51.100.2/30",
        &inet_ns,
        "198.51.100.1/30",
    );
    client_ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{CLIENT_V6}/64"),
        "dev",
        &format!("{side}a"),
        "nodad",
    ]);
    inet_ns.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:2::1/64",
        "dev",
        &format!("{side}b"),
        "nodad",
    ]);
    client_ns.ip(&["-6", "route", "add", "default", "via", "2001:db8:2::1"]);
    for addr in [format!("{RESOLVER}/32"), format!("{WEB_V4}/32")] {
        inet_ns.ip(&["addr", "add", &addr, "dev", "lo"]);
    }
    inet_ns.ip(&["-6", "addr", "add", &format!("{WEB_V6}/128"), "dev", "lo"]);
    inet_ns.exec_ok("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]);
    let _link = RootLink::new(&names, "cp", &node_ns, CP_ROOT, CP_NODE);

    // The internet: a resolver for example.test and a web server on v4 and v6.
    let web_v4: IpAddr = WEB_V4.parse().unwrap();
    let web_v6: IpAddr = WEB_V6.parse().unwrap();
    let mut resolver = Dnsmasq::start(
        &inet_ns,
        RESOLVER.parse().unwrap(),
        &[("www.example.test", &[web_v4, web_v6])],
    );
    let web = WebServer::start(
        &inet_ns,
        &[SocketAddr::new(web_v4, 80), SocketAddr::new(web_v6, 80)],
        PAGE,
    );
    // The VPS resolves with the internet's resolver, as a provider's VPS does; the
    // client starts without any (wg-quick's DNS line fills it in).
    node_ns.set_resolv_conf(&format!("nameserver {RESOLVER}\n"));
    client_ns.set_resolv_conf("");

    // Outside the tunnel the client reaches the web server over its own IPv6.
    let direct = curl(
        &client_ns,
        &format!("http://[{WEB_V6}]/"),
        Duration::from_secs(5),
        &[],
    );
    assert_eq!(
        direct.as_deref(),
        Ok(PAGE),
        "the client's own IPv6 path works"
    );
    let clients_before = web.clients().len();

    // ---- control plane; node A exactly as `vpnctl nodes add` registers it
    let mut cp = ControlPlane::builder()
        .tls()
        .listen_on(CP_ROOT.parse().unwrap())
        .start()
        .await;
    let admin = cp.admin();
    let node_a = cp
        .register(&nodes_add(
            "vps-a",
            "test",
            &format!("{NODE_UNDERLAY}:51820"),
            "198.18.0.0/24",
        ))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let daemon_a = NodeDaemon {
        ns: node_ns.name().to_owned(),
        state: dir.path().join("a"),
        iface: names.iface("wga"),
        run_args: vec!["--metrics-listen".into(), METRICS.into()],
        fast: true,
    };
    let (join, _) = admin.create_join_token(node_a.id, Some(600)).await.unwrap();
    daemon_a.join(&join.encode());
    let mut running_a = Some(daemon_a.run());
    wait_for("node A's interface", Duration::from_secs(20), || {
        daemon_a.interface_exists()
    });

    let user = admin
        .create_user(&CreateUser {
            name: "browser".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, config) = issue(&admin, user.id, node_a.id, "laptop").await;
    for line in [
        "DNS = 198.18.0.1\n",
        "MTU = 1280\n",
        "AllowedIPs = 0.0.0.0/0, ::/0\n",
    ] {
        assert!(config.contains(line), "the default config has {line:?}");
    }
    let tunnel_a = WgQuick::up(&client_ns, &names.iface("ca"), &config);
    assert!(
        client_ns
            .resolv_conf()
            .unwrap()
            .contains("nameserver 198.18.0.1"),
        "wg-quick applied the config's DNS line"
    );

    // ---- 1. names resolve through the tunnel, pages load
    let page = retry_curl(&client_ns, URL, Duration::from_secs(20));
    assert_eq!(page, PAGE);
    let last = *web.clients().last().unwrap();
    assert_eq!(
        last.ip(),
        "203.0.113.2".parse::<IpAddr>().unwrap(),
        "through the tunnel and the node's NAT"
    );

    // ---- 2. IPv6 does not leave around the tunnel (the node has no IPv6 pool)
    let leaked = curl(
        &client_ns,
        &format!("http://[{WEB_V6}]/"),
        Duration::from_secs(3),
        &[],
    );
    assert!(leaked.is_err(), "IPv6 went around the tunnel: {leaked:?}");
    assert!(
        web.clients()[clients_before..]
            .iter()
            .all(|c| c.ip() != CLIENT_V6.parse::<IpAddr>().unwrap()),
        "the web server saw the client's own IPv6 address"
    );

    // ---- 3. the resolver answers the tunnel only, not the internet
    inet_ns.ip(&["route", "add", "198.18.0.0/16", "via", "203.0.113.2"]);
    let from_outside = lookup(
        &inet_ns,
        "198.18.0.1:53".parse().unwrap(),
        "www.example.test",
        Duration::from_secs(2),
    );
    assert!(
        from_outside.is_err(),
        "the tunnel's resolver answered the internet: {from_outside:?}"
    );
    let from_tunnel = lookup(
        &client_ns,
        "198.18.0.1:53".parse().unwrap(),
        "www.example.test",
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!(
        (from_tunnel.rcode, from_tunnel.addrs.clone()),
        (0, vec![web_v4])
    );

    // ---- 4. fail static: the control plane gone, then the daemon restarted
    cp.stop().await;
    assert_eq!(
        retry_curl(&client_ns, URL, Duration::from_secs(10)),
        PAGE,
        "control plane down"
    );
    drop(running_a.take());
    running_a = Some(daemon_a.run());
    assert_eq!(
        retry_curl(&client_ns, URL, Duration::from_secs(20)),
        PAGE,
        "daemon restarted while the control plane is down"
    );
    cp.restart().await;

    // ---- 5. the VPS's resolver unreachable: SERVFAIL at once, reported
    resolver.stop();
    let failed = lookup(
        &client_ns,
        "198.18.0.1:53".parse().unwrap(),
        "www.example.test",
        Duration::from_secs(5),
    )
    .expect("an answer, not silence");
    assert_eq!(failed.rcode, 2, "SERVFAIL");
    assert!(
        failed.took < Duration::from_secs(3),
        "answered after {:?}",
        failed.took
    );
    let healthz = wait_http(METRICS, "/healthz", |b| b.contains("degraded: DNS"));
    assert!(
        healthz.starts_with("HTTP/1.0 200"),
        "tunnels still work: {healthz}"
    );
    let metrics = wait_http(METRICS, "/metrics", |b| {
        b.contains("vpnctl_node_dns_upstream_up 0")
    });
    assert!(
        metrics.contains("vpnctl_node_dns_servfail_total"),
        "{metrics}"
    );
    wait_node(
        &admin,
        node_a.id,
        "the DNS problem reported to the control plane",
        |h| h.report_errors > 0 && h.status != Health::Down,
    );
    let report = admin.node_report(node_a.id).await.unwrap().unwrap();
    assert!(
        report
            .report
            .errors
            .iter()
            .any(|e| e.starts_with("DNS: no upstream resolver answers")),
        "{:?}",
        report.report.errors
    );
    // The resolver back: names resolve again.
    let _resolver = Dnsmasq::start(
        &inet_ns,
        RESOLVER.parse().unwrap(),
        &[("www.example.test", &[web_v4, web_v6])],
    );
    assert_eq!(retry_curl(&client_ns, URL, Duration::from_secs(20)), PAGE);
    drop(tunnel_a);

    // ---- 6. a node with an IPv6 pool: IPv6 works through the tunnel (NAT66)
    let mut with_v6 = nodes_add(
        "vps-b",
        "test",
        &format!("{NODE_UNDERLAY}:51821"),
        "198.18.1.0/24",
    );
    with_v6.ipv6_pool = Some("fd00:b::/64".parse().unwrap());
    let node_b = cp.register(&with_v6).await;
    let daemon_b = NodeDaemon {
        ns: node_ns.name().to_owned(),
        state: dir.path().join("b"),
        iface: names.iface("wgb"),
        run_args: Vec::new(),
        fast: true,
    };
    let (join, _) = admin.create_join_token(node_b.id, Some(600)).await.unwrap();
    // The second node on the same VPS: joined without --listen-port, it listens on
    // the port of the endpoint it was added with, beside node A's 51820.
    daemon_b.join(&join.encode());
    let _running_b = daemon_b.run();
    wait_for("node B's interface", Duration::from_secs(20), || {
        daemon_b.interface_exists()
    });
    let (_, config_b) = issue(&admin, user.id, node_b.id, "phone").await;
    assert!(
        config_b.contains("Address = 198.18.1.2/32, fd00:b::2/128\n"),
        "{config_b}"
    );
    let _tunnel_b = WgQuick::up(&client_ns, &names.iface("cb"), &config_b);
    let page6 = retry_curl_with(
        &client_ns,
        &format!("http://[{WEB_V6}]/"),
        Duration::from_secs(20),
        &["-6"],
    );
    assert_eq!(page6, PAGE);
    assert_eq!(
        web.clients().last().unwrap().ip(),
        NODE_V6_UPLINK.parse::<IpAddr>().unwrap(),
        "IPv6 through the tunnel and the node's NAT66, not the client's own route"
    );
    assert_eq!(
        retry_curl(&client_ns, URL, Duration::from_secs(10)),
        PAGE,
        "and names resolve on B"
    );
    drop(running_a);
}

/// `curl` until it fetches or `within` passes (the first handshake, a restarting
/// daemon); the last error otherwise.
fn retry_curl(ns: &Netns, url: &str, within: Duration) -> String {
    retry_curl_with(ns, url, within, &[])
}

fn retry_curl_with(ns: &Netns, url: &str, within: Duration, extra: &[&str]) -> String {
    let start = Instant::now();
    loop {
        match curl(ns, url, Duration::from_secs(3), extra) {
            Ok(page) => return page,
            Err(e) if start.elapsed() > within => panic!("{e} (for {within:?})"),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// A plain HTTP/1.0 GET from the test's namespace until the response satisfies `ok`.
fn wait_http(addr: &str, path: &str, ok: impl Fn(&str) -> bool) -> String {
    use std::io::{Read as _, Write as _};
    let start = Instant::now();
    loop {
        let mut text = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes());
            let _ = s.read_to_string(&mut text);
        }
        if ok(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{addr}{path} never satisfied the test:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_node(
    admin: &vpnctl_client::ApiClient,
    node: NodeId,
    what: &str,
    ok: impl Fn(&vpnctl_api::body::NodeHealth) -> bool,
) {
    wait_for(what, Duration::from_secs(30), || {
        block(admin.node(node)).is_ok_and(|v| ok(&v.health))
    });
}
