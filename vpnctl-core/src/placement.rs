//! Which nodes take new devices, in what order, with what mark: the one rule behind
//! issuing, evacuation, the bot's server keyboard and /servers, and the dashboard.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::api::body::NodeBrief;
use crate::error::Error;
use crate::ipam;
use crate::lifecycle::Health;
use crate::model::{Node, NodeState};

/// How a node stands for new devices. Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Active, enrolled, has room, healthy: offered first.
    Up,
    /// Takes devices, but its health is degraded: offered with a mark, after the
    /// healthy ones.
    Degraded,
    /// Never reported: not offered to users; an admin may still issue on it.
    Unknown,
    /// Not serving or not heard from: not offered to users; an admin may still
    /// issue on it (the device works once the node is back).
    Down,
    /// As many devices as its capacity.
    Full,
    /// Keeps serving its devices, takes no new ones.
    Draining,
    /// Serves nobody.
    Disabled,
    /// Registered, but its daemon has not joined yet (no public key).
    NotEnrolled,
}

impl Availability {
    /// Whether users are offered this node (the bot's keyboard, automatic
    /// evacuation): it takes devices and is up or degraded.
    pub fn is_offered(self) -> bool {
        matches!(self, Self::Up | Self::Degraded)
    }

    /// Whether a device may be issued here at all. Health does not forbid it: an
    /// admin may place a device on a node that is down or has not reported yet.
    pub fn takes_devices(self) -> bool {
        matches!(self, Self::Up | Self::Degraded | Self::Unknown | Self::Down)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Unknown => "unknown",
            Self::Down => "down",
            Self::Full => "full",
            Self::Draining => "draining",
            Self::Disabled => "disabled",
            Self::NotEnrolled => "not enrolled",
        }
    }
}

impl std::fmt::Display for Availability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many devices a node takes: its `capacity`, where 0 means the pool's usable
/// size, and never more than the pool holds.
pub fn capacity(node: &Node) -> u64 {
    let usable = u64::from(ipam::usable(node.ipv4_pool));
    match node.capacity {
        0 => usable,
        n => u64::from(n).min(usable),
    }
}

/// The brief of `node` with its `health` and its number of devices.
pub fn brief(node: &Node, health: Health, peers: u64) -> NodeBrief {
    NodeBrief {
        id: node.id,
        name: node.name.clone(),
        region: node.region.clone(),
        transport: node.transport.kind(),
        state: node.state,
        enrolled: node.public_key.is_some(),
        health,
        peers,
        capacity: capacity(node),
    }
}

/// A node's standing for new devices, from what the control plane knows of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub availability: Availability,
    /// Devices on the node now.
    pub peers: u64,
    /// Devices it takes in all (see [`capacity`]).
    pub capacity: u64,
}

impl Placement {
    /// Judges `node` with its `health` and its number of devices.
    pub fn of(node: &Node, health: Health, peers: u64) -> Self {
        Self::judge(
            node.state,
            node.public_key.is_some(),
            capacity(node),
            health,
            peers,
        )
    }

    /// Judges a node from its brief, as the bot reads it.
    pub fn of_brief(node: &NodeBrief) -> Self {
        Self::judge(
            node.state,
            node.enrolled,
            node.capacity,
            node.health,
            node.peers,
        )
    }

    fn judge(state: NodeState, enrolled: bool, capacity: u64, health: Health, peers: u64) -> Self {
        let availability = match state {
            NodeState::Disabled => Availability::Disabled,
            NodeState::Draining => Availability::Draining,
            NodeState::Active if !enrolled => Availability::NotEnrolled,
            NodeState::Active if peers >= capacity => Availability::Full,
            NodeState::Active => match health {
                Health::Up => Availability::Up,
                Health::Degraded => Availability::Degraded,
                Health::Unknown => Availability::Unknown,
                Health::Down => Availability::Down,
            },
        };
        Self {
            availability,
            peers,
            capacity,
        }
    }

    /// Share of the capacity in use, 0..=100, rounded down.
    pub fn load_percent(&self) -> u8 {
        if self.capacity == 0 {
            return 100;
        }
        let pct = self.peers.saturating_mul(100) / self.capacity;
        u8::try_from(pct.min(100)).unwrap_or(100)
    }

