//! Moving in and backing up, on real redb files: a wg-quick import with conflicts is
//! refused whole, a clean one keeps keys and addresses; a backup taken while writers
//! go on restores into a new directory table for table, and the node continues with
//! a delta.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vpnctl_core::backup::{self, BackupKey, RestoreKey};
use vpnctl_core::legacy;
use vpnctl_core::wire::DesiredUpdate;
use vpnctl_core::{Endpoint, IssuePeer, KeyPair, NewNode, NewUser, Vpnctl};

fn node(vpn: &Vpnctl) -> vpnctl_core::Node {
    let endpoint: Endpoint = "192.0.2.1:51820".parse().unwrap();
    vpn.register_node(NewNode::new(
        "old",
        "de",
        endpoint,
        "10.8.0.0/16".parse().unwrap(),
    ))
    .unwrap()
}

#[test]
fn wg_quick_import_refuses_conflicts_whole_and_keeps_keys_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let vpn = Vpnctl::open_dir(dir.path()).unwrap();
    let n = node(&vpn);
    let (server, a, b) = (
        KeyPair::generate(),
        KeyPair::generate(),
        KeyPair::generate(),
    );
    let conf = |b_key: &str, b_addr: &str| {
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\nAddress = 10.8.0.1/24\n\n\
             # alice\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.8.0.9/32\n\n\
             # bob\n[Peer]\nPublicKey = {b_key}\nAllowedIPs = {b_addr}/32\n",
            server.private.expose_base64(),
            a.public,
        )
    };
    let a_key = a.public.to_string();
    for (bad, kind) in [
        (conf(&a_key, "10.8.0.10"), "duplicate_key"),
        (conf(&b.public.to_string(), "10.8.0.9"), "duplicate_address"),
        (conf(&b.public.to_string(), "10.9.0.3"), "address"),
    ] {
        let parsed = legacy::parse_wg_quick(&bad).unwrap();
        let report = vpn.import_peers(n.id, &parsed.request(false)).unwrap();
        assert!(!report.applied);
        assert_eq!(report.conflicts.len(), 1, "{report:?}");
        assert_eq!(
            serde_json::to_value(report.conflicts[0].kind).unwrap(),
            kind
        );
        assert!(vpn.users().unwrap().is_empty(), "nothing was written");
    }
    let good = legacy::parse_wg_quick(&conf(&b.public.to_string(), "10.8.0.3")).unwrap();
    let dry = vpn.import_peers(n.id, &good.request(true)).unwrap();
    assert!(!dry.applied && dry.conflicts.is_empty() && dry.peers.len() == 2);
    assert!(vpn.users().unwrap().is_empty(), "a dry run writes nothing");
    let done = vpn.import_peers(n.id, &good.request(false)).unwrap();
    assert!(done.applied, "{done:?}");
    let names: Vec<String> = vpn.users().unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["alice", "bob"]);
    let alice = &vpn.peers_by_public_key(&a.public).unwrap()[0];
    assert_eq!(
        alice.ipv4,
        "10.8.0.9".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(vpn.node(n.id).unwrap().public_key, Some(server.public));
    // The same file again: every key is taken now.
    let again = vpn.import_peers(n.id, &good.request(false)).unwrap();
    assert!(!again.applied && again.conflicts.len() >= 2);
}

