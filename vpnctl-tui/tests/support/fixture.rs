//! A fixed, deterministic dashboard state for snapshot tests and the draw benchmark.
//! Test-only: included by the tests and the draw bench with `#[path]`, never
//! compiled into the library.

use vpnctl_api::body::{NodeHealth, NodeView, StoredReport};
use vpnctl_core::wire::{NodeReport, PeerStats, SystemStats};
use vpnctl_core::{
    Actor, Endpoint, Event, EventKind, Grant, Health, Invite, InviteId, Node, NodeId, NodeState,
    Peer, PeerId, Probe, PublicKey, Quota, QuotaPeriod, Region, Role, Timestamp, Traffic, User,
    UserId, UserState,
};

use vpnctl_tui::app::{Action, App, Snapshot, update};

/// A stray peer's key in the Events tab: shown exactly as the server wrote it.
pub const STRAY_KEY: &str = "kB3xQ9+Zt7WmR2vLp0sYhNcE4fJ6uIgA1oDq8eTnXyU=";

/// "Now" in every fixture.
pub const NOW: Timestamp = Timestamp(1_800_000_000);

fn key(n: u64) -> PublicKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[31] = 7;
    PublicKey::from_bytes(bytes)
}

fn node(id: u64, name: &str, code: &str, region: &str, state: NodeState) -> Node {
    Node {
        id: NodeId(id),
        name: name.into(),
        region: Region {
            code: code.into(),
            name: region.into(),
        },
        endpoint: Endpoint {
            host: format!("{name}.vpn.example"),
            port: 51820,
        },
        listen_port: 51820,
        public_key: Some(key(1_000 + id)),
        ipv4_pool: format!("10.{}.0.0/16", id * 10)
            .parse()
            .expect("a valid pool"),
        ipv6_pool: None,
        dns: Vec::new(),
        mtu: 1420,
        capacity: 0,
        client_allowed_ips: Vec::new(),
        persistent_keepalive: 25,
        state,
        created_at: Timestamp(NOW.0 - 86_400 * 30),
        transport: vpnctl_core::transport::Transport::Wireguard,
    }
}

fn user(id: u64, name: &str) -> User {
    User {
        id: UserId(id),
        telegram_id: Some(1_000 + i64::try_from(id).unwrap_or(0)),
        name: name.into(),
        role: if id == 1 { Role::Admin } else { Role::User },
        state: if id == 4 {
            UserState::Disabled
        } else {
            UserState::Active
        },
        until: match id % 3 {
            0 => None,
            1 => Some(NOW.plus_days(i64::try_from(id).unwrap_or(1) * 5)),
            _ => Some(NOW.plus_days(-1)),
        },
        lapsed: false,
        device_limit: 3,
        locale: vpnctl_core::Locale::En,
        created_at: Timestamp(NOW.0 - 86_400),
        // u3 and u6 have quotas; u6 (unlimited time, active) used it up.
        quota: (id == 3 || id == 6).then_some(Quota {
            bytes: if id == 3 { 50_000_000_000 } else { 500 << 20 },
            period: QuotaPeriod::Monthly,
        }),
        suspended: id == 6,
    }
}

const NAMES: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
const DEVICES: [&str; 3] = ["phone", "laptop", "tablet"];

