//! Real WireGuard (wireguard-go) in network namespaces. Needs root and the tools from
//! `scripts/install-test-deps.sh`; without them these tests fail (never skip).

mod common;

use std::time::{Duration, Instant};

use common::{CLIENT_UNDERLAY, GATEWAY, INET_HOST, Node, PORT, Tunnel, many_peers, ping_until};
use vpnctl_core::keys::{KeyPair, PresharedKey};
use vpnctl_core::reconcile::{PeerChange, PeerSpec, plan};
use vpnctl_node::backend::WgBackend;
use vpnctl_node::netconf::{ExitConfig, nft_table};
use vpnctl_node::reconcile;
use vpnctl_testbed::{ContinuousPing, Names, ping, ping_stats};

#[test]
#[ignore = "helper: runs only when a namespace test re-executes this binary"]
fn netns_child() {
    common::child_main();
}

#[test]
fn tunnel_carries_traffic_with_stats_and_nat_to_the_internet() {
    let t = Tunnel::new();
    assert!(
        ping(&t.cli, GATEWAY, 3),
        "no ping through the tunnel to the node"
    );

    let state = t.node.backend.read().unwrap();
    assert_eq!(state.public_key, Some(t.node.public));
    assert_eq!(state.listen_port, Some(PORT));
    assert_eq!(
        state.specs(),
        vec![t.client_spec.clone()],
        "read back differs from what we applied"
    );
    let peer = state.peer(&t.client_spec.public_key).unwrap();
    assert!(peer.stats.last_handshake.is_some(), "no handshake recorded");
    assert!(
        peer.stats.rx_bytes > 0 && peer.stats.tx_bytes > 0,
        "{:?}",
        peer.stats
    );
    assert_eq!(
        peer.stats.endpoint.map(|e| e.ip().to_string()),
        Some(CLIENT_UNDERLAY.to_owned())
    );

    // The internet host has no route back to the pool: an answer proves masquerade.
    let back = t
        .inet
        .exec("ip", &["route", "get", "198.51.100.2"])
        .unwrap();
    assert!(
        !back.status.success(),
        "inet namespace unexpectedly routes the pool"
    );
    assert!(
        ping(&t.cli, INET_HOST, 3),
        "no ping through the tunnel and NAT to {INET_HOST}"
    );
    let after = t.node.backend.read().unwrap();
    assert!(after.peers[0].stats.rx_bytes > peer.stats.rx_bytes);
}

#[test]
fn removing_the_peer_stops_traffic_and_re_adding_restores_it() {
    let mut t = Tunnel::new();
    assert!(ping(&t.cli, GATEWAY, 2));

    let removed = reconcile(&mut t.node.backend, &[]).unwrap();
    assert_eq!(removed.removed, vec![t.client_spec.public_key]);
    let stats = ping_stats(&t.cli, GATEWAY, 3, 0.2).unwrap();
    assert_eq!(
        stats.received, 0,
        "traffic still flows after the peer was removed"
    );

    let readded = reconcile(&mut t.node.backend, std::slice::from_ref(&t.client_spec)).unwrap();
    assert_eq!(readded.added(), 1);
    // The client re-handshakes once it stops hearing back (WireGuard: 10 s + 5 s).
    assert!(
        ping_until(&t.cli, GATEWAY, 30),
        "traffic did not come back after re-adding the peer"
    );
}

#[test]
fn live_tunnel_loses_no_packet_while_1000_peers_come_and_go() {
    let mut t = Tunnel::new();
    assert!(ping(&t.cli, GATEWAY, 2), "warm-up ping failed");
    let _serial = vpnctl_testbed::serial(); // timing-sensitive: not next to a 10k-peer test

    let base = vec![t.client_spec.clone()];
    let mut with_others = base.clone();
    with_others.extend(many_peers(1000));

    // 60 pings at 10/s = 6 s; churn for the first 4.5 s, at least one full cycle.
    let pinger = ContinuousPing::start(&t.cli, GATEWAY, 60, 0.1);
    let start = Instant::now();
    let mut cycles = 0;
    while cycles == 0 || start.elapsed() < Duration::from_millis(4500) {
        let up = reconcile(&mut t.node.backend, &with_others).unwrap();
        assert_eq!(up.added(), 1000);
        assert_eq!(t.node.backend.read().unwrap().peers.len(), 1001);
        let down = reconcile(&mut t.node.backend, &base).unwrap();
        assert_eq!(down.removed.len(), 1000);
        assert!(!down.removed.contains(&t.client_spec.public_key));
        cycles += 1;
    }
    let stats = pinger.finish();
    eprintln!(
        "churn: {cycles} cycles of +1000/-1000 peers in {:?}; ping {stats:?}",
        start.elapsed()
    );
    assert_eq!(stats.transmitted, 60);
    assert_eq!(stats.lost(), 0, "packets lost during peer churn: {stats:?}");
}

