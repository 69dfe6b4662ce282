//! The service over a real redb file: rules, errors that write nothing, desired state
//! and revisions, persistence and encryption at rest.

mod support;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use support::{T0, fixture, fixture_with, node, user};
use vpnctl_core::wire::{DesiredUpdate, PeerDelta};
use vpnctl_core::{
    Error, ErrorKind, Grant, IssuePeer, KeyPair, NewInvite, NewUser, NodeState, PeerFilter, Policy,
    Redeemer, StorageError, UserState, Vault, Vpnctl,
};

fn issue(
    vpn: &Vpnctl,
    user: vpnctl_core::UserId,
    node: vpnctl_core::NodeId,
    device: &str,
) -> vpnctl_core::Result<vpnctl_core::IssuedPeer> {
    vpn.issue_peer(IssuePeer {
        user,
        node,
        device: device.into(),
        public_key: None,
    })
}

/// A node as `vpnctl nodes add` registers it (no IPv6 pool, nothing but the pool set):
/// its configs still route IPv6 into the tunnel, ask the node for names, and use an
/// MTU that fits mobile networks.
#[test]
fn default_node_configs_route_everything_and_resolve_on_the_node() {
    let f = fixture();
    let mut new = vpnctl_core::NewNode::new(
        "nl-ams-1",
        "nl-ams",
        "198.51.100.7:51820".parse().unwrap(),
        "10.9.0.0/16".parse().unwrap(),
    );
    new.public_key = Some(vpnctl_core::KeyPair::generate().public);
    let n = f.vpn.register_node(new).unwrap();
    assert_eq!(n.capacity, 0, "the CLI sends no capacity");
    let u = user(&f.vpn, "bob", 3);
    let issued = issue(&f.vpn, u.id, n.id, "phone").unwrap();
    let config = issued.config.unwrap();
    let text = config.expose_text();
    assert!(text.contains("Address = 10.9.0.2/32\n"), "{text}");
    assert!(text.contains("DNS = 10.9.0.1\n"), "{text}");
    assert!(text.contains("MTU = 1280\n"), "{text}");
    assert!(text.contains("AllowedIPs = 0.0.0.0/0, ::/0\n"), "{text}");
}

#[test]
fn issued_config_is_a_complete_wg_quick_config() {
    let f = fixture();
    let n = node(&f.vpn, "de-fra-1", "10.8.0.0/24");
    let u = user(&f.vpn, "alice", 3);
    let issued = issue(&f.vpn, u.id, n.id, "phone").unwrap();
    let config = issued.config.expect("we generated the key");
    let text = config.expose_text();
    assert_eq!(config.file_name(), "de-fra-1-phone.conf");
    assert!(text.starts_with("[Interface]\nPrivateKey = "), "{text}");
    assert!(
        text.contains("Address = 10.8.0.2/32, fd00:8::2/128\n"),
        "{text}"
    );
    assert!(text.contains("DNS = 10.8.0.1\n"));
    assert!(text.contains("MTU = 1280\n"));
    assert!(text.contains(&format!("[Peer]\nPublicKey = {}\n", n.public_key.unwrap())));
    assert!(text.contains("PresharedKey = "));
    assert!(text.contains("Endpoint = 203.0.113.10:51820\n"));
    assert!(text.contains("AllowedIPs = 0.0.0.0/0, ::/0\n"));
    assert!(text.contains("PersistentKeepalive = 25\n"));
    // The private key in the config belongs to the issued public key.
    let line = text
        .lines()
        .find(|l| l.starts_with("PrivateKey = "))
        .unwrap();
    let private = vpnctl_core::PrivateKey::from_base64(&line["PrivateKey = ".len()..]).unwrap();
    assert_eq!(private.public_key(), issued.peer.public_key);
    // Stored (encrypted) and rendered again identically.
    assert_eq!(
        f.vpn.peer_config(issued.peer.id).unwrap().expose_text(),
        text
    );
    // Debug of the config never shows the key.
    assert!(!format!("{config:?}").contains(private.expose_base64().as_str()));
}

