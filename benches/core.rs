//! Speed of the SDK's hot paths, against the targets of the core issue:
//!
//!     cargo bench -p vpnctl-benches --bench core
//!
//! Every store benchmark uses a real redb file in a temp dir with durable commits.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vpnctl_core::reconcile::{PeerSpec, plan};
use vpnctl_core::{
    IssuePeer, KeyPair, NewNode, NewUser, Node, PeerFilter, Policy, PresharedKey, PublicKey,
    SystemClock, User, Vault, Vpnctl,
};

struct Bed {
    _dir: tempfile::TempDir,
    vpn: Vpnctl,
}

fn new_bed() -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let vpn = Vpnctl::open(
        &dir.path().join("vpnctl.redb"),
        Vault::ephemeral(),
        Arc::new(SystemClock),
        Policy::default(),
    )
    .unwrap();
    Bed { _dir: dir, vpn }
}

fn node(vpn: &Vpnctl, name: &str, pool: &str) -> Node {
    let mut new = NewNode::new(
        name,
        "bench",
        "203.0.113.1:51820".parse().unwrap(),
        pool.parse().unwrap(),
    );
    new.ipv6_pool = Some("fd00:b::/64".parse().unwrap());
    new.public_key = Some(KeyPair::generate().public);
    vpn.register_node(new).unwrap()
}

fn users(vpn: &Vpnctl, n: usize, devices: u32) -> Vec<User> {
    (0..n)
        .map(|i| {
            vpn.create_user(NewUser {
                name: format!("user{i}"),
                device_limit: Some(devices),
                ..NewUser::default()
            })
            .unwrap()
        })
        .collect()
}

/// `count` peers on `node`, issued in one transaction, spread over `owners`.
fn fill(vpn: &Vpnctl, node: &Node, owners: &[User], count: usize, tag: &str) {
    let reqs = (0..count)
        .map(|i| IssuePeer {
            user: owners[i % owners.len()].id,
            node: node.id,
            device: format!("{tag}{i}"),
            public_key: None,
        })
        .collect();
    vpn.issue_peers(reqs).unwrap();
}

fn keys(c: &mut Criterion) {
    c.bench_function("keypair_generate", |b| b.iter(KeyPair::generate));
}

fn qr(c: &mut Criterion) {
    let bed = new_bed();
    let n = node(&bed.vpn, "qr", "10.8.0.0/16");
    let u = users(&bed.vpn, 1, 3).remove(0);
    let config = bed
        .vpn
        .issue_peer(IssuePeer {
            user: u.id,
            node: n.id,
            device: "phone".into(),
            public_key: None,
        })
        .unwrap()
        .config
        .unwrap();
    let mut g = c.benchmark_group("qr");
    g.bench_function("png_512", |b| b.iter(|| config.qr_png(512).unwrap()));
    g.bench_function("svg", |b| b.iter(|| config.qr_svg().unwrap()));
    g.bench_function("terminal", |b| b.iter(|| config.qr_terminal().unwrap()));
    g.finish();
}