/// A dashboard with three nodes (up, degraded, down), `peers` peers spread over them,
/// users, invites and events; each node has sent two reports so rates are known.
pub fn app(peers: usize) -> App {
    let nodes = [
        node(
            1,
            "fra-1",
            "de-fra",
            "Frankfurt, Germany",
            NodeState::Active,
        ),
        node(
            2,
            "ams-1",
            "nl-ams",
            "Amsterdam, Netherlands",
            NodeState::Draining,
        ),
        node(3, "nyc-1", "us-nyc", "New York, USA", NodeState::Active),
    ];
    let users: Vec<User> = (0..peers.div_ceil(3).max(NAMES.len()))
        .map(|i| {
            let id = u64::try_from(i).unwrap_or(0) + 1;
            let name = NAMES
                .get(i)
                .map_or_else(|| format!("user-{id:05}"), |n| (*n).to_owned());
            user(id, &name)
        })
        .collect();
    let peer_list: Vec<Peer> = (0..peers)
        .map(|i| {
            let id = u64::try_from(i).unwrap_or(0) + 1;
            let n = u64::try_from(i % 3).unwrap_or(0) + 1;
            let host = u32::try_from(i / 3 + 2).unwrap_or(2);
            let net = u32::from(u8::try_from(n * 10).unwrap_or(10));
            Peer {
                id: PeerId(id),
                user: UserId(u64::try_from(i / 3).unwrap_or(0) + 1),
                node: NodeId(n),
                device: DEVICES[i % 3].into(),
                public_key: key(id),
                has_private_key: true,
                ipv4: std::net::Ipv4Addr::from((10 << 24) | (net << 16) | host),
                ipv6: None,
                created_at: Timestamp(NOW.0 - 3_600),
                rotated_at: None,
            }
        })
        .collect();
    let report = |node: u64, at: Timestamp, scale: u64| -> NodeReport {
        NodeReport {
            applied_revision: 10,
            interface_up: true,
            listen_port: Some(51820),
            public_key: Some(key(1_000 + node)),
            peers: peer_list
                .iter()
                .filter(|p| p.node.0 == node)
                .enumerate()
                .map(|(i, p)| PeerStats {
                    public_key: p.public_key,
                    endpoint: (i % 4 != 3).then(|| format!("203.0.113.{}:51000", i % 250 + 1)),
                    last_handshake: (i % 4 != 3)
                        .then(|| Timestamp(at.0 - i64::try_from(i % 300).unwrap_or(0))),
                    rx_bytes: scale * (1 + p.id.0 % 50) * 1_024,
                    tx_bytes: scale * (1 + p.id.0 % 50) * 4_096,
                })
                .collect(),
            system: SystemStats {
                load1: 0.25 * f64::from(u32::try_from(node).unwrap_or(1)),
                cpu_percent: 7.5 * f64::from(u32::try_from(node).unwrap_or(1)),
                mem_used_bytes: 0,
                mem_total_bytes: 0,
                uptime_secs: 1_000,
            },
            strays_removed: Vec::new(),
            errors: Vec::new(),
            at,
            health_port: None,
        }
    };
    // (node, age of the last report, applied revision, desired revision, health, why,
    // probe round trip or error)
    let health = [
        (0usize, 2i64, 12u64, 12u64, Health::Up, "ok", Ok(23)),
        (
            1,
            5,
            11,
            12,
            Health::Degraded,
            "applied revision 11 trails 12 for 75 s",
            Ok(180),
        ),
        (
            2,
            400,
            9,
            12,
            Health::Down,
            "no report for 400 s",
            Err("connection refused"),
        ),
    ];
    let views = |scale: u64, shift: i64| -> Vec<NodeView> {
        health
            .iter()
            .map(|&(i, age, applied, desired, status, reason, probe)| {
                let n = &nodes[i];
                let at = Timestamp(NOW.0 - age - shift);
                let id = n.id.0;
                NodeView {
                    node: n.clone(),
                    peers: u64::try_from(peer_list.iter().filter(|p| p.node == n.id).count())
                        .unwrap_or(0),
                    health: NodeHealth {
                        status,
                        reason: reason.into(),
                        since: Some(Timestamp(NOW.0 - 3_600 * i64::try_from(id).unwrap_or(1))),
                        desired_revision: desired,
                        applied_revision: Some(applied),
                        in_sync: applied == desired,
                        last_report_at: Some(at),
                        peers_connected: u32::try_from(
                            peer_list.iter().filter(|p| p.node == n.id).count() * 3 / 4,
                        )
                        .unwrap_or(0),
                        interface_up: Some(true),
                        report_errors: 0,
                        probe: Some(Probe {
                            at: Timestamp(NOW.0 - 4),
                            rtt_ms: probe.ok(),
                            error: probe.err().map(str::to_owned),
                        }),
                        traffic: Traffic {
                            rx: (id * 3) << 30,
                            tx: (id * 11) << 30,
                        },
                    },
                    report: Some(vpnctl_core::report::summary(&StoredReport {
                        received_at: at,
                        report: report(n.id.0, at, scale),
                    })),
                }
            })
            .collect()
    };
    let invites = vec![
        invite(1, "friends", 5, 2, false),
        invite(2, "family", 3, 0, false),
        invite(3, "trial", 1, 1, true),
    ];
    let mut app = App::new("vpnctl test", NOW);
    update(&mut app, vpnctl_resize(80, 24));
    for (scale, shift) in [(1, 10), (3, 0)] {
        let nodes = views(scale, shift);
        let reports = nodes
            .iter()
            .map(|v| {
                let at = v.report.as_ref().map_or(NOW, |r| r.at);
                (
                    v.node.id,
                    StoredReport {
                        received_at: at,
                        report: report(v.node.id.0, at, scale),
                    },
                )
            })
            .collect();
        update(
            &mut app,
            Action::Data(Box::new(Snapshot {
                nodes,
                reports,
                peers: peer_list.clone(),
                users: users.clone(),
                invites: invites.clone(),
                plans: plans(),
                more: false,
            })),
        );
    }
    update(&mut app, Action::Events(events()));
    app
}

