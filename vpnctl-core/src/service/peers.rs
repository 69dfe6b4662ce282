//! Peers: issuing, listing, configs, rotation and revocation of devices' tunnels.

use std::net::IpAddr;

use tracing::instrument;

use crate::error::{Error, Result};
use crate::ipam;
use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::model::{EventKind, Node, NodeId, NodeState, Peer, PeerId, validate_display_name};
use crate::render::ClientConfig;

use super::tx::{FreshKeys, check_access, issue_in, render, revoke_in, seal_keys};
use super::{IssuePeer, IssuedPeer, PeerFilter, Vpnctl};
use crate::api::body::{NodeBrief, Page};
use crate::api::routes::PAGE_MAX;
use crate::model::UserId;
use std::collections::HashMap;

impl Vpnctl {
    /// Issues one device's tunnel on a node, enforcing access, the device limit and
    /// the node's state; the address is the lowest free one in the node's pool.
    #[instrument(skip(self, req), fields(actor = %self.actor, user = %req.user, node = %req.node))]
    pub fn issue_peer(&self, req: IssuePeer) -> Result<IssuedPeer> {
        self.issue_peers(vec![req]).map(|mut v| v.remove(0))
    }

    /// Issues many peers in one transaction: all or none.
    pub fn issue_peers(&self, reqs: Vec<IssuePeer>) -> Result<Vec<IssuedPeer>> {
        let mut prepared = Vec::with_capacity(reqs.len());
        for req in reqs {
            let device =
                validate_display_name("device name", &req.device, crate::model::MAX_DEVICE_NAME)?;
            let keys = FreshKeys::new(req.public_key);
            prepared.push((req, device, keys));
        }
        let store_private = self.inner.policy.store_private_keys;
        self.write(|tx| {
            let mut out = Vec::with_capacity(prepared.len());
            let mut nodes: std::collections::HashMap<NodeId, Node> = Default::default();
            for (req, device, keys) in &prepared {
                let node = match nodes.get(&req.node) {
                    Some(n) => n.clone(),
                    None => {
                        let n = tx.node(req.node)?;
                        nodes.insert(req.node, n.clone());
                        n
                    }
                };
                out.push(issue_in(tx, req, device, keys, &node, store_private, true)?);
            }
            Ok(out)
        })
    }

    pub fn peer(&self, id: PeerId) -> Result<Peer> {
        self.read(|rx| rx.peer(id).map(|r| r.peer))
    }

    /// The peers of `ids` that exist (a revoked one is left out), in id order,
    /// once each: at most [`PAGE_MAX`] ids, in one read. What a client that was told
    /// which peers changed reads them again with.
    pub fn peers_by_id(&self, ids: &[PeerId]) -> Result<Vec<Peer>> {
        let ids = super::id_set(ids, "peers")?;
        self.read(|rx| rx.peers_by_id(ids))
    }

    /// Every peer `filter` selects, in id order, from one snapshot (the unpaged form
    /// of [`Vpnctl::peers_page`], for tools and tests; the API pages).
    pub fn peers(&self, filter: PeerFilter) -> Result<Vec<Peer>> {
        let now = self.now();
        self.read(|rx| select(rx, &filter, 0, usize::MAX, usize::MAX, now).map(|(peers, _)| peers))
    }

    /// A user's devices in id order, each with its node in brief, in one read:
    /// what the bot's /status shows, without reading the fleet.
    pub fn user_devices(&self, user: UserId) -> Result<Vec<(Peer, NodeBrief)>> {
        self.read(|rx| {
            rx.user(user)?;
            let mut peers = rx.user_peers(user)?;
            peers.sort_by_key(|p| p.id);
            let mut briefs: HashMap<NodeId, NodeBrief> = HashMap::new();
            let mut out = Vec::with_capacity(peers.len());
            for peer in peers {
                let brief = match briefs.get(&peer.node) {
                    Some(b) => b.clone(),
                    None => {
                        let b = super::nodes::overview(rx, rx.node(peer.node)?)?.brief();
                        briefs.insert(peer.node, b.clone());
                        b
                    }
                };
                out.push((peer, brief));
            }
            Ok(out)
        })
    }

