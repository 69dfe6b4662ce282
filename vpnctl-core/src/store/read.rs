//! Every reader, written once for both kinds of transaction: a write transaction
//! reads what it has written so far, a read transaction its snapshot.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::{Ipv4Addr, Ipv6Addr};

use redb::ReadableTable;
use serde::de::DeserializeOwned;

use crate::auth::ApiToken;
use crate::error::{Entity, Error, Result, StorageError};
use crate::ipam;
use crate::keys::PublicKey;
use crate::lifecycle::{NodeStatus, Notification, ReminderDays, Usage};
use crate::model::{Event, Invite, InviteId, Node, NodeId, Peer, PeerId, User, UserId};
use crate::reconcile::PeerSpec;
use crate::time::Timestamp;

use super::codec::{DesiredEntry, PeerRecord, decode, decode_all, decode_json, decode_peer};
use super::{DELTA_MAX_KEYS, Mode, Txn};

impl<M: Mode> Txn<'_, M> {
    // ---- users

    pub fn user(&self, id: UserId) -> Result<User> {
        match self.tables.users.read()?.get(id.0)? {
            Some(v) => decode("users", v.value()),
            None => Err(Error::not_found(Entity::User, id)),
        }
    }

    /// Those of `ids` that exist, in the order given.
    pub fn users_by_id(&self, ids: &[UserId]) -> Result<Vec<User>> {
        let table = self.tables.users.read()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = table.get(id.0)? {
                out.push(decode("users", v.value())?);
            }
        }
        Ok(out)
    }

    pub fn user_by_telegram(&self, telegram_id: i64) -> Result<Option<User>> {
        let id = self
            .tables
            .users_by_tg
            .read()?
            .get(telegram_id)?
            .map(|v| v.value());
        id.map(|id| self.user(UserId(id))).transpose()
    }

    pub fn users(&self) -> Result<Vec<User>> {
        decode_all(self.tables.users.read()?, "users")
    }

    /// Users whose unswept access ended at or before `now`.
    pub fn users_due(&self, now: Timestamp) -> Result<Vec<UserId>> {
        let mut out = Vec::new();
        for row in self
            .tables
            .users_by_until
            .read()?
            .range((i64::MIN, 0)..=(now.0, u64::MAX))?
        {
            out.push(UserId(row?.0.value().1));
        }
        Ok(out)
    }

    /// Users whose unswept access ends in `(after, upto]`.
    pub fn users_ending(
        &self,
        after: Timestamp,
        upto: Timestamp,
    ) -> Result<Vec<(UserId, Timestamp)>> {
        let mut out = Vec::new();
        for row in self
            .tables
            .users_by_until
            .read()?
            .range((after.0, u64::MAX)..=(upto.0, u64::MAX))?
        {
            let (until, id) = row?.0.value();
            out.push((UserId(id), Timestamp(until)));
        }
        Ok(out)
    }

    // ---- invites

    pub fn invite(&self, id: InviteId) -> Result<Invite> {
        match self.tables.invites.read()?.get(id.0)? {
            Some(v) => decode("invites", v.value()),
            None => Err(Error::not_found(Entity::Invite, id)),
        }
    }

    pub fn invite_by_code_hash(&self, hash: &[u8; 32]) -> Result<Option<Invite>> {
        let id = self
            .tables
            .invites_by_code
            .read()?
            .get(hash)?
            .map(|v| v.value());
        id.map(|id| self.invite(InviteId(id))).transpose()
    }

    pub fn invites(&self) -> Result<Vec<Invite>> {
        decode_all(self.tables.invites.read()?, "invites")
    }

    /// Invites with ids above `after`, in id order: at most `limit`, and the last
    /// id when there may be more.
    pub fn invites_after(&self, after: u64, limit: usize) -> Result<(Vec<Invite>, Option<u64>)> {
        rows_after(
            self.tables.invites.read()?,
            "invites",
            after,
            limit,
            usize::MAX,
            Some,
        )
    }

    // ---- tokens

    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        let mut out = Vec::new();
        for row in self.tables.tokens.read()?.iter()? {
            out.push(decode_json("api_tokens", row?.1.value())?);
        }
        Ok(out)
    }

    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        let Some(id) = self
            .tables
            .tokens_by_hash
            .read()?
            .get(hash)?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        match self.tables.tokens.read()?.get(id)? {
            Some(v) => decode_json("api_tokens", v.value()).map(Some),
            None => Ok(None),
        }
    }

    // ---- nodes

    pub fn node(&self, id: NodeId) -> Result<Node> {
        match self.tables.nodes.read()?.get(id.0)? {
            Some(v) => decode("nodes", v.value()),
            None => Err(Error::not_found(Entity::Node, id)),
        }
    }

    pub fn node_id_by_name(&self, name: &str) -> Result<Option<NodeId>> {
        Ok(self
            .tables
            .nodes_by_name
            .read()?
            .get(name)?
            .map(|v| NodeId(v.value())))
    }

    pub fn node_by_name(&self, name: &str) -> Result<Option<Node>> {
        self.node_id_by_name(name)?
            .map(|id| self.node(id))
            .transpose()
    }

    pub fn nodes(&self) -> Result<Vec<Node>> {
        decode_all(self.tables.nodes.read()?, "nodes")
    }

    pub fn node_ids(&self) -> Result<Vec<NodeId>> {
        let mut out = Vec::new();
        for row in self.tables.nodes.read()?.iter()? {
            out.push(NodeId(row?.0.value()));
        }
        Ok(out)
    }

    /// (revision, log floor, peer count) of a node that exists.
    pub fn node_rev(&self, id: NodeId) -> Result<(u64, u64, u64)> {
        self.node_rev_row(id)?
            .ok_or_else(|| Error::not_found(Entity::Node, id))
    }

    pub(super) fn node_rev_row(&self, id: NodeId) -> Result<Option<(u64, u64, u64)>> {
        Ok(self.tables.node_revs.read()?.get(id.0)?.map(|v| v.value()))
    }

    /// The node's current desired revision (0 for no node).
    pub fn desired_revision(&self, node: NodeId) -> Result<u64> {
        Ok(self.node_rev_row(node)?.map_or(0, |r| r.0))
    }

    /// Peers on the node, of any user (0 for no node).
    pub fn node_peer_count(&self, node: NodeId) -> Result<u64> {
        Ok(self.node_rev_row(node)?.map_or(0, |r| r.2))
    }

    // ---- peers

    pub fn peer(&self, id: PeerId) -> Result<PeerRecord> {
        match self.tables.peers.read()?.get(id.0)? {
            Some(v) => decode("peers", v.value()),
            None => Err(Error::not_found(Entity::Peer, id)),
        }
    }

    /// Peers with ids above `after` that `keep` accepts, in id order: at most
    /// `limit`, reading at most `scan` rows, and the last id read when there may be
    /// more.
    pub fn peers_after(
        &self,
        after: u64,
        limit: usize,
        scan: usize,
        mut keep: impl FnMut(&Peer) -> bool,
    ) -> Result<(Vec<Peer>, Option<u64>)> {
        rows_after(
            self.tables.peers.read()?,
            "peers",
            after,
            limit,
            scan,
            |peer: Peer| keep(&peer).then_some(peer),
        )
    }

    /// The peers on any of `nodes` with ids above `after` that `keep` accepts, in id
    /// order: at most `limit`, reading at most `scan` peers, and the last id read
    /// when there may be more. The nodes' `peers_by_node` ranges are merged, so
    /// without a filter at most `limit + nodes` index keys are read.
    pub fn nodes_peers_after(
        &self,
        nodes: &[NodeId],
        after: u64,
        limit: usize,
        scan: usize,
        mut keep: impl FnMut(&Peer) -> bool,
    ) -> Result<(Vec<Peer>, Option<u64>)> {
        let index = self.tables.peers_by_node.read()?;
        let peers = self.tables.peers.read()?;
        let mut ranges = Vec::with_capacity(nodes.len());
        // The smallest next id of each node's range, smallest first.
        let mut heads = BinaryHeap::new();
        for node in nodes {
            let mut range = index.range((node.0, after.saturating_add(1))..=(node.0, u64::MAX))?;
            if let Some(row) = range.next() {
                heads.push(Reverse((row?.0.value().1, ranges.len())));
            }
            ranges.push(range);
        }
        let (mut out, mut last, mut read) = (Vec::new(), None, 0);
        while let Some(Reverse((id, from))) = heads.pop() {
            if out.len() == limit || read == scan {
                // One more exists: the page is full (or its scan) and not the last.
                return Ok((out, last));
            }
            read += 1;
            last = Some(id);
            if let Some(v) = peers.get(id)? {
                let peer = decode_peer(v.value())?;
                if keep(&peer) {
                    out.push(peer);
                }
            }
            if let Some(row) = ranges[from].next() {
                heads.push(Reverse((row?.0.value().1, from)));
            }
        }
        Ok((out, None))
    }

    /// Users with ids above `after` that `keep` accepts, in id order: at most
    /// `limit`, reading at most `scan` rows, and the last id read when there may be
    /// more (a page may then hold fewer than `limit`: a rare filter never makes one
    /// request read the whole table).
    pub fn users_after(
        &self,
        after: u64,
        limit: usize,
        scan: usize,
        keep: impl Fn(&User) -> bool,
    ) -> Result<(Vec<User>, Option<u64>)> {
        rows_after(
            self.tables.users.read()?,
            "users",
            after,
            limit,
            scan,
            |u: User| keep(&u).then_some(u),
        )
    }

    pub fn user_peer_ids(&self, user: UserId) -> Result<Vec<PeerId>> {
        ids_in(self.tables.peers_by_user.read()?, user.0)
    }

    pub fn node_peer_ids(&self, node: NodeId) -> Result<Vec<PeerId>> {
        ids_in(self.tables.peers_by_node.read()?, node.0)
    }

    pub fn user_peers(&self, user: UserId) -> Result<Vec<Peer>> {
        self.peers_by_id(self.user_peer_ids(user)?)
    }

    pub fn node_peers(&self, node: NodeId) -> Result<Vec<Peer>> {
        self.peers_by_id(self.node_peer_ids(node)?)
    }

    /// The peers with these ids, in the order given, skipping ids without a record.
    pub fn peers_by_id(&self, ids: Vec<PeerId>) -> Result<Vec<Peer>> {
        let peers = self.tables.peers.read()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = peers.get(id.0)? {
                out.push(decode_peer(v.value())?);
            }
        }
        Ok(out)
    }

    pub fn user_peer_count(&self, user: UserId) -> Result<u64> {
        Ok(self
            .tables
            .user_peer_count
            .read()?
            .get(user.0)?
            .map_or(0, |v| v.value()))
    }

    pub fn device_taken(&self, user: UserId, node: NodeId, device: &str) -> Result<bool> {
        let lower = device.to_lowercase();
        Ok(self
            .tables
            .devices
            .read()?
            .get((user.0, node.0, lower.as_str()))?
            .is_some())
    }

    pub fn key_taken(&self, key: &PublicKey, node: NodeId) -> Result<bool> {
        Ok(self.peer_id_by_key(node, key)?.is_some())
    }

    pub fn peer_id_by_key(&self, node: NodeId, key: &PublicKey) -> Result<Option<PeerId>> {
        Ok(self
            .tables
            .peers_by_key
            .read()?
            .get((key.as_bytes(), node.0))?
            .map(|v| PeerId(v.value())))
    }

    /// Peers with this public key, on any node.
    pub fn peers_by_key(&self, key: &PublicKey) -> Result<Vec<PeerId>> {
        let mut out = Vec::new();
        for row in self
            .tables
            .peers_by_key
            .read()?
            .range((key.as_bytes(), 0)..=(key.as_bytes(), u64::MAX))?
        {
            out.push(PeerId(row?.1.value()));
        }
        Ok(out)
    }

    pub fn peer_by_v4(&self, node: NodeId, addr: Ipv4Addr) -> Result<Option<PeerId>> {
        Ok(self
            .tables
            .addr_v4
            .read()?
            .get((node.0, u32::from(addr)))?
            .map(|v| PeerId(v.value())))
    }

    pub fn peer_by_v6(&self, node: NodeId, addr: Ipv6Addr) -> Result<Option<PeerId>> {
        Ok(self
            .tables
            .addr_v6
            .read()?
            .get((node.0, u128::from(addr)))?
            .map(|v| PeerId(v.value())))
    }

    // ---- address pool

    /// The lowest free offset of the node's pool, as [`super::Tx::allocate`] would
    /// take it.
    pub fn next_free_offset(&self, node: &Node) -> Result<u32> {
        let id = node.id.0;
        let size = ipam::pool_size(node.ipv4_pool);
        for row in self
            .tables
            .pool_free
            .read()?
            .range((id, 0)..=(id, u32::MAX))?
        {
            let chunk = row?.0.value().1;
            if let Some(offset) = ipam::first_free(&self.chunk_bits(id, chunk)?, chunk, size) {
                return Ok(offset);
            }
        }
        Err(Error::PoolExhausted { node: node.id })
    }

    /// A chunk's allocation bitmap (all free without a row).
    pub(super) fn chunk_bits(&self, node: u64, chunk: u32) -> Result<[u8; ipam::CHUNK_BYTES]> {
        let mut bits = [0u8; ipam::CHUNK_BYTES];
        if let Some(v) = self.tables.pool_bits.read()?.get((node, chunk))? {
            let stored = v.value();
            if stored.len() != ipam::CHUNK_BYTES {
                return Err(StorageError::Corrupt {
                    table: "pool_bitmaps",
                    reason: format!("bitmap of {} bytes", stored.len()),
                }
                .into());
            }
            bits.copy_from_slice(stored);
        }
        Ok(bits)
    }

    // ---- desired state

    pub fn is_desired(&self, node: NodeId, peer: PeerId) -> Result<bool> {
        Ok(self.desired_entry(node, peer)?.is_some())
    }

    pub(super) fn desired_entry(&self, node: NodeId, peer: PeerId) -> Result<Option<DesiredEntry>> {
        match self.tables.desired.read()?.get((node.0, peer.0))? {
            Some(v) => decode("desired", v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// How many peers the desired table holds for `node` (keys only, nothing decoded).
    pub fn desired_count(&self, node: NodeId) -> Result<u64> {
        let mut n = 0;
        for row in self
            .tables
            .desired
            .read()?
            .range((node.0, 0)..=(node.0, u64::MAX))?
        {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// The node's desired peers (ignores whether the node is enabled), sorted by key.
    pub fn desired_specs(&self, node: NodeId) -> Result<Vec<PeerSpec>> {
        let mut out = Vec::new();
        for row in self
            .tables
            .desired
            .read()?
            .range((node.0, 0)..=(node.0, u64::MAX))?
        {
            let (_, v) = row?;
            let entry: DesiredEntry = decode("desired", v.value())?;
            out.push(entry.to_spec(self.vault)?);
        }
        out.sort_unstable_by_key(|p| p.public_key);
        Ok(out)
    }

    /// Public keys touched by revisions in `(after, to]`; `None` when a revision in
    /// that range reset the interface.
    pub fn changed_keys(
        &self,
        node: NodeId,
        after: u64,
        to: u64,
    ) -> Result<Option<BTreeSet<PublicKey>>> {
        let mut keys = BTreeSet::new();
        for row in self
            .tables
            .changes
            .read()?
            .range((node.0, after + 1)..=(node.0, to))?
        {
            let (_, v) = row?;
            let Ok(arr) = <[u8; 32]>::try_from(v.value()) else {
                return Ok(None);
            };
            keys.insert(PublicKey::from_bytes(arr));
            if keys.len() > DELTA_MAX_KEYS {
                return Ok(None);
            }
        }
        Ok(Some(keys))
    }

    /// The desired spec for `key` on `node`, if that key is desired there now.
    pub fn desired_spec_for_key(&self, node: NodeId, key: &PublicKey) -> Result<Option<PeerSpec>> {
        let Some(peer) = self.peer_id_by_key(node, key)? else {
            return Ok(None);
        };
        match self.desired_entry(node, peer)? {
            Some(entry) if entry.public_key == *key => entry.to_spec(self.vault).map(Some),
            _ => Ok(None),
        }
    }

    // ---- events

    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        json_after(self.tables.events.read()?, "events", after, limit)
    }

    /// The newest `limit` events before `before` (a sequence number), oldest first.
    pub fn events_before(&self, before: u64, limit: usize) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        for row in self
            .tables
            .events
            .read()?
            .range(..before)?
            .rev()
            .take(limit)
        {
            out.push(decode_json("events", row?.1.value())?);
        }
        out.reverse();
        Ok(out)
    }

    // ---- lifecycle

    /// A node's status as stored (the default before its first report).
    pub fn node_status(&self, node: NodeId) -> Result<NodeStatus> {
        match self.tables.node_status.read()?.get(node.0)? {
            Some(v) => decode_json("node_status", v.value()),
            None => Ok(NodeStatus::default()),
        }
    }

    /// A user's accounted usage (zero before any traffic).
    pub fn usage(&self, user: UserId) -> Result<Usage> {
        match self.tables.usage.read()?.get(user.0)? {
            Some(v) => decode("usage", v.value()),
            None => Ok(Usage::default()),
        }
    }

    /// A peer's accounted (rx, tx) totals.
    pub fn peer_traffic(&self, peer: PeerId) -> Result<(u64, u64)> {
        Ok(self
            .tables
            .peer_traffic
            .read()?
            .get(peer.0)?
            .map_or((0, 0), |v| {
                let (_, _, rx, tx) = v.value();
                (rx, tx)
            }))
    }

    /// Suspended users whose period ended at or before `now`.
    pub fn suspensions_over(&self, now: Timestamp) -> Result<Vec<UserId>> {
        let mut out = Vec::new();
        for row in self.tables.suspended.read()?.iter()? {
            let (k, v) = row?;
            if v.value() <= now.0 {
                out.push(UserId(k.value()));
            }
        }
        Ok(out)
    }

    pub fn was_sent(&self, user: UserId, what: &str, anchor: i64) -> Result<bool> {
        Ok(self
            .tables
            .sent_once
            .read()?
            .get((user.0, what, anchor))?
            .is_some())
    }

    /// What a sweep at `now` has to do, found without writing: (access ended,
    /// a reminder not yet queued, a quota suspension that is over).
    pub fn sweep_work(
        &self,
        now: Timestamp,
        reminders: &ReminderDays,
    ) -> Result<(bool, bool, bool)> {
        let until = self.tables.users_by_until.read()?;
        let expire = until
            .range((i64::MIN, 0)..=(now.0, u64::MAX))?
            .next()
            .is_some();
        let horizon = now.plus_days(i64::from(reminders.max()));
        let mut remind = false;
        for row in until.range((now.0, u64::MAX)..=(horizon.0, u64::MAX))? {
            let (t, user) = row?.0.value();
            if let Some(d) = reminders.due(Timestamp(t), now)
                && !self.was_sent(UserId(user), &format!("remind-{d}"), t)?
            {
                remind = true;
                break;
            }
        }
        let mut restore = false;
        for row in self.tables.suspended.read()?.iter()? {
            if row?.1.value() <= now.0 {
                restore = true;
                break;
            }
        }
        Ok((expire, remind, restore))
    }

    /// A meta counter: an outbox cursor or an id sequence (0 when never set).
    pub fn cursor(&self, key: &'static str) -> Result<u64> {
        Ok(self.tables.meta.read()?.get(key)?.map_or(0, |v| v.value()))
    }

    pub fn notifications_after(&self, after: u64, limit: usize) -> Result<Vec<Notification>> {
        json_after(self.tables.outbox.read()?, "outbox", after, limit)
    }
}

/// The second halves of the `(owner, peer)` keys of an index, for one owner.
fn ids_in(index: &impl ReadableTable<(u64, u64), ()>, owner: u64) -> Result<Vec<PeerId>> {
    let mut out = Vec::new();
    for row in index.range((owner, 0)..=(owner, u64::MAX))? {
        out.push(PeerId(row?.0.value().1));
    }
    Ok(out)
}

/// The rows of `table` with ids above `after` that `take` keeps (and maps), in id
/// order: at most `limit`, reading at most `scan` rows, and the last id read when
/// there may be more. A page cut short by `scan` may hold fewer than `limit`.
fn rows_after<R: DeserializeOwned, T>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
    after: u64,
    limit: usize,
    scan: usize,
    mut take: impl FnMut(R) -> Option<T>,
) -> Result<(Vec<T>, Option<u64>)> {
    let mut out = Vec::new();
    let mut last = None;
    for (read, row) in table.range(after.saturating_add(1)..)?.enumerate() {
        if out.len() == limit || read == scan {
            return Ok((out, last));
        }
        let (key, value) = row?;
        last = Some(key.value());
        out.extend(take(decode(name, value.value())?));
    }
    Ok((out, None))
}

/// The JSON rows with ids after `after`, oldest first, at most `limit` of them.
fn json_after<T: DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
    after: u64,
    limit: usize,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for row in table.range(after.saturating_add(1)..)?.take(limit) {
        out.push(decode_json(name, row?.1.value())?);
    }
    Ok(out)
}