#[test]
fn stray_peer_added_by_hand_is_removed_and_reported() {
    let names = Names::new();
    let mut node = Node::new(&names);
    let desired = many_peers(3);
    reconcile(&mut node.backend, &desired).unwrap();

    let stray = KeyPair::generate().public.to_base64();
    vpnctl_testbed::run_ok(
        "wg",
        &[
            "set",
            node.iface.as_str(),
            "peer",
            &stray,
            "allowed-ips",
            "198.51.100.77/32",
        ],
    );
    assert_eq!(node.backend.read().unwrap().peers.len(), 4);

    let outcome = reconcile(&mut node.backend, &desired).unwrap();
    assert_eq!(outcome.removed.len(), 1);
    assert_eq!(outcome.removed[0].to_base64(), stray);
    assert_eq!(outcome.added() + outcome.updated(), 0);
    assert!(outcome.failed.is_empty());
    let live = node.backend.read().unwrap().specs();
    assert!(plan(&desired, &live).is_empty());
    assert!(reconcile(&mut node.backend, &desired).unwrap().is_noop());
}

#[test]
fn updates_change_only_marked_fields_and_read_back_exactly() {
    let names = Names::new();
    let mut node = Node::new(&names);
    let key = KeyPair::generate().public;
    let first = PeerSpec::new(
        key,
        Some(PresharedKey::generate()),
        [
            "10.8.0.2/32".parse().unwrap(),
            "fd00:8::2/128".parse().unwrap(),
        ],
        None,
    );
    reconcile(&mut node.backend, std::slice::from_ref(&first)).unwrap();
    assert_eq!(node.backend.read().unwrap().specs(), vec![first.clone()]);

    // Preshared key removed (all-zero key), allowed IPs replaced, keepalive set.
    let second = PeerSpec::new(key, None, ["10.8.0.3/32".parse().unwrap()], Some(25));
    let outcome = reconcile(&mut node.backend, std::slice::from_ref(&second)).unwrap();
    assert!(matches!(
        outcome.applied.as_slice(),
        [PeerChange::Update {
            preshared_key: true,
            allowed_ips: true,
            persistent_keepalive: true,
            ..
        }]
    ));
    assert_eq!(node.backend.read().unwrap().specs(), vec![second.clone()]);

    // Only the keepalive changes: allowed IPs must stay (no replace without a change).
    let third = PeerSpec {
        persistent_keepalive: None,
        ..second.clone()
    };
    node.backend
        .apply(&[PeerChange::Update {
            spec: PeerSpec {
                allowed_ips: vec![],
                ..third.clone()
            },
            preshared_key: false,
            allowed_ips: false,
            persistent_keepalive: true,
        }])
        .unwrap();
    assert_eq!(node.backend.read().unwrap().specs(), vec![third]);
}

#[test]
fn netconf_is_idempotent_and_down_removes_only_our_things() {
    let names = Names::new();
    let node = Node::new(&names);
    let ns = &node.ns;
    // Things that are not ours and must survive.
    ns.exec_ok("nft", &["add", "table", "inet", "keepme"]);
    let other = names.iface("o");
    ns.ip(&[
        "link",
        "add",
        &format!("{other}a"),
        "type",
        "veth",
        "peer",
        "name",
        &format!("{other}b"),
    ]);

    let cfg = ExitConfig {
        ipv6: Some("2001:db8:8::1/64".parse().unwrap()),
        mtu: 1380,
        ..node.exit_config()
    };
    let dev = node.iface.as_str();
    let table = nft_table(&node.iface);
    node.netconf_up(&cfg);
    let addrs = ns.ip(&["-br", "addr", "show", "dev", dev]);
    assert!(
        addrs.contains("198.51.100.1/24") && addrs.contains("2001:db8:8::1/64"),
        "{addrs}"
    );
    let link = ns.ip(&["link", "show", "dev", dev]);
    assert!(link.contains("mtu 1380") && link.contains(",UP"), "{link}");
    assert_eq!(
        ns.exec_ok("cat", &["/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );
    assert_eq!(
        ns.exec_ok("cat", &["/proc/sys/net/ipv6/conf/all/forwarding"])
            .trim(),
        "1"
    );
    let rules = ns.exec_ok("nft", &["list", "table", "inet", &table]);
    assert!(
        rules.contains("ip saddr 198.51.100.0/24 oifname != \"") && rules.contains("masquerade"),
        "{rules}"
    );

    // Same config again: nothing changes, nothing duplicated.
    node.netconf_up(&cfg);
    assert_eq!(ns.ip(&["-br", "addr", "show", "dev", dev]), addrs);
    assert_eq!(ns.exec_ok("nft", &["list", "table", "inet", &table]), rules);

    // A changed pool: the old gateway address goes, the new one comes.
    let moved = ExitConfig {
        ipv4: "198.51.100.129/25".parse().unwrap(),
        ipv6: None,
        ..cfg.clone()
    };
    node.netconf_up(&moved);
    let addrs = ns.ip(&["-br", "addr", "show", "dev", dev]);
    assert!(
        addrs.contains("198.51.100.129/25") && !addrs.contains("198.51.100.1/24"),
        "{addrs}"
    );
    assert!(!addrs.contains("2001:db8:8::1"), "{addrs}");

    node.netconf_down();
    node.netconf_down(); // idempotent
    let tables = ns.exec_ok("nft", &["list", "tables"]);
    assert!(
        !tables.contains(&table) && tables.contains("keepme"),
        "{tables}"
    );
    let links = ns.ip(&["-br", "link"]);
    assert!(
        !links.contains(dev) && links.contains(&format!("{other}a")),
        "{links}"
    );
    // wireguard-go exits by itself once its interface is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.backend.read().is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        node.backend.read().is_err(),
        "wireguard-go still answers after down"
    );
}