#[test]
fn addresses_are_lowest_free_and_never_reserved() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.9.0.0/29"); // offsets 2..=6 usable
    let u = user(&f.vpn, "bob", 100);
    let mut ips = Vec::new();
    for i in 0..5 {
        ips.push(issue(&f.vpn, u.id, n.id, &format!("d{i}")).unwrap().peer);
    }
    let got: Vec<Ipv4Addr> = ips.iter().map(|p| p.ipv4).collect();
    let want: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 9, 0, i)).collect();
    assert_eq!(got, want);
    let err = issue(&f.vpn, u.id, n.id, "d5").unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err}");
    // Freed addresses are reused lowest first.
    f.vpn.revoke_peer(ips[3].id).unwrap();
    f.vpn.revoke_peer(ips[1].id).unwrap();
    assert_eq!(
        issue(&f.vpn, u.id, n.id, "x").unwrap().peer.ipv4,
        Ipv4Addr::new(10, 9, 0, 3)
    );
    assert_eq!(
        issue(&f.vpn, u.id, n.id, "y").unwrap().peer.ipv4,
        Ipv4Addr::new(10, 9, 0, 5)
    );
    // Lookup by (node, address).
    let by_addr = f
        .vpn
        .peer_by_address(n.id, "10.9.0.2".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(by_addr.id, ips[0].id);
}

#[test]
fn a_slash_16_spans_chunks_in_bulk() {
    let f = fixture();
    let n = node(&f.vpn, "big", "10.16.0.0/16");
    let u = f
        .vpn
        .create_user(NewUser {
            name: "bulk".into(),
            device_limit: Some(10_000),
            ..Default::default()
        })
        .unwrap();
    let reqs: Vec<IssuePeer> = (0..4200)
        .map(|i| IssuePeer {
            user: u.id,
            node: n.id,
            device: format!("dev{i}"),
            public_key: None,
        })
        .collect();
    let issued = f.vpn.issue_peers(reqs).unwrap();
    let addrs: HashSet<Ipv4Addr> = issued.iter().map(|p| p.peer.ipv4).collect();
    assert_eq!(addrs.len(), 4200);
    // The 4200th address is past the first 4096-offset chunk: 10.16.16.105.
    assert_eq!(issued[4199].peer.ipv4, Ipv4Addr::new(10, 16, 16, 105));
    assert!(!addrs.contains(&Ipv4Addr::new(10, 16, 0, 0)));
    assert!(!addrs.contains(&Ipv4Addr::new(10, 16, 0, 1)));
    assert_eq!(f.vpn.node_peer_count(n.id).unwrap(), 4200);
    assert_eq!(f.vpn.node_desired(n.id).unwrap().peers.len(), 4200);
}

