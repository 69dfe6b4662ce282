//! Reconcile planning: the pure diff between the peers a node must have and the peers
//! its WireGuard interface has now.
//!
//! [`plan`] does no I/O. The node daemon reads the live interface, plans, and hands the
//! changes to its backend; the backend never replaces the whole peer set, so sessions of
//! peers that did not change are never touched.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;
pub use crate::wire::PeerSpec;

/// One step that turns the actual peer set into the desired one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerChange {
    Remove(PublicKey),
    /// Change the marked fields of an existing peer to those of `spec`; endpoint,
    /// handshake and counters stay as they are.
    Update {
        spec: PeerSpec,
        preshared_key: bool,
        allowed_ips: bool,
        persistent_keepalive: bool,
    },
    Add(PeerSpec),
}

impl PeerChange {
    pub fn public_key(&self) -> &PublicKey {
        match self {
            Self::Remove(key) => key,
            Self::Update { spec, .. } | Self::Add(spec) => &spec.public_key,
        }
    }
}

impl fmt::Display for PeerChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Remove(key) => write!(f, "remove {key}"),
            Self::Add(spec) => write!(f, "add {} allowed-ips {}", spec.public_key, ips(spec)),
            Self::Update {
                spec,
                preshared_key,
                allowed_ips,
                persistent_keepalive,
            } => {
                write!(f, "update {}", spec.public_key)?;
                if *preshared_key {
                    f.write_str(" preshared-key ***")?;
                }
                if *allowed_ips {
                    write!(f, " allowed-ips {}", ips(spec))?;
                }
                if *persistent_keepalive {
                    write!(f, " persistent-keepalive {}", spec.keepalive())?;
                }
                Ok(())
            }
        }
    }
}

fn ips(spec: &PeerSpec) -> String {
    let list: Vec<String> = spec.allowed_ips.iter().map(ToString::to_string).collect();
    list.join(",")
}

/// The minimal list of changes that turns `actual` into `desired`: removals first (so
/// an allowed IP moving between peers is free before it is claimed), then updates,
/// then additions, each group in public-key order. Duplicated keys in `desired`: the
/// last one wins.
pub fn plan(desired: &[PeerSpec], actual: &[PeerSpec]) -> Vec<PeerChange> {
    let mut wanted: HashMap<&PublicKey, &PeerSpec> = HashMap::with_capacity(desired.len());
    for spec in desired {
        wanted.insert(&spec.public_key, spec);
    }
    let mut removes = Vec::new();
    let mut updates = Vec::new();
    let mut seen: HashMap<&PublicKey, ()> = HashMap::with_capacity(actual.len());
    for have in actual {
        if seen.insert(&have.public_key, ()).is_some() {
            continue;
        }
        match wanted.remove(&have.public_key) {
            None => removes.push(PeerChange::Remove(have.public_key)),
            Some(want) => {
                let preshared_key = want.preshared_key != have.preshared_key;
                let allowed_ips = !want.same_allowed_ips(have);
                let persistent_keepalive = want.keepalive() != have.keepalive();
                if preshared_key || allowed_ips || persistent_keepalive {
                    updates.push(PeerChange::Update {
                        spec: want.clone(),
                        preshared_key,
                        allowed_ips,
                        persistent_keepalive,
                    });
                }
            }
        }
    }
    let mut adds: Vec<PeerChange> = wanted
        .into_values()
        .map(|spec| PeerChange::Add(spec.clone()))
        .collect();
    removes.sort_unstable_by(|a, b| a.public_key().cmp(b.public_key()));
    updates.sort_unstable_by(|a, b| a.public_key().cmp(b.public_key()));
    adds.sort_unstable_by(|a, b| a.public_key().cmp(b.public_key()));
    removes.extend(updates);
    removes.extend(adds);
    removes
}