    /// One page of peers in id order, after `after`, at most `limit`
    /// (1..=[`PAGE_MAX`]), with the next page's cursor when there may be more.
    /// Reads only the page (and, by user, that user's few peers).
    pub fn peers_page(
        &self,
        filter: PeerFilter,
        after: Option<PeerId>,
        limit: usize,
    ) -> Result<Page<Peer>> {
        let limit = limit.clamp(1, PAGE_MAX);
        let after = after.map_or(0, |p| p.0);
        // Filtering by the owner's access or the device's name reads at most
        // 20 × limit peers a page.
        let scan = if filter.access.is_some() || filter.device.is_some() {
            limit * 20
        } else {
            usize::MAX
        };
        let now = self.now();
        let (items, next) = self.read(|rx| select(rx, &filter, after, limit, scan, now))?;
        Ok(Page { items, next })
    }

    /// The address the next peer issued on `node` would get (lowest free), without
    /// taking it.
    pub fn next_free_address(&self, node: NodeId) -> Result<std::net::Ipv4Addr> {
        self.read(|rx| {
            let node = rx.node(node)?;
            let offset = rx.next_free_offset(&node)?;
            Ok(ipam::host_v4(node.ipv4_pool, offset))
        })
    }

    /// Peers with this public key (one per node at most).
    pub fn peers_by_public_key(&self, key: &PublicKey) -> Result<Vec<Peer>> {
        self.read(|rx| {
            rx.peers_by_key(key)?
                .into_iter()
                .map(|id| rx.peer(id).map(|r| r.peer))
                .collect()
        })
    }

    /// The peer holding `addr` on `node`.
    pub fn peer_by_address(&self, node: NodeId, addr: IpAddr) -> Result<Option<Peer>> {
        self.read(|rx| {
            let id = match addr {
                IpAddr::V4(a) => rx.peer_by_v4(node, a)?,
                IpAddr::V6(a) => rx.peer_by_v6(node, a)?,
            };
            id.map(|id| rx.peer(id).map(|r| r.peer)).transpose()
        })
    }

    /// Renders the peer's client config from the stored (encrypted) private key.
    pub fn peer_config(&self, id: PeerId) -> Result<ClientConfig> {
        self.read(|rx| {
            let rec = rx.peer(id)?;
            let node = rx.node(rec.peer.node)?;
            let sealed = rec
                .private_key_sealed
                .as_ref()
                .ok_or(Error::PrivateKeyUnavailable { peer: id })?;
            let bound = rec.peer.public_key.as_bytes();
            let private = PrivateKey::from_bytes(*rx.vault.open(sealed, bound)?);
            let psk = PresharedKey::from_bytes(*rx.vault.open(&rec.preshared_key_sealed, bound)?);
            render(&node, &rec.peer, &private, &psk)
        })
    }

    /// Gives the peer new keys (and a new preshared key), keeping its address. The
    /// old key leaves the node's desired state in the same revision step.
    #[instrument(skip(self, public_key), fields(actor = %self.actor))]
    pub fn rotate_peer(&self, id: PeerId, public_key: Option<PublicKey>) -> Result<IssuedPeer> {
        let keys = FreshKeys::new(public_key);
        let store_private = self.inner.policy.store_private_keys;
        self.write(|tx| {
            let old = tx.peer(id)?;
            let node = tx.node(old.peer.node)?;
            if node.public_key.is_none() {
                return Err(Error::NodeNotReady { node: node.id });
            }
            if node.state == NodeState::Disabled {
                return Err(Error::NodeDisabled { node: node.id });
            }
            let user = tx.user(old.peer.user)?;
            check_access(&user, tx.now())?;
            let mut rec = old.clone();
            rec.peer.public_key = keys.public;
            rec.peer.rotated_at = Some(tx.now());
            seal_keys(tx.vault, &mut rec, &keys, store_private);
            rec.peer.has_private_key = rec.private_key_sealed.is_some();
            tx.replace_peer_key(&old, &rec)?;
            let desired = tx.is_desired(node.id, id)?;
            tx.set_desired(&rec, desired)?;
            tx.event(EventKind::PeerRotated {
                peer: id,
                user: rec.peer.user,
                node: node.id,
            })?;
            let config = keys.config(&node, &rec.peer)?;
            Ok(IssuedPeer {
                peer: rec.peer,
                config,
            })
        })
    }

    /// Revokes a peer: it leaves its node and its address is freed.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn revoke_peer(&self, id: PeerId) -> Result<Peer> {
        self.write(|tx| revoke_in(tx, id))
    }
}

