//! Timing of our delta backend against the `wg` tool on one wireguard-go interface
//! with 10,000 peers. Ignored by default (about 30 s); run with
//!
//! ```text
//! cargo test -p vpnctl-node --test measure -- --ignored --nocapture
//! ```
//!
//! Requirements checked: a cold apply of 10,000 peers costs at most 1.2× `wg setconf`
//! of the same set; one peer added to a 10,000-peer device is at least 5× faster than
//! `wg syncconf` of the same change (the way most panels apply changes).

mod common;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Node, PORT, many_peers};
use vpnctl_core::keys::{KeyPair, PrivateKey};
use vpnctl_core::reconcile::{PeerChange, PeerSpec};
use vpnctl_node::backend::WgBackend;
use vpnctl_node::reconcile;
use vpnctl_testbed::{Names, run_ok, serial};

const PEERS: usize = 10_000;

fn write_conf(path: &Path, private: &PrivateKey, peers: &[PeerSpec]) {
    let mut text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = {PORT}\n",
        private.expose_base64()
    );
    for p in peers {
        let ips: Vec<String> = p.allowed_ips.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\n",
            p.public_key,
            ips.join(",")
        ));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
#[ignore = "measurement (~30 s): run explicitly with --ignored --nocapture"]
fn delta_apply_vs_wg_setconf_and_syncconf_on_10k_peers() {
    let _serial = serial();
    let names = Names::new();
    let mut node = Node::new(&names);
    let dev = node.iface.to_string();
    let dir = tempfile::tempdir().unwrap();
    let peers = many_peers(PEERS);
    let adds: Vec<PeerChange> = peers.iter().cloned().map(PeerChange::Add).collect();
    let removes: Vec<PeerChange> = peers
        .iter()
        .map(|p| PeerChange::Remove(p.public_key))
        .collect();
    let conf_all = dir.path().join("all.conf");
    write_conf(&conf_all, &node.private, &peers);
    let conf_all = conf_all.to_str().unwrap().to_owned();

    // (2) cold apply of 10,000 peers: ours vs `wg setconf`, alternating.
    let (mut ours_cold, mut setconf) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        ours_cold.push(time(|| node.backend.apply(&adds).unwrap()));
        assert_eq!(node.backend.read().unwrap().peers.len(), PEERS);
        node.backend.apply(&removes).unwrap();
        assert!(node.backend.read().unwrap().peers.is_empty());
        setconf.push(time(|| {
            run_ok("wg", &["setconf", &dev, &conf_all]);
        }));
        assert_eq!(node.backend.read().unwrap().peers.len(), PEERS);
        node.backend.apply(&removes).unwrap();
    }
    node.backend.apply(&adds).unwrap();

    // (1) one peer added to the 10,000-peer device.
    let extra = PeerSpec::new(
        KeyPair::generate().public,
        None,
        ["10.9.0.2/32".parse().unwrap()],
        None,
    );
    let mut desired = peers.clone();
    desired.push(extra.clone());
    let conf_plus = dir.path().join("plus.conf");
    write_conf(&conf_plus, &node.private, &desired);
    let conf_plus = conf_plus.to_str().unwrap().to_owned();
    let remove_extra = [PeerChange::Remove(extra.public_key)];
    let add_extra = [PeerChange::Add(extra.clone())];
    let (mut ours_one, mut ours_reconcile, mut syncconf) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        ours_one.push(time(|| node.backend.apply(&add_extra).unwrap()));
        node.backend.apply(&remove_extra).unwrap();
        ours_reconcile.push(time(|| {
            let outcome = reconcile(&mut node.backend, &desired).unwrap();
            assert_eq!(outcome.added(), 1);
        }));
        node.backend.apply(&remove_extra).unwrap();
        syncconf.push(time(|| {
            run_ok("wg", &["syncconf", &dev, &conf_plus]);
        }));
        assert_eq!(node.backend.read().unwrap().peers.len(), PEERS + 1);
        node.backend.apply(&remove_extra).unwrap();
    }
    let read = median(
        (0..5)
            .map(|_| time(|| drop(node.backend.read().unwrap())))
            .collect(),
    );

    let (cold, set) = (median(ours_cold), median(setconf));
    let (one, rec, sync) = (median(ours_one), median(ours_reconcile), median(syncconf));
    eprintln!(
        "cold apply of {PEERS} peers: ours {:.1} ms, wg setconf {:.1} ms (ratio {:.2})",
        ms(cold),
        ms(set),
        ms(cold) / ms(set)
    );
    eprintln!(
        "+1 peer on {PEERS}: ours apply {:.2} ms, ours reconcile (read+plan+apply) {:.1} ms, wg syncconf {:.1} ms \
         (syncconf/apply {:.0}x, syncconf/reconcile {:.1}x); read of the device {:.1} ms",
        ms(one),
        ms(rec),
        ms(sync),
        ms(sync) / ms(one),
        ms(sync) / ms(rec),
        ms(read)
    );
    assert!(
        ms(cold) <= 1.2 * ms(set),
        "cold apply slower than 1.2x wg setconf"
    );
    assert!(
        ms(sync) >= 5.0 * ms(one),
        "single-peer apply not 5x faster than wg syncconf"
    );
}
