//! The self-running side on a real redb file with a controllable clock: expiry and
//! reminders, traffic that survives counter resets, quotas, health with hysteresis,
//! the outbox and evacuation.

mod support;

use support::{T0, fixture, fixture_with, node};
use vpnctl_core::time::DAY;
use vpnctl_core::wire::{NodeReport, PeerStats, SystemStats};
use vpnctl_core::{
    Consumer, EvacuateTo, Health, HealthPolicy, IssuePeer, KeyPair, Message, NewUser, Node, NodeId,
    NodeState, Notification, Policy, Probe, PublicKey, Quota, QuotaPeriod, Recipient, Severity,
    Timestamp, User, UserPatch, Vpnctl,
};

fn tg_user(vpn: &Vpnctl, name: &str, tg: i64, until: Option<Timestamp>) -> User {
    vpn.create_user(NewUser {
        name: name.into(),
        telegram_id: Some(tg),
        until,
        device_limit: Some(3),
        ..Default::default()
    })
    .unwrap()
}

fn issue(vpn: &Vpnctl, user: &User, node: &Node, device: &str) -> vpnctl_core::Peer {
    vpn.issue_peer(IssuePeer {
        user: user.id,
        node: node.id,
        device: device.into(),
        public_key: None,
    })
    .unwrap()
    .peer
}

fn desired_keys(vpn: &Vpnctl, node: NodeId) -> Vec<PublicKey> {
    vpn.node_desired(node)
        .unwrap()
        .peers
        .into_iter()
        .map(|p| p.public_key)
        .collect()
}

fn report(vpn: &Vpnctl, node: NodeId, peers: &[(PublicKey, u64, u64)]) {
    report_at(vpn, node, vpn.now(), None, peers);
}

fn drain(vpn: &Vpnctl) -> Vec<Notification> {
    let out = vpn.notifications(Consumer::Bot, 100).unwrap();
    if let Some(last) = out.last() {
        vpn.ack_notifications(Consumer::Bot, last.id).unwrap();
    }
    out
}

#[test]
fn expiry_takes_peers_off_and_extension_brings_them_back() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = tg_user(&f.vpn, "ann", 1, Some(T0.plus_seconds(100)));
    let p = issue(&f.vpn, &u, &n, "phone");
    assert_eq!(desired_keys(&f.vpn, n.id), vec![p.public_key]);

    f.clock.advance(99);
    assert!(f.vpn.sweep().unwrap().expired.is_empty());
    assert_eq!(desired_keys(&f.vpn, n.id).len(), 1);
    f.clock.advance(1);
    let swept = f.vpn.sweep().unwrap();
    assert_eq!(swept.expired, vec![u.id]);
    assert!(desired_keys(&f.vpn, n.id).is_empty());
    let ended: Vec<_> = drain(&f.vpn)
        .into_iter()
        .filter(|n| matches!(n.message, Message::AccessEnded { .. }))
        .collect();
    assert_eq!(ended.len(), 1, "the end notice is queued once");
    assert!(f.vpn.sweep().unwrap().is_empty(), "nothing left to do");
    assert!(drain(&f.vpn).is_empty());

    f.vpn.extend_access(u.id, 30).unwrap();
    assert_eq!(desired_keys(&f.vpn, n.id), vec![p.public_key]);
}

