//! AmneziaWG beside WireGuard, through a censoring path. Two nodes on one VPS, as
//! `vpnctl nodes add` adds them: a plain one (:51820) and one with
//! `--transport amneziawg` (:51821). Between the client and the VPS a middle
//! namespace drops UDP packets whose payload starts with a WireGuard handshake
//! initiation (type 1, 148 bytes: UDP length 156).
//!
//! ```text
//!  client 192.0.2.2 ─ mid 192.0.2.1 | 192.0.2.5 (nft: drop WG initiations) ─ 192.0.2.6 VPS
//!  VPS 203.0.113.2 ─ inet 203.0.113.1: dnsmasq 203.0.113.53, web 203.0.113.80
//!  root 192.0.2.73 (vpnctld) ─ 192.0.2.74 VPS
//! ```
//!
//! With the rule on, the plain config does not connect and the AWG config issued by
//! the API, brought up on amneziawg-go exactly as written, resolves a name and
//! fetches a page; with it off both work. A mismatched H1 does not connect. On the
//! AWG node: drift repair, a fail-static daemon restart, and a 0-loss delta apply
//! while ~200 peers come and go.

mod system;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use system::{NodeDaemon, issue, wait_for};
use vpnctl_api::body::CreateUser;
use vpnctl_api::transport::TransportChoice;
use vpnctl_core::KeyPair;
use vpnctl_testbed::control_plane::{ControlPlane, nodes_add};
use vpnctl_testbed::internet::{Dnsmasq, WebServer, curl};
use vpnctl_testbed::{
    AWG_UAPI_DIR, AwgQuick, ContinuousPing, Names, Netns, RootLink, WgQuick, veth,
};

const CP_ROOT: &str = "192.0.2.73";
const CP_NODE: &str = "192.0.2.74";
const VPS: &str = "192.0.2.6";
const RESOLVER: &str = "203.0.113.53";
const WEB: &str = "203.0.113.80";
const PAGE: &str = "hello past the censor\n";
const URL: &str = "http://www.example.test/";
const CENSOR: &str = "udp length 156 @th,64,32 0x01000000 counter drop";

fn censor(mid: &Netns, on: bool) {
    if on {
        mid.exec_ok("nft", &["add", "table", "inet", "censor"]);
        mid.exec_ok(
            "nft",
            &["add chain inet censor pass { type filter hook forward priority 0 ; }"],
        );
        let mut args = vec!["add", "rule", "inet", "censor", "pass"];
        args.extend(CENSOR.split(' '));
        mid.exec_ok("nft", &args);
    } else {
        mid.exec_ok("nft", &["delete", "table", "inet", "censor"]);
    }
}

