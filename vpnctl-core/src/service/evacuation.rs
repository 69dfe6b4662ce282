//! Evacuation: moving every device off a node.

use tracing::instrument;

use crate::error::{Error, Result};
use crate::keys::PresharedKey;
use crate::lifecycle::{Health, Message, Recipient};
use crate::model::{EventKind, Node, NodeId, NodeState, UserId};
use crate::placement::Placement;
use crate::store::Tx;

use super::tx::{FreshKeys, issue_in, notify_user, revoke_in};
use super::{EvacuateTo, Evacuation, IssuePeer, Moved, Vpnctl};

impl Vpnctl {
    /// Moves every device off `node`: each is re-issued on a healthy node (new keys
    /// when we made the old ones, the same public key when the user brought it), the
    /// old peer is revoked, the node is set to draining, and each user is told.
    /// Devices that fit nowhere stay and are listed in `failed`.
    #[instrument(skip(self), fields(actor = %self.actor()))]
    pub fn evacuate(&self, node: NodeId, to: &EvacuateTo) -> Result<Evacuation> {
        let count = self.read(|rx| rx.node_peers(node))?.len();
        let mut keys: Vec<FreshKeys> = (0..count).map(|_| FreshKeys::new(None)).collect();
        let store_private = self.policy().store_private_keys;
        self.write(|tx| {
            let source = tx.node(node)?;
            let mut targets = candidates(tx, &source, to)?;
            if targets.is_empty() {
                return Err(Error::Conflict(format!(
                    "no healthy active node to move the devices of {} to",
                    source.name
                )));
            }
            let mut out = Evacuation {
                node,
                moved: Vec::new(),
                failed: Vec::new(),
            };
            for peer_id in tx.node_peer_ids(node)? {
                let rec = tx.peer(peer_id)?;
                let user = tx.user(rec.peer.user)?;
                // Without a stored private key (the user's own key, or a policy that
                // never stores them) the device keeps its keys, preshared key
                // included: its owner only needs the new endpoint, address and
                // server key. Otherwise it gets fresh keys and a config from the bot.
                let keep = rec.private_key_sealed.is_none();
                let fresh = if keep {
                    let bound = rec.peer.public_key.as_bytes();
                    let psk =
                        PresharedKey::from_bytes(*tx.vault.open(&rec.preshared_key_sealed, bound)?);
                    FreshKeys::keep(rec.peer.public_key, psk)
                } else {
                    keys.pop().unwrap_or_else(|| FreshKeys::new(None))
                };
                // Same region first, then the node placement prefers; capacity
                // is checked again by `issue_in`.
                targets.sort_by(|a, b| {
                    (a.node.region.code != source.region.code)
                        .cmp(&(b.node.region.code != source.region.code))
                        .then_with(|| a.placement.cmp_preference(&b.placement))
                        .then_with(|| a.node.id.cmp(&b.node.id))
                });
                let mut placed = None;
                let mut last_error = String::from("no target");
                for target in &mut targets {
                    let device = free_device_name(tx, user.id, target.node.id, &rec.peer.device)?;
                    let req = IssuePeer {
                        user: user.id,
                        node: target.node.id,
                        device: device.clone(),
                        public_key: keep.then_some(rec.peer.public_key),
                    };
                    // Access and the device limit are not re-judged: the device
                    // exists already and only changes node.
                    match issue_in(
                        tx,
                        &req,
                        &device,
                        &fresh,
                        &target.node,
                        store_private,
                        false,
                    ) {
                        Ok(issued) => {
                            target.placement = Placement::of(
                                &target.node,
                                target.health,
                                target.placement.peers + 1,
                            );
                            placed = Some((issued.peer, target.node.clone()));
                            break;
                        }
                        // Only "this node cannot take it" moves on to the next
                        // target; these are all found before anything is written.
                        Err(
                            e @ (Error::PoolExhausted { .. }
                            | Error::NodeDraining { .. }
                            | Error::NodeDisabled { .. }
                            | Error::NodeNotReady { .. }
                            | Error::Conflict(_)),
                        ) => last_error = e.to_string(),
                        Err(e) => return Err(e),
                    }
                }
                let Some((new_peer, target)) = placed else {
                    out.failed.push((peer_id, last_error));
                    continue;
                };
                revoke_in(tx, peer_id)?;
                notify_user(
                    tx,
                    &user,
                    Message::DeviceMoved {
                        device: rec.peer.device.clone(),
                        new_peer: new_peer.id,
                        from_node: source.name.clone(),
                        to_node: target.name.clone(),
                        to_region: target.region.name.clone(),
                    },
                )?;
                out.moved.push(Moved {
                    user: user.id,
                    device: new_peer.device.clone(),
                    old_peer: peer_id,
                    new_peer: new_peer.id,
                    to: target.id,
                });
            }
            if source.state == NodeState::Active {
                let mut drained = source.clone();
                drained.state = NodeState::Draining;
                tx.put_node(&drained)?;
                tx.event(EventKind::NodeStateChanged {
                    node,
                    state: NodeState::Draining,
                })?;
            }
            let moved = u32::try_from(out.moved.len()).unwrap_or(u32::MAX);
            let failed = u32::try_from(out.failed.len()).unwrap_or(u32::MAX);
            tx.event(EventKind::NodeEvacuated {
                node,
                moved,
                failed,
            })?;
            tx.notify(
                Recipient::Admins,
                Message::NodeEvacuated {
                    node,
                    name: source.name.clone(),
                    moved,
                    failed,
                },
            )?;
            Ok(out)
        })
    }
}

/// A node devices may move to, with its standing.
struct Target {
    node: Node,
    health: Health,
    placement: Placement,
}

/// The nodes that may take the devices of `source`: for `Auto` and `Region` those
/// offered to users (see [`Placement`]), for a named node that one if it takes
/// devices at all.
fn candidates(tx: &Tx<'_>, source: &Node, to: &EvacuateTo) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for id in tx.node_ids()? {
        if id == source.id {
            continue;
        }
        let node = tx.node(id)?;
        let health = tx.node_status(id)?.health;
        let placement = Placement::of(&node, health, tx.node_peer_count(id)?);
        let offered = placement.availability.is_offered();
        let wanted = match to {
            EvacuateTo::Auto => offered,
            EvacuateTo::Region(code) => offered && node.region.code.eq_ignore_ascii_case(code),
            EvacuateTo::Node(target) => *target == id && placement.availability.takes_devices(),
        };
        if wanted {
            out.push(Target {
                node,
                health,
                placement,
            });
        }
    }
    if let EvacuateTo::Node(target) = to
        && out.is_empty()
    {
        let node = tx.node(*target)?;
        let placement = Placement::of(
            &node,
            tx.node_status(node.id)?.health,
            tx.node_peer_count(node.id)?,
        );
        return Err(Error::Conflict(format!(
            "node {} cannot take devices: it is {}",
            node.name, placement.availability
        )));
    }
    Ok(out)
}

/// `device`, or `device-2`, `device-3`… if the user already has that name there.
fn free_device_name(tx: &Tx<'_>, user: UserId, node: NodeId, device: &str) -> Result<String> {
    if !tx.device_taken(user, node, device)? {
        return Ok(device.to_owned());
    }
    for i in 2..100 {
        let suffix = format!("-{i}");
        let base: String = device
            .chars()
            .take(crate::model::MAX_DEVICE_NAME - suffix.len())
            .collect();
        let name = format!("{base}{suffix}");
        if !tx.device_taken(user, node, &name)? {
            return Ok(name);
        }
    }
    Err(Error::Conflict(format!(
        "user {user} has too many devices named {device:?} on node {node}"
    )))
}