#[test]
fn reminders_come_once_at_three_days_and_one_day() {
    let f = fixture();
    let until = T0.plus_days(5);
    let u = tg_user(&f.vpn, "ann", 42, Some(until));
    // No Telegram id: nobody to remind, nothing queued.
    let _silent = f
        .vpn
        .create_user(NewUser {
            name: "nobody".into(),
            until: Some(until),
            ..Default::default()
        })
        .unwrap();
    let mut seen = Vec::new();
    // Walk the clock hour by hour past the end, sweeping each time.
    for _ in 0..(6 * 24) {
        f.vpn.sweep().unwrap();
        for n in drain(&f.vpn) {
            seen.push((f.vpn.now(), n));
        }
        f.clock.advance(3600);
    }
    let kinds: Vec<String> = seen
        .iter()
        .map(|(_, n)| match &n.message {
            Message::AccessEndsSoon { days_left, .. } => format!("soon-{days_left}"),
            Message::AccessEnded { .. } => "ended".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["soon-3", "soon-1", "ended"]);
    assert_eq!(seen[0].0, until.plus_days(-3), "3-day reminder on time");
    assert_eq!(seen[1].0, until.plus_days(-1), "1-day reminder on time");
    assert_eq!(seen[2].0, until);
    for (_, n) in &seen {
        assert_eq!(
            n.recipient,
            Recipient::User {
                user: u.id,
                telegram_id: 42,
                locale: u.locale
            }
        );
    }
}

#[test]
fn a_short_grant_gets_one_reminder_and_extension_rearms_them() {
    let f = fixture();
    let u = tg_user(&f.vpn, "bo", 7, Some(T0.plus_seconds(DAY / 2)));
    f.vpn.sweep().unwrap();
    let got = drain(&f.vpn);
    assert_eq!(got.len(), 1);
    assert!(matches!(
        got[0].message,
        Message::AccessEndsSoon { days_left: 1, .. }
    ));
    f.vpn.sweep().unwrap();
    assert!(drain(&f.vpn).is_empty());
    // A new end date is a new cycle of reminders.
    f.vpn.extend_access(u.id, 2).unwrap();
    f.vpn.sweep().unwrap();
    let got = drain(&f.vpn);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(
        got[0].message,
        Message::AccessEndsSoon { days_left: 3, .. }
    ));
}

#[test]
fn traffic_survives_counter_resets_and_never_drops() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = tg_user(&f.vpn, "ann", 1, None);
    let p = issue(&f.vpn, &u, &n, "phone");
    let k = p.public_key;
    let mut last = 0;
    // Counters grow, the interface restarts (they fall to small values), grow again.
    for (rx, tx) in [
        (100, 1000),
        (300, 5000),
        (50, 70),
        (80, 100),
        (80, 100),
        (10, 0),
    ] {
        report(&f.vpn, n.id, &[(k, rx, tx)]);
        let t = f.vpn.peer_traffic(p.id).unwrap();
        assert!(t.total() >= last, "total dropped: {} < {last}", t.total());
        last = t.total();
    }
    let t = f.vpn.peer_traffic(p.id).unwrap();
    // 300 + 50 + 30 + 10 received, 5000 + 70 + 30 + 0 sent.
    assert_eq!((t.rx, t.tx), (390, 5100));
    let usage = f.vpn.usage(u.id).unwrap();
    assert_eq!(usage.total, t);
    assert_eq!(usage.period_bytes, 5490);
    assert_eq!(f.vpn.node_status(n.id).unwrap().traffic, t);
    // An unknown key (a stray) is not anybody's traffic.
    report(&f.vpn, n.id, &[(KeyPair::generate().public, 9999, 9999)]);
    assert_eq!(f.vpn.usage(u.id).unwrap().total, t);
}

#[test]
fn quota_warns_at_80_percent_suspends_at_100_and_resets_with_the_period() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = tg_user(&f.vpn, "ann", 5, None);
    let p = issue(&f.vpn, &u, &n, "phone");
    let k = p.public_key;
    f.vpn
        .update_user(
            u.id,
            UserPatch {
                quota: Some(Some(Quota {
                    bytes: 1000,
                    period: QuotaPeriod::Monthly,
                })),
                ..Default::default()
            },
        )
        .unwrap();
    report(&f.vpn, n.id, &[(k, 500, 200)]);
    assert!(drain(&f.vpn).is_empty(), "70 % is fine");
    report(&f.vpn, n.id, &[(k, 600, 250)]);
    let got = drain(&f.vpn);
    assert!(
        matches!(got.as_slice(), [n] if matches!(n.message, Message::QuotaWarning { used: 850, limit: 1000, .. })),
        "{got:?}"
    );
    report(&f.vpn, n.id, &[(k, 610, 260)]);
    assert!(drain(&f.vpn).is_empty(), "warned once");
    assert_eq!(desired_keys(&f.vpn, n.id), vec![k]);

    report(&f.vpn, n.id, &[(k, 700, 310)]);
    let got = drain(&f.vpn);
    let (start, end) = QuotaPeriod::Monthly.bounds(f.vpn.now());
    assert!(
        matches!(got.as_slice(), [n] if n.message == Message::QuotaExceeded { used: 1010, limit: 1000, resets_at: end }),
        "{got:?}"
    );
    assert!(f.vpn.user(u.id).unwrap().suspended);
    assert!(desired_keys(&f.vpn, n.id).is_empty(), "suspended");
    let e = f
        .vpn
        .issue_peer(IssuePeer {
            user: u.id,
            node: n.id,
            device: "laptop".into(),
            public_key: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), vpnctl_core::ErrorCode::QuotaExhausted, "{e}");
    assert!(start <= f.vpn.now());

    // The sweep before the period ends changes nothing; after it, access returns.
    f.clock.set(end.plus_seconds(-1));
    assert!(f.vpn.sweep().unwrap().restored.is_empty());
    f.clock.set(end);
    assert_eq!(f.vpn.sweep().unwrap().restored, vec![u.id]);
    assert!(!f.vpn.user(u.id).unwrap().suspended);
    assert_eq!(desired_keys(&f.vpn, n.id), vec![k]);
    assert!(
        drain(&f.vpn)
            .iter()
            .any(|n| n.message == Message::QuotaRestored)
    );
    assert_eq!(f.vpn.usage(u.id).unwrap().period_bytes, 0);

    // Raising the quota of a suspended user lifts the suspension at once.
    report(&f.vpn, n.id, &[(k, 2000, 2000)]);
    assert!(f.vpn.user(u.id).unwrap().suspended);
    f.vpn
        .update_user(
            u.id,
            UserPatch {
                quota: Some(None),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!f.vpn.user(u.id).unwrap().suspended);
    assert_eq!(desired_keys(&f.vpn, n.id), vec![k]);
    assert!(f.vpn.sweep().unwrap().restored.is_empty());
}