#[test]
fn backup_under_writers_restores_identical_records_in_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let vpn = Vpnctl::open_dir(&dir.path().join("data")).unwrap();
    let n = node(&vpn);
    vpn.update_node(
        n.id,
        vpnctl_core::NodePatch {
            public_key: Some(KeyPair::generate().public),
            ..Default::default()
        },
    )
    .unwrap();
    let user = vpn
        .create_user(NewUser {
            name: "writer".into(),
            // The writers keep every other device: on a fast machine thousands
            // in the test's 200 ms (a /24 pool and 1,000 devices ran out).
            device_limit: Some(60_000),
            ..Default::default()
        })
        .unwrap();
    let (uid, nid) = (user.id, n.id);
    let issue = move |vpn: &Vpnctl, device: String| {
        vpn.issue_peer(IssuePeer {
            user: uid,
            node: nid,
            device,
            public_key: None,
        })
        .unwrap()
    };
    for i in 0..20 {
        issue(&vpn, format!("seed{i}"));
    }
    let applied = vpn.node_update(n.id, 0).map(|u| u.revision()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (vpn, stop) = (vpn.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let p = issue(&vpn, format!("w{w}-{i}"));
                    if i % 2 == 1 {
                        vpn.revoke_peer(p.peer.id).unwrap();
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let key = BackupKey::Passphrase {
        passphrase: "correct horse".to_owned().into(),
        work_factor: Some(10),
    };
    let blob = vpn.backup(&key, &[]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let contents = backup::open(&blob, &RestoreKey::passphrase("correct horse")).unwrap();
    let target = dir.path().join("restored");
    assert!(matches!(
        backup::restore(&blob, &RestoreKey::passphrase("wrong"), &target),
        Err(backup::BackupError::WrongPassphrase)
    ));
    assert!(!target.exists(), "nothing written");
    backup::restore(&blob, &RestoreKey::passphrase("correct horse"), &target).unwrap();
    let restored = Vpnctl::open_dir(&target).unwrap();
    assert_eq!(
        restored.dump().unwrap().without_positions(),
        contents.dump.clone().without_positions(),
        "every record byte-equal"
    );
    assert_ne!(
        vpn.dump().unwrap(),
        contents.dump,
        "writes went on after the snapshot"
    );
    // What clients resume from is made anew: the event log gets another identity
    // (a follower of the lost store is refused, whatever numbers it holds), and
    // notifications, broadcasts and node revisions jump to a new epoch, so numbers
    // the lost store gave after the snapshot are never given again. A node,
    // whatever it applied, gets the whole state once.
    assert_ne!(
        restored.event_log_id().unwrap(),
        vpn.event_log_id().unwrap()
    );
    let epoch = restored.node_revision(n.id).unwrap();
    assert_eq!(epoch % vpnctl_core::store::RESTORE_EPOCH, 0, "{epoch}");
    let lost = vpn.node_revision(n.id).unwrap();
    assert!(lost > applied && epoch > lost);
    for after in [0, applied, lost] {
        match restored.node_update(n.id, after).unwrap() {
            DesiredUpdate::Snapshot(s) => assert_eq!(s.revision, epoch),
            other => panic!(
                "after {after}: expected a snapshot, got {}",
                other.revision()
            ),
        }
    }
    // The bot's and the broadcasts' numbering jump with the revisions.
    let dump = restored.dump().unwrap();
    let meta = |key: &str| {
        dump.table("meta")
            .and_then(|t| t.rows.iter().find(|(k, _)| k.as_slice() == key.as_bytes()))
            .map(|(_, v)| u64::from_le_bytes(v.as_slice().try_into().unwrap()))
    };
    assert_eq!(meta("next_notification"), Some(epoch + 1));
    assert_eq!(meta("next_broadcast"), Some(epoch + 1));
    // Events go on from the backup's last: admins read #n+1 after #n.
    let backup_last = contents
        .dump
        .table("events")
        .and_then(|t| t.rows.last())
        .map(|(k, _)| u64::from_le_bytes(k.as_slice().try_into().unwrap()))
        .unwrap();
    let next = restored
        .create_user(NewUser {
            name: "after the restore".into(),
            ..Default::default()
        })
        .unwrap();
    let event = restored.recent_events(1).unwrap().pop().unwrap();
    assert_eq!(event.seq, backup_last + 1);
    assert_eq!(
        event.kind,
        vpnctl_core::EventKind::UserCreated { user: next.id }
    );
    // And the restored store's node goes on from its new revision with deltas.
    issue(&restored, "after the restore".into());
    match restored.node_update(n.id, epoch).unwrap() {
        DesiredUpdate::Delta { from, to, .. } => assert_eq!((from, to), (epoch, epoch + 1)),
        other => panic!("expected a delta, got {}", other.revision()),
    }
    assert!(matches!(
        backup::restore(
            &blob[..blob.len() - 7],
            &RestoreKey::passphrase("correct horse"),
            &dir.path().join("cut")
        ),
        Err(backup::BackupError::Damaged)
    ));
    assert!(!dir.path().join("cut").exists());
}

/// wg-easy 14's `wg0.json`, written by hand from its documented format: names,
/// enabled state and expiry become the users'; the kept private keys are sealed at
/// rest and give the same client config back, byte for byte the keys it had.
#[test]
fn wg_easy_import_keeps_names_states_expiry_and_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let vpn = Vpnctl::open_dir(dir.path()).unwrap();
    let n = node(&vpn);
    let server = KeyPair::generate();
    let clients: Vec<KeyPair> = (0..3).map(|_| KeyPair::generate()).collect();
    let psk = vpnctl_core::PresharedKey::generate();
    let client = |i: usize, name: &str, address: &str, enabled: bool, expired: &str| {
        format!(
            r#""c{i}": {{ "id": "c{i}", "name": "{name}", "address": "{address}",
                "privateKey": "{}", "publicKey": "{}", "preSharedKey": "{}",
                "createdAt": "2024-05-01T10:00:00.000Z", "updatedAt": "2024-05-02T10:00:00.000Z",
                "expiredAt": {expired}, "enabled": {enabled} }}"#,
            clients[i].private.expose_base64(),
            clients[i].public,
            psk.expose_base64(),
        )
    };
    let json = format!(
        r#"{{ "server": {{ "privateKey": "{}", "publicKey": "{}", "address": "10.8.0.1" }},
             "clients": {{ {}, {}, {} }} }}"#,
        server.private.expose_base64(),
        server.public,
        client(0, "Alice's phone", "10.8.0.2", true, "null"),
        client(1, "bob", "10.8.0.7", false, "null"),
        client(
            2,
            "carol",
            "10.8.0.3",
            true,
            r#""2031-01-31T00:00:00.000Z""#
        ),
    );
    let parsed = legacy::parse_wg_easy(&json, legacy::WG_EASY_DEFAULT_PORT).unwrap();
    let done = vpn.import_peers(n.id, &parsed.request(false)).unwrap();
    assert!(done.applied && done.conflicts.is_empty(), "{done:?}");

    let users = vpn.users().unwrap();
    let user = |name: &str| {
        users
            .iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("no user {name} in {users:?}"))
    };
    assert_eq!(users.len(), 3);
    assert_eq!(user("Alice's phone").state, vpnctl_core::UserState::Active);
    assert_eq!(user("bob").state, vpnctl_core::UserState::Disabled);
    assert_eq!(
        user("carol").until,
        Some(vpnctl_core::Timestamp(1_927_584_000))
    );
    assert_eq!(user("Alice's phone").until, None);
    assert_eq!(vpn.node(n.id).unwrap().public_key, Some(server.public));

    for (i, address) in [(0, "10.8.0.2"), (1, "10.8.0.7"), (2, "10.8.0.3")] {
        let peer = &vpn.peers_by_public_key(&clients[i].public).unwrap()[0];
        assert_eq!(peer.ipv4.to_string(), address);
        assert!(peer.has_private_key);
        let config = vpn.peer_config(peer.id).unwrap();
        let text = config.expose_text();
        assert!(
            text.contains(&format!(
                "PrivateKey = {}",
                clients[i].private.expose_base64()
            )),
            "the config carries the key the client already has"
        );
        assert!(text.contains(&format!("PresharedKey = {}", psk.expose_base64())));
        assert!(text.contains(&format!("PublicKey = {}", server.public)));
    }
    drop(vpn);
    // Sealed at rest: no client's private key is in the store file, raw or base64.
    let store = std::fs::read(dir.path().join(vpnctl_core::operations::DB_FILE)).unwrap();
    for c in &clients {
        let raw = c.private.expose_bytes();
        assert!(!store.windows(raw.len()).any(|w| w == raw.as_slice()));
        let b64 = c.private.expose_base64();
        assert!(!store.windows(b64.len()).any(|w| w == b64.as_bytes()));
    }
}
