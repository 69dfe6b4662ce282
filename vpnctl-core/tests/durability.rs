//! Group commit keeps every acknowledged write: concurrent writers share fsyncs, a
//! failing write leaves its neighbours' writes whole, and a process killed with
//! SIGKILL mid-load loses none of the writes it had acknowledged.
//!
//! The crash test runs this same test binary as the writer: with `CHILD_DIR` set, the
//! test function becomes a writer that never stops (8 threads creating users and
//! issuing peers, printing each acknowledged write), and the parent kills it.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use vpnctl_core::{Error, IssuePeer, KeyPair, NewNode, NewUser, Vpnctl};

const CHILD_DIR: &str = "VPNCTL_DURABILITY_CHILD_DIR";
const WRITERS: usize = 8;

/// Writes for ever from `WRITERS` threads: each acknowledged write is one line on
/// stdout (`user NAME` or `peer NAME DEVICE`), printed after the call returned.
fn run_writer(dir: &Path) -> ! {
    let vpn = Vpnctl::open_dir(dir).expect("open store");
    let node = match vpn.node_by_name("crash-node").expect("read nodes") {
        Some(node) => node,
        None => {
            let mut new = NewNode::new(
                "crash-node",
                "de-fra",
                "203.0.113.10:51820".parse().unwrap(),
                "10.80.0.0/16".parse().unwrap(),
            );
            new.public_key = Some(KeyPair::generate().public);
            vpn.register_node(new).expect("register node")
        }
    };
    let run = std::process::id();
    let threads: Vec<_> = (0..WRITERS)
        .map(|t| {
            let vpn = vpn.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let name = format!("r{run}-t{t}-{i}");
                    let user = vpn
                        .create_user(NewUser {
                            name: name.clone(),
                            device_limit: Some(4),
                            ..Default::default()
                        })
                        .expect("create user");
                    ack(&format!("user {name}"));
                    if i % 2 == 0 {
                        vpn.issue_peer(IssuePeer {
                            user: user.id,
                            node: node.id,
                            device: "phone".into(),
                            public_key: Some(KeyPair::generate().public),
                        })
                        .expect("issue peer");
                        ack(&format!("peer {name} phone"));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    std::process::exit(1)
}

fn ack(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        run_writer(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut acked_users = BTreeSet::new();
    let mut acked_peers = BTreeSet::new();
    for cycle in 0..6u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "acknowledged_writes_survive_kill_9",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().unwrap();
        // Kill after a number of acknowledgements that varies by cycle, so the kill
        // lands at different points of the commit/sync cycle.
        let kill_after = 150 + cycle * 97;
        let mut seen = 0u64;
        let started = Instant::now();
        let mut lines = BufReader::new(stdout).lines();
        while seen < kill_after {
            let Some(line) = lines.next() else {
                panic!("the writer stopped after {seen} acknowledgements");
            };
            let line = line.unwrap();
            // The test harness prints its own lines too.
            if let Some(name) = line.strip_prefix("user ") {
                acked_users.insert(name.to_owned());
                seen += 1;
            } else if let Some(rest) = line.strip_prefix("peer ") {
                acked_peers.insert(rest.to_owned());
                seen += 1;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the writer is too slow"
            );
        }
        child.kill().expect("SIGKILL the writer");
        // Everything printed before the kill was acknowledged before it.
        for line in lines.map_while(Result::ok) {
            if let Some(name) = line.strip_prefix("user ") {
                acked_users.insert(name.to_owned());
            } else if let Some(rest) = line.strip_prefix("peer ") {
                acked_peers.insert(rest.to_owned());
            }
        }
        child.wait().unwrap();

        let vpn = Vpnctl::open_dir(&data).expect("reopen after SIGKILL");
        let users: BTreeSet<String> = vpn.users().unwrap().into_iter().map(|u| u.name).collect();
        let lost: Vec<_> = acked_users.difference(&users).collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: {} acknowledged users lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        let by_id: std::collections::BTreeMap<_, _> = vpn
            .users()
            .unwrap()
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        let peers: BTreeSet<String> = vpn
            .peers(vpnctl_core::PeerFilter::default())
            .unwrap()
            .into_iter()
            .map(|p| format!("{} {}", by_id[&p.user], p.device))
            .collect();
        let lost: Vec<_> = acked_peers.difference(&peers).collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: {} acknowledged peers lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        // The desired state a node would be sent holds every peer of the store.
        let node = vpn.node_by_name("crash-node").unwrap().unwrap();
        assert_eq!(
            vpn.desired_peer_count(&node).unwrap(),
            u64::try_from(peers.len()).unwrap(),
            "cycle {cycle}: desired state and peers disagree"
        );
        eprintln!(
            "cycle {cycle}: {} users and {} peers acknowledged, all present",
            acked_users.len(),
            acked_peers.len()
        );
    }
}

#[test]
fn concurrent_writers_share_syncs_and_a_failure_touches_no_neighbour() {
    let f = support::fixture();
    let vpn = f.vpn.clone();
    let per_thread = 150;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let threads: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (vpn, barrier) = (vpn.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let mut made = 0;
                for i in 0..per_thread {
                    // Every third write asks for a Telegram id another writer holds:
                    // refused, and nothing of it written.
                    let telegram_id = if i % 3 == 2 {
                        1
                    } else {
                        (t * 1000 + i) as i64 + 2
                    };
                    match vpn.create_user(NewUser {
                        name: format!("t{t}-{i}"),
                        telegram_id: Some(telegram_id),
                        ..Default::default()
                    }) {
                        Ok(_) => made += 1,
                        Err(Error::Conflict(_)) => {}
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                made
            })
        })
        .collect();
    let made: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let users = vpn.users().unwrap();
    assert_eq!(users.len(), made, "exactly the acknowledged users exist");
    // One of the Telegram id 1 writes won; every other one was refused whole.
    let ones = users.iter().filter(|u| u.telegram_id == Some(1)).count();
    assert_eq!(ones, 1);
    assert_eq!(made, WRITERS * (per_thread - per_thread / 3) + 1);
    let (commits, syncs) = vpn.commit_figures();
    eprintln!("{commits} commits, {syncs} syncs");
    assert!(
        syncs < commits,
        "concurrent writers should share syncs: {commits} commits, {syncs} syncs"
    );
    // A refusal that wrote nothing costs no commit (and so no fsync).
    let before = vpn.commit_figures();
    let gone = vpn.update_user(
        vpnctl_core::UserId(999_999),
        vpnctl_core::UserPatch::default(),
    );
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    assert_eq!(vpn.commit_figures(), before);
    // The ids handed out are dense: no failed write consumed one.
    let mut ids: Vec<u64> = users.iter().map(|u| u.id.0).collect();
    ids.sort_unstable();
    assert_eq!(ids.last().copied(), Some(u64::try_from(made).unwrap()));
}