/// Applies `changes` to a peer list the way a WireGuard device would. The node's
/// in-memory simulator uses it, and tests use it to check that a plan is correct.
pub fn apply(actual: &mut Vec<PeerSpec>, changes: &[PeerChange]) {
    for change in changes {
        match change {
            PeerChange::Remove(key) => actual.retain(|p| &p.public_key != key),
            PeerChange::Add(spec) => {
                actual.retain(|p| p.public_key != spec.public_key);
                actual.push(spec.clone());
            }
            PeerChange::Update {
                spec,
                preshared_key,
                allowed_ips,
                persistent_keepalive,
            } => {
                if let Some(have) = actual.iter_mut().find(|p| p.public_key == spec.public_key) {
                    if *preshared_key {
                        have.preshared_key.clone_from(&spec.preshared_key);
                    }
                    if *allowed_ips {
                        have.allowed_ips.clone_from(&spec.allowed_ips);
                    }
                    if *persistent_keepalive {
                        have.persistent_keepalive = spec.persistent_keepalive;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyPair, PresharedKey};
    use proptest::prelude::*;

    fn spec(seed: u8, ip: u8, psk: Option<u8>) -> PeerSpec {
        PeerSpec::new(
            PublicKey::from_bytes([seed; 32]),
            psk.map(|b| PresharedKey::from_bytes([b; 32])),
            [format!("10.0.0.{ip}/32").parse().unwrap()],
            None,
        )
    }

    fn normalized(mut peers: Vec<PeerSpec>) -> Vec<PeerSpec> {
        for p in &mut peers {
            if p.persistent_keepalive == Some(0) {
                p.persistent_keepalive = None;
            }
        }
        peers.sort_by_key(|p| p.public_key);
        peers
    }

    #[test]
    fn empty_plan_for_identical_sets() {
        let peers = vec![spec(1, 2, Some(9)), spec(2, 3, None)];
        assert!(plan(&peers, &peers).is_empty());
    }

    #[test]
    fn keepalive_zero_equals_unset() {
        let mut read_back = spec(1, 2, None);
        read_back.persistent_keepalive = Some(0);
        assert!(plan(&[spec(1, 2, None)], &[read_back]).is_empty());
    }

    #[test]
    fn removes_come_first_and_only_changed_fields_are_marked() {
        let desired = vec![spec(1, 2, Some(1)), spec(3, 9, None)];
        let actual = vec![spec(1, 2, Some(2)), spec(2, 9, None)];
        let changes = plan(&desired, &actual);
        assert_eq!(changes.len(), 3);
        assert_eq!(
            changes[0],
            PeerChange::Remove(PublicKey::from_bytes([2; 32]))
        );
        assert!(matches!(
            &changes[1],
            PeerChange::Update {
                preshared_key: true,
                allowed_ips: false,
                persistent_keepalive: false,
                ..
            }
        ));
        assert!(matches!(&changes[2], PeerChange::Add(s) if s.public_key.as_bytes()[0] == 3));
    }

    #[test]
    fn display_never_shows_the_preshared_key() {
        let psk = PresharedKey::generate();
        let pk = KeyPair::generate().public;
        let want = PeerSpec::new(
            pk,
            Some(psk.clone()),
            ["10.1.0.2/32".parse().unwrap()],
            Some(25),
        );
        let have = PeerSpec::new(pk, None, ["10.1.0.3/32".parse().unwrap()], None);
        let text: Vec<String> = plan(std::slice::from_ref(&want), &[have])
            .iter()
            .chain(plan(&[want], &[]).iter())
            .map(ToString::to_string)
            .collect();
        let text = text.join("\n");
        assert!(text.contains("update"), "{text}");
        assert!(text.contains("10.1.0.2/32"), "{text}");
        assert!(text.contains("persistent-keepalive 25"), "{text}");
        assert!(!text.contains(&psk.expose_base64()));
    }

    fn arb_peers() -> impl Strategy<Value = Vec<PeerSpec>> {
        prop::collection::vec(
            (
                0u8..24,
                0u8..6,
                prop::option::of(0u8..3),
                prop::option::of(0u16..3),
            ),
            0..20,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(k, ip, psk, ka)| {
                    let mut s = spec(k, ip, psk);
                    s.persistent_keepalive = ka;
                    s
                })
                .collect()
        })
    }

    fn dedup_last_wins(peers: &[PeerSpec]) -> Vec<PeerSpec> {
        let mut map = HashMap::new();
        for p in peers {
            map.insert(p.public_key, p.clone());
        }
        map.into_values().collect()
    }

    fn dedup_first_wins(peers: &[PeerSpec]) -> Vec<PeerSpec> {
        let mut out: Vec<PeerSpec> = Vec::new();
        for p in peers {
            if !out.iter().any(|o| o.public_key == p.public_key) {
                out.push(p.clone());
            }
        }
        out
    }

    proptest! {
        #[test]
        fn applying_the_plan_yields_desired(desired in arb_peers(), actual in arb_peers()) {
            let actual = dedup_first_wins(&actual);
            let changes = plan(&desired, &actual);
            let mut state = actual.clone();
            apply(&mut state, &changes);
            prop_assert_eq!(normalized(state.clone()), normalized(dedup_last_wins(&desired)));
            // Idempotent: the result planned against desired is empty.
            prop_assert!(plan(&desired, &state).is_empty());
            // Minimal: at most one change per key, and no change for an equal peer.
            let mut keys: Vec<_> = changes.iter().map(PeerChange::public_key).collect();
            let n = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), n);
        }

        #[test]
        fn planning_desired_against_itself_is_empty(desired in arb_peers()) {
            let desired = dedup_last_wins(&desired);
            prop_assert!(plan(&desired, &desired).is_empty());
        }
    }
}
