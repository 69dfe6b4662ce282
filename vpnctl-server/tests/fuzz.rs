//! Fuzzing the API bodies and the node wire types, proptest-driven, against the
//! real router over a real store (in process, no sockets): whatever a client sends,
//! the answer is never a 5xx and nothing panics; whatever a node reports is kept
//! bounded and clean.
//!
//! CI runs 64 cases per property (a few seconds). For a longer run:
//! `VPNCTL_FUZZ_CASES=20000 cargo test --release -p vpnctl-server --test fuzz`.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt as _;
use vpnctl_api::routes::{Method, TABLE};
use vpnctl_core::wire::{DesiredUpdate, NodeReport, PeerStats, SystemStats};
use vpnctl_core::{NewNode, PublicKey, Scope, Secret, Timestamp, Vpnctl};
use vpnctl_server::{AppState, Limits, PublicInfo};

fn cases() -> u32 {
    std::env::var("VPNCTL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    vpn: Vpnctl,
    admin: Secret,
    node: (u64, Secret),
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let vpn = Vpnctl::open_dir(dir.path()).unwrap();
        let (down, shutdown) = tokio::sync::watch::channel(false);
        // Keep the sender alive for the whole run.
        std::mem::forget(down);
        let limits = Limits {
            enroll_per_minute: u32::MAX,
            auth_failures_per_minute: u32::MAX,
            ..Limits::default()
        };
        let state = rt.block_on(async {
            AppState::new(
                vpn.clone(),
                PublicInfo {
                    url: "http://127.0.0.1:1".into(),
                    fingerprint: None,
                    bot_username: None,
                },
                shutdown,
                limits,
            )
        });
        let app = vpnctl_server::routes::router(state);
        let (_, admin) = vpn.create_token(Scope::Admin, "fuzz").unwrap();
        let node = vpn
            .register_node(NewNode::new(
                "fra-1",
                "de-fra",
                "vpn.example.com:51820".parse().unwrap(),
                "10.8.0.0/16".parse().unwrap(),
            ))
            .unwrap();
        let (_, node_token) = vpn.create_token(Scope::Node(node.id), "node").unwrap();
        Fixture {
            rt,
            app,
            vpn,
            admin,
            node: (node.id.0, node_token),
            _dir: dir,
        }
    })
}

fn send(f: &Fixture, method: Method, path: &str, token: &Secret, body: Vec<u8>) -> StatusCode {
    let request = Request::builder()
        .method(method.as_str())
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    f.rt.block_on(f.app.clone().oneshot(request))
        .unwrap()
        .status()
}

/// Field names the bodies use, so that generated objects reach past "unknown field".
const KEYS: &[&str] = &[
    "name",
    "telegram_id",
    "role",
    "until",
    "device_limit",
    "locale",
    "quota",
    "bytes",
    "period",
    "state",
    "days",
    "label",
    "uses",
    "expires_at",
    "grant",
    "code",
    "region",
    "endpoint",
    "ipv4_pool",
    "ipv6_pool",
    "listen_port",
    "public_key",
    "dns",
    "mtu",
    "capacity",
    "client_allowed_ips",
    "persistent_keepalive",
    "to",
    "type",
    "value",
    "valid_for_secs",
    "join_secret",
    "user",
    "node",
    "device",
    "upto",
    "scope",
    "applied_revision",
    "interface_up",
    "peers",
    "system",
    "strays_removed",
    "errors",
    "at",
    "health_port",
    "rx_bytes",
    "tx_bytes",
    "last_handshake",
    "load1",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.:/-]{0,24}",
        any::<String>(),
        "\\PC{0,8}\u{1b}\\[[0-9;]{0,6}m\\PC{0,8}",
        Just("10.8.0.0/16".to_owned()),
        Just("vpn.example.com:51820".to_owned()),
        Just("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned()),
        (1usize..5000).prop_map(|n| "x".repeat(n)),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u64..70_000).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..8).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Raw bytes, or JSON that may or may not have the right shape.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

fn peer_stats() -> impl Strategy<Value = PeerStats> {
    (
        any::<[u8; 32]>(),
        prop::option::of(text()),
        prop::option::of(any::<i64>()),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(key, endpoint, handshake, rx, tx)| PeerStats {
            public_key: PublicKey::from_bytes(key),
            endpoint,
            last_handshake: handshake.map(Timestamp),
            rx_bytes: rx,
            tx_bytes: tx,
        })
}

fn node_report() -> impl Strategy<Value = NodeReport> {
    (
        any::<u64>(),
        any::<bool>(),
        prop::collection::vec(peer_stats(), 0..20),
        prop::collection::vec(text(), 0..40),
        any::<i64>(),
        prop::option::of(any::<u16>()),
    )
        .prop_map(|(applied, up, peers, errors, at, health_port)| NodeReport {
            applied_revision: applied,
            interface_up: up,
            listen_port: Some(51820),
            public_key: None,
            peers,
            system: SystemStats::default(),
            strays_removed: Vec::new(),
            errors,
            at: Timestamp(at),
            health_port,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Any body to any route that takes one, as admin: a 4xx or a success, never 5xx.
    #[test]
    fn api_bodies_never_fail_the_server(
        rule in prop::sample::select(
            TABLE.iter().filter(|r| matches!(r.method, Method::Post | Method::Put | Method::Patch)).copied().collect::<Vec<_>>()
        ),
        id in prop_oneof![Just(1u64), Just(2), any::<u64>()],
        body in body(),
    ) {
        let f = fixture();
        let status = send(f, rule.method, &rule.route.path(id), &f.admin, body);
        prop_assert!(!status.is_server_error(), "{} {}: {status}", rule.method, rule.route);
    }

    /// Any report a node token can send is accepted or refused with a 4xx, and what
    /// is kept of it is bounded and clean.
    #[test]
    fn node_reports_are_kept_bounded(report in node_report()) {
        let f = fixture();
        let (node, token) = &f.node;
        let path = vpnctl_api::routes::NODE_REPORT.path(node);
        let status = send(f, Method::Post, &path, token, serde_json::to_vec(&report).unwrap());
        prop_assert!(!status.is_server_error(), "{status}");
        let kept = f.vpn.node_status(vpnctl_core::NodeId(*node)).unwrap();
        prop_assert!(kept.errors.len() <= vpnctl_core::report::MAX_REPORT_ERRORS);
        for e in &kept.errors {
            prop_assert!(e.chars().count() <= vpnctl_core::report::MAX_ERROR_CHARS);
            prop_assert!(!e.chars().any(char::is_control));
        }
        let bounded = vpnctl_core::report::bounded(report);
        for p in &bounded.peers {
            if let Some(ep) = &p.endpoint {
                prop_assert!(ep.chars().count() <= vpnctl_core::report::MAX_ENDPOINT_CHARS);
                prop_assert!(!ep.chars().any(char::is_control));
            }
        }
    }

    /// The node's wire types: arbitrary JSON never panics a decoder, and what
    /// encodes decodes back the same.
    #[test]
    fn wire_types_decode_whatever_arrives(value in json(), report in node_report()) {
        let _ = serde_json::from_value::<NodeReport>(value.clone());
        let _ = serde_json::from_value::<DesiredUpdate>(value);
        let text = serde_json::to_string(&report).unwrap();
        let back: NodeReport = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, report);
    }
}
