//! Property tests over a real redb store: random sequences of operations never break
//! the invariants the store promises.

mod support;

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use support::{fixture, node, user};
use vpnctl_core::wire::DesiredUpdate;
use vpnctl_core::{IssuePeer, NewInvite, PeerFilter, Redeemer, UserState};

#[derive(Debug, Clone)]
enum Op {
    Issue(usize),
    Revoke(usize),
    Rotate(usize),
    ToggleUser(usize),
    Expire(usize),
    Extend(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..4).prop_map(Op::Issue),
        2 => any::<usize>().prop_map(Op::Revoke),
        1 => any::<usize>().prop_map(Op::Rotate),
        1 => (0usize..4).prop_map(Op::ToggleUser),
        1 => (0usize..4).prop_map(Op::Expire),
        1 => (0usize..4).prop_map(Op::Extend),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Addresses stay unique and inside the pool (never network, gateway or
    /// broadcast); revisions never go backwards; a delta from any earlier revision
    /// reproduces the current desired state.
    #[test]
    fn invariants_hold_under_random_operations(ops in prop::collection::vec(op(), 1..40)) {
        let f = fixture();
        let n = node(&f.vpn, "n1", "10.7.0.0/28"); // 13 usable addresses
        let users: Vec<_> = (0..4).map(|i| user(&f.vpn, &format!("u{i}"), 6)).collect();
        let mut history = vec![f.vpn.node_desired(n.id).unwrap()];
        let mut device = 0;
        for op in ops {
            let peers = f.vpn.peers(PeerFilter::default()).unwrap();
            match op {
                Op::Issue(u) => {
                    device += 1;
                    let _ = f.vpn.issue_peer(IssuePeer {
                        user: users[u].id, node: n.id, device: format!("d{device}"), public_key: None,
                    });
                }
                Op::Revoke(i) if !peers.is_empty() => { f.vpn.revoke_peer(peers[i % peers.len()].id).unwrap(); }
                Op::Rotate(i) if !peers.is_empty() => { let _ = f.vpn.rotate_peer(peers[i % peers.len()].id, None); }
                Op::ToggleUser(u) => {
                    let cur = f.vpn.user(users[u].id).unwrap();
                    let next = if cur.state == UserState::Active { UserState::Disabled } else { UserState::Active };
                    f.vpn.set_user_state(cur.id, next).unwrap();
                }
                Op::Expire(u) => { f.vpn.set_access(users[u].id, Some(support::T0.plus_days(-1))).unwrap(); }
                Op::Extend(u) => { f.vpn.set_access(users[u].id, None).unwrap(); }
                _ => {}
            }
            let now = f.vpn.node_desired(n.id).unwrap();
            prop_assert!(now.revision >= history.last().unwrap().revision, "revision went backwards");
            history.push(now);
        }
        // Addresses: unique, inside the pool, never reserved.
        let peers = f.vpn.peers(PeerFilter::default()).unwrap();
        let mut seen = HashSet::new();
        for p in &peers {
            let last = u32::from(p.ipv4) & 0xff;
            prop_assert!((2..=14).contains(&last) && (u32::from(p.ipv4) >> 8) == (10 << 16 | 7 << 8), "{}", p.ipv4);
            prop_assert!(seen.insert(p.ipv4), "duplicate {}", p.ipv4);
        }
        // The desired state is exactly the peers of users with access.
        let access: HashMap<_, _> = users.iter().map(|u| (u.id, vpnctl_core::access::serves_devices(&f.vpn.user(u.id).unwrap()))).collect();
        let mut want: Vec<_> = peers.iter().filter(|p| access[&p.user]).map(|p| p.public_key).collect();
        want.sort();
        let now = history.last().unwrap().clone();
        let have: Vec<_> = now.peers.iter().map(|p| p.public_key).collect();
        prop_assert_eq!(have, want);
        // A node at any earlier revision catches up exactly.
        for old in &history {
            match f.vpn.node_update(n.id, old.revision).unwrap() {
                DesiredUpdate::UpToDate { revision } => prop_assert_eq!(revision, now.revision),
                DesiredUpdate::Delta { from, to, changes } => {
                    let mut state = old.clone();
                    prop_assert!(state.apply_delta(from, to, &changes));
                    prop_assert_eq!(&state.peers, &now.peers);
                }
                DesiredUpdate::Snapshot(s) => prop_assert_eq!(&s.peers, &now.peers),
            }
        }
    }

    /// However redemptions and uses interleave, an invite is redeemed exactly
    /// min(uses, attempts) times.
    #[test]
    fn invites_are_never_redeemed_more_than_allowed(uses in 1u32..6, attempts in 0usize..12) {
        let f = fixture();
        let (invite, code) = f.vpn.create_invite(NewInvite { uses, ..Default::default() }).unwrap();
        let ok = (0..attempts)
            .filter(|i| f.vpn.redeem_invite(code.expose(), Redeemer {
                telegram_id: Some(*i as i64), name: format!("r{i}"), ..Default::default()
            }).is_ok())
            .count();
        prop_assert_eq!(ok, attempts.min(uses as usize));
        prop_assert_eq!(f.vpn.invite(invite.id).unwrap().uses_left as usize, uses as usize - ok);
    }
}