fn dropped(mid: &Netns) -> u64 {
    let rules = mid.exec_ok("nft", &["list", "table", "inet", "censor"]);
    rules
        .split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn fetch_within(ns: &Netns, within: Duration) -> Result<String, String> {
    let start = Instant::now();
    loop {
        match curl(ns, URL, Duration::from_secs(3), &[]) {
            Ok(page) => return Ok(page),
            Err(e) if start.elapsed() > within => return Err(e.to_string()),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// One UAPI exchange with the node's amneziawg-go; `Err` while its socket is not there
/// yet (the daemon creates it a moment after the node starts it).
fn try_uapi(socket: &Path, request: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    for line in BufReader::new(s).lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

fn uapi(socket: &Path, request: &str) -> String {
    try_uapi(socket, request).expect("node's amneziawg socket")
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)]
async fn awg_passes_a_censor_that_stops_wireguard() {
    vpnctl_testbed::require_root_and_tools();
    let _serial = vpnctl_testbed::serial();
    let names = Names::new();
    let vps = Netns::new(&names.netns("vps"));
    let mid = Netns::new(&names.netns("mid"));
    let client = Netns::new(&names.netns("cli"));
    let inet = Netns::new(&names.netns("inet"));

    veth(
        &names.iface("c"),
        &client,
        "192.0.2.2/30",
        &mid,
        "192.0.2.1/30",
    );
    veth(
        &names.iface("m"),
        &mid,
        "192.0.2.5/30",
        &vps,
        "192.0.2.6/30",
    );
    client.ip(&["route", "add", "192.0.2.4/30", "via", "192.0.2.1"]);
    vps.ip(&["route", "add", "192.0.2.0/30", "via", "192.0.2.5"]);
    mid.exec_ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    veth(
        &names.iface("i"),
        &vps,
        "203.0.113.2/24",
        &inet,
        "203.0.113.1/24",
    );
    vps.ip(&["route", "add", "default", "via", "203.0.113.1"]);
    for addr in [format!("{RESOLVER}/32"), format!("{WEB}/32")] {
        inet.ip(&["addr", "add", &addr, "dev", "lo"]);
    }
    let _link = RootLink::new(&names, "cp", &vps, CP_ROOT, CP_NODE);
    let web_ip: IpAddr = WEB.parse().unwrap();
    let _resolver = Dnsmasq::start(
        &inet,
        RESOLVER.parse().unwrap(),
        &[("www.example.test", &[web_ip])],
    );
    let _web = WebServer::start(&inet, &[SocketAddr::new(web_ip, 80)], PAGE);
    vps.set_resolv_conf(&format!("nameserver {RESOLVER}\n"));
    client.set_resolv_conf("");

    // ---- the control plane and two nodes on one VPS, as `vpnctl nodes add` adds them
    let mut cp = ControlPlane::builder()
        .tls()
        .listen_on(CP_ROOT.parse().unwrap())
        .start()
        .await;
    let admin = cp.admin();
    let plain = cp
        .register(&nodes_add(
            "vps-wg",
            "test",
            &format!("{VPS}:51820"),
            "198.18.0.0/24",
        ))
        .await;
    let mut awg_request = nodes_add("vps-awg", "test", &format!("{VPS}:51821"), "198.18.1.0/24");
    awg_request.transport = Some(TransportChoice::Amneziawg {
        generation: None,
        params: None,
    });
    let awg = cp.register(&awg_request).await;
    let params = awg
        .transport
        .awg()
        .expect("AWG parameters generated")
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let daemon = |name: &str, iface: String| NodeDaemon {
        ns: vps.name().to_owned(),
        state: dir.path().join(name),
        iface,
        run_args: Vec::new(),
        fast: true,
    };
    let wg_daemon = daemon("wg", names.iface("wgn"));
    let awg_daemon = daemon("awg", names.iface("awn"));
    let awg_socket = Path::new(AWG_UAPI_DIR).join(format!("{}.sock", awg_daemon.iface));
    let _awg_files = vpnctl_testbed::AwgUapiGuard::new(&awg_daemon.iface);
    for (d, node) in [(&wg_daemon, plain.id), (&awg_daemon, awg.id)] {
        let (join, _) = admin.create_join_token(node, Some(600)).await.unwrap();
        d.join(&join.encode());
    }
    let _wg_running = wg_daemon.run();
    let mut awg_running = Some(awg_daemon.run());
    wait_for(
        "the plain node's interface",
        Duration::from_secs(20),
        || wg_daemon.interface_exists(),
    );
    wait_for(
        "the AWG node's amneziawg-go",
        Duration::from_secs(20),
        || {
            try_uapi(&awg_socket, "get=1\n\n")
                .is_ok_and(|state| state.contains(&format!("h1={}", params.h1)))
        },
    );

    let user = admin
        .create_user(&CreateUser {
            name: "censored".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, wg_config) = issue(&admin, user.id, plain.id, "laptop").await;
    let (awg_peer, awg_config) = issue(&admin, user.id, awg.id, "phone").await;
    assert!(
        !wg_config.contains("Jc ="),
        "plain configs carry no AWG key"
    );
    for key in [
        "Jc = ", "Jmin = ", "Jmax = ", "S1 = ", "S2 = ", "H1 = ", "H4 = ",
    ] {
        assert!(awg_config.contains(key), "the AWG config has {key:?}");
    }

    // ---- 1. the censor on: WireGuard does not connect, AmneziaWG does
    censor(&mid, true);
    {
        let _t = WgQuick::up(&client, &names.iface("cw"), &wg_config);
        let blocked = fetch_within(&client, Duration::from_secs(6));
        assert!(
            blocked.is_err(),
            "plain WireGuard passed the censor: {blocked:?}"
        );
    }
    assert!(dropped(&mid) > 0, "the censor saw WireGuard's initiations");
    {
        let _t = AwgQuick::up(&client, &names.iface("aw"), &awg_config);
        assert_eq!(
            fetch_within(&client, Duration::from_secs(15)).as_deref(),
            Ok(PAGE),
            "AmneziaWG through the censor"
        );
    }

    // ---- 2. a mismatched H1 does not connect
    let h1 = params.h1.start;
    let wrong = awg_config.replace(
        &format!("H1 = {}\n", params.h1),
        &format!("H1 = {}\n", if h1 > 5 { h1 - 1 } else { h1 + 1 }),
    );
    assert_ne!(wrong, awg_config);
    {
        let _t = AwgQuick::up(&client, &names.iface("ax"), &wrong);
        let r = fetch_within(&client, Duration::from_secs(5));
        assert!(r.is_err(), "a wrong H1 connected: {r:?}");
    }

    // ---- 3. the censor off: both work
    censor(&mid, false);
    {
        let _t = WgQuick::up(&client, &names.iface("cw"), &wg_config);
        assert_eq!(
            fetch_within(&client, Duration::from_secs(15)).as_deref(),
            Ok(PAGE)
        );
    }
    let tunnel = AwgQuick::up(&client, &names.iface("aw"), &awg_config);
    assert_eq!(
        fetch_within(&client, Duration::from_secs(15)).as_deref(),
        Ok(PAGE)
    );

    // ---- 4. drift repair on AWG: a peer added by hand is removed
    let stray = KeyPair::generate().public;
    let set = uapi(
        &awg_socket,
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.1.200/32\n\n",
            hex(stray.as_bytes())
        ),
    );
    assert_eq!(set.trim(), "errno=0");
    wait_for("the stray peer removed", Duration::from_secs(15), || {
        !uapi(&awg_socket, "get=1\n\n").contains(&hex(stray.as_bytes()))
    });

    // ---- 5. fail static: control plane gone, daemon restarted; the tunnel serves on
    cp.stop().await;
    assert_eq!(
        fetch_within(&client, Duration::from_secs(10)).as_deref(),
        Ok(PAGE),
        "the control plane down"
    );
    drop(awg_running.take());
    // The resolver is the daemon's own; the tunnel is amneziawg-go's.
    assert!(
        vpnctl_testbed::ping(&client, "198.18.1.1", 3),
        "amneziawg-go kept serving while the daemon was away"
    );
    awg_running = Some(awg_daemon.run());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        fetch_within(&client, Duration::from_secs(10)).as_deref(),
        Ok(PAGE),
        "the restarted daemon adopted amneziawg-go"
    );
    cp.restart().await;

    // ---- 6. 0-loss delta apply while ~200 peers come and go
    let ping = ContinuousPing::start(&client, "198.18.1.1", 60, 0.1);
    let other = admin
        .create_user(&CreateUser {
            name: "churn".into(),
            device_limit: Some(200),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut peers = Vec::new();
    for i in 0..100 {
        peers.push(issue(&admin, other.id, awg.id, &format!("d{i}")).await.0);
    }
    for p in peers {
        admin.revoke_peer(p).await.unwrap();
    }
    let stats = ping.finish();
    assert_eq!(stats.lost(), 0, "pings lost while peers churned: {stats:?}");
    wait_for(
        "only the phone left on amneziawg-go",
        Duration::from_secs(15),
        || {
            uapi(&awg_socket, "get=1\n\n")
                .matches("public_key=")
                .count()
                == 1
        },
    );
    let _ = awg_peer;
    drop(tunnel);
    drop(awg_running);
}