fn issue(c: &mut Criterion) {
    let bed = new_bed();
    let n = node(&bed.vpn, "issue", "10.0.0.0/8");
    let owners = users(&bed.vpn, 1, u32::MAX);
    let mut g = c.benchmark_group("issue");
    let mut i = 0u64;
    g.bench_function("one_peer_durable", |b| {
        b.iter(|| {
            i += 1;
            bed.vpn
                .issue_peer(IssuePeer {
                    user: owners[0].id,
                    node: n.id,
                    device: format!("d{i}"),
                    public_key: None,
                })
                .unwrap()
        });
    });
    // Bulk: 10,000 peers (1,000 users × 10 devices) in one transaction.
    g.sample_size(10);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("bulk_10k_one_txn", |b| {
        b.iter_batched(
            || {
                let bed = new_bed();
                let n = node(&bed.vpn, "bulk", "10.16.0.0/16");
                let owners = users(&bed.vpn, 1000, 10);
                (bed, n, owners)
            },
            |(bed, n, owners)| {
                fill(&bed.vpn, &n, &owners, 10_000, "b");
                bed
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

/// Percentiles of single durable issues, printed for the closing note (criterion
/// reports the mean and median; the target is stated as p50).
fn issue_percentiles() {
    let bed = new_bed();
    let n = node(&bed.vpn, "pct", "10.0.0.0/8");
    let owners = users(&bed.vpn, 1, u32::MAX);
    let mut times: Vec<Duration> = (0..2000)
        .map(|i| {
            let start = Instant::now();
            bed.vpn
                .issue_peer(IssuePeer {
                    user: owners[0].id,
                    node: n.id,
                    device: format!("p{i}"),
                    public_key: None,
                })
                .unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    let pct = |p: usize| times[times.len() * p / 100];
    eprintln!(
        "issue one peer (durable), 2000 runs: p50 {:?} p90 {:?} p99 {:?}",
        pct(50),
        pct(90),
        pct(99)
    );
}

fn allocation(c: &mut Criterion) {
    let bed = new_bed();
    let n = node(&bed.vpn, "alloc", "10.16.0.0/16");
    let owners = users(&bed.vpn, 6000, 10);
    fill(&bed.vpn, &n, &owners, 60_000, "a");
    assert_eq!(bed.vpn.node_peer_count(n.id).unwrap(), 60_000);
    c.bench_function("lowest_free_address_in_slash16_with_60k_taken", |b| {
        b.iter(|| bed.vpn.next_free_address(black_box(n.id)).unwrap());
    });
    // The whole durable issue on the nearly full pool, to compare with an empty one
    // (issue/one_peer_durable): allocation must not grow with the pool's fill.
    let mut i = 0u32;
    let extra = users(&bed.vpn, 1, u32::MAX).remove(0);
    c.bench_function("issue_one_peer_in_slash16_with_60k_taken", |b| {
        b.iter(|| {
            i += 1;
            let issued = bed
                .vpn
                .issue_peer(IssuePeer {
                    user: extra.id,
                    node: n.id,
                    device: format!("x{i}"),
                    public_key: None,
                })
                .unwrap();
            bed.vpn.revoke_peer(issued.peer.id).unwrap();
        });
    });
}

fn spec(i: u32) -> PeerSpec {
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&i.to_le_bytes());
    key[31] = 7;
    PeerSpec::new(
        PublicKey::from_bytes(key),
        Some(PresharedKey::from_bytes([9; 32])),
        [
            format!("10.{}.{}.{}/32", (i >> 16) & 255, (i >> 8) & 255, i & 255)
                .parse()
                .unwrap(),
        ],
        None,
    )
}

fn planning(c: &mut Criterion) {
    let desired: Vec<PeerSpec> = (0..10_000).map(spec).collect();
    let mut actual = desired.clone();
    actual[5000] = spec(20_000); // one removed, one added
    c.bench_function("plan_10k_vs_10k_one_difference", |b| {
        b.iter(|| {
            let changes = plan(black_box(&desired), black_box(&actual));
            assert_eq!(changes.len(), 2);
            changes
        });
    });
}

fn desired_state(c: &mut Criterion) {
    let bed = new_bed();
    let n = node(&bed.vpn, "desired", "10.16.0.0/16");
    let owners = users(&bed.vpn, 1000, 10);
    fill(&bed.vpn, &n, &owners, 10_000, "s");
    c.bench_function("desired_state_10k_peers", |b| {
        b.iter(|| {
            let d = bed.vpn.node_desired(black_box(n.id)).unwrap();
            assert_eq!(d.peers.len(), 10_000);
            d
        });
    });
    let rev = bed.vpn.node_revision(n.id).unwrap();
    let extra = users(&bed.vpn, 1, 1);
    fill(&bed.vpn, &n, &extra, 1, "extra");
    c.bench_function("delta_one_change_on_10k_node", |b| {
        b.iter(|| bed.vpn.node_update(black_box(n.id), rev).unwrap());
    });
}

/// A full API page (1,000 peers) out of 20,000 on two nodes, as the store reads it
/// and as the server sends it (JSON): what `GET /v1/peers` costs without HTTP.
fn paging(c: &mut Criterion) {
    let bed = new_bed();
    let owners = users(&bed.vpn, 2000, 10);
    for (name, pool) in [("page-a", "10.20.0.0/16"), ("page-b", "10.21.0.0/16")] {
        let n = node(&bed.vpn, name, pool);
        fill(&bed.vpn, &n, &owners, 10_000, name);
    }
    let after = Some(bed.vpn.peers(PeerFilter::default()).unwrap()[8_999].id);
    let mut g = c.benchmark_group("peers_page_1000_of_20k");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("read", |b| {
        b.iter(|| {
            let page = bed
                .vpn
                .peers_page(PeerFilter::default(), black_box(after), 1000)
                .unwrap();
            assert_eq!(page.items.len(), 1000);
            page
        });
    });
    // What the server sends: the page written by the API's row writer.
    g.bench_function("read_and_json", |b| {
        b.iter(|| {
            let page = bed
                .vpn
                .peers_page(PeerFilter::default(), black_box(after), 1000)
                .unwrap();
            let mut body = Vec::with_capacity(256_000);
            vpnctl_core::api::json::write_rows(&page.items, &mut body).unwrap();
            body
        });
    });
    let items = bed
        .vpn
        .peers_page(PeerFilter::default(), after, 1000)
        .unwrap()
        .items;
    // The writer against serde's generic path, on the same rows.
    g.bench_function("json_rows", |b| {
        b.iter(|| {
            let mut body = Vec::with_capacity(256_000);
            vpnctl_core::api::json::write_rows(black_box(&items), &mut body).unwrap();
            body
        });
    });
    g.bench_function("json_serde", |b| {
        b.iter(|| {
            let mut body = Vec::with_capacity(256_000);
            serde_json::to_writer(&mut body, black_box(&items)).unwrap();
            body
        });
    });
    let json = serde_json::to_vec(&items).unwrap();
    g.bench_function("parse_json", |b| {
        b.iter(|| serde_json::from_slice::<Vec<vpnctl_core::Peer>>(black_box(&json)).unwrap());
    });
    // What the client reads a page with: the server's layout directly.
    g.bench_function("parse_rows", |b| {
        use vpnctl_core::api::json::JsonRow as _;
        b.iter(|| vpnctl_core::Peer::read_rows(black_box(&json)).unwrap());
    });
    g.finish();
}

/// The lifecycle sweep on 10,000 users whose access ends over the next 30 days (some
/// inside the 3-day reminder window): an idle pass only reads, and a pass that finds
/// one new reminder writes once.
fn lifecycle(c: &mut Criterion) {
    let bed = new_bed();
    let now = bed.vpn.now();
    let reqs: Vec<NewUser> = (0..10_000)
        .map(|i| NewUser {
            name: format!("user{i}"),
            telegram_id: Some(1_000_000 + i64::from(i)),
            until: Some(now.plus_seconds(3600 + i64::from(i) * 259)),
            ..NewUser::default()
        })
        .collect();
    for new in reqs {
        bed.vpn.create_user(new).unwrap();
    }
    bed.vpn.sweep().unwrap();
    c.bench_function("sweep_idle_10k_users", |b| {
        b.iter(|| black_box(bed.vpn.sweep().unwrap()));
    });
    let mut i = 0_i64;
    c.bench_function("sweep_with_one_new_reminder_10k_users", |b| {
        b.iter_batched(
            || {
                i += 1;
                bed.vpn
                    .create_user(NewUser {
                        name: format!("late{i}"),
                        telegram_id: Some(2_000_000 + i),
                        until: Some(now.plus_days(2)),
                        ..NewUser::default()
                    })
                    .unwrap()
            },
            |_| black_box(bed.vpn.sweep().unwrap()),
            BatchSize::PerIteration,
        );
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

fn percentiles(_: &mut Criterion) {
    issue_percentiles();
}

criterion_group! {
    name = benches;
    config = config();
    targets = keys, qr, issue, percentiles, allocation, planning, desired_state, paging, lifecycle
}
criterion_main!(benches);
