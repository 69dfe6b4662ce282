//! Wire types shared by the control plane, the node daemon and every API client.
//!
//! The node protocol is pull-based: a node asks for its desired state after the
//! revision it has applied and gets [`DesiredUpdate`]: nothing new, a delta, or a full
//! snapshot. It then reports a [`NodeReport`].

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::keys::{PresharedKey, PublicKey};
use crate::model::{NodeId, PeerId, UserId};
use crate::time::Timestamp;

/// One peer as WireGuard sees it: what the node must configure (desired) or what it
/// read back from the interface (actual).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    /// Kept sorted and free of duplicates by [`PeerSpec::new`], so that comparing two
    /// specs compares sets.
    pub allowed_ips: Vec<IpNet>,
    /// Seconds; `None` and `Some(0)` both mean off (WireGuard reads an unset value back
    /// as 0).
    pub persistent_keepalive: Option<u16>,
}

impl PeerSpec {
    pub fn new(
        public_key: PublicKey,
        preshared_key: Option<PresharedKey>,
        allowed_ips: impl IntoIterator<Item = IpNet>,
        persistent_keepalive: Option<u16>,
    ) -> Self {
        let mut allowed_ips: Vec<IpNet> = allowed_ips.into_iter().map(|n| n.trunc()).collect();
        allowed_ips.sort_unstable();
        allowed_ips.dedup();
        Self {
            public_key,
            preshared_key,
            allowed_ips,
            persistent_keepalive,
        }
    }

    /// The keepalive in seconds, 0 when off.
    pub fn keepalive(&self) -> u16 {
        self.persistent_keepalive.unwrap_or(0)
    }

    /// Whether both have the same set of allowed IPs, in whatever order.
    pub fn same_allowed_ips(&self, other: &Self) -> bool {
        if self.allowed_ips == other.allowed_ips {
            return true;
        }
        // Tolerate an unsorted list read from a device.
        let mut a: Vec<IpNet> = self.allowed_ips.iter().map(IpNet::trunc).collect();
        let mut b: Vec<IpNet> = other.allowed_ips.iter().map(IpNet::trunc).collect();
        a.sort_unstable();
        a.dedup();
        b.sort_unstable();
        b.dedup();
        a == b
    }
}

/// How the node's WireGuard interface itself must look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    pub listen_port: u16,
    /// The node's gateway address with the pool's prefix, e.g. `10.8.0.1/16`.
    pub address_v4: Ipv4Net,
    pub address_v6: Option<Ipv6Net>,
    pub mtu: u16,
    /// Plain WireGuard, or AmneziaWG with the parameters the interface must use.
    /// Absent in caches written before transports existed: WireGuard.
    #[serde(default)]
    pub transport: crate::transport::Transport,
}

/// Everything a node must serve at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDesired {
    pub node: NodeId,
    pub revision: u64,
    /// False when the node is disabled: it must serve no peer.
    pub enabled: bool,
    pub interface: InterfaceSpec,
    /// Sorted by public key.
    pub peers: Vec<PeerSpec>,
}

/// One entry of a delta: the current truth for one public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "peer")]
pub enum PeerDelta {
    Upsert(PeerSpec),
    Remove(PublicKey),
}

impl PeerDelta {
    pub fn public_key(&self) -> &PublicKey {
        match self {
            Self::Upsert(spec) => &spec.public_key,
            Self::Remove(key) => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DesiredUpdate {
    /// The node already has the newest revision.
    UpToDate {
        revision: u64,
    },
    /// Changes that turn the desired state at `from` into the one at `to`.
    Delta {
        from: u64,
        to: u64,
        changes: Vec<PeerDelta>,
    },
    Snapshot(NodeDesired),
}

impl DesiredUpdate {
    pub fn revision(&self) -> u64 {
        match self {
            Self::UpToDate { revision } => *revision,
            Self::Delta { to, .. } => *to,
            Self::Snapshot(s) => s.revision,
        }
    }
}

impl NodeDesired {
    /// Applies a delta in place. Returns false (and changes nothing) when the delta does
    /// not start at this revision: the caller must then fetch a snapshot.
    pub fn apply_delta(&mut self, from: u64, to: u64, changes: &[PeerDelta]) -> bool {
        if from != self.revision || to < from {
            return false;
        }
        let mut peers: std::collections::BTreeMap<PublicKey, PeerSpec> =
            self.peers.drain(..).map(|p| (p.public_key, p)).collect();
        for change in changes {
            match change {
                PeerDelta::Upsert(spec) => {
                    peers.insert(spec.public_key, spec.clone());
                }
                PeerDelta::Remove(key) => {
                    peers.remove(key);
                }
            }
        }
        self.peers = peers.into_values().collect();
        self.revision = to;
        true
    }
}

/// Live statistics of one peer on a node's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    pub public_key: PublicKey,
    pub endpoint: Option<String>,
    pub last_handshake: Option<Timestamp>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SystemStats {
    pub load1: f64,
    pub cpu_percent: f64,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    pub uptime_secs: u64,
}

/// What a node tells the control plane after each reconcile and periodically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub applied_revision: u64,
    pub interface_up: bool,
    pub listen_port: Option<u16>,
    pub public_key: Option<PublicKey>,
    pub peers: Vec<PeerStats>,
    pub system: SystemStats,
    /// Peers found on the interface that were not desired, and removed.
    pub strays_removed: Vec<PublicKey>,
    pub errors: Vec<String>,
    pub at: Timestamp,
    /// TCP port of the node daemon's health/metrics listener, which the control
    /// plane probes at the node's endpoint host; `None` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_port: Option<u16>,
}

/// A peer as the API lists it for a user, with where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSummary {
    pub id: PeerId,
    pub user: UserId,
    pub node: NodeId,
    pub device: String,
    pub address: IpAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(b: u8) -> PeerSpec {
        PeerSpec::new(
            PublicKey::from_bytes([b; 32]),
            Some(PresharedKey::from_bytes([b; 32])),
            [format!("10.0.0.{b}/32").parse().unwrap()],
            None,
        )
    }

    fn desired(rev: u64, peers: Vec<PeerSpec>) -> NodeDesired {
        NodeDesired {
            node: NodeId(1),
            revision: rev,
            enabled: true,
            interface: InterfaceSpec {
                listen_port: 51820,
                address_v4: "10.0.0.1/24".parse().unwrap(),
                address_v6: None,
                mtu: 1420,
                transport: crate::transport::Transport::Wireguard,
            },
            peers,
        }
    }

    #[test]
    fn delta_applies_only_at_its_base_revision() {
        let mut d = desired(5, vec![spec(1), spec(2)]);
        let changes = vec![
            PeerDelta::Remove(spec(1).public_key),
            PeerDelta::Upsert(spec(3)),
        ];
        assert!(!d.apply_delta(4, 6, &changes));
        assert_eq!(d.revision, 5);
        assert!(d.apply_delta(5, 7, &changes));
        assert_eq!(d.revision, 7);
        assert_eq!(d.peers, vec![spec(2), spec(3)]);
    }

    #[test]
    fn json_shape_is_stable() {
        let update = DesiredUpdate::Delta {
            from: 1,
            to: 2,
            changes: vec![PeerDelta::Remove(PublicKey::from_bytes([0; 32]))],
        };
        let json = serde_json::to_value(&update).unwrap();
        assert_eq!(json["kind"], "delta");
        assert_eq!(json["changes"][0]["op"], "remove");
        let back: DesiredUpdate = serde_json::from_value(json).unwrap();
        assert_eq!(back, update);
    }
}
