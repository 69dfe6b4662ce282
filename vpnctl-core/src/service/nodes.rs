//! Nodes: registration, changes, states, deletion, and what is known of them.

use tracing::instrument;

use crate::error::{Error, Result};
use crate::ipam;
use crate::lifecycle::NodeStatus;
use crate::lifecycle::{Message, Recipient};
use crate::model::{
    EventKind, Node, NodeId, NodeState, Region, validate_display_name, validate_slug,
};
use crate::store::{Rx, Tx};

use super::tx::{fits_qr, notify_user, revoke_in};
use super::{NewNode, NodeOverview, NodePatch, Vpnctl};

impl Vpnctl {
    #[instrument(skip(self, new), fields(actor = %self.actor, node = %new.name))]
    pub fn register_node(&self, new: NewNode) -> Result<Node> {
        validate_slug("node name", &new.name, crate::model::MAX_NODE_NAME)?;
        validate_region(&new.region)?;
        new.endpoint.validate()?;
        ipam::validate_pools(new.ipv4_pool, new.ipv6_pool)?;
        validate_mtu(new.mtu)?;
        crate::transport::validate_transport(&new.transport, new.mtu)?;
        let listen_port = new.listen_port.unwrap_or(new.endpoint.port);
        if listen_port == 0 {
            return Err(Error::invalid("listen port", "must be 1-65535"));
        }
        self.write(|tx| {
            let node = Node {
                id: NodeId(tx.next_id("next_node")?),
                name: new.name.clone(),
                region: new.region.clone(),
                endpoint: new.endpoint.clone(),
                listen_port,
                public_key: new.public_key,
                ipv4_pool: new.ipv4_pool,
                ipv6_pool: new.ipv6_pool,
                dns: new.dns.clone(),
                mtu: new.mtu,
                capacity: new.capacity,
                client_allowed_ips: new.client_allowed_ips.clone(),
                persistent_keepalive: new.persistent_keepalive,
                state: NodeState::Active,
                created_at: tx.now(),
                transport: new.transport.clone(),
            };
            fits_qr(&node)?;
            tx.insert_node(&node)?;
            tx.bump(node.id, None)?;
            tx.event(EventKind::NodeRegistered { node: node.id })?;
            Ok(node)
        })
    }

    pub fn node(&self, id: NodeId) -> Result<Node> {
        self.read(|rx| rx.node(id))
    }

    pub fn node_by_name(&self, name: &str) -> Result<Option<Node>> {
        self.read(|rx| rx.node_by_name(name))
    }