/// The peers `filter` selects with ids above `after`, in id order: at most `limit`,
/// reading at most `scan` (unless by user: a user's few peers are read whole), and
/// the last id read when there may be more. The one reader behind both lists.
fn select(
    rx: &crate::store::Rx<'_>,
    filter: &PeerFilter,
    after: u64,
    limit: usize,
    scan: usize,
    now: crate::time::Timestamp,
) -> Result<(Vec<Peer>, Option<u64>)> {
    let needle = filter.device.as_deref().map(crate::Needle::new);
    let mut owner = owner_check(rx, filter.access, now);
    let mut keep = |p: &Peer| needle.as_ref().is_none_or(|n| n.matches(&p.device)) && owner(p);
    let nodes = on_nodes(rx, filter)?;
    // By key or address: a point read in an index per node, a few peers at most.
    if filter.public_key.is_some() || filter.address.is_some() {
        let mut found: Vec<Peer> = match (&filter.public_key, filter.address) {
            (Some(key), _) => rx
                .peers_by_key(key)?
                .into_iter()
                .map(|id| rx.peer(id).map(|r| r.peer))
                .collect::<Result<_>>()?,
            (None, Some(addr)) => {
                let nodes = match &nodes {
                    Some(nodes) => nodes.clone(),
                    None => rx.nodes()?.into_iter().map(|n| n.id).collect(),
                };
                let mut found = Vec::new();
                for node in nodes {
                    let id = match addr {
                        IpAddr::V4(a) => rx.peer_by_v4(node, a)?,
                        IpAddr::V6(a) => rx.peer_by_v6(node, a)?,
                    };
                    if let Some(id) = id {
                        found.push(rx.peer(id)?.peer);
                    }
                }
                found
            }
            (None, None) => Vec::new(),
        };
        found.retain(|p| {
            p.id.0 > after
                && filter.user.is_none_or(|u| p.user == u)
                && nodes.as_ref().is_none_or(|ns| ns.contains(&p.node))
                && filter.address.is_none_or(|a| match a {
                    IpAddr::V4(a) => p.ipv4 == a,
                    IpAddr::V6(a) => p.ipv6 == Some(a),
                })
                && keep(p)
        });
        found.sort_by_key(|p| p.id);
        let next = (found.len() > limit).then(|| found[limit - 1].id.0);
        found.truncate(limit);
        return Ok((found, next));
    }
    match (filter.user, nodes) {
        (Some(user), nodes) => {
            let mut mine: Vec<Peer> = rx
                .user_peers(user)?
                .into_iter()
                .filter(|p| {
                    nodes.as_ref().is_none_or(|ns| ns.contains(&p.node))
                        && p.id.0 > after
                        && keep(p)
                })
                .collect();
            mine.sort_by_key(|p| p.id);
            let next = (mine.len() > limit).then(|| mine[limit - 1].id.0);
            mine.truncate(limit);
            Ok((mine, next))
        }
        (None, Some(nodes)) => rx.nodes_peers_after(&nodes, after, limit, scan, keep),
        (None, None) => rx.peers_after(after, limit, scan, keep),
    }
}

/// The nodes `filter` limits peers to (by node and region), or `None` when any node
/// will do. A region no node has limits them to none.
fn on_nodes(rx: &crate::store::Rx<'_>, filter: &PeerFilter) -> Result<Option<Vec<NodeId>>> {
    let Some(region) = &filter.region else {
        return Ok(filter.node.map(|n| vec![n]));
    };
    Ok(Some(
        rx.nodes()?
            .into_iter()
            .filter(|n| {
                n.region.code.eq_ignore_ascii_case(region)
                    && filter.node.is_none_or(|id| n.id == id)
            })
            .map(|n| n.id)
            .collect(),
    ))
}

/// Whether a peer's owner has the access `want` now (any peer when `None`); each
/// owner is read once.
fn owner_check<'a>(
    rx: &'a crate::store::Rx<'_>,
    want: Option<crate::api::body::AccessState>,
    now: crate::time::Timestamp,
) -> impl FnMut(&Peer) -> bool + 'a {
    let mut owners: HashMap<UserId, bool> = HashMap::new();
    move |p: &Peer| {
        let Some(want) = want else {
            return true;
        };
        *owners.entry(p.user).or_insert_with(|| {
            rx.user(p.user)
                .is_ok_and(|u| crate::Access::of(&u, now).state() == want)
        })
    }
}
