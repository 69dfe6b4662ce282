//! Lifecycle automation on real WireGuard: two nodes (real `vpnctl-node` binaries with
//! wireguard-go, each in its namespace), an in-process `vpnctld` that probes them, the
//! real Telegram bot talking to a fake Bot API on loopback, and a client namespace
//! running the official `wg-quick` with the configs the bot sends.
//!
//! ```text
//!  root ns: vpnctld 192.0.2.65 ─ veth ─ 192.0.2.66 node A (wg 198.18.0.1/24)
//!                   192.0.2.69 ─ veth ─ 192.0.2.70 node B (wg 198.18.1.1/24)
//!  client ns: 192.0.2.2 ─ veth ─ 192.0.2.1 A:51820
//!             192.0.2.6 ─ veth ─ 192.0.2.5 B:51820
//! ```
//!
//! The control plane reaches each node's endpoint address (where it probes the
//! daemon's health port) over the root links. One test walks the phases in order:
//! health with probes and metrics, a crashed node daemon ("down" alert in the admin
//! chat, then the recovery notice), traffic totals that survive the WireGuard counter
//! reset of that crash, and evacuation of a node: the user receives the new config
//! from the bot, and that very file carries traffic. Last, the user's access ends
//! (the device leaves the node) and they buy a month in the bot with Telegram
//! Stars: the same config works again at once.

mod system;

use std::time::Duration;