/// What the Plans tab shows: one on sale, a monthly subscription, a trial, a
/// retired one.
pub fn plans() -> Vec<vpnctl_api::billing::Plan> {
    use vpnctl_api::billing::{Plan, PlanName};
    let plan = |id, en: &str, stars, days, devices, recurring, trial: bool, active| Plan {
        id: vpnctl_core::PlanId(id),
        name: PlanName {
            en: en.into(),
            ru: None,
        },
        days,
        stars,
        device_limit: devices,
        quota: trial.then_some(vpnctl_core::Quota {
            bytes: 5_000_000_000,
            period: vpnctl_core::QuotaPeriod::Monthly,
        }),
        recurring,
        trial,
        active,
        created_at: vpnctl_core::Timestamp(1_795_612_245),
    };
    vec![
        plan(1, "Month", 150, 30, 3, false, false, true),
        plan(2, "Monthly sub", 120, 30, 3, true, false, true),
        plan(3, "Trial", 0, 7, 1, false, true, true),
        plan(4, "Year 2025", 1200, 365, 5, false, false, false),
    ]
}

fn vpnctl_resize(w: u16, h: u16) -> Action {
    Action::Resize(w, h)
}

fn invite(id: u64, label: &str, total: u32, left: u32, revoked: bool) -> Invite {
    Invite {
        id: InviteId(id),
        label: label.into(),
        uses_total: total,
        uses_left: left,
        expires_at: Some(NOW.plus_days(14)),
        grant: Grant::default(),
        revoked,
        created_at: Timestamp(NOW.0 - 7_200),
    }
}

fn events() -> Vec<Event> {
    let kinds = [
        (Actor::System, EventKind::NodeRegistered { node: NodeId(1) }),
        (
            Actor::Node(NodeId(1)),
            EventKind::NodeEnrolled { node: NodeId(1) },
        ),
        (
            Actor::Admin("root".into()),
            EventKind::UserCreated { user: UserId(2) },
        ),
        (
            Actor::Bot,
            EventKind::PeerIssued {
                peer: PeerId(5),
                user: UserId(2),
                node: NodeId(2),
            },
        ),
        (
            Actor::Admin("root".into()),
            EventKind::InviteCreated {
                invite: InviteId(1),
            },
        ),
        (Actor::System, EventKind::AccessExpired { user: UserId(3) }),
        (
            Actor::Admin("root".into()),
            EventKind::NodeStateChanged {
                node: NodeId(2),
                state: NodeState::Draining,
            },
        ),
        (
            Actor::System,
            EventKind::Notice {
                severity: vpnctl_core::Severity::Warning,
                node: Some(NodeId(3)),
                message: format!("nyc-1 removed a stray peer: {STRAY_KEY}"),
            },
        ),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, (actor, kind))| Event {
            seq: u64::try_from(i).unwrap_or(0) + 1,
            at: Timestamp(NOW.0 - 600 + 60 * i64::try_from(i).unwrap_or(0)),
            actor,
            kind,
        })
        .collect()
}