fn admin_alerts(vpn: &Vpnctl) -> Vec<(Health, Health)> {
    drain(vpn)
        .into_iter()
        .filter_map(|n| match n.message {
            Message::NodeHealth { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect()
}

/// A node just started is offered as soon as its first report arrives, not at the
/// next sweep; that first verdict is logged but alerts nobody.
#[test]
fn a_new_nodes_first_report_makes_it_offered_at_once() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let offered = |vpn: &Vpnctl| vpn.node_overview(n.id).unwrap().placement().availability;
    assert!(!offered(&f.vpn).is_offered(), "never reported");
    report(&f.vpn, n.id, &[]);
    // No observe_health (the sweep) in between.
    assert_eq!(f.vpn.node_status(n.id).unwrap().health, Health::Up);
    assert!(offered(&f.vpn).is_offered());
    let changes: Vec<_> = f
        .vpn
        .events_after(0, 100)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            vpnctl_core::EventKind::NodeHealthChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [(Health::Unknown, Health::Up)]);
    assert!(
        admin_alerts(&f.vpn).is_empty(),
        "a first report is not news"
    );
    // Later reports leave health to the sweep and its hysteresis.
    report(&f.vpn, n.id, &[]);
    assert!(f.vpn.observe_health(&[]).unwrap().is_empty());
}

#[test]
fn health_follows_reports_with_hysteresis_and_alerts_once() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    f.vpn.observe_health(&[]).unwrap();
    assert_eq!(f.vpn.node_status(n.id).unwrap().health, Health::Unknown);

    report(&f.vpn, n.id, &[]);
    f.vpn.observe_health(&[]).unwrap();
    assert_eq!(f.vpn.node_status(n.id).unwrap().health, Health::Up);
    assert!(admin_alerts(&f.vpn).is_empty(), "first report is not news");

    // Silence: late (degraded) after 45 s, down after 90 s, each needing two
    // observations in a row.
    let mut timeline = Vec::new();
    for _ in 0..12 {
        f.clock.advance(10);
        f.vpn.observe_health(&[]).unwrap();
        timeline.push(f.vpn.node_status(n.id).unwrap().health);
    }
    use Health::{Degraded, Down, Up};
    assert_eq!(
        timeline,
        [
            Up, Up, Up, Up, // 10..40 s
            Up, Degraded, // 50 s seen once, 60 s confirmed
            Degraded, Degraded, Degraded, // 70..90 s
            Degraded, Down, Down // 100 s seen once, 110 s confirmed
        ]
    );
    assert_eq!(admin_alerts(&f.vpn), [(Up, Degraded), (Degraded, Down)]);
    assert!(
        f.vpn
            .node_status(n.id)
            .unwrap()
            .reason
            .contains("no report")
    );

    // Back: three good observations in a row, then one recovery alert.
    for _ in 0..2 {
        f.clock.advance(5);
        report(&f.vpn, n.id, &[]);
        f.vpn.observe_health(&[]).unwrap();
        assert_eq!(f.vpn.node_status(n.id).unwrap().health, Down);
    }
    f.clock.advance(5);
    report(&f.vpn, n.id, &[]);
    f.vpn.observe_health(&[]).unwrap();
    assert_eq!(f.vpn.node_status(n.id).unwrap().health, Up);
    assert_eq!(admin_alerts(&f.vpn), [(Down, Up)]);
}