    pub fn nodes(&self) -> Result<Vec<Node>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.nodes())
    }

    /// Peers on the node (all, including those of disabled users).
    pub fn node_peer_count(&self, id: NodeId) -> Result<u64> {
        self.read(|rx| rx.node_rev(id).map(|r| r.2))
    }

    #[instrument(skip(self, patch), fields(actor = %self.actor))]
    pub fn update_node(&self, id: NodeId, patch: NodePatch) -> Result<Node> {
        if let Some(r) = &patch.region {
            validate_region(r)?;
        }
        if let Some(e) = &patch.endpoint {
            e.validate()?;
        }
        if let Some(m) = patch.mtu {
            validate_mtu(m)?;
        }
        if patch.listen_port == Some(0) {
            return Err(Error::invalid("listen port", "must be 1-65535"));
        }
        self.write(|tx| {
            let old = tx.node(id)?;
            let mut node = old.clone();
            macro_rules! set {
                ($($f:ident),*) => {$( if let Some(v) = patch.$f.clone() { node.$f = v; } )*};
            }
            set!(
                region,
                endpoint,
                listen_port,
                dns,
                mtu,
                capacity,
                client_allowed_ips,
                persistent_keepalive
            );
            if let Some(key) = patch.public_key {
                node.public_key = Some(key);
            }
            if let Some(t) = &patch.transport {
                node.transport = t.clone();
            }
            if node == old {
                return Ok(node);
            }
            crate::transport::validate_transport(&node.transport, node.mtu)?;
            fits_qr(&node)?;
            tx.put_node(&node)?;
            let transport_changed = node.transport != old.transport;
            if node.listen_port != old.listen_port || node.mtu != old.mtu || transport_changed {
                // An interface change: the node gets a snapshot.
                tx.bump(id, None)?;
            }
            tx.event(EventKind::NodeUpdated { node: id })?;
            if transport_changed {
                tell_configs_changed(tx, &node)?;
            }
            Ok(node)
        })
    }

    /// Activates, drains (keeps its peers, takes no new ones) or disables (serves
    /// nobody) a node.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn set_node_state(&self, id: NodeId, state: NodeState) -> Result<Node> {
        self.write(|tx| {
            let old = tx.node(id)?;
            if old.state == state {
                return Ok(old);
            }
            let mut node = old.clone();
            node.state = state;
            tx.put_node(&node)?;
            if (old.state == NodeState::Disabled) != (state == NodeState::Disabled) {
                tx.bump(id, None)?;
            }
            tx.event(EventKind::NodeStateChanged { node: id, state })?;
            Ok(node)
        })
    }

    /// Deletes a node. With peers on it this is refused unless `force`, which revokes
    /// them.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn delete_node(&self, id: NodeId, force: bool) -> Result<()> {
        self.write(|tx| {
            let node = tx.node(id)?;
            let peers = tx.node_peer_ids(id)?;
            if !peers.is_empty() && !force {
                return Err(Error::Conflict(format!(
                    "node {id} still has {} peer(s); revoke them or delete with force",
                    peers.len()
                )));
            }
            for peer in peers {
                revoke_in(tx, peer)?;
            }
            tx.delete_node_record(&node)?;
            tx.forget_node_status(id)?;
            tx.event(EventKind::NodeDeleted { node: id })
        })
    }

    /// Every node with its peer count, desired revision and status.
    pub fn node_overviews(&self) -> Result<Vec<NodeOverview>> {
        self.read(|rx| {
            rx.nodes()?
                .into_iter()
                .map(|node| overview(rx, node))
                .collect()
        })
    }

    pub fn node_overview(&self, node: NodeId) -> Result<NodeOverview> {
        self.read(|rx| overview(rx, rx.node(node)?))
    }

    pub fn node_status(&self, node: NodeId) -> Result<NodeStatus> {
        self.read(|rx| {
            rx.node(node)?;
            rx.node_status(node)
        })
    }
}

/// After a transport change every device on the node needs a new config: each
/// user with Telegram is sent theirs (same keys, new parameters), the admins are
/// told how many devices it concerns.
fn tell_configs_changed(tx: &mut Tx<'_>, node: &Node) -> Result<()> {
    let kind = node.transport.kind();
    let peers = tx.node_peers(node.id)?;
    for peer in &peers {
        let user = tx.user(peer.user)?;
        notify_user(
            tx,
            &user,
            Message::ConfigChanged {
                device: peer.device.clone(),
                peer: peer.id,
                node: node.name.clone(),
                region: node.region.name.clone(),
                transport: kind,
            },
        )?;
    }
    tx.notify(
        Recipient::Admins,
        Message::NodeTransportChanged {
            node: node.id,
            name: node.name.clone(),
            transport: kind,
            devices: u32::try_from(peers.len()).unwrap_or(u32::MAX),
        },
    )?;
    Ok(())
}

pub(super) fn overview(rx: &Rx<'_>, node: Node) -> Result<NodeOverview> {
    let (desired_revision, _, peers) = rx.node_rev(node.id)?;
    let status = rx.node_status(node.id)?;
    Ok(NodeOverview {
        node,
        peers,
        desired_revision,
        status,
    })
}

fn validate_region(region: &Region) -> Result<()> {
    validate_slug("region code", &region.code, crate::model::MAX_REGION_CODE)?;
    validate_display_name("region name", &region.name, 64)?;
    Ok(())
}

fn validate_mtu(mtu: u16) -> Result<()> {
    if !(1280..=9000).contains(&mtu) {
        return Err(Error::invalid(
            "mtu",
            format!("{mtu} is outside 1280..=9000"),
        ));
    }
    Ok(())
}
