//! The node feed: a node's desired state, its revision, and the update (nothing,
//! delta or snapshot) a node that applied an older revision needs.

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::Result;
use crate::ipam;
use crate::model::{Node, NodeId, NodeState};
use crate::store::Rx;
use crate::wire::{DesiredUpdate, InterfaceSpec, NodeDesired, PeerDelta};

use super::Vpnctl;

impl Vpnctl {
    /// The current revision of the node's desired state.
    pub fn node_revision(&self, id: NodeId) -> Result<u64> {
        self.read(|rx| rx.node_rev(id).map(|r| r.0))
    }

    /// Everything the node must serve now.
    pub fn node_desired(&self, id: NodeId) -> Result<NodeDesired> {
        self.read(|rx| snapshot(rx, id))
    }

    /// What a node that has applied revision `after` needs: nothing, a delta, or (when
    /// it is far behind, ahead, or the interface changed) a full snapshot.
    pub fn node_update(&self, id: NodeId, after: u64) -> Result<DesiredUpdate> {
        self.read(|rx| {
            let (rev, floor, _) = rx.node_rev(id)?;
            if after == rev {
                return Ok(DesiredUpdate::UpToDate { revision: rev });
            }
            let node = rx.node(id)?;
            if after > rev || after < floor || node.state == NodeState::Disabled {
                return snapshot(rx, id).map(DesiredUpdate::Snapshot);
            }
            let Some(keys) = rx.changed_keys(id, after, rev)? else {
                return snapshot(rx, id).map(DesiredUpdate::Snapshot);
            };
            let mut changes = Vec::with_capacity(keys.len());
            for key in keys {
                changes.push(match rx.desired_spec_for_key(id, &key)? {
                    Some(spec) => PeerDelta::Upsert(spec),
                    None => PeerDelta::Remove(key),
                });
            }
            Ok(DesiredUpdate::Delta {
                from: after,
                to: rev,
                changes,
            })
        })
    }

    /// Peers a node must serve now: its desired table, or none while it is disabled.
    pub fn desired_peer_count(&self, node: &Node) -> Result<u64> {
        if node.state == NodeState::Disabled {
            return Ok(0);
        }
        self.read(|rx| rx.desired_count(node.id))
    }
}

fn snapshot(rx: &Rx<'_>, id: NodeId) -> Result<NodeDesired> {
    let (revision, _, _) = rx.node_rev(id)?;
    let node = rx.node(id)?;
    let enabled = node.state != NodeState::Disabled;
    let peers = if enabled {
        rx.desired_specs(id)?
    } else {
        Vec::new()
    };
    Ok(NodeDesired {
        node: id,
        revision,
        enabled,
        interface: interface_spec(&node),
        peers,
    })
}

/// The interface a node must bring up.
pub fn interface_spec(node: &Node) -> InterfaceSpec {
    InterfaceSpec {
        listen_port: node.listen_port,
        address_v4: Ipv4Net::new(node.gateway_v4(), node.ipv4_pool.prefix_len())
            .expect("prefix checked at registration"),
        address_v6: node
            .ipv6_pool
            .map(|p| Ipv6Net::new(ipam::host_v6(p, 1), p.prefix_len()).expect("valid prefix")),
        mtu: node.mtu,
        transport: node.transport.clone(),
    }
}