#[test]
fn failed_probes_take_a_reporting_node_down() {
    let f = fixture_with(Policy {
        health: HealthPolicy {
            worse_after: 1,
            ..HealthPolicy::default()
        },
        ..Policy::default()
    });
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    report(&f.vpn, n.id, &[]);
    let ok = |vpn: &Vpnctl| Probe {
        at: vpn.now(),
        rtt_ms: Some(3),
        error: None,
    };
    let bad = |vpn: &Vpnctl| Probe {
        at: vpn.now(),
        rtt_ms: None,
        error: Some("connection refused".into()),
    };
    f.vpn.observe_health(&[(n.id, ok(&f.vpn))]).unwrap();
    assert_eq!(f.vpn.node_status(n.id).unwrap().health, Health::Up);
    f.vpn.observe_health(&[(n.id, bad(&f.vpn))]).unwrap();
    assert_eq!(f.vpn.node_status(n.id).unwrap().health, Health::Degraded);
    f.vpn.observe_health(&[(n.id, bad(&f.vpn))]).unwrap();
    f.vpn.observe_health(&[(n.id, bad(&f.vpn))]).unwrap();
    let status = f.vpn.node_status(n.id).unwrap();
    assert_eq!(status.health, Health::Down);
    assert!(
        status.reason.contains("connection refused"),
        "{}",
        status.reason
    );
}

#[test]
fn drift_alerts_are_rate_limited() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let stray = |vpn: &Vpnctl| {
        let mut r = NodeReport {
            applied_revision: 0,
            interface_up: true,
            listen_port: None,
            public_key: None,
            peers: Vec::new(),
            system: SystemStats::default(),
            strays_removed: vec![KeyPair::generate().public],
            errors: Vec::new(),
            at: vpn.now(),
            health_port: None,
        };
        r.applied_revision = vpn.node_revision(n.id).unwrap();
        vpn.record_report(n.id, &r).unwrap();
    };
    stray(&f.vpn);
    stray(&f.vpn);
    f.clock.advance(601);
    stray(&f.vpn);
    let drift = drain(&f.vpn)
        .into_iter()
        .filter(|n| matches!(n.message, Message::NodeDrift { .. }))
        .count();
    assert_eq!(drift, 2);
}

