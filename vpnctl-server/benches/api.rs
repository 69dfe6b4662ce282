//! API round trips on loopback: one peer issue through the typed client, and the
//! bytes on the wire of a one-peer Delta answer to a node's long-poll; and a node
//! report of 1,000 peers (every counter grown), straight into `record_report` and
//! as a `POST /v1/nodes/{id}/report` round trip.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vpnctl_api::body::{CreateUser, IssuePeerRequest};
use vpnctl_client::ApiClient;
use vpnctl_core::wire::{DesiredUpdate, NodeReport, PeerStats, SystemStats};
use vpnctl_core::{
    IssuePeer, KeyPair, NewNode, NewUser, NodeId, PublicKey, Scope, Timestamp, Vpnctl,
};
use vpnctl_server::{Server, ServerConfig};
use vpnctl_testbed::control_plane::ControlPlane;

struct Setup {
    _cp: ControlPlane,
    url: String,
    admin: ApiClient,
    node_token: vpnctl_core::Secret,
    node: vpnctl_core::NodeId,
    user: vpnctl_core::UserId,
}

async fn setup() -> Setup {
    let cp = ControlPlane::start().await;
    let admin = cp.admin();
    let node = cp.enrolled_node("bench-1").await;
    let user = admin
        .create_user(&CreateUser {
            name: "bench".into(),
            device_limit: Some(1_000_000),
            ..CreateUser::default()
        })
        .await
        .expect("user");
    Setup {
        url: cp.url.clone(),
        admin,
        node_token: node.token,
        node: node.node.id,
        user: user.id,
        _cp: cp,
    }
}

/// Sends one raw HTTP/1.1 request and returns (header bytes, body bytes) of the answer.
async fn raw_get(url: &str, path: &str, token: &str) -> (usize, usize) {
    let addr = url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    (split, answer.len() - split)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let s = rt.block_on(setup());
    let counter = AtomicU64::new(0);

    c.bench_function("issue_peer_round_trip", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let issued = rt
                .block_on(s.admin.issue_peer(&IssuePeerRequest {
                    user: s.user,
                    node: s.node,
                    device: format!("d{n}"),
                    public_key: None,
                }))
                .expect("issue");
            black_box(issued);
        });
    });

    // Bytes on the wire of a one-peer delta.
    let (headers, body, json) = rt.block_on(async {
        let node_api = s.admin.with_token(s.node_token.clone());
        let before = node_api
            .desired(s.node, 0, Duration::ZERO)
            .await
            .expect("desired")
            .revision();
        s.admin
            .issue_peer(&IssuePeerRequest {
                user: s.user,
                node: s.node,
                device: "wire".into(),
                public_key: None,
            })
            .await
            .expect("issue");
        let update = node_api
            .desired(s.node, before, Duration::ZERO)
            .await
            .expect("delta");
        assert!(
            matches!(&update, DesiredUpdate::Delta { changes, .. } if changes.len() == 1),
            "{update:?}"
        );
        let path = format!("/v1/nodes/{}/desired?after={before}&wait=0", s.node);
        let (headers, body) = raw_get(&s.url, &path, s.node_token.expose()).await;
        let json = serde_json::to_vec(&update).expect("json").len();
        (headers, body, json)
    });
    eprintln!(
        "one-peer Delta on the wire: {} bytes ({headers} header + {body} body; JSON {json} bytes)",
        headers + body
    );
}

const REPORT_PEERS: usize = 1_000;
const REPORT_USERS: usize = 100;

/// A store with one enrolled node carrying [`REPORT_PEERS`] peers of
/// [`REPORT_USERS`] users (each with a quota, so every report charges it).
fn report_store(dir: &std::path::Path) -> (Vpnctl, NodeId, Vec<PublicKey>) {
    let vpn = Vpnctl::open_dir(dir).expect("store");
    let mut new = NewNode::new(
        "bench-r",
        "de-fra",
        "192.0.2.1:51820".parse().expect("endpoint"),
        "10.9.0.0/16".parse().expect("pool"),
    );
    new.public_key = Some(KeyPair::generate().public);
    let node = vpn.register_node(new).expect("node");
    let mut reqs = Vec::with_capacity(REPORT_PEERS);
    for u in 0..REPORT_USERS {
        let user = vpn
            .create_user(NewUser {
                name: format!("u{u}"),
                device_limit: Some(100),
                ..NewUser::default()
            })
            .expect("user");
        vpn.update_user(
            user.id,
            vpnctl_core::UserPatch {
                quota: Some(Some(vpnctl_core::Quota {
                    bytes: u64::MAX / 2,
                    period: vpnctl_core::QuotaPeriod::Monthly,
                })),
                ..vpnctl_core::UserPatch::default()
            },
        )
        .expect("quota");
        for d in 0..REPORT_PEERS / REPORT_USERS {
            reqs.push(IssuePeer {
                user: user.id,
                node: node.id,
                device: format!("d{d}"),
                public_key: Some(KeyPair::generate().public),
            });
        }
    }
    let keys = vpn
        .issue_peers(reqs)
        .expect("peers")
        .into_iter()
        .map(|i| i.peer.public_key)
        .collect();
    (vpn, node.id, keys)
}

/// A report in which every peer's counters grew by `round` KiB since the last one.
fn grown_report(keys: &[PublicKey], round: u64, applied: u64) -> NodeReport {
    NodeReport {
        applied_revision: applied,
        interface_up: true,
        listen_port: Some(51820),
        public_key: None,
        peers: keys
            .iter()
            .map(|&public_key| PeerStats {
                public_key,
                endpoint: Some("198.51.100.7:40000".into()),
                last_handshake: Some(Timestamp(1_800_000_000)),
                rx_bytes: round * 1024,
                tx_bytes: round * 4096,
            })
            .collect(),
        system: SystemStats::default(),
        strays_removed: Vec::new(),
        errors: Vec::new(),
        at: Timestamp(1_800_000_000),
        health_port: None,
    }
}

fn bench_reports(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vpn, node, keys) = report_store(dir.path());
    let applied = vpn.node_revision(node).expect("revision");
    let round = AtomicU64::new(1);
    c.bench_function("record_report_1000_peers", |b| {
        b.iter(|| {
            let r = grown_report(&keys, round.fetch_add(1, Ordering::Relaxed), applied);
            black_box(vpn.record_report(node, &r).expect("record"));
        });
    });
    assert!(
        vpn.usage(
            vpn.peers(vpnctl_core::PeerFilter::default())
                .expect("peers")[0]
                .user
        )
        .expect("usage")
        .total
        .rx > 0,
        "the reports were accounted"
    );

    // The same through HTTP: JSON (~190 KB) + auth + record_report.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let node_token = vpn
        .create_token(Scope::Node(node), "bench node")
        .expect("token")
        .1;
    let node_api = rt.block_on(async {
        let mut config =
            ServerConfig::new(dir.path().to_owned(), "127.0.0.1:0".parse().expect("addr"));
        config.tls = false;
        let server = Server::bind_with(config, vpn.clone()).await.expect("bind");
        let url = server.base_url().to_owned();
        tokio::spawn(server.serve(std::future::pending()));
        ApiClient::new(&url, Some(node_token), None).expect("client")
    });
    c.bench_function("post_report_1000_peers_round_trip", |b| {
        b.iter(|| {
            let r = grown_report(&keys, round.fetch_add(1, Ordering::Relaxed), applied);
            rt.block_on(node_api.report(node, &r)).expect("report");
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = bench, bench_reports
}
criterion_main!(benches);
