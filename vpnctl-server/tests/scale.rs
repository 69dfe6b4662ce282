//! A measurement, not a timed test: a control plane holding 100 nodes, 100,000
//! users and 200,000 peers (`VPNCTL_SCALE_USERS` to change the users; two peers
//! each), built through the SDK's bulk paths (an import per node, then one bulk
//! issue per node), served by an in-process vpnctld on loopback; then the calls of
//! issue 16 one at a time and with 16 concurrent clients, and the process's RSS.
//!
//! ```text
//! cargo test --release --workspace --test scale a_hundred_thousand_users -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use vpnctl_api::body::IssuePeerRequest;
use vpnctl_core::{KeyPair, Policy, UserId, Vpnctl};
use vpnctl_testbed::control_plane::ControlPlane;

const NODES: u32 = 100;
/// Pages fetched per measurement: enough that a p99 is not the second-slowest call.
const PAGES: usize = 2000;

fn rss_mb() -> u64 {
    vpnctl_testbed::rss_bytes() >> 20
}

/// `count` calls of `call`, `concurrency` at a time: p50, p99 and calls per second.
async fn measure<F, Fut>(count: usize, concurrency: usize, call: F) -> (Duration, Duration, f64)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut times: Vec<Duration> = futures_util::stream::iter(0..count)
        .map(|i| {
            let fut = call(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.5), at(0.99), rate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: builds a 100k-user store; run with --release --ignored --nocapture"]
async fn a_hundred_thousand_users() {
    let users: u32 = std::env::var("VPNCTL_SCALE_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let started = Instant::now();
    let (nodes, user_ids, issuers) = {
        let vpn = Vpnctl::open_dir_with(&data, Policy::default()).unwrap();
        let (nodes, users) =
            tokio::task::block_in_place(|| vpnctl_testbed::scale::build_store(&vpn, NODES, users));
        // Issuing goes to users of its own, so that no device limit is reached
        // whatever the store's size.
        let issuers: Vec<UserId> = (0..32)
            .map(|i| {
                vpn.create_user(vpnctl_core::NewUser {
                    name: format!("issuer{i}"),
                    device_limit: Some(100_000),
                    ..Default::default()
                })
                .unwrap()
                .id
            })
            .collect();
        (nodes, users, issuers)
    };
    let db = std::fs::metadata(data.join(vpnctl_core::operations::DB_FILE))
        .unwrap()
        .len();
    eprintln!(
        "built {} users, {} peers on {NODES} nodes in {:.1} s; store {} MB; RSS {} MB",
        user_ids.len(),
        user_ids.len() * 2,
        started.elapsed().as_secs_f64(),
        db >> 20,
        rss_mb()
    );

    let opened = Instant::now();
    let cp = ControlPlane::builder().data_dir(&data).start().await;
    eprintln!(
        "vpnctld started in {} ms; RSS {} MB",
        opened.elapsed().as_millis(),
        rss_mb()
    );
    let admin = Arc::new(cp.admin());
    let bot = Arc::new(cp.bot());
    let user_ids = Arc::new(user_ids);
    let mut peak = rss_mb();
    eprintln!("| call | concurrency | p50 | p99 | calls/s | RSS after |");
    eprintln!("|---|---|---|---|---|---|");
    let row =
        |name: &str, c: usize, (p50, p99, rate): (Duration, Duration, f64), peak: &mut u64| {
            let rss = rss_mb();
            *peak = (*peak).max(rss);
            eprintln!(
                "| {name} | {c} | {:.2} ms | {:.2} ms | {rate:.0} | {rss} MB |",
                p50.as_secs_f64() * 1000.0,
                p99.as_secs_f64() * 1000.0
            );
        };
    for c in [1, 16] {
        let (api, ids) = (Arc::clone(&bot), Arc::clone(&user_ids));
        let m = measure(2000, c, move |i| {
            let (api, id) = (Arc::clone(&api), ids[(i * 7919) % ids.len()]);
            async move {
                api.user(id).await.unwrap();
            }
        })
        .await;
        row("one user (bot)", c, m, &mut peak);
        let (api, ids) = (Arc::clone(&bot), Arc::clone(&user_ids));
        let m = measure(2000, c, move |i| {
            let (api, id) = (Arc::clone(&api), ids[(i * 7919) % ids.len()]);
            async move {
                api.peers(vpnctl_api::body::PeerQuery {
                    user: Some(id),
                    node: None,
                    ..vpnctl_api::body::PeerQuery::default()
                })
                .await
                .unwrap();
            }
        })
        .await;
        row("a user's peers (bot)", c, m, &mut peak);
        let api = Arc::clone(&bot);
        let m = measure(200, c, move |_| {
            let api = Arc::clone(&api);
            async move {
                api.nodes().await.unwrap();
            }
        })
        .await;
        row(
            "`GET /v1/nodes` (bot token; the dashboard's list)",
            c,
            m,
            &mut peak,
        );
        let api = Arc::clone(&bot);
        let m = measure(200, c, move |_| {
            let api = Arc::clone(&api);
            async move {
                api.node_briefs().await.unwrap();
            }
        })
        .await;
        row("`GET /v1/nodes/brief` (bot)", c, m, &mut peak);
        let (api, ids) = (Arc::clone(&bot), Arc::clone(&user_ids));
        let m = measure(2000, c, move |i| {
            let (api, id) = (Arc::clone(&api), ids[(i * 7919) % ids.len()]);
            async move {
                api.user_devices(id).await.unwrap();
            }
        })
        .await;
        row("a user's devices (bot's /status)", c, m, &mut peak);
        // Pages from anywhere in the table: the CLI's (1,000, the most a page holds)
        // and a screenful of one region's (10 nodes, ~20,000 peers).
        let cursors = (user_ids.len() * 2)
            .saturating_sub(vpnctl_api::routes::PAGE_MAX)
            .max(1);
        // The store's peers are numbered node by node (imported, then issued): a
        // cursor in the first 90% leaves each region's last node after it.
        let region_cursors = (user_ids.len() * 2 * 9 / 10).max(1);
        let api = Arc::clone(&admin);
        let m = measure(PAGES, c, move |i| {
            let api = Arc::clone(&api);
            async move {
                let page = api
                    .peers_page(&vpnctl_api::body::PeerQuery {
                        after: Some(vpnctl_core::PeerId(
                            u64::try_from((i * 7919) % cursors).unwrap(),
                        )),
                        ..vpnctl_api::body::PeerQuery::default()
                    })
                    .await
                    .unwrap();
                assert_eq!(page.items.len(), vpnctl_api::routes::PAGE_MAX);
            }
        })
        .await;
        row("a page of 1,000 peers (admin)", c, m, &mut peak);
        // The same pages as bytes: what the server spends, without the client's
        // parsing of ~200 KB of JSON per page (on the same two cores).
        let url = format!("{}/v1/peers", cp.url);
        let token = cp.admin_token.expose().to_owned();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let m = measure(PAGES, c, move |i| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            async move {
                let after = (i * 7919) % cursors;
                let r = http
                    .get(format!("{url}?after={after}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                assert!(r.bytes().await.unwrap().len() > 100_000);
            }
        })
        .await;
        row("a page of 1,000 peers, as bytes (admin)", c, m, &mut peak);
        let api = Arc::clone(&admin);
        let m = measure(2000, c, move |i| {
            let api = Arc::clone(&api);
            async move {
                let page = api
                    .peers_page(&vpnctl_api::body::PeerQuery {
                        region: Some(format!("region{}", i % 10)),
                        after: Some(vpnctl_core::PeerId(
                            u64::try_from((i * 7919) % region_cursors).unwrap(),
                        )),
                        limit: Some(100),
                        ..vpnctl_api::body::PeerQuery::default()
                    })
                    .await
                    .unwrap();
                assert!(!page.items.is_empty());
            }
        })
        .await;
        row("a page of 100 peers in a region (admin)", c, m, &mut peak);
        let api = Arc::clone(&admin);
        let url = format!("{}/metrics", cp.url);
        let token = cp.admin_token.expose().to_owned();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let m = measure(200, c, move |_| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            let _ = &api;
            async move {
                let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
        })
        .await;
        row("`/metrics`", c, m, &mut peak);
        let (api, ids, nodes) = (Arc::clone(&admin), issuers.clone(), nodes.clone());
        let m = measure(1000, c, move |i| {
            let api = Arc::clone(&api);
            let user = ids[i % ids.len()];
            let node = nodes[i % nodes.len()];
            async move {
                api.issue_peer(&IssuePeerRequest {
                    user,
                    node,
                    device: format!("bench-{c}-{i}"),
                    public_key: Some(KeyPair::generate().public),
                })
                .await
                .unwrap();
            }
        })
        .await;
        row("issue a peer", c, m, &mut peak);
    }
    let (commits, syncs) = cp.vpn.commit_figures();
    eprintln!("store since start: {commits} commits, {syncs} syncs (group commit)");
    eprintln!("peak RSS seen {peak} MB");
}