#[test]
fn outbox_is_at_least_once_per_consumer_and_pruned() {
    let f = fixture();
    tg_user(&f.vpn, "ann", 1, Some(T0.plus_days(2)));
    f.vpn.sweep().unwrap();
    let bot = f.vpn.notifications(Consumer::Bot, 10).unwrap();
    assert_eq!(bot.len(), 1);
    // Not acknowledged: offered again.
    assert_eq!(f.vpn.notifications(Consumer::Bot, 10).unwrap(), bot);
    f.vpn.ack_notifications(Consumer::Bot, bot[0].id).unwrap();
    assert!(f.vpn.notifications(Consumer::Bot, 10).unwrap().is_empty());
    // The webhook consumer still has it; acking backwards never rewinds.
    assert_eq!(f.vpn.notifications(Consumer::Webhook, 10).unwrap(), bot);
    f.vpn
        .ack_notifications(Consumer::Webhook, bot[0].id)
        .unwrap();
    assert_eq!(
        f.vpn.ack_notifications(Consumer::Bot, 0).unwrap(),
        bot[0].id
    );
    assert!(
        f.vpn
            .notifications(Consumer::Webhook, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn evacuation_moves_every_device_to_healthy_nodes_and_tells_users() {
    let f = fixture();
    let a = node(&f.vpn, "a", "10.8.0.0/24");
    let b = node(&f.vpn, "b", "10.9.0.0/24");
    let dead = node(&f.vpn, "c", "10.10.0.0/24");
    for n in [&a, &b] {
        report(&f.vpn, n.id, &[]);
    }
    f.vpn.observe_health(&[]).unwrap();
    let ann = tg_user(&f.vpn, "ann", 1, None);
    f.vpn
        .update_user(
            ann.id,
            UserPatch {
                device_limit: Some(10),
                ..Default::default()
            },
        )
        .unwrap();
    let bob = tg_user(&f.vpn, "bob", 2, Some(T0.plus_seconds(10)));
    let byo = KeyPair::generate().public;
    let mut old = vec![
        issue(&f.vpn, &ann, &dead, "phone"),
        issue(&f.vpn, &ann, &dead, "laptop"),
        issue(&f.vpn, &bob, &dead, "phone"),
    ];
    old.push(
        f.vpn
            .issue_peer(IssuePeer {
                user: bob.id,
                node: dead.id,
                device: "router".into(),
                public_key: Some(byo),
            })
            .unwrap()
            .peer,
    );
    // Ann already has a "phone" on node a: the moved one must get another name.
    issue(&f.vpn, &ann, &a, "phone");
    // Bob lapses before the evacuation: his devices move but stay off the nodes.
    f.clock.advance(10);
    f.vpn.sweep().unwrap();
    drain(&f.vpn);

    let e = f.vpn.evacuate(dead.id, &EvacuateTo::Auto).unwrap();
    assert!(e.failed.is_empty(), "{:?}", e.failed);
    assert_eq!(e.moved.len(), 4);
    assert!(
        f.vpn
            .peers(vpnctl_core::PeerFilter {
                node: Some(dead.id),
                ..Default::default()
            })
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.vpn.node(dead.id).unwrap().state, NodeState::Draining);
    assert!(desired_keys(&f.vpn, dead.id).is_empty());
    // Least loaded first (a has one peer, b none), ties in node order.
    let to: Vec<NodeId> = e.moved.iter().map(|m| m.to).collect();
    assert_eq!(to, [b.id, a.id, b.id, a.id]);
    for m in &e.moved {
        let p = f.vpn.peer(m.new_peer).unwrap();
        assert_eq!(p.node, m.to);
        assert_eq!(p.user, m.user);
        if m.user == ann.id {
            assert!(desired_keys(&f.vpn, m.to).contains(&p.public_key));
            assert!(f.vpn.peer_config(p.id).is_ok());
        } else {
            assert!(
                !desired_keys(&f.vpn, m.to).contains(&p.public_key),
                "bob lapsed"
            );
        }
    }
    let router = e.moved.iter().find(|m| m.device == "router").unwrap();
    assert_eq!(f.vpn.peer(router.new_peer).unwrap().public_key, byo);
    let moved_notes: Vec<_> = drain(&f.vpn)
        .into_iter()
        .filter(|n| matches!(n.message, Message::DeviceMoved { .. }))
        .collect();
    assert_eq!(moved_notes.len(), 4);

    // A named target that cannot take devices is a clear error, nothing moves.
    let x = node(&f.vpn, "x", "10.11.0.0/24");
    let y = node(&f.vpn, "y", "10.12.0.0/24");
    issue(&f.vpn, &ann, &x, "tablet");
    issue(&f.vpn, &ann, &x, "laptop");
    f.vpn.set_node_state(y.id, NodeState::Disabled).unwrap();
    let err = f.vpn.evacuate(x.id, &EvacuateTo::Node(y.id)).unwrap_err();
    assert!(err.to_string().contains("cannot take devices"), "{err}");
    assert_eq!(f.vpn.node_peer_count(x.id).unwrap(), 2);
    // Onto a node where the user has a device of the same name: renamed.
    let e = f.vpn.evacuate(x.id, &EvacuateTo::Node(a.id)).unwrap();
    let names: Vec<&str> = e.moved.iter().map(|m| m.device.as_str()).collect();
    assert_eq!(names, ["tablet", "laptop-2"]);
}

#[test]
fn a_version_1_store_is_upgraded_in_place() {
    use redb::{ReadableDatabase, TableDefinition};
    #[derive(serde::Serialize)]
    struct UserV1 {
        id: vpnctl_core::UserId,
        telegram_id: Option<i64>,
        name: String,
        role: vpnctl_core::Role,
        state: vpnctl_core::UserState,
        until: Option<Timestamp>,
        lapsed: bool,
        device_limit: u32,
        locale: vpnctl_core::Locale,
        created_at: Timestamp,
    }
    let f = fixture();
    let u = tg_user(&f.vpn, "old", 5, Some(T0.plus_days(3)));
    let path = f.dir.path().join("vpnctl.redb");
    drop(f.vpn);
    {
        // Rewrite the user as version 1 laid it out.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut users: redb::Table<'_, u64, &[u8]> =
                txn.open_table(TableDefinition::new("users")).unwrap();
            let v1 = UserV1 {
                id: u.id,
                telegram_id: u.telegram_id,
                name: u.name.clone(),
                role: u.role,
                state: u.state,
                until: u.until,
                lapsed: false,
                device_limit: u.device_limit,
                locale: u.locale,
                created_at: u.created_at,
            };
            users
                .insert(u.id.0, postcard::to_stdvec(&v1).unwrap().as_slice())
                .unwrap();
            let mut meta: redb::Table<'_, &str, u64> =
                txn.open_table(TableDefinition::new("meta")).unwrap();
            meta.insert("schema_version", 1).unwrap();
        }
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let meta: redb::ReadOnlyTable<&str, u64> =
            read.open_table(TableDefinition::new("meta")).unwrap();
        assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 1);
    }
    let vault = vpnctl_core::Vault::open_or_create(&f.dir.path().join("vault.key")).unwrap();
    let vpn = Vpnctl::open(
        &path,
        vault,
        std::sync::Arc::new(f.clock.clone()),
        Policy::default(),
    )
    .unwrap();
    let back = vpn.user(u.id).unwrap();
    assert_eq!(back, u, "every field kept, quota none, not suspended");
    assert_eq!(back.quota, None);
}

#[test]
fn acknowledging_the_future_is_refused() {
    let f = fixture();
    assert_eq!(f.vpn.ack_notifications(Consumer::Bot, 0).unwrap(), 0);
    let e = f.vpn.ack_notifications(Consumer::Bot, 1).unwrap_err();
    assert!(e.to_string().contains("beyond the newest"), "{e}");
    tg_user(&f.vpn, "ann", 1, Some(T0.plus_days(2)));
    f.vpn.sweep().unwrap();
    assert_eq!(f.vpn.ack_notifications(Consumer::Bot, 1).unwrap(), 1);
}

fn report_at(
    vpn: &Vpnctl,
    node: NodeId,
    at: Timestamp,
    port: Option<u16>,
    peers: &[(PublicKey, u64, u64)],
) {
    let applied = vpn.node_revision(node).unwrap();
    vpn.record_report(
        node,
        &NodeReport {
            applied_revision: applied,
            interface_up: true,
            listen_port: Some(51820),
            public_key: None,
            peers: peers
                .iter()
                .map(|(k, rx, tx)| PeerStats {
                    public_key: *k,
                    endpoint: None,
                    last_handshake: Some(at),
                    rx_bytes: *rx,
                    tx_bytes: *tx,
                })
                .collect(),
            system: SystemStats::default(),
            strays_removed: Vec::new(),
            errors: Vec::new(),
            at,
            health_port: port,
        },
    )
    .unwrap();
}

#[test]
fn a_control_plane_restart_alerts_nobody() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    report(&f.vpn, n.id, &[]);
    f.vpn.observe_health(&[]).unwrap();
    drain(&f.vpn);
    // Down for five minutes (a backup, an upgrade): reports went nowhere.
    let f = f.restart_after(300);
    let vpn = &f.vpn;
    for _ in 0..3 {
        vpn.observe_health(&[]).unwrap();
        f.clock.advance(10);
    }
    assert_eq!(vpn.node_status(n.id).unwrap().health, Health::Up);
    assert!(admin_alerts(vpn).is_empty());
    // A node that stays silent after the restart is still found out.
    for _ in 0..10 {
        f.clock.advance(10);
        vpn.observe_health(&[]).unwrap();
    }
    assert_eq!(vpn.node_status(n.id).unwrap().health, Health::Down);
}

