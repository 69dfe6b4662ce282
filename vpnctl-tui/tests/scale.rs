//! A measurement, not a timed test: the dashboard's worker against a control plane
//! holding 100 nodes, 100,000 users and 200,000 peers (`VPNCTL_SCALE_USERS` to
//! change the users), reading through a loopback relay that counts the bytes it
//! receives. First the initial read, then a steady state of one change per second
//! (an admin extending some user's access) for `VPNCTL_SCALE_SECS` (default 30 s):
//! the bytes per second the dashboard reads, and that every change reached its
//! state. Last, one node's devices evacuated to another: what reading those rows
//! again costs.
//!
//! ```text
//! cargo test --release -p vpnctl-tui --test scale -- --ignored --nocapture
//! ```

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vpnctl_client::ApiClient;
use vpnctl_core::{Policy, Vpnctl};
use vpnctl_testbed::control_plane::ControlPlane;
use vpnctl_testbed::scale::{CountingRelay, build_store};
use vpnctl_tui::app::{Action, App, update};
use vpnctl_tui::runtime::spawn_worker;

const NODES: u32 = 100;

/// Applies the worker's actions until `done` holds or `within` passes.
async fn drive(
    app: &mut App,
    rx: &mut mpsc::UnboundedReceiver<Action>,
    within: Duration,
    done: impl Fn(&App) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    while !done(app) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if let Ok(Some(action)) = tokio::time::timeout(left, rx.recv()).await {
            update(app, action);
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: builds a 100k-user store; run with --release --ignored --nocapture"]
async fn the_dashboard_reads_changes_not_tables() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let users = u32::try_from(env("VPNCTL_SCALE_USERS", 100_000)).unwrap();
    let secs = env("VPNCTL_SCALE_SECS", 30);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let started = Instant::now();
    let user_ids = {
        let vpn = Vpnctl::open_dir_with(&data, Policy::default()).unwrap();
        tokio::task::block_in_place(|| build_store(&vpn, NODES, users)).1
    };
    eprintln!(
        "built {} users, {} peers in {:.1} s",
        user_ids.len(),
        user_ids.len() * 2,
        started.elapsed().as_secs_f64()
    );
    let cp = ControlPlane::builder().data_dir(&data).start().await;
    let target = cp
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("a plain-HTTP control plane");
    let relay = CountingRelay::start(target).await;
    let api = ApiClient::new(&relay.url(), Some(cp.admin_token.clone()), None).unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let _worker = spawn_worker(api, tx);
    let mut app = App::new("scale", vpnctl_core::Timestamp::now());
    let t = Instant::now();
    let expected = user_ids.len();
    assert!(
        drive(&mut app, &mut rx, Duration::from_secs(300), |app| {
            app.connection != vpnctl_tui::app::Connection::Connecting
        })
        .await
    );
    eprintln!(
        "first screen: {} nodes, {} users, {} peers after {:.2} s, {:.2} MB",
        app.nodes.len(),
        app.users.len(),
        app.peers.len(),
        t.elapsed().as_secs_f64(),
        relay.received() as f64 / 1e6
    );
    assert!(
        app.peers.len() <= 1_000,
        "the first page is shown before the rest is read"
    );
    assert!(
        drive(&mut app, &mut rx, Duration::from_secs(300), |app| {
            app.connection == vpnctl_tui::app::Connection::Live
                && app.users.len() == expected
                && app.nodes.len() == NODES as usize
        })
        .await,
        "the first read did not finish"
    );
    let first = relay.received();
    eprintln!(
        "first read: {} users, {} peers, {} nodes, {} events in {:.1} s, {:.1} MB",
        app.users.len(),
        app.peers.len(),
        app.nodes.len(),
        app.events.len(),
        t.elapsed().as_secs_f64(),
        first as f64 / 1e6
    );
    // The same read as a dashboard away from the control plane makes it: gzipped.
    {
        let relay = CountingRelay::start(target).await;
        let remote = ApiClient::new(&relay.url(), Some(cp.admin_token.clone()), None)
            .unwrap()
            .with_compression(true);
        let t = Instant::now();
        let snapshot = vpnctl_tui::runtime::fetch_snapshot(&remote).await.unwrap();
        let packed = relay.received();
        eprintln!(
            "first read gzipped (as over a network): {:.1} s, {:.1} MB",
            t.elapsed().as_secs_f64(),
            packed as f64 / 1e6
        );
        assert_eq!(snapshot.peers.len(), app.peers.len());
        assert!(packed * 3 < first, "{packed} bytes gzipped of {first}");
    }

    // Steady state: one change per second; each must reach the dashboard.
    let admin = cp.vpn.clone();
    let steady = Instant::now();
    let mut late = 0;
    for i in 0..secs {
        let tick = Instant::now();
        let id = user_ids[(usize::try_from(i).unwrap() * 7919) % user_ids.len()];
        let until = vpnctl_core::Timestamp::now().plus_days(40 + i64::try_from(i).unwrap());
        tokio::task::block_in_place(|| admin.set_access(id, Some(until))).unwrap();
        let seen = drive(&mut app, &mut rx, Duration::from_secs(5), |app| {
            app.users
                .iter()
                .find(|u| u.id == id)
                .is_some_and(|u| u.until == Some(until))
        })
        .await;
        if !seen {
            late += 1;
        }
        let rest = Duration::from_secs(1).saturating_sub(tick.elapsed());
        drive(&mut app, &mut rx, rest, |_| false).await;
    }
    let bytes = relay.received() - first;
    let elapsed = steady.elapsed().as_secs_f64();
    eprintln!(
        "steady state: {secs} changes in {elapsed:.1} s, {:.1} KB read, {:.1} KB/s; {late} changes not shown within 5 s",
        bytes as f64 / 1e3,
        bytes as f64 / 1e3 / elapsed
    );
    assert_eq!(late, 0, "every change reaches the dashboard");

    // A broad change: one node's devices moved to another (2,000 at full size), each
    // a revoked and an issued peer. The dashboard reads those rows by id, not its
    // tables again.
    let (from, to) = (app.nodes[0].node.id, app.nodes[1].node.id);
    let devices = app.peers.iter().filter(|p| p.node == from).count();
    let before = relay.received();
    let t = Instant::now();
    let done =
        tokio::task::block_in_place(|| admin.evacuate(from, &vpnctl_core::EvacuateTo::Node(to)))
            .unwrap();
    let written = t.elapsed().as_secs_f64();
    assert_eq!(done.moved.len(), devices, "{:?}", done.failed.first());
    let peers = app.peers.len();
    let shown = drive(&mut app, &mut rx, Duration::from_secs(60), |app| {
        app.peers.len() == peers && !app.peers.iter().any(|p| p.node == from)
    })
    .await;
    eprintln!(
        "evacuation of {devices} devices: written in {written:.2} s, on screen {:.2} s after \
         it began, {:.2} MB read ({} peers shown, {} still on the node)",
        t.elapsed().as_secs_f64(),
        (relay.received() - before) as f64 / 1e6,
        app.peers.len(),
        app.peers.iter().filter(|p| p.node == from).count()
    );
    assert!(shown, "the moved devices reach the dashboard");
    let read = relay.received() - before;
    assert!(
        read < first / 10,
        "the moved rows are read by id ({read} bytes), not the tables again ({first} bytes)"
    );
}
