//! The control plane running by itself: expiry and reminders, traffic accounting and
//! quotas, node health with hysteresis, probes, the alert webhook, evacuation, the
//! outbox long-poll and `/metrics`. A real vpnctld on loopback over a real redb file,
//! with a `ManualClock` for the service's time and a lifecycle loop every 50 ms.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use vpnctl_api::body::{CreateUser, IssuePeerRequest, PatchUser};
use vpnctl_client::{ApiClient, ClientError};
use vpnctl_core::wire::{DesiredUpdate, NodeReport, PeerStats, SystemStats};
use vpnctl_core::{
    Clock, EvacuateTo, Health, HealthPolicy, ManualClock, Message, Node, NodeId, NodeState,
    Notification, Policy, PublicKey, Quota, QuotaPeriod, Recipient, Scope, Timestamp, UserId,
};
use vpnctl_server::ServerConfig;
use vpnctl_testbed::control_plane::{ControlPlane, EnrolledNode};

/// 2026-11-10T00:00:00Z.
const START: Timestamp = Timestamp(1_794_268_800);
const DAY: i64 = 86_400;
/// Long enough for many lifecycle rounds, short enough for a test.
const PATIENCE: Duration = Duration::from_secs(10);

fn status(e: &ClientError) -> u16 {
    e.status().unwrap_or(0)
}

/// Polls `check` until it yields `Some`, or panics after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets several lifecycle rounds pass (for checks that something does *not* happen).
async fn some_rounds() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

fn report(applied: u64, at: Timestamp, peers: &[(PublicKey, u64, u64)]) -> NodeReport {
    NodeReport {
        applied_revision: applied,
        interface_up: true,
        listen_port: Some(51820),
        public_key: None,
        peers: peers
            .iter()
            .map(|&(public_key, rx_bytes, tx_bytes)| PeerStats {
                public_key,
                endpoint: None,
                last_handshake: Some(at),
                rx_bytes,
                tx_bytes,
            })
            .collect(),
        system: SystemStats::default(),
        strays_removed: Vec::new(),
        errors: Vec::new(),
        at,
        health_port: None,
    }
}