/// A node that was behind when the control plane stopped (or that a restore from a
/// backup puts behind: its revisions move to a new epoch) is given the lag
/// allowance from the start on, not from when it fell behind: it is not degraded
/// for having waited on a control plane that was away.
#[test]
fn a_node_behind_before_a_restart_is_given_time_after_it() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = tg_user(&f.vpn, "ann", 1, None);
    report(&f.vpn, n.id, &[]);
    issue(&f.vpn, &u, &n, "phone");
    // Reports the revision before the new device: behind from now on.
    let behind = |vpn: &Vpnctl| {
        let stale = NodeReport {
            applied_revision: vpn.node_revision(n.id).unwrap() - 1,
            interface_up: true,
            listen_port: Some(51820),
            public_key: None,
            peers: Vec::new(),
            system: SystemStats::default(),
            strays_removed: Vec::new(),
            errors: Vec::new(),
            at: vpn.now(),
            health_port: None,
        };
        vpn.record_report(n.id, &stale).unwrap();
    };
    behind(&f.vpn);
    f.vpn.observe_health(&[]).unwrap();
    assert_eq!(f.vpn.node_status(n.id).unwrap().health, Health::Up);
    let f = f.restart_after(300);
    let vpn = &f.vpn;
    for _ in 0..3 {
        behind(vpn);
        vpn.observe_health(&[]).unwrap();
        f.clock.advance(10);
    }
    let status = vpn.node_status(n.id).unwrap();
    assert_eq!(status.health, Health::Up, "{}", status.reason);
    // Still behind well past a minute after the start: that is a lag.
    for _ in 0..12 {
        behind(vpn);
        vpn.observe_health(&[]).unwrap();
        f.clock.advance(10);
    }
    let status = vpn.node_status(n.id).unwrap();
    assert_ne!(
        status.health,
        Health::Up,
        "a node that stays behind is found out"
    );
    assert!(status.reason.contains("trails"), "{}", status.reason);
}