use system::{NodeDaemon, WG_PORT, block, issue, wait_for, wg_peers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpnctl_api::billing::{CreatePlan, PlanName};
use vpnctl_api::body::CreateUser;
use vpnctl_client::ApiClient;
use vpnctl_core::{EvacuateTo, Health, HealthPolicy, NodeId, NodeState, Policy, Timestamp};
use vpnctl_testbed::control_plane::{ControlPlane, nodes_add};
use vpnctl_testbed::telegram::{FakeTelegram, Payment};
use vpnctl_testbed::{Names, Netns, RootLink, WgQuick, ping, veth};

const A_ENDPOINT: &str = "192.0.2.1";
const B_ENDPOINT: &str = "192.0.2.5";
const A_GATEWAY: &str = "198.18.0.1";
const B_GATEWAY: &str = "198.18.1.1";
const METRICS_PORT: u16 = 9586;

/// Registers a node as `vpnctl nodes add` does, with a keepalive of one second so that
/// handshakes (and reports of them) come soon.
async fn register(
    cp: &ControlPlane,
    name: &str,
    region: &str,
    endpoint: &str,
    pool: &str,
) -> NodeId {
    let mut new = nodes_add(name, region, &format!("{endpoint}:{WG_PORT}"), pool);
    new.persistent_keepalive = Some(1);
    cp.register(&new).await.id
}

/// A plain HTTP GET from the root namespace.
async fn http_get(addr: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn health(admin: &ApiClient, node: NodeId) -> Health {
    block(admin.node(node)).map_or(Health::Unknown, |v| v.health.status)
}

const ADMIN_CHAT: i64 = 777;
const USER_CHAT: i64 = 1001;

/// The admin chat's messages about `name` whose text contains `what`.
fn admin_says(tg: &FakeTelegram, name: &str, what: &str) -> usize {
    tg.calls()
        .iter()
        .filter(|c| {
            c.method == "sendmessage"
                && c.chat_id == Some(ADMIN_CHAT)
                && c.text().contains(name)
                && c.text().contains(what)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_real_wireguard() {
    vpnctl_testbed::require_root_and_tools();
    let _serial = vpnctl_testbed::serial();
    let names = Names::new();
    let a_ns = Netns::new(&names.netns("a"));
    let _a_ns_resolver = system::vps_resolver(&a_ns);
    let b_ns = Netns::new(&names.netns("b"));
    let _b_ns_resolver = system::vps_resolver(&b_ns);
    let client_ns = Netns::new(&names.netns("cli"));
    veth(
        "ua",
        &a_ns,
        &format!("{A_ENDPOINT}/30"),
        &client_ns,
        "192.0.2.2/30",
    );
    veth(
        "ub",
        &b_ns,
        &format!("{B_ENDPOINT}/30"),
        &client_ns,
        "192.0.2.6/30",
    );
    let link_a = RootLink::new(&names, "ca", &a_ns, "192.0.2.65", "192.0.2.66");
    let link_b = RootLink::new(&names, "cb", &b_ns, "192.0.2.69", "192.0.2.70");
    // Node B reaches the control plane's address over its own link.
    b_ns.ip(&["route", "add", "192.0.2.65/32", "via", "192.0.2.69"]);
    link_a.route(A_ENDPOINT, "192.0.2.66");
    link_b.route(B_ENDPOINT, "192.0.2.70");
    let dir = tempfile::tempdir().unwrap();

    // Tight thresholds so the test runs in seconds; the hysteresis stays on.
    let policy = Policy {
        health: HealthPolicy {
            report_late_secs: 3,
            report_down_secs: 6,
            lag_secs: 10,
            probe_failures_down: 2,
            worse_after: 2,
            better_after: 2,
            ..HealthPolicy::default()
        },
        ..Policy::default()
    };
    let mut cp = ControlPlane::builder()
        .tls()
        .listen_on("192.0.2.65".parse().unwrap())
        .policy(policy)
        .configure(|c| c.sweep_interval = Duration::from_secs(1))
        .start()
        .await;
    let admin = cp.admin();

    // The real bot, its admin chat and users behind a fake Telegram on loopback.
    let tg = FakeTelegram::start().await;
    let mut bot_config = vpnctl_bot::Config::new("123456:TEST", &cp.url, cp.bot_token.expose());
    bot_config.telegram_api_url = Some(tg.url.clone());
    bot_config.api_fingerprint = cp.fingerprint.map(|f| f.to_string());
    bot_config.admin_ids = vec![ADMIN_CHAT];
    let bot = vpnctl_bot::BotApp::new(bot_config).expect("bot settings");
    let (bot_stop, bot_stopped) = tokio::sync::oneshot::channel::<()>();
    let bot_task = tokio::spawn(bot.run(async move {
        let _ = bot_stopped.await;
    }));
    let a = register(&cp, "node-a", "eu-a", A_ENDPOINT, "198.18.0.0/24").await;
    let b = register(&cp, "node-b", "eu-b", B_ENDPOINT, "198.18.1.0/24").await;
    let daemon = |tag: &str, ns: &Netns| NodeDaemon {
        ns: ns.name().to_owned(),
        state: dir.path().join(format!("node-{tag}")),
        iface: names.iface(&format!("wg{tag}")),
        run_args: vec!["--metrics-listen".into(), format!("0.0.0.0:{METRICS_PORT}")],
        fast: true,
    };
    let (daemon_a, daemon_b) = (daemon("a", &a_ns), daemon("b", &b_ns));
    for (d, id) in [(&daemon_a, a), (&daemon_b, b)] {
        let (join, _) = admin.create_join_token(id, Some(600)).await.unwrap();
        d.join(&join.encode());
    }
    let running_a = daemon_a.run();
    let _running_b = daemon_b.run();

    // ---- 1. both nodes come up: reports plus a successful probe of each endpoint
    // (a node is up from its first report; the probe comes with the next sweep)
    let probed = |node| {
        block(admin.node(node)).is_ok_and(|v| v.health.probe.is_some_and(|p| p.rtt_ms.is_some()))
    };
    wait_for("both nodes up and probed", Duration::from_secs(30), || {
        health(&admin, a) == Health::Up && health(&admin, b) == Health::Up && probed(a) && probed(b)
    });
    let view = admin.node(a).await.unwrap();
    let probe = view.health.probe.expect("the control plane probed node A");
    assert!(probe.rtt_ms.is_some(), "probe failed: {probe:?}");
    let metrics = http_get(&format!("192.0.2.66:{METRICS_PORT}"), "/metrics").await;
    assert!(metrics.contains("vpnctl_node_interface_up 1"), "{metrics}");
    let cp_metrics = admin.metrics().await.unwrap();
    assert!(cp_metrics.contains("node-a"), "{cp_metrics}");

    // ---- 2. a user's device on node A carries traffic, which is accounted
    let user = admin
        .create_user(&CreateUser {
            name: "mover".into(),
            telegram_id: Some(USER_CHAT),
            role: None,
            until: None,
            device_limit: Some(3),
            locale: None,
        })
        .await
        .unwrap();
    let (peer, config) = issue(&admin, user.id, a, "phone").await;
    let client_if = names.iface("c");
    let mut client = Some(WgQuick::up(&client_ns, &client_if, &config));
    wait_for("the client's first ping", Duration::from_secs(15), || {
        ping(&client_ns, A_GATEWAY, 1)
    });
    assert!(ping(&client_ns, A_GATEWAY, 5));
    let mut last = 0;
    wait_for("traffic accounted", Duration::from_secs(15), || {
        last = block(admin.peer_traffic(peer)).unwrap().total();
        last > 0
    });

    // ---- 3. the node daemon dies with its interface: "down" once, then recovery,
    // and the totals survive the counters starting again from zero
    daemon_a.crash(running_a, &a_ns);
    let down = tg
        .wait_after(0, Duration::from_secs(40), |c| {
            c.chat_id == Some(ADMIN_CHAT) && c.text().contains("node-a is down")
        })
        .await;
    assert!(
        down.text().contains("no report") || down.text().contains("unreachable"),
        "{}",
        down.text()
    );
    assert_eq!(health(&admin, b), Health::Up, "node B is unaffected");
    let running_a = daemon_a.run();
    wait_for("the tunnel restored", Duration::from_secs(20), || {
        ping(&client_ns, A_GATEWAY, 1)
    });
    tg.wait_after(0, Duration::from_secs(40), |c| {
        c.chat_id == Some(ADMIN_CHAT) && c.text().contains("node-a recovered")
    })
    .await;
    assert_eq!(admin_says(&tg, "node-a", "is down"), 1, "one down alert");
    assert_eq!(admin_says(&tg, "node-b", ""), 0, "nothing about node B");
    let before_reset = last;
    assert!(ping(&client_ns, A_GATEWAY, 5));
    wait_for(
        "traffic after the counter reset",
        Duration::from_secs(15),
        || {
            let now = block(admin.peer_traffic(peer)).unwrap().total();
            assert!(now >= last, "total dropped from {last} to {now}");
            last = now;
            now > before_reset
        },
    );

    // ---- 4. evacuation: the device moves to node B, the user is told, and the
    // new config carries traffic
    let evac = admin.evacuate_node(a, EvacuateTo::Auto).await.unwrap();
    assert!(evac.failed.is_empty(), "{:?}", evac.failed);
    assert_eq!(evac.moved.len(), 1);
    assert_eq!(evac.moved[0].to, b);
    // The user is told, and gets the new config as a document from the bot.
    let doc = tg
        .wait_after(0, Duration::from_secs(20), |c| {
            c.method == "senddocument" && c.chat_id == Some(USER_CHAT)
        })
        .await;
    assert!(
        !doc.protected(),
        "configs can be saved and opened in the WireGuard app"
    );
    let new_config = String::from_utf8(doc.files[0].2.clone()).unwrap();
    assert!(
        new_config.contains(&format!("Endpoint = {B_ENDPOINT}:{WG_PORT}")),
        "{new_config}"
    );
    assert_eq!(
        new_config,
        admin.peer_config(evac.moved[0].new_peer).await.unwrap(),
        "the bot sent the new peer's config"
    );
    assert!(
        tg.calls()
            .iter()
            .any(|c| c.chat_id == Some(USER_CHAT) && c.text().contains("node-b")),
        "the user is told where the device went"
    );
    wait_for("node A to drop the device", Duration::from_secs(5), || {
        wg_peers(&daemon_a.iface).is_empty()
    });
    assert!(!ping(&client_ns, A_GATEWAY, 1), "old config still works");
    drop(client.take());
    client = Some(WgQuick::up(&client_ns, &client_if, &new_config));
    wait_for("traffic on node B", Duration::from_secs(15), || {
        ping(&client_ns, B_GATEWAY, 1)
    });
    assert_eq!(admin.node(a).await.unwrap().node.state, NodeState::Draining);

    // ---- 5. access ends: the device leaves node B. The user buys a month in the
    // bot (Telegram Stars) and the very same config works again at once
    let plan = admin
        .create_plan(&CreatePlan {
            trial: false,
            name: PlanName {
                en: "Month".into(),
                ru: None,
            },
            days: 30,
            stars: 100,
            device_limit: 3,
            quota: None,
            recurring: false,
        })
        .await
        .unwrap();
    admin
        .set_access(user.id, Some(Timestamp::now().plus_days(-1)))
        .await
        .unwrap();
    wait_for(
        "node B to drop the lapsed device",
        Duration::from_secs(10),
        || wg_peers(&daemon_b.iface).is_empty(),
    );
    assert!(
        !ping(&client_ns, B_GATEWAY, 1),
        "a lapsed device still works"
    );
    let mark = tg.mark();
    tg.text(USER_CHAT, "/buy");
    let plans = tg.reply(mark, USER_CHAT, "sendMessage").await;
    let (_, data) = plans
        .buttons()
        .into_iter()
        .find(|(_, d)| *d == format!("b:{}", plan.id))
        .expect("the plan's button");
    tg.press(USER_CHAT, USER_CHAT, plans.message_id.unwrap(), &data);
    let invoice = tg.reply(mark, USER_CHAT, "sendInvoice").await;
    let payload = invoice.str_param("payload").expect("an invoice payload");
    let query = tg.pre_checkout(USER_CHAT, &payload, "XTR", 100);
    let answer = tg
        .pre_checkout_answer(mark, &query, Duration::from_secs(10))
        .await;
    assert_eq!(answer.bool_param("ok"), Some(true), "{:?}", answer.params);
    tg.successful_payment(USER_CHAT, &Payment::stars(&payload, 100, "ns-charge-1"));
    tg.wait_after(mark, Duration::from_secs(20), |c| {
        c.chat_id == Some(USER_CHAT) && c.text().contains("Payment received")
    })
    .await;
    wait_for(
        "the tunnel back after paying",
        Duration::from_secs(30),
        || ping(&client_ns, B_GATEWAY, 1),
    );
    assert!(ping(&client_ns, B_GATEWAY, 3));

    running_a.signal("TERM");
    drop(running_a);
    drop(client);
    let _ = bot_stop.send(());
    tokio::time::timeout(Duration::from_secs(10), bot_task)
        .await
        .expect("the bot stops")
        .unwrap()
        .unwrap();
    cp.stop().await;
}