    /// Free places left.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.peers)
    }

    /// The order in which nodes are offered: better availability first, then the
    /// less loaded (by share of capacity, so a big node is not passed over for a
    /// small empty one).
    pub fn cmp_preference(&self, other: &Self) -> Ordering {
        self.availability.cmp(&other.availability).then_with(|| {
            // peers/capacity compared without division.
            let a = u128::from(self.peers) * u128::from(other.capacity.max(1));
            let b = u128::from(other.peers) * u128::from(self.capacity.max(1));
            a.cmp(&b)
        })
    }

    /// The refusal to issue a device here, or `None` when it may be issued.
    pub fn refusal(&self, node: &Node) -> Option<Error> {
        match self.availability {
            Availability::Up
            | Availability::Degraded
            | Availability::Unknown
            | Availability::Down => None,
            Availability::Full => Some(Error::PoolExhausted { node: node.id }),
            Availability::Draining => Some(Error::NodeDraining { node: node.id }),
            Availability::Disabled => Some(Error::NodeDisabled { node: node.id }),
            Availability::NotEnrolled => Some(Error::NodeNotReady { node: node.id }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;
    use crate::model::{Endpoint, NodeId, Region};
    use crate::time::Timestamp;

    /// A node as `vpnctl nodes add` registers it: capacity omitted (0).
    fn node(pool: &str) -> Node {
        Node {
            id: NodeId(1),
            name: "de-fra-1".into(),
            region: Region {
                code: "de-fra".into(),
                name: "Frankfurt".into(),
            },
            endpoint: Endpoint {
                host: "192.0.2.1".into(),
                port: 51820,
            },
            listen_port: 51820,
            public_key: Some(PublicKey::from_bytes([1; 32])),
            ipv4_pool: pool.parse().unwrap(),
            ipv6_pool: None,
            dns: Vec::new(),
            mtu: 1420,
            capacity: 0,
            client_allowed_ips: Vec::new(),
            persistent_keepalive: 0,
            transport: crate::transport::Transport::Wireguard,
            state: NodeState::Active,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn capacity_zero_is_the_usable_pool() {
        let n = node("10.8.0.0/24");
        assert_eq!(capacity(&n), 253);
        let p = Placement::of(&n, Health::Up, 0);
        assert_eq!(p.availability, Availability::Up);
        assert!(p.availability.is_offered());
        assert_eq!(p.load_percent(), 0);
        assert_eq!(
            Placement::of(&n, Health::Up, 253).availability,
            Availability::Full
        );
        let mut small = n.clone();
        small.capacity = 2;
        assert_eq!(Placement::of(&small, Health::Up, 1).load_percent(), 50);
        assert_eq!(
            Placement::of(&small, Health::Up, 2).availability,
            Availability::Full
        );
        small.capacity = 100_000;
        assert_eq!(capacity(&small), 253, "never more than the pool holds");
    }

    #[test]
    fn marks_follow_state_enrollment_and_health() {
        let mut n = node("10.8.0.0/16");
        assert_eq!(
            Placement::of(&n, Health::Degraded, 5).availability,
            Availability::Degraded
        );
        let down = Placement::of(&n, Health::Down, 5);
        assert!(!down.availability.is_offered());
        assert!(down.refusal(&n).is_none(), "an admin may still issue there");
        n.public_key = None;
        let p = Placement::of(&n, Health::Up, 0);
        assert_eq!(p.availability, Availability::NotEnrolled);
        assert!(matches!(p.refusal(&n), Some(Error::NodeNotReady { .. })));
        n.public_key = Some(PublicKey::from_bytes([1; 32]));
        n.state = NodeState::Draining;
        assert!(matches!(
            Placement::of(&n, Health::Up, 0).refusal(&n),
            Some(Error::NodeDraining { .. })
        ));
        n.state = NodeState::Disabled;
        assert_eq!(
            Placement::of(&n, Health::Up, 0).availability,
            Availability::Disabled
        );
    }

    #[test]
    fn preference_is_health_then_relative_load() {
        let big = node("10.8.0.0/16");
        let mut small = node("10.9.0.0/24");
        small.capacity = 10;
        let big_busy = Placement::of(&big, Health::Up, 100); // 0.15 %
        let small_half = Placement::of(&small, Health::Up, 5); // 50 %
        let degraded_empty = Placement::of(&big, Health::Degraded, 0);
        let mut all = [degraded_empty, small_half, big_busy];
        all.sort_by(Placement::cmp_preference);
        assert_eq!(all, [big_busy, small_half, degraded_empty]);
    }

    /// The bot judges nodes from briefs: every state, enrollment, health, size and
    /// load gives the judgement of the full node.
    #[test]
    fn a_brief_is_judged_as_its_node() {
        let mut seen = std::collections::HashSet::new();
        for state in [NodeState::Active, NodeState::Draining, NodeState::Disabled] {
            for enrolled in [true, false] {
                for (capacity, pool) in [(0, "10.8.0.0/24"), (2, "10.8.0.0/16")] {
                    for health in [Health::Up, Health::Degraded, Health::Unknown, Health::Down] {
                        for peers in [0, 1, 2, 253, 300] {
                            let mut n = node(pool);
                            n.state = state;
                            n.capacity = capacity;
                            if !enrolled {
                                n.public_key = None;
                            }
                            let full = Placement::of(&n, health, peers);
                            let b = brief(&n, health, peers);
                            assert_eq!(Placement::of_brief(&b), full, "{b:?}");
                            seen.insert(full.availability);
                        }
                    }
                }
            }
        }
        assert_eq!(seen.len(), 8, "every availability was judged: {seen:?}");
    }
}