#[test]
fn probe_failures_clear_when_the_node_stops_offering_a_probe_port() {
    let f = fixture_with(Policy {
        health: HealthPolicy {
            worse_after: 1,
            better_after: 1,
            ..HealthPolicy::default()
        },
        ..Policy::default()
    });
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    report_at(&f.vpn, n.id, f.vpn.now(), Some(9586), &[]);
    // The probe target is stored: a restarted control plane probes at once.
    assert_eq!(f.vpn.node_status(n.id).unwrap().health_port, Some(9586));
    assert_eq!(
        f.vpn.node_overviews().unwrap()[0].status.health_port,
        Some(9586)
    );
    let bad = Probe {
        at: f.vpn.now(),
        rtt_ms: None,
        error: Some("refused".into()),
    };
    for _ in 0..3 {
        f.vpn.observe_health(&[(n.id, bad.clone())]).unwrap();
    }
    assert_eq!(f.vpn.node_status(n.id).unwrap().health, Health::Down);
    // Restarted without a metrics listener: reports alone make it up again.
    report_at(&f.vpn, n.id, f.vpn.now(), None, &[]);
    f.vpn.observe_health(&[]).unwrap();
    let status = f.vpn.node_status(n.id).unwrap();
    assert_eq!(status.health, Health::Up, "{}", status.reason);
    assert_eq!(status.probe_failures, 0);
    assert_eq!(status.health_port, None);
}

#[test]
fn late_and_repeated_readings_are_not_counted_twice() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = tg_user(&f.vpn, "ann", 1, None);
    let p = issue(&f.vpn, &u, &n, "phone");
    let k = p.public_key;
    let t = f.vpn.now();
    report_at(&f.vpn, n.id, t.plus_seconds(20), None, &[(k, 500, 500)]);
    // An older report arriving late would look like a counter restart.
    report_at(&f.vpn, n.id, t.plus_seconds(10), None, &[(k, 300, 300)]);
    assert_eq!(f.vpn.peer_traffic(p.id).unwrap().total(), 1000);
    // The same report delivered again adds nothing; a key listed twice counts once.
    report_at(&f.vpn, n.id, t.plus_seconds(20), None, &[(k, 500, 500)]);
    report_at(
        &f.vpn,
        n.id,
        t.plus_seconds(30),
        None,
        &[(k, 600, 600), (k, 600, 600)],
    );
    assert_eq!(f.vpn.peer_traffic(p.id).unwrap().total(), 1200);
    assert_eq!(f.vpn.usage(u.id).unwrap().total.total(), 1200);
}