#[test]
fn bad_input_gets_typed_errors_and_writes_nothing() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = user(&f.vpn, "carol", 1);
    let events_before = f.vpn.recent_events(1000).unwrap().len();
    let rev_before = f.vpn.node_revision(n.id).unwrap();

    let e = issue(&f.vpn, u.id, n.id, "").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Invalid {
                field: "device name",
                ..
            }
        ),
        "{e}"
    );
    let e = issue(&f.vpn, u.id, n.id, &"x".repeat(33)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = issue(&f.vpn, vpnctl_core::UserId(999), n.id, "p").unwrap_err();
    assert_eq!(e.to_string(), "user 999 not found");
    let e = issue(&f.vpn, u.id, vpnctl_core::NodeId(999), "p").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = "not-a-key".parse::<vpnctl_core::PublicKey>().unwrap_err();
    assert!(e.to_string().contains("malformed WireGuard key"));
    let e = f
        .vpn
        .create_user(NewUser {
            name: " ".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("must not be empty"), "{e}");
    let e = f.vpn.register_node(vpnctl_core::NewNode::new(
        "Bad Name",
        "de",
        "203.0.113.1:1".parse().unwrap(),
        "10.0.0.0/24".parse().unwrap(),
    ));
    assert!(e.is_err());
    let e = f.vpn.redeem_invite(
        "no-such-code",
        Redeemer {
            name: "x".into(),
            ..Default::default()
        },
    );
    assert!(matches!(e, Err(Error::InviteNotFound)));

    assert_eq!(f.vpn.recent_events(1000).unwrap().len(), events_before);
    assert_eq!(f.vpn.node_revision(n.id).unwrap(), rev_before);
    assert!(f.vpn.peers(PeerFilter::default()).unwrap().is_empty());

    // Device limit.
    issue(&f.vpn, u.id, n.id, "phone").unwrap();
    let e = issue(&f.vpn, u.id, n.id, "laptop").unwrap_err();
    assert!(matches!(e, Error::DeviceLimit { limit: 1, .. }), "{e}");
    assert_eq!(e.code(), vpnctl_core::ErrorCode::DeviceLimit);

    // Access expired.
    f.vpn.set_access(u.id, Some(T0.plus_days(-1))).unwrap();
    f.vpn
        .update_user(
            u.id,
            vpnctl_core::UserPatch {
                device_limit: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
    let e = issue(&f.vpn, u.id, n.id, "tablet").unwrap_err();
    assert!(matches!(e, Error::AccessExpired { .. }), "{e}");

    // Disabled user.
    f.vpn.set_access(u.id, None).unwrap();
    f.vpn.set_user_state(u.id, UserState::Disabled).unwrap();
    assert!(matches!(
        issue(&f.vpn, u.id, n.id, "tablet"),
        Err(Error::UserDisabled { .. })
    ));
    f.vpn.set_user_state(u.id, UserState::Active).unwrap();

    // Node states.
    f.vpn.set_node_state(n.id, NodeState::Draining).unwrap();
    assert!(matches!(
        issue(&f.vpn, u.id, n.id, "tablet"),
        Err(Error::NodeDraining { .. })
    ));
    f.vpn.set_node_state(n.id, NodeState::Disabled).unwrap();
    assert!(matches!(
        issue(&f.vpn, u.id, n.id, "tablet"),
        Err(Error::NodeDisabled { .. })
    ));

    // A node that has not enrolled.
    let mut new = vpnctl_core::NewNode::new(
        "fresh",
        "nl",
        "198.51.100.7:51820".parse().unwrap(),
        "10.20.0.0/24".parse().unwrap(),
    );
    new.public_key = None;
    let fresh = f.vpn.register_node(new).unwrap();
    assert!(matches!(
        issue(&f.vpn, u.id, fresh.id, "tablet"),
        Err(Error::NodeNotReady { .. })
    ));

    // Same device name twice on one node.
    f.vpn.set_node_state(n.id, NodeState::Active).unwrap();
    let e = issue(&f.vpn, u.id, n.id, "PHONE").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
}

#[test]
fn desired_state_follows_the_rule_and_revisions_only_grow() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = user(&f.vpn, "dave", 3);
    let other = user(&f.vpn, "erin", 3);
    let mut last = f.vpn.node_revision(n.id).unwrap();
    let mut step = |what: &str| {
        let rev = f.vpn.node_revision(n.id).unwrap();
        assert!(
            rev > last,
            "{what}: revision {rev} did not grow past {last}"
        );
        last = rev;
    };
    let p1 = issue(&f.vpn, u.id, n.id, "phone").unwrap().peer;
    step("issue");
    let p2 = issue(&f.vpn, other.id, n.id, "phone").unwrap().peer;
    step("issue 2");
    let keys = |vpn: &Vpnctl| -> Vec<_> {
        vpn.node_desired(n.id)
            .unwrap()
            .peers
            .iter()
            .map(|p| p.public_key)
            .collect()
    };
    assert_eq!(keys(&f.vpn).len(), 2);

    f.vpn.set_user_state(u.id, UserState::Disabled).unwrap();
    step("disable user");
    assert_eq!(keys(&f.vpn), vec![p2.public_key]);
    f.vpn.set_user_state(u.id, UserState::Active).unwrap();
    step("enable user");
    assert_eq!(keys(&f.vpn).len(), 2);

    f.vpn.set_node_state(n.id, NodeState::Disabled).unwrap();
    step("disable node");
    let d = f.vpn.node_desired(n.id).unwrap();
    assert!(!d.enabled && d.peers.is_empty());
    f.vpn.set_node_state(n.id, NodeState::Draining).unwrap();
    step("drain node");
    assert_eq!(keys(&f.vpn).len(), 2, "a draining node keeps serving");

    let rotated = f.vpn.rotate_peer(p1.id, None).unwrap();
    step("rotate");
    assert_eq!(rotated.peer.ipv4, p1.ipv4);
    let now = keys(&f.vpn);
    assert!(now.contains(&rotated.peer.public_key) && !now.contains(&p1.public_key));

    f.vpn.revoke_peer(p2.id).unwrap();
    step("revoke");
    assert_eq!(keys(&f.vpn), vec![rotated.peer.public_key]);

    // A change to another node does not move this node's revision.
    let n2 = node(&f.vpn, "n2", "10.9.0.0/24");
    let before = f.vpn.node_revision(n.id).unwrap();
    issue(&f.vpn, other.id, n2.id, "phone").unwrap();
    assert_eq!(f.vpn.node_revision(n.id).unwrap(), before);
}

#[test]
fn deltas_bring_a_node_from_any_recent_revision_to_now() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = user(&f.vpn, "fay", 10);
    let base = f.vpn.node_desired(n.id).unwrap();
    let a = issue(&f.vpn, u.id, n.id, "a").unwrap().peer;
    let mid = f.vpn.node_desired(n.id).unwrap();
    issue(&f.vpn, u.id, n.id, "b").unwrap();
    let rotated = f.vpn.rotate_peer(a.id, None).unwrap().peer;
    let now = f.vpn.node_desired(n.id).unwrap();

    let mid_rev = mid.revision;
    for start in [base, mid] {
        match f.vpn.node_update(n.id, start.revision).unwrap() {
            DesiredUpdate::Delta { from, to, changes } => {
                let mut state = start.clone();
                assert!(state.apply_delta(from, to, &changes));
                assert_eq!(state.peers, now.peers);
                assert_eq!(to, now.revision);
                if start.revision == mid_rev {
                    assert!(changes.contains(&PeerDelta::Remove(a.public_key)));
                    assert!(
                        changes
                            .iter()
                            .any(|c| c.public_key() == &rotated.public_key)
                    );
                }
            }
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    assert_eq!(
        f.vpn.node_update(n.id, now.revision).unwrap(),
        DesiredUpdate::UpToDate {
            revision: now.revision
        }
    );
    // A node that claims a revision from the future gets a snapshot.
    assert!(matches!(
        f.vpn.node_update(n.id, now.revision + 10).unwrap(),
        DesiredUpdate::Snapshot(_)
    ));
    // An interface change (MTU) forces a snapshot for anyone behind it.
    f.vpn
        .update_node(
            n.id,
            vpnctl_core::NodePatch {
                mtu: Some(1380),
                ..Default::default()
            },
        )
        .unwrap();
    match f.vpn.node_update(n.id, now.revision).unwrap() {
        DesiredUpdate::Snapshot(s) => assert_eq!(s.interface.mtu, 1380),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[test]
fn expiry_takes_peers_off_and_extension_brings_them_back() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = f
        .vpn
        .create_user(NewUser {
            name: "gus".into(),
            until: Some(T0.plus_seconds(3600)),
            ..Default::default()
        })
        .unwrap();
    issue(&f.vpn, u.id, n.id, "phone").unwrap();
    assert!(f.vpn.expire_due().unwrap().is_empty());
    assert_eq!(f.vpn.node_desired(n.id).unwrap().peers.len(), 1);

    f.clock.advance(3600);
    let rev = f.vpn.node_revision(n.id).unwrap();
    assert_eq!(f.vpn.expire_due().unwrap(), vec![u.id]);
    assert!(f.vpn.node_desired(n.id).unwrap().peers.is_empty());
    assert!(f.vpn.node_revision(n.id).unwrap() > rev);
    assert!(f.vpn.user(u.id).unwrap().lapsed);
    // Swept once only.
    assert!(f.vpn.expire_due().unwrap().is_empty());
    assert!(matches!(
        issue(&f.vpn, u.id, n.id, "laptop"),
        Err(Error::AccessExpired { .. })
    ));

    let extended = f.vpn.extend_access(u.id, 30).unwrap();
    assert_eq!(extended.until, Some(f.clock_now().plus_days(30)));
    assert!(!extended.lapsed);
    assert_eq!(f.vpn.node_desired(n.id).unwrap().peers.len(), 1);
    let kinds: Vec<String> = f
        .vpn
        .recent_events(100)
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(kinds.contains(&"access_expired".to_owned()), "{kinds:?}");
}

trait ClockNow {
    fn clock_now(&self) -> vpnctl_core::Timestamp;
}
impl ClockNow for support::Fixture {
    fn clock_now(&self) -> vpnctl_core::Timestamp {
        use vpnctl_core::Clock;
        self.clock.now()
    }
}

#[test]
fn invites_create_users_and_respect_limits() {
    let f = fixture();
    let (invite, code) = f
        .vpn
        .create_invite(NewInvite {
            plan: None,
            label: "friends".into(),
            uses: 2,
            expires_at: Some(T0.plus_days(7)),
            grant: Grant {
                access_days: Some(10),
                device_limit: 2,
                role: vpnctl_core::Role::User,
            },
        })
        .unwrap();
    assert!(code.expose().len() <= 64);
    assert!(
        code.expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    let who = |tg: i64| Redeemer {
        telegram_id: Some(tg),
        name: format!("tg{tg}"),
        locale: vpnctl_core::Locale::Ru,
    };
    let r1 = f.vpn.redeem_invite(code.expose(), who(1)).unwrap();
    assert!(r1.created);
    assert_eq!(r1.user.until, Some(T0.plus_days(10)));
    assert_eq!(r1.user.device_limit, 2);
    assert_eq!(f.vpn.user_by_telegram(1).unwrap().unwrap().id, r1.user.id);
    // The same Telegram user redeeming again extends instead of duplicating.
    let r2 = f.vpn.redeem_invite(code.expose(), who(1)).unwrap();
    assert!(!r2.created);
    assert_eq!(r2.user.id, r1.user.id);
    assert_eq!(r2.user.until, Some(T0.plus_days(20)));
    let e = f.vpn.redeem_invite(code.expose(), who(2)).unwrap_err();
    assert!(matches!(e, Error::InviteUsedUp { .. }), "{e}");
    assert_eq!(f.vpn.invite(invite.id).unwrap().uses_left, 0);

    let (_, expiring) = f
        .vpn
        .create_invite(NewInvite {
            expires_at: Some(T0.plus_seconds(60)),
            ..Default::default()
        })
        .unwrap();
    f.clock.advance(61);
    assert!(matches!(
        f.vpn.redeem_invite(expiring.expose(), who(3)),
        Err(Error::InviteExpired { .. })
    ));
    let (revoked, code3) = f.vpn.create_invite(NewInvite::default()).unwrap();
    f.vpn.revoke_invite(revoked.id).unwrap();
    assert!(matches!(
        f.vpn.redeem_invite(code3.expose(), who(4)),
        Err(Error::InviteRevoked { .. })
    ));
    // Errors never echo the code.
    let e = f
        .vpn
        .redeem_invite(code3.expose(), who(4))
        .unwrap_err()
        .to_string();
    assert!(!e.contains(code3.expose()));
}

#[test]
fn fifty_threads_redeeming_one_code_never_exceed_its_uses() {
    let f = fixture();
    let (invite, code) = f
        .vpn
        .create_invite(NewInvite {
            uses: 7,
            ..Default::default()
        })
        .unwrap();
    let code = Arc::new(code.expose().to_owned());
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (vpn, code, barrier) = (f.vpn.clone(), Arc::clone(&code), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                vpn.redeem_invite(
                    &code,
                    Redeemer {
                        telegram_id: Some(1000 + i),
                        name: format!("u{i}"),
                        ..Default::default()
                    },
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 7);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::InviteUsedUp { .. }))
    );
    assert_eq!(f.vpn.users().unwrap().len(), 7);
    assert_eq!(f.vpn.invite(invite.id).unwrap().uses_left, 0);
}

#[test]
fn concurrent_issues_never_share_an_address() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/22");
    let users: Vec<_> = (0..8)
        .map(|i| user(&f.vpn, &format!("c{i}"), 100))
        .collect();
    let handles: Vec<_> = users
        .into_iter()
        .map(|u| {
            let vpn = f.vpn.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| issue(&vpn, u.id, n.id, &format!("d{i}")).unwrap().peer.ipv4)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<Ipv4Addr> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 200);
    // Lowest-first under contention too: exactly offsets 2..=201.
    let max = all
        .iter()
        .map(|a| u32::from(*a) - u32::from(Ipv4Addr::new(10, 8, 0, 0)))
        .max()
        .unwrap();
    assert_eq!(max, 201);
}

#[test]
fn data_survives_reopen_and_secrets_are_encrypted_at_rest() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = user(&f.vpn, "hal", 3);
    let issued = issue(&f.vpn, u.id, n.id, "phone").unwrap();
    let text = issued.config.unwrap().expose_text().to_owned();
    let private_b64 = text
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .unwrap()
        .to_owned();
    let psk_b64 = text
        .lines()
        .find_map(|l| l.strip_prefix("PresharedKey = "))
        .unwrap()
        .to_owned();
    let private = vpnctl_core::PrivateKey::from_base64(&private_b64).unwrap();
    let psk = vpnctl_core::PresharedKey::from_base64(&psk_b64).unwrap();
    let dir = f.dir.path().to_owned();
    drop(f.vpn);

    let raw = std::fs::read(dir.join("vpnctl.redb")).unwrap();
    for secret in [private.expose_bytes(), psk.expose_bytes()] {
        assert!(
            !raw.windows(32).any(|w| w == secret),
            "a secret is stored in the clear"
        );
    }
    assert!(
        !raw.windows(private_b64.len())
            .any(|w| w == private_b64.as_bytes())
    );

    // Reopened with the right key file: everything is there.
    let vault = Vault::open_or_create(&dir.join("vault.key")).unwrap();
    let vpn = Vpnctl::open(
        &dir.join("vpnctl.redb"),
        vault,
        Arc::new(vpnctl_core::SystemClock),
        Policy::default(),
    )
    .unwrap();
    assert_eq!(vpn.peer_config(issued.peer.id).unwrap().expose_text(), text);
    // A second open of the same file is refused while the first is alive.
    let again = Vpnctl::open(
        &dir.join("vpnctl.redb"),
        Vault::ephemeral(),
        Arc::new(vpnctl_core::SystemClock),
        Policy::default(),
    );
    assert!(
        matches!(again, Err(Error::Storage(StorageError::AlreadyOpen))),
        "{again:?}"
    );
    drop(vpn);
    // The wrong key file is detected before anything is read.
    let wrong = Vpnctl::open(
        &dir.join("vpnctl.redb"),
        Vault::ephemeral(),
        Arc::new(vpnctl_core::SystemClock),
        Policy::default(),
    );
    assert!(
        matches!(wrong, Err(Error::Storage(StorageError::KeyMismatch))),
        "{wrong:?}"
    );
}

#[test]
fn private_keys_can_be_shown_once_or_brought_by_the_user() {
    let f = fixture_with(Policy {
        store_private_keys: false,
        ..Policy::default()
    });
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = user(&f.vpn, "ivy", 3);
    let issued = issue(&f.vpn, u.id, n.id, "phone").unwrap();
    assert!(issued.config.is_some(), "shown once at issue");
    assert!(!issued.peer.has_private_key);
    let e = f.vpn.peer_config(issued.peer.id).unwrap_err();
    assert!(matches!(e, Error::PrivateKeyUnavailable { .. }), "{e}");

    let own = KeyPair::generate();
    let byo = f
        .vpn
        .issue_peer(IssuePeer {
            user: u.id,
            node: n.id,
            device: "laptop".into(),
            public_key: Some(own.public),
        })
        .unwrap();
    assert!(byo.config.is_none());
    assert_eq!(byo.peer.public_key, own.public);
    assert!(
        f.vpn
            .node_desired(n.id)
            .unwrap()
            .peers
            .iter()
            .any(|p| p.public_key == own.public)
    );
    assert_eq!(
        f.vpn.peers_by_public_key(&own.public).unwrap()[0].id,
        byo.peer.id
    );
    // The same key twice on one node is refused.
    let e = f
        .vpn
        .issue_peer(IssuePeer {
            user: u.id,
            node: n.id,
            device: "tablet".into(),
            public_key: Some(own.public),
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

#[test]
fn deleting_frees_everything() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = user(&f.vpn, "jo", 3);
    issue(&f.vpn, u.id, n.id, "phone").unwrap();
    let e = f.vpn.delete_node(n.id, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    f.vpn.delete_user(u.id).unwrap();
    assert!(f.vpn.node_desired(n.id).unwrap().peers.is_empty());
    assert_eq!(f.vpn.node_peer_count(n.id).unwrap(), 0);
    f.vpn.delete_node(n.id, false).unwrap();
    assert!(f.vpn.nodes().unwrap().is_empty());
    // The name is free again.
    node(&f.vpn, "n1", "10.8.0.0/24");
}

#[test]
fn listeners_see_events_and_revisions() {
    let f = fixture();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    f.vpn.subscribe(Arc::new(move |c: &vpnctl_core::Commit| {
        sink.lock()
            .unwrap()
            .push((c.events.len(), c.revisions.clone()));
    }));
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let u = user(&f.vpn, "kim", 3);
    issue(&f.vpn, u.id, n.id, "phone").unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let (events, revs) = &seen[2];
    assert_eq!(*events, 1);
    assert_eq!(revs, &vec![(n.id, f.vpn.node_revision(n.id).unwrap())]);
}

#[test]
fn tokens_are_hashed_scoped_and_revocable() {
    let f = fixture();
    let n = node(&f.vpn, "n1", "10.8.0.0/24");
    let (admin, secret) = f
        .vpn
        .create_token(vpnctl_core::Scope::Admin, "ops")
        .unwrap();
    assert_eq!(
        f.vpn.authenticate(secret.expose()).unwrap(),
        Some(admin.clone())
    );
    assert_eq!(f.vpn.authenticate("vpt_wrong").unwrap(), None);
    assert_eq!(f.vpn.authenticate("").unwrap(), None);
    let raw = std::fs::read(f.dir.path().join("vpnctl.redb")).unwrap();
    assert!(
        !raw.windows(secret.expose().len())
            .any(|w| w == secret.expose().as_bytes())
    );

    // Enrollment: single use, sets the node key, returns a node-scoped token.
    let join = f.vpn.create_join_secret(n.id, 3600).unwrap();
    let key = KeyPair::generate().public;
    let (enrolled, node_token) = f.vpn.enroll_node(join.expose(), key, Some(51999)).unwrap();
    assert_eq!(enrolled.public_key, Some(key));
    assert_eq!(enrolled.listen_port, 51999);
    let t = f.vpn.authenticate(node_token.expose()).unwrap().unwrap();
    assert_eq!(t.scope, vpnctl_core::Scope::Node(n.id));
    let again = f.vpn.enroll_node(join.expose(), key, None).unwrap_err();
    assert_eq!(again.code(), vpnctl_core::ErrorCode::JoinTokenInvalid);
    // Re-enrolling with a new secret revokes the node's old token.
    let join2 = f.vpn.create_join_secret(n.id, 60).unwrap();
    let (_, token2) = f.vpn.enroll_node(join2.expose(), key, None).unwrap();
    assert!(f.vpn.authenticate(node_token.expose()).unwrap().is_none());
    assert!(f.vpn.authenticate(token2.expose()).unwrap().is_some());
    // Expired join secrets are refused.
    let join3 = f.vpn.create_join_secret(n.id, 60).unwrap();
    f.clock.advance(61);
    assert!(f.vpn.enroll_node(join3.expose(), key, None).is_err());

    f.vpn.revoke_token(admin.id).unwrap();
    assert!(f.vpn.authenticate(secret.expose()).unwrap().is_none());
    assert_eq!(
        f.vpn.revoke_token(admin.id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Pages at their edges: a table of exactly `limit` rows has no next page, one more
/// row has; a filter that matches nothing stops after its scan bound with a cursor;
/// a region's page whose rows all sit on one of its nodes.
#[test]
fn pages_end_exactly_where_the_rows_do() {
    let f = fixture();
    let ids: Vec<_> = (0..10)
        .map(|i| user(&f.vpn, &format!("user-{i}"), 100).id)
        .collect();
    let all = vpnctl_core::UserFilter::default();
    let page = f.vpn.users_page(None, 10, &all).unwrap();
    assert_eq!((page.items.len(), page.next), (10, None));
    let page = f.vpn.users_page(None, 9, &all).unwrap();
    assert_eq!((page.items.len(), page.next), (9, Some(ids[8].0)));
    let rest = f.vpn.users_page(Some(ids[8]), 9, &all).unwrap();
    assert_eq!(
        rest.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        [ids[9]]
    );
    assert_eq!(rest.next, None);
    // A filter no row matches reads at most 20 × limit rows, then gives a cursor.
    let none = vpnctl_core::UserFilter {
        name: Some("zzz".into()),
        ..Default::default()
    };
    let cut = f.vpn.users_page(None, 1, &none).unwrap();
    assert!(cut.items.is_empty());
    assert_eq!(cut.next, None, "10 rows are under the bound of 20");
    for i in 10..30 {
        user(&f.vpn, &format!("user-{i}"), 100);
    }
    let cut = f.vpn.users_page(None, 1, &none).unwrap();
    assert!(cut.items.is_empty());
    assert_eq!(cut.next, Some(20), "the scan stopped at its bound");
    let end = f
        .vpn
        .users_page(cut.next.map(vpnctl_core::UserId), 1, &none)
        .unwrap();
    assert_eq!((end.items.len(), end.next), (0, None));

    // Two nodes of one region: ids 1-5 on the first, 6-10 on the second.
    let (a, b) = (
        node(&f.vpn, "fra-1", "10.8.0.0/24"),
        node(&f.vpn, "fra-2", "10.9.0.0/24"),
    );
    for (n, on) in [(0, a.id), (1, b.id)] {
        for d in 0..5 {
            issue(&f.vpn, ids[n], on, &format!("d{d}")).unwrap();
        }
    }
    let region = |after: u64, limit| {
        f.vpn
            .peers_page(
                PeerFilter {
                    region: Some("DE-FRA".into()),
                    ..PeerFilter::default()
                },
                Some(vpnctl_core::PeerId(after)),
                limit,
            )
            .unwrap()
    };
    let ids_of = |p: &vpnctl_core::api::body::Page<vpnctl_core::Peer>| {
        p.items.iter().map(|p| p.id.0).collect::<Vec<_>>()
    };
    // After 5 every row is on the second node.
    let page = region(5, 5);
    assert_eq!((ids_of(&page), page.next), (vec![6, 7, 8, 9, 10], None));
    let page = region(5, 4);
    assert_eq!((ids_of(&page), page.next), (vec![6, 7, 8, 9], Some(9)));
    let page = region(0, 3);
    assert_eq!((ids_of(&page), page.next), (vec![1, 2, 3], Some(3)));
    let page = region(3, 10);
    assert_eq!(
        (ids_of(&page), page.next),
        (vec![4, 5, 6, 7, 8, 9, 10], None)
    );
    let page = region(10, 10);
    assert_eq!((ids_of(&page), page.next), (vec![], None));
}