/// The public keys in the node's desired state, and its revision.
async fn desired(node_api: &ApiClient, node: NodeId) -> (u64, Vec<PublicKey>) {
    match node_api.desired(node, 0, Duration::ZERO).await.unwrap() {
        DesiredUpdate::Snapshot(s) => (s.revision, s.peers.iter().map(|p| p.public_key).collect()),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

async fn user(admin: &ApiClient, name: &str, telegram_id: Option<i64>) -> UserId {
    admin
        .create_user(&CreateUser {
            name: name.into(),
            telegram_id,
            device_limit: Some(10),
            ..CreateUser::default()
        })
        .await
        .unwrap()
        .id
}

async fn issue(admin: &ApiClient, user: UserId, node: NodeId, device: &str) -> vpnctl_core::Peer {
    admin
        .issue_peer(&IssuePeerRequest {
            user,
            node,
            device: device.into(),
            public_key: None,
        })
        .await
        .unwrap()
        .peer
}

async fn bot(srv: &ControlPlane) -> ApiClient {
    let (_, secret) = srv.admin().create_token(Scope::Bot, "bot").await.unwrap();
    srv.client(Some(&secret))
}

/// Plain HTTP over a store on `clock` with `policy`; the lifecycle loop runs every
/// 50 ms unless `configure` says otherwise.
async fn clocked(
    clock: &ManualClock,
    policy: Policy,
    configure: impl FnOnce(&mut ServerConfig),
) -> ControlPlane {
    ControlPlane::builder()
        .clock(clock)
        .policy(policy)
        .configure(|c| {
            c.sweep_interval = Duration::from_millis(50);
            configure(c);
        })
        .start()
        .await
}

/// Waits (long-polling) for the next notifications, acknowledges them, returns them.
async fn next_notifications(bot: &ApiClient) -> Vec<Notification> {
    let found = bot
        .notifications(None, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(!found.is_empty(), "a notification within 5 s");
    let last = found.last().unwrap().id;
    assert_eq!(bot.ack_notifications(last).await.unwrap(), last);
    found
}

async fn nothing_pending(bot: &ApiClient) {
    some_rounds().await;
    let left = bot.notifications(None, None).await.unwrap();
    assert!(left.is_empty(), "nothing more, but got {left:?}");
}

/// Like [`nothing_pending`], for user notifications only (a clock jump of a month
/// rightly makes a silent node's admins hear about it).
async fn nothing_pending_for_users(bot: &ApiClient) {
    some_rounds().await;
    let left = bot.notifications(None, None).await.unwrap();
    let users: Vec<_> = left
        .iter()
        .filter(|n| matches!(n.recipient, Recipient::User { .. }))
        .collect();
    assert!(
        users.is_empty(),
        "nothing more for users, but got {users:?}"
    );
}

async fn health(admin: &ApiClient, node: NodeId) -> vpnctl_api::body::NodeHealth {
    admin.node(node).await.unwrap().health
}

/// Reports and waits until the node is judged up.
async fn bring_up(srv: &ControlPlane, clock: &ManualClock, node: &Node, node_api: &ApiClient) {
    let (rev, _) = desired(node_api, node.id).await;
    node_api
        .report(node.id, &report(rev, clock.now(), &[]))
        .await
        .unwrap();
    let admin = srv.admin();
    eventually("the node to be up", || async {
        (health(&admin, node.id).await.status == Health::Up).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_ends_with_reminders_and_comes_back_after_extend() {
    let clock = ManualClock::new(START);
    let mut srv = clocked(&clock, Policy::default(), |_| {}).await;
    let admin = srv.admin();
    let bot = bot(&srv).await;
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let alice = user(&admin, "alice", Some(42)).await;
    let until = START.plus_days(4);
    admin.set_access(alice, Some(until)).await.unwrap();
    let peer = issue(&admin, alice, node.id, "phone").await;
    assert!(
        desired(&node_api, node.id)
            .await
            .1
            .contains(&peer.public_key)
    );

    // Four days left: no reminder yet.
    nothing_pending(&bot).await;

    // Three days left: one reminder, delivered through the long-poll.
    clock.advance(DAY + 60);
    let got = next_notifications(&bot).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].recipient,
        Recipient::User {
            user: alice,
            telegram_id: 42,
            locale: vpnctl_core::Locale::default()
        }
    );
    assert!(
        matches!(got[0].message, Message::AccessEndsSoon { days_left: 3, until: u } if u == until),
        "{got:?}"
    );
    nothing_pending(&bot).await;

    // One day left: the second reminder, once.
    clock.advance(2 * DAY);
    let got = next_notifications(&bot).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        matches!(got[0].message, Message::AccessEndsSoon { days_left: 1, .. }),
        "{got:?}"
    );
    nothing_pending(&bot).await;
    assert!(
        desired(&node_api, node.id)
            .await
            .1
            .contains(&peer.public_key)
    );

    // The end passes: the peer leaves the node within a round, the user is told once.
    clock.advance(DAY);
    let (before, _) = desired(&node_api, node.id).await;
    let started = Instant::now();
    let revision = eventually("the peer to leave the desired state", || async {
        let (rev, keys) = desired(&node_api, node.id).await;
        (!keys.contains(&peer.public_key)).then_some(rev)
    })
    .await;
    assert!(revision > before);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "expiry took {:?}",
        started.elapsed()
    );
    assert!(admin.user(alice).await.unwrap().lapsed);
    let got = next_notifications(&bot).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        matches!(got[0].message, Message::AccessEnded { until: u } if u == until),
        "{got:?}"
    );
    nothing_pending(&bot).await;

    // Extending brings the peer back at once.
    let extended = admin.extend_access(alice, 30).await.unwrap();
    assert!(!extended.lapsed);
    assert!(
        desired(&node_api, node.id)
            .await
            .1
            .contains(&peer.public_key)
    );
    some_rounds().await;
    assert!(
        desired(&node_api, node.id)
            .await
            .1
            .contains(&peer.public_key)
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_counter_resets() {
    let clock = ManualClock::new(START);
    let mut srv = clocked(&clock, Policy::default(), |_| {}).await;
    let admin = srv.admin();
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let bob = user(&admin, "bob", None).await;
    let phone = issue(&admin, bob, node.id, "phone").await;
    let laptop = issue(&admin, bob, node.id, "laptop").await;
    let (rev, _) = desired(&node_api, node.id).await;

    let readings: [(u64, u64, u64, u64); 4] = [
        // phone rx, phone tx, laptop rx, laptop tx (the interface's counters)
        (1_000, 2_000, 10, 20),
        (5_000, 7_000, 10, 20),
        // The interface was re-created: counters start again.
        (300, 400, 5, 5),
        (900, 1_000, 5, 5),
    ];
    let mut last = (0, 0);
    for (prx, ptx, lrx, ltx) in readings {
        let peers = [(phone.public_key, prx, ptx), (laptop.public_key, lrx, ltx)];
        node_api
            .report(node.id, &report(rev, clock.now(), &peers))
            .await
            .unwrap();
        let t = admin.peer_traffic(phone.id).await.unwrap();
        assert!(t.rx >= last.0 && t.tx >= last.1, "never drops: {t:?}");
        last = (t.rx, t.tx);
    }
    // 1000 + 4000 + 300 + 600 and 2000 + 5000 + 400 + 600.
    let phone_traffic = admin.peer_traffic(phone.id).await.unwrap();
    assert_eq!((phone_traffic.rx, phone_traffic.tx), (5_900, 8_000));
    let laptop_traffic = admin.peer_traffic(laptop.id).await.unwrap();
    assert_eq!((laptop_traffic.rx, laptop_traffic.tx), (15, 25));
    let usage = admin.usage(bob).await.unwrap();
    assert_eq!(usage.total.rx, 5_915);
    assert_eq!(usage.total.tx, 8_025);
    assert_eq!(usage.period_bytes, 5_915 + 8_025);
    assert!(usage.quota.is_none() && !usage.suspended);
    let view = admin.node(node.id).await.unwrap();
    assert_eq!(view.health.traffic.rx, 5_915);
    assert_eq!(view.health.traffic.tx, 8_025);
    assert_eq!(view.health.peers_connected, 2);
    // The bot may read usage and traffic too; a node may not.
    let bot = bot(&srv).await;
    assert_eq!(bot.usage(bob).await.unwrap(), usage);
    assert_eq!(
        status(&node_api.peer_traffic(phone.id).await.unwrap_err()),
        403
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_warns_suspends_and_resets_with_the_period() {
    let clock = ManualClock::new(START);
    let mut srv = clocked(&clock, Policy::default(), |_| {}).await;
    let admin = srv.admin();
    let bot = bot(&srv).await;
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let carol = user(&admin, "carol", Some(7)).await;
    let peer = issue(&admin, carol, node.id, "phone").await;
    let quota = Quota {
        bytes: 10_000,
        period: QuotaPeriod::Monthly,
    };
    let patched = admin
        .update_user(
            carol,
            &PatchUser {
                quota: Some(Some(quota)),
                ..PatchUser::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.quota, Some(quota));
    let (rev, _) = desired(&node_api, node.id).await;

    // 79 %: nothing.
    node_api
        .report(
            node.id,
            &report(rev, clock.now(), &[(peer.public_key, 4_000, 3_900)]),
        )
        .await
        .unwrap();
    nothing_pending(&bot).await;
    // 80 %: a warning, once.
    node_api
        .report(
            node.id,
            &report(rev, clock.now(), &[(peer.public_key, 4_000, 4_000)]),
        )
        .await
        .unwrap();
    let got = next_notifications(&bot).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        matches!(
            got[0].message,
            Message::QuotaWarning {
                used: 8_000,
                limit: 10_000,
                ..
            }
        ),
        "{got:?}"
    );
    node_api
        .report(
            node.id,
            &report(rev, clock.now(), &[(peer.public_key, 4_500, 4_000)]),
        )
        .await
        .unwrap();
    nothing_pending(&bot).await;
    assert!(
        desired(&node_api, node.id)
            .await
            .1
            .contains(&peer.public_key)
    );

    // 100 %: suspended, off the node, told once.
    node_api
        .report(
            node.id,
            &report(rev, clock.now(), &[(peer.public_key, 6_000, 4_000)]),
        )
        .await
        .unwrap();
    let got = next_notifications(&bot).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let Message::QuotaExceeded {
        used,
        limit,
        resets_at,
    } = got[0].message
    else {
        panic!("expected QuotaExceeded, got {got:?}");
    };
    assert_eq!((used, limit), (10_000, 10_000));
    // 2026-12-01T00:00:00Z.
    assert_eq!(resets_at, Timestamp(1_796_083_200));
    assert!(
        !desired(&node_api, node.id)
            .await
            .1
            .contains(&peer.public_key)
    );
    let usage = admin.usage(carol).await.unwrap();
    assert!(usage.suspended);
    assert_eq!(usage.period_end, resets_at);
    let refused = admin
        .issue_peer(&IssuePeerRequest {
            user: carol,
            node: node.id,
            device: "laptop".into(),
            public_key: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status(&refused), 409);
    assert_eq!(refused.code(), Some(vpnctl_api::ErrorCode::QuotaExhausted));
    nothing_pending(&bot).await;

    // The next month: restored by the sweep, told once; the total is kept.
    clock.set(resets_at.plus_seconds(1));
    eventually("the peer to return", || async {
        desired(&node_api, node.id)
            .await
            .1
            .contains(&peer.public_key)
            .then_some(())
    })
    .await;
    let got = next_notifications(&bot).await;
    let restored: Vec<_> = got
        .iter()
        .filter(|n| n.recipient != Recipient::Admins)
        .collect();
    assert_eq!(restored.len(), 1, "{got:?}");
    assert_eq!(restored[0].message, Message::QuotaRestored);
    let usage = admin.usage(carol).await.unwrap();
    assert!(!usage.suspended);
    assert_eq!(usage.period_bytes, 0);
    assert_eq!(usage.total.total(), 10_000);
    nothing_pending_for_users(&bot).await;
    srv.stop().await;
}

/// Receives webhook POSTs on loopback; answers 500 to the first `fail_first`.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    hits: Arc<AtomicU32>,
}

async fn receiver(fail_first: u32) -> Receiver {
    receiver_failing_with(fail_first, StatusCode::INTERNAL_SERVER_ERROR).await
}

/// A webhook receiver that answers its first `fail_first` requests with `status`.
async fn receiver_failing_with(fail_first: u32, status: StatusCode) -> Receiver {
    use axum::extract::{Path, State};
    type Shared = (Arc<Mutex<Vec<Value>>>, Arc<AtomicU32>, u32, StatusCode);
    async fn hook(
        State((bodies, hits, fail_first, status)): State<Shared>,
        Path(secret): Path<String>,
        axum::Json(body): axum::Json<Value>,
    ) -> StatusCode {
        assert_eq!(secret, "s3cret");
        let n = hits.fetch_add(1, Ordering::SeqCst);
        if n < fail_first {
            return status;
        }
        bodies.lock().unwrap().push(body);
        StatusCode::NO_CONTENT
    }
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new()
        .route("/hook/{secret}", axum::routing::post(hook))
        .with_state((Arc::clone(&bodies), Arc::clone(&hits), fail_first, status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url: format!("http://{addr}/hook/s3cret"),
        bodies,
        hits,
    }
}

fn health_alerts(notes: &[Notification], node: NodeId) -> Vec<(Health, Health)> {
    notes
        .iter()
        .filter_map(|n| match &n.message {
            Message::NodeHealth {
                node: id, from, to, ..
            } if *id == node => {
                assert_eq!(n.recipient, Recipient::Admins);
                Some((*from, *to))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_down_after_the_hysteresis_and_alerts_once() {
    let clock = ManualClock::new(START);
    let policy = Policy {
        health: HealthPolicy {
            worse_after: 5,
            better_after: 2,
            ..HealthPolicy::default()
        },
        ..Policy::default()
    };
    let hook = receiver(0).await;
    let url = hook.url.clone();
    let mut srv = clocked(&clock, policy, |c| {
        c.sweep_interval = Duration::from_millis(200);
        c.alert_webhook = Some(url.parse().unwrap());
    })
    .await;
    let admin = srv.admin();
    let bot = bot(&srv).await;
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    bring_up(&srv, &clock, &node, &node_api).await;
    // A node's first report is not news.
    nothing_pending(&bot).await;

    // The node falls silent for longer than report_down_secs.
    clock.advance(120);
    // One round sees it, but five in a row are needed (at least 800 ms).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let h = health(&admin, node.id).await;
    assert_eq!(h.status, Health::Up, "not down after one round: {h:?}");
    eventually("the node to be down", || async {
        (health(&admin, node.id).await.status == Health::Down).then_some(())
    })
    .await;
    let h = health(&admin, node.id).await;
    assert!(h.reason.contains("no report"), "{h:?}");
    assert_eq!(h.since, Some(clock.now()));
    let got = next_notifications(&bot).await;
    assert_eq!(health_alerts(&got, node.id), [(Health::Up, Health::Down)]);
    nothing_pending(&bot).await;

    // The webhook got the same alert, with a text; nothing for users.
    let body = eventually("the webhook to get the alert", || async {
        hook.bodies.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(body["kind"], "node_health");
    assert_eq!(body["to"], "down");
    assert_eq!(body["recipient"]["type"], "admins");
    assert_eq!(body["id"], got[0].id);
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("fra-1") && text.contains("down"), "{text}");

    // It reports again: up after better_after rounds, and one recovery notice.
    let (rev, _) = desired(&node_api, node.id).await;
    node_api
        .report(node.id, &report(rev, clock.now(), &[]))
        .await
        .unwrap();
    eventually("the node to be up again", || async {
        (health(&admin, node.id).await.status == Health::Up).then_some(())
    })
    .await;
    let got = next_notifications(&bot).await;
    assert_eq!(health_alerts(&got, node.id), [(Health::Down, Health::Up)]);
    nothing_pending(&bot).await;
    eventually("the webhook to get the recovery", || async {
        (hook.bodies.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    some_rounds().await;
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "each alert once: {bodies:?}");
    assert_eq!(bodies[1]["from"], "down");
    assert_eq!(bodies[1]["to"], "up");
    let metrics = admin.metrics().await.unwrap();
    assert!(metrics.contains("vpnctl_webhook_deliveries_total{result=\"ok\"} 2\n"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_gets_the_alert_again() {
    let clock = ManualClock::new(START);
    let hook = receiver(1).await;
    let url = hook.url.clone();
    let mut srv = clocked(&clock, Policy::default(), |c| {
        c.alert_webhook = Some(url.parse().unwrap());
    })
    .await;
    let admin = srv.admin();
    let alice = user(&admin, "alice", Some(1)).await;
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    bring_up(&srv, &clock, &node, &node_api).await;
    // A user notification first: the webhook passes over it.
    admin
        .set_access(alice, Some(clock.now().plus_seconds(DAY)))
        .await
        .unwrap();
    clock.advance(120);
    eventually("the webhook to accept the alert", || async {
        hook.bodies.lock().unwrap().first().cloned()
    })
    .await;
    some_rounds().await;
    assert_eq!(
        hook.hits.load(Ordering::SeqCst),
        2,
        "one failure, one success"
    );
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["kind"], "node_health");
    let metrics = admin.metrics().await.unwrap();
    assert!(metrics.contains("vpnctl_webhook_deliveries_total{result=\"failed\"} 1\n"));
    assert!(metrics.contains("vpnctl_notifications_pending{consumer=\"webhook\"} 0\n"));
    // The bot's queue is its own: it still has the reminder and the alert.
    let bot = bot(&srv).await;
    let pending = bot.notifications(None, None).await.unwrap();
    assert!(
        pending
            .iter()
            .any(|n| matches!(n.message, Message::AccessEndsSoon { .. }))
    );
    assert_eq!(
        health_alerts(&pending, node.id),
        [(Health::Up, Health::Down)]
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_the_webhook_refuses_does_not_block_later_ones() {
    let clock = ManualClock::new(START);
    let hook = receiver_failing_with(1, StatusCode::BAD_REQUEST).await;
    let url = hook.url.clone();
    let mut srv = clocked(&clock, Policy::default(), |c| {
        c.alert_webhook = Some(url.parse().unwrap());
    })
    .await;
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    bring_up(&srv, &clock, &node, &node_api).await;
    clock.advance(120);
    eventually("the webhook to refuse the down alert", || async {
        (hook.hits.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    some_rounds().await;
    assert_eq!(hook.hits.load(Ordering::SeqCst), 1, "a 400 is not retried");
    let (rev, _) = desired(&node_api, node.id).await;
    node_api
        .report(node.id, &report(rev, clock.now(), &[]))
        .await
        .unwrap();
    eventually("the recovery to arrive", || async {
        hook.bodies.lock().unwrap().first().cloned()
    })
    .await;
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["to"], "up");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_find_closed_health_ports() {
    let clock = ManualClock::new(START);
    let mut srv = clocked(&clock, Policy::default(), |_| {}).await;
    let admin = srv.admin();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = open.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = open.accept().await {
            drop(conn);
        }
    });
    let EnrolledNode {
        node: broken,
        client: broken_api,
        ..
    } = srv.enrolled_node_at("fra-1", "127.0.0.1:51820").await;
    let EnrolledNode {
        node: fine,
        client: fine_api,
        ..
    } = srv.enrolled_node_at("fra-2", "127.0.0.1:51821").await;
    let EnrolledNode {
        node: silent,
        client: silent_api,
        ..
    } = srv.enrolled_node_at("fra-3", "127.0.0.1:51822").await;
    for (node, api, port) in [
        (&broken, &broken_api, Some(closed)),
        (&fine, &fine_api, Some(open_port)),
        (&silent, &silent_api, None),
    ] {
        let (rev, _) = desired(api, node.id).await;
        let mut r = report(rev, clock.now(), &[]);
        r.health_port = port;
        api.report(node.id, &r).await.unwrap();
    }
    // Reports stay fresh (the clock stands still), yet three failed probes: down.
    let h = eventually("the unreachable node to be down", || async {
        let h = health(&admin, broken.id).await;
        (h.status == Health::Down).then_some(h)
    })
    .await;
    assert!(h.reason.contains("unreachable"), "{h:?}");
    let probe = h.probe.unwrap();
    assert!(probe.rtt_ms.is_none());
    assert!(probe.error.unwrap().contains("127.0.0.1"));
    assert_eq!(probe.at, clock.now());

    let h = health(&admin, fine.id).await;
    assert_eq!(h.status, Health::Up, "{h:?}");
    assert!(h.probe.unwrap().rtt_ms.is_some());
    let h = health(&admin, silent.id).await;
    assert_eq!(h.status, Health::Up, "{h:?}");
    assert!(h.probe.is_none(), "no health port, no probe");

    let metrics = admin.metrics().await.unwrap();
    let broken_rtt = format!(
        "vpnctl_node_probe_rtt_seconds{{node=\"fra-1\",node_id=\"{}\"}}",
        broken.id
    );
    let fine_rtt = format!(
        "vpnctl_node_probe_rtt_seconds{{node=\"fra-2\",node_id=\"{}\"}}",
        fine.id
    );
    assert!(!metrics.contains(&broken_rtt), "{metrics}");
    assert!(metrics.contains(&fine_rtt), "{metrics}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuation_moves_devices_and_tells_their_users() {
    let clock = ManualClock::new(START);
    let mut srv = clocked(&clock, Policy::default(), |_| {}).await;
    let admin = srv.admin();
    let bot = bot(&srv).await;
    let EnrolledNode {
        node: from,
        client: from_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let EnrolledNode {
        node: to,
        client: to_api,
        ..
    } = srv.enrolled_node("fra-2").await;
    let dora = user(&admin, "dora", Some(11)).await;
    let eve = user(&admin, "eve", None).await;
    let dora_phone = issue(&admin, dora, from.id, "phone").await;
    let eve_phone = issue(&admin, eve, from.id, "phone").await;
    bring_up(&srv, &clock, &from, &from_api).await;

    // No healthy node to take them yet: 409, nothing moved.
    let err = admin
        .evacuate_node(from.id, EvacuateTo::Auto)
        .await
        .unwrap_err();
    assert_eq!(status(&err), 409, "{err:?}");
    assert!(err.to_string().contains("no healthy"), "{err}");
    assert_eq!(admin.node(from.id).await.unwrap().peers, 2);
    // Only admins evacuate.
    assert_eq!(
        status(
            &bot.evacuate_node(from.id, EvacuateTo::Auto)
                .await
                .unwrap_err()
        ),
        403
    );

    bring_up(&srv, &clock, &to, &to_api).await;
    nothing_pending(&bot).await;
    let done = admin
        .evacuate_node(from.id, EvacuateTo::Auto)
        .await
        .unwrap();
    assert_eq!(done.node, from.id);
    assert_eq!(done.moved.len(), 2, "{done:?}");
    assert!(done.failed.is_empty(), "{done:?}");
    assert!(done.moved.iter().all(|m| m.to == to.id));
    let on_target = desired(&to_api, to.id).await.1;
    assert_eq!(on_target.len(), 2);
    assert!(desired(&from_api, from.id).await.1.is_empty());
    assert_eq!(
        admin.node(from.id).await.unwrap().node.state,
        NodeState::Draining
    );
    for old in [&dora_phone, &eve_phone] {
        assert_eq!(status(&admin.peer(old.id).await.unwrap_err()), 404);
    }

    let got = next_notifications(&bot).await;
    let moved: Vec<_> = got
        .iter()
        .filter_map(|n| match (&n.recipient, &n.message) {
            (
                Recipient::User { user, .. },
                Message::DeviceMoved {
                    new_peer, to_node, ..
                },
            ) => Some((*user, *new_peer, to_node.clone())),
            _ => None,
        })
        .collect();
    let dora_new = done.moved.iter().find(|m| m.user == dora).unwrap().new_peer;
    assert_eq!(moved, [(dora, dora_new, "fra-2".to_owned())], "{got:?}");
    assert!(got.iter().any(|n| matches!(
        n.message,
        Message::NodeEvacuated {
            moved: 2,
            failed: 0,
            ..
        }
    )));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_an_admin_and_show_the_service() {
    let clock = ManualClock::new(START);
    let mut srv = clocked(&clock, Policy::default(), |_| {}).await;
    let admin = srv.admin();
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let active = user(&admin, "active", None).await;
    let off = user(&admin, "off", None).await;
    let gone = user(&admin, "gone", None).await;
    issue(&admin, active, node.id, "a").await;
    issue(&admin, off, node.id, "b").await;
    admin
        .set_user_state(off, vpnctl_core::UserState::Disabled)
        .await
        .unwrap();
    admin
        .set_access(gone, Some(clock.now().plus_seconds(-1)))
        .await
        .unwrap();
    bring_up(&srv, &clock, &node, &node_api).await;
    admin.user(active).await.unwrap();

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/metrics", srv.url);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let (_, bot_token) = admin.create_token(Scope::Bot, "bot").await.unwrap();
    let as_bot = http
        .get(&url)
        .bearer_auth(bot_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(as_bot.status(), 403);
    let ok = http
        .get(&url)
        .bearer_auth(srv.admin_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["content-type"],
        vpnctl_daemon::metrics::CONTENT_TYPE
    );
    let text = ok.text().await.unwrap();
    let id = node.id.to_string();
    let labels = format!("node=\"fra-1\",node_id=\"{id}\"");
    for line in [
        "vpnctl_users{state=\"active\"} 1".to_owned(),
        "vpnctl_users{state=\"disabled\"} 1".to_owned(),
        "vpnctl_users{state=\"expired\"} 1".to_owned(),
        "vpnctl_users{state=\"suspended\"} 0".to_owned(),
        "vpnctl_peers 2".to_owned(),
        "vpnctl_peers_desired 1".to_owned(),
        "vpnctl_nodes{health=\"up\"} 1".to_owned(),
        "vpnctl_nodes{health=\"down\"} 0".to_owned(),
        format!("vpnctl_node_health{{{labels},health=\"up\"}} 1"),
        format!("vpnctl_node_health{{{labels},health=\"down\"}} 0"),
        format!("vpnctl_node_peers{{{labels}}} 2"),
        format!("vpnctl_node_peers_connected{{{labels}}} 0"),
        format!("vpnctl_node_last_report_age_seconds{{{labels}}} 0"),
        format!("vpnctl_node_traffic_rx_bytes_total{{{labels}}} 0"),
        format!("vpnctl_node_traffic_tx_bytes_total{{{labels}}} 0"),
        "vpnctl_notifications_pending{consumer=\"bot\"} 0".to_owned(),
        "vpnctl_http_requests_total{method=\"GET\",route=\"/v1/users/{id}\",status=\"200\"} 1"
            .to_owned(),
        "vpnctl_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"403\"} 1".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let rev = node_api
        .desired(node.id, 0, Duration::ZERO)
        .await
        .map(|u| match u {
            DesiredUpdate::Snapshot(s) => s.revision,
            _ => unreachable!(),
        })
        .unwrap();
    assert!(text.contains(&format!("vpnctl_node_desired_revision{{{labels}}} {rev}")));
    assert!(text.contains(&format!("vpnctl_node_applied_revision{{{labels}}} {rev}")));
    assert!(text.contains("# TYPE vpnctl_http_request_duration_seconds histogram"));
    assert!(
        text.contains(
            "# HELP vpnctl_http_requests_total API requests by method, route template and status.\n"
        ),
        "{text}"
    );
    assert!(
        !text.contains("..\n"),
        "help texts end in one period: {text}"
    );
    assert!(
        text.contains(
            "vpnctl_http_request_duration_seconds_count{route=\"/v1/nodes/{id}/desired\"}"
        )
    );
    // Route templates, never raw paths with ids.
    assert!(!text.contains(&format!("/v1/users/{active}")), "{text}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_long_poll_wakes_on_news_and_ends_on_shutdown() {
    let clock = ManualClock::new(START);
    let mut srv = clocked(&clock, Policy::default(), |c| {
        // Nothing from the loop during this test.
        c.sweep_interval = Duration::from_secs(60);
    })
    .await;
    let admin = srv.admin();
    let bot = bot(&srv).await;
    let frank = user(&admin, "frank", Some(5)).await;
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let peer = issue(&admin, frank, node.id, "phone").await;

    // A waiting bot is woken by a notification: a quota warning from a report.
    let waiting = {
        let bot = bot.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = bot
                .notifications(Some(10), Some(Duration::from_secs(20)))
                .await
                .unwrap();
            (started.elapsed(), got)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin
        .update_user(
            frank,
            &PatchUser {
                quota: Some(Some(Quota {
                    bytes: 100,
                    period: QuotaPeriod::Daily,
                })),
                ..PatchUser::default()
            },
        )
        .await
        .unwrap();
    node_api
        .report(
            node.id,
            &report(0, clock.now(), &[(peer.public_key, 50, 40)]),
        )
        .await
        .unwrap();
    let (took, got) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken well before the 20 s wait")
        .unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        matches!(
            got[..],
            [Notification {
                message: Message::QuotaWarning { .. },
                ..
            }]
        ),
        "{got:?}"
    );
    // Not acknowledged yet: it is still there; limits are honoured.
    assert_eq!(bot.notifications(Some(1), None).await.unwrap().len(), 1);
    let id = got[0].id;
    let err = bot.ack_notifications(id + 1).await.unwrap_err();
    assert_eq!(status(&err), 422);
    assert_eq!(bot.ack_notifications(id).await.unwrap(), id);
    // Acknowledging again, or less, changes nothing.
    assert_eq!(bot.ack_notifications(0).await.unwrap(), id);
    assert_eq!(bot.ack_notifications(id).await.unwrap(), id);

    // A long-poll in flight ends when the server stops.
    let waiting = {
        let bot = bot.clone();
        tokio::spawn(async move { bot.notifications(None, Some(Duration::from_secs(25))).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    srv.stop().await;
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the long-poll ends with the server")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(answer.map_or(true, |got| got.is_empty()));
}