#[test]
fn lowering_a_quota_below_usage_suspends_and_tells_the_user() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = tg_user(&f.vpn, "ann", 5, Some(T0.plus_days(40)));
    let p = issue(&f.vpn, &u, &n, "phone");
    report(&f.vpn, n.id, &[(p.public_key, 600, 0)]);
    let quota = |bytes| UserPatch {
        quota: Some(Some(Quota {
            bytes,
            period: QuotaPeriod::Monthly,
        })),
        ..Default::default()
    };
    f.vpn.update_user(u.id, quota(500)).unwrap();
    assert!(f.vpn.user(u.id).unwrap().suspended);
    assert!(desired_keys(&f.vpn, n.id).is_empty());
    let got = drain(&f.vpn);
    assert!(
        matches!(got.as_slice(), [n] if matches!(n.message, Message::QuotaExceeded { used: 600, limit: 500, .. })),
        "{got:?}"
    );
    // Suspended users are still reminded that their access ends.
    let until = f.vpn.user(u.id).unwrap().until.unwrap();
    f.clock.set(until.plus_days(-2));
    f.vpn.update_user(u.id, quota(500)).unwrap();
    f.vpn.sweep().unwrap();
    assert!(
        drain(&f.vpn)
            .iter()
            .any(|n| matches!(n.message, Message::AccessEndsSoon { .. }))
    );
}

#[test]
fn evacuation_keeps_keys_that_are_not_stored() {
    let f = fixture_with(Policy {
        store_private_keys: false,
        ..Policy::default()
    });
    let a = node(&f.vpn, "a", "10.8.0.0/24");
    let dead = node(&f.vpn, "dead", "10.9.0.0/24");
    report(&f.vpn, a.id, &[]);
    f.vpn.observe_health(&[]).unwrap();
    let u = tg_user(&f.vpn, "ann", 1, None);
    let p = issue(&f.vpn, &u, &dead, "phone");
    let before = f.vpn.node_desired(dead.id).unwrap().peers;
    let e = f.vpn.evacuate(dead.id, &EvacuateTo::Auto).unwrap();
    assert_eq!(e.moved.len(), 1);
    let after = f.vpn.node_desired(a.id).unwrap().peers;
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].public_key, p.public_key,
        "the client keeps its key"
    );
    assert_eq!(
        after[0].preshared_key, before[0].preshared_key,
        "and its preshared key"
    );
}

#[test]
fn alternating_bad_readings_still_count_as_bad() {
    let p = HealthPolicy::default();
    let (n, t) = (NodeId(1), Timestamp(0));
    let mut s = vpnctl_core::NodeStatus::default();
    s.observe(n, Health::Up, "ok".into(), t, &p);
    assert!(s.observe(n, Health::Degraded, "x".into(), t, &p).is_none());
    let c = s.observe(n, Health::Down, "y".into(), t, &p).unwrap();
    assert_eq!((c.from, c.to), (Health::Up, Health::Down));
}

/// The event log's retention: events older than `events_keep_days` go, and beyond
/// `events_keep_max` the oldest go first; what stays is the newest, in order, and
/// new events keep their numbering.
#[test]
fn event_retention_deletes_the_oldest_by_age_and_count() {
    let f = fixture_with(Policy {
        events_keep_days: 30,
        events_keep_max: 12,
        ..Policy::default()
    });
    let vpn = &f.vpn;
    for i in 0..10 {
        vpn.notice(Severity::Info, None, &format!("old {i}"))
            .unwrap();
    }
    f.clock.advance(31 * 86_400);
    for i in 0..15 {
        vpn.notice(Severity::Info, None, &format!("new {i}"))
            .unwrap();
    }
    let before = vpn.recent_events(1000).unwrap();
    assert_eq!(before.len(), 25);
    // 13 over the maximum of 12 (the 10 old ones and 3 new), then nothing else is
    // older than 30 days.
    assert_eq!(vpn.prune_events().unwrap(), 13);
    let after = vpn.recent_events(1000).unwrap();
    assert_eq!(after, before[13..], "the newest 12 stay, in order");
    assert_eq!(vpn.prune_events().unwrap(), 0, "nothing more to do");
    // By age alone: 31 days on, all 12 are too old.
    f.clock.advance(31 * 86_400);
    vpn.notice(Severity::Info, None, "newest").unwrap();
    assert_eq!(vpn.prune_events().unwrap(), 12);
    let last = vpn.recent_events(1000).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].seq, before.last().unwrap().seq + 1);
    // 0 keeps everything.
    let keep = fixture_with(Policy {
        events_keep_days: 0,
        events_keep_max: 0,
        ..Policy::default()
    });
    keep.vpn.notice(Severity::Info, None, "kept").unwrap();
    keep.clock.advance(10_000 * 86_400);
    assert_eq!(keep.vpn.prune_events().unwrap(), 0);
}
