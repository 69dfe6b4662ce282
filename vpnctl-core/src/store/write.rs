//! The writers of a [`Tx`]: each keeps the indexes, pool bitmaps, desired state,
//! revisions and change logs, and the outbox in step with the records it writes.

use redb::{ReadableTable, ReadableTableMetadata};

use crate::auth::{ApiToken, JoinRecord, TokenId};
use crate::error::{Error, Result, StorageError};
use crate::ipam;
use crate::keys::PublicKey;
use crate::lifecycle::{Message, NodeStatus, Notification, Recipient, Usage, counter_delta};
use crate::model::{Event, EventKind, Invite, Node, NodeId, PeerId, User, UserId};
use crate::time::Timestamp;

use super::codec::{DesiredEntry, PeerRecord, decode_json, encode, encode_json};
use super::{LOG_KEEP, Tx};

impl Tx<'_> {
    /// When this transaction happens.
    pub fn now(&self) -> Timestamp {
        self.state.now
    }

    /// Prunes change logs and records the final revision of every touched node.
    pub(super) fn finish(&mut self) -> Result<()> {
        for node in std::mem::take(&mut self.state.touched) {
            let Some((rev, floor, count)) = self.node_rev_row(NodeId(node))? else {
                continue;
            };
            if rev - floor > LOG_KEEP {
                let new_floor = rev - LOG_KEEP / 2;
                self.tables
                    .changes
                    .write()?
                    .retain_in((node, floor)..=(node, new_floor), |_, _| false)?;
                self.tables
                    .node_revs
                    .write()?
                    .insert(node, (rev, new_floor, count))?;
            }
            self.state.commit.revisions.push((NodeId(node), rev));
        }
        Ok(())
    }

    pub fn next_id(&mut self, sequence: &'static str) -> Result<u64> {
        let next = self
            .tables
            .meta
            .read()?
            .get(sequence)?
            .map_or(1, |v| v.value());
        self.tables.meta.write()?.insert(sequence, next + 1)?;
        Ok(next)
    }

    pub fn event(&mut self, kind: EventKind) -> Result<()> {
        let seq = self.next_id("next_event")?;
        let event = Event {
            seq,
            at: self.state.now,
            actor: self.state.actor.clone(),
            kind,
        };
        self.tables
            .events
            .write()?
            .insert(seq, encode_json(&event).as_slice())?;
        self.state.commit.events.push(event);
        Ok(())
    }

    /// Deletes the oldest events: every one beyond the newest `keep_max` (0: no
    /// limit) and those before `before`, at most `batch` of them. Returns how many
    /// went. Events are appended in time order, so the scan stops at the first one
    /// that stays.
    pub fn prune_events(
        &mut self,
        before: Option<Timestamp>,
        keep_max: u64,
        batch: usize,
    ) -> Result<usize> {
        let table = self.tables.events.write()?;
        let total = table.len()?;
        let mut over = if keep_max == 0 {
            0
        } else {
            total.saturating_sub(keep_max)
        };
        let mut doomed = Vec::new();
        for row in table.iter()? {
            if doomed.len() >= batch {
                break;
            }
            let (key, value) = row?;
            if over > 0 {
                over -= 1;
                doomed.push(key.value());
                continue;
            }
            let Some(before) = before else { break };
            let event: Event = decode_json("events", value.value())?;
            if event.at >= before {
                break;
            }
            doomed.push(key.value());
        }
        for key in &doomed {
            table.remove(key)?;
        }
        Ok(doomed.len())
    }

    // ---- users

    /// Writes `new`, keeping the Telegram and expiry indexes in step with `old`.
    pub fn put_user(&mut self, old: Option<&User>, new: &User) -> Result<()> {
        let id = new.id.0;
        if old.and_then(|u| u.telegram_id) != new.telegram_id {
            let by_tg = self.tables.users_by_tg.write()?;
            if let Some(tg) = new.telegram_id {
                if let Some(other) = by_tg.get(tg)?.map(|v| v.value())
                    && other != id
                {
                    return Err(Error::Conflict(format!(
                        "Telegram id {tg} already belongs to user {other}"
                    )));
                }
                by_tg.insert(tg, id)?;
            }
            if let Some(tg) = old.and_then(|u| u.telegram_id) {
                by_tg.remove(tg)?;
            }
        }
        let key = |u: &User| u.until.filter(|_| !u.lapsed).map(|t| (t.0, u.id.0));
        let (old_key, new_key) = (old.and_then(key), key(new));
        if old_key != new_key {
            let by_until = self.tables.users_by_until.write()?;
            if let Some(k) = old_key {
                by_until.remove(k)?;
            }
            if let Some(k) = new_key {
                by_until.insert(k, ())?;
            }
        }
        self.tables
            .users
            .write()?
            .insert(id, encode(new).as_slice())?;
        Ok(())
    }

    pub fn delete_user_record(&mut self, user: &User) -> Result<()> {
        if let Some(tg) = user.telegram_id {
            self.tables.users_by_tg.write()?.remove(tg)?;
        }
        if let Some(until) = user.until {
            self.tables
                .users_by_until
                .write()?
                .remove((until.0, user.id.0))?;
        }
        self.tables.users.write()?.remove(user.id.0)?;
        Ok(())
    }

    // ---- invites

    pub fn put_invite(&mut self, invite: &Invite, code_hash: Option<&[u8; 32]>) -> Result<()> {
        if let Some(hash) = code_hash {
            let by_code = self.tables.invites_by_code.write()?;
            if by_code.get(hash)?.is_some() {
                return Err(Error::Conflict("invite code collision; try again".into()));
            }
            by_code.insert(hash, invite.id.0)?;
        }
        self.tables
            .invites
            .write()?
            .insert(invite.id.0, encode(invite).as_slice())?;
        Ok(())
    }

    // ---- tokens and join secrets

    pub fn insert_token(&mut self, token: &ApiToken, hash: &[u8; 32]) -> Result<()> {
        if self
            .tables
            .tokens_by_hash
            .write()?
            .insert(hash, token.id.0)?
            .is_some()
        {
            return Err(Error::Conflict("token collision; try again".into()));
        }
        self.tables
            .tokens
            .write()?
            .insert(token.id.0, encode_json(token).as_slice())?;
        Ok(())
    }

    /// Deletes a token; returns it if it existed.
    pub fn delete_token(&mut self, id: TokenId) -> Result<Option<ApiToken>> {
        let Some(json) = self
            .tables
            .tokens
            .write()?
            .remove(id.0)?
            .map(|v| v.value().to_vec())
        else {
            return Ok(None);
        };
        self.tables
            .tokens_by_hash
            .write()?
            .retain(|_, v| v != id.0)?;
        decode_json("api_tokens", &json).map(Some)
    }

    pub fn insert_join(&mut self, hash: &[u8; 32], join: &JoinRecord) -> Result<()> {
        self.tables
            .joins
            .write()?
            .insert(hash, encode_json(join).as_slice())?;
        Ok(())
    }

    /// Removes and returns a pending enrollment (join secrets are single-use).
    pub fn take_join(&mut self, hash: &[u8; 32]) -> Result<Option<JoinRecord>> {
        let json = self
            .tables
            .joins
            .write()?
            .remove(hash)?
            .map(|v| v.value().to_vec());
        json.map(|j| decode_json("join_secrets", &j)).transpose()
    }

    // ---- nodes

    /// Creates a node record with its pool index and revision row.
    pub fn insert_node(&mut self, node: &Node) -> Result<()> {
        if self.node_id_by_name(&node.name)?.is_some() {
            return Err(Error::Conflict(format!(
                "a node named {:?} exists",
                node.name
            )));
        }
        let id = node.id.0;
        self.tables
            .nodes_by_name
            .write()?
            .insert(node.name.as_str(), id)?;
        self.put_node(node)?;
        self.tables.node_revs.write()?.insert(id, (0, 0, 0))?;
        let pool_free = self.tables.pool_free.write()?;
        for chunk in 0..ipam::chunk_count(ipam::pool_size(node.ipv4_pool)) {
            pool_free.insert((id, chunk), ())?;
        }
        Ok(())
    }

    pub fn put_node(&mut self, node: &Node) -> Result<()> {
        self.tables
            .nodes
            .write()?
            .insert(node.id.0, encode(node).as_slice())?;
        Ok(())
    }

    pub fn delete_node_record(&mut self, node: &Node) -> Result<()> {
        let id = node.id.0;
        let t = &mut self.tables;
        t.nodes_by_name.write()?.remove(node.name.as_str())?;
        t.nodes.write()?.remove(id)?;
        t.node_revs.write()?.remove(id)?;
        t.pool_free
            .write()?
            .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        t.pool_bits
            .write()?
            .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        t.changes
            .write()?
            .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
        t.desired
            .write()?
            .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
        Ok(())
    }

    fn adjust_peer_count(&mut self, node: NodeId, delta: i64) -> Result<()> {
        let (rev, floor, count) = self.node_rev_row(node)?.unwrap_or_default();
        let count = count.saturating_add_signed(delta);
        self.tables
            .node_revs
            .write()?
            .insert(node.0, (rev, floor, count))?;
        Ok(())
    }

    /// Bumps the node's revision, logging which key changed (`None`: the interface
    /// itself changed and deltas across this revision are impossible).
    pub fn bump(&mut self, node: NodeId, key: Option<&PublicKey>) -> Result<u64> {
        let (rev, floor, count) = self.node_rev_row(node)?.unwrap_or_default();
        let rev = rev + 1;
        self.tables
            .node_revs
            .write()?
            .insert(node.0, (rev, floor, count))?;
        let bytes: &[u8] = key.map_or(&[], |k| k.as_bytes().as_slice());
        self.tables.changes.write()?.insert((node.0, rev), bytes)?;
        self.state.touched.insert(node.0);
        Ok(rev)
    }

    // ---- peers

    fn adjust_user_count(&mut self, user: UserId, delta: i64) -> Result<()> {
        let count = self.user_peer_count(user)?.saturating_add_signed(delta);
        let t = self.tables.user_peer_count.write()?;
        if count == 0 {
            t.remove(user.0)?;
        } else {
            t.insert(user.0, count)?;
        }
        Ok(())
    }

    /// Inserts a new peer with all its indexes; its address must come from
    /// [`Tx::allocate`]. The caller has checked the device name and
    /// key; a row that is taken anyway means the indexes or the allocator are broken,
    /// which is reported as corruption (and aborts the transaction), never skipped.
    pub fn insert_peer(&mut self, rec: &PeerRecord) -> Result<()> {
        let p = &rec.peer;
        let (id, node) = (p.id.0, p.node.0);
        let device = p.device.to_lowercase();
        let corrupt = |table: &'static str, what: String| -> Error {
            StorageError::Corrupt {
                table,
                reason: format!("{what} is taken on node {node} (peer {id} not inserted)"),
            }
            .into()
        };
        if self.peer_by_v4(p.node, p.ipv4)?.is_some() {
            return Err(corrupt("addresses_v4", format!("address {}", p.ipv4)));
        }
        if let Some(v6) = p.ipv6
            && self.peer_by_v6(p.node, v6)?.is_some()
        {
            return Err(corrupt("addresses_v6", format!("address {v6}")));
        }
        if self.key_taken(&p.public_key, p.node)? {
            return Err(corrupt(
                "peers_by_key",
                format!("public key {}", p.public_key),
            ));
        }
        if self.device_taken(p.user, p.node, &p.device)? {
            return Err(corrupt("devices", format!("device {:?}", p.device)));
        }
        let t = &mut self.tables;
        t.addr_v4.write()?.insert((node, u32::from(p.ipv4)), id)?;
        if let Some(v6) = p.ipv6 {
            t.addr_v6.write()?.insert((node, u128::from(v6)), id)?;
        }
        t.peers_by_key
            .write()?
            .insert((p.public_key.as_bytes(), node), id)?;
        t.devices
            .write()?
            .insert((p.user.0, node, device.as_str()), id)?;
        t.peers_by_user.write()?.insert((p.user.0, id), ())?;
        t.peers_by_node.write()?.insert((node, id), ())?;
        t.peers.write()?.insert(id, encode(rec).as_slice())?;
        self.adjust_user_count(p.user, 1)?;
        self.adjust_peer_count(p.node, 1)
    }

    /// Rewrites a peer whose public key changed (rotation); addresses stay.
    pub fn replace_peer_key(&mut self, old: &PeerRecord, new: &PeerRecord) -> Result<()> {
        let node = new.peer.node.0;
        let by_key = self.tables.peers_by_key.write()?;
        if by_key
            .insert((new.peer.public_key.as_bytes(), node), new.peer.id.0)?
            .is_some()
        {
            return Err(Error::Conflict(format!(
                "public key {} is already used on node {node}",
                new.peer.public_key
            )));
        }
        by_key.remove((old.peer.public_key.as_bytes(), node))?;
        self.tables
            .peers
            .write()?
            .insert(new.peer.id.0, encode(new).as_slice())?;
        Ok(())
    }

    pub fn delete_peer(&mut self, rec: &PeerRecord, node: &Node) -> Result<()> {
        let p = &rec.peer;
        let (id, n) = (p.id.0, p.node.0);
        let t = &mut self.tables;
        t.addr_v4.write()?.remove((n, u32::from(p.ipv4)))?;
        if let Some(v6) = p.ipv6 {
            t.addr_v6.write()?.remove((n, u128::from(v6)))?;
        }
        t.peers_by_key
            .write()?
            .remove((p.public_key.as_bytes(), n))?;
        t.devices
            .write()?
            .remove((p.user.0, n, p.device.to_lowercase().as_str()))?;
        t.peers_by_user.write()?.remove((p.user.0, id))?;
        t.peers_by_node.write()?.remove((n, id))?;
        t.peers.write()?.remove(id)?;
        self.release(node, rec.offset)?;
        self.adjust_user_count(p.user, -1)?;
        self.adjust_peer_count(p.node, -1)
    }

    // ---- address pool

    /// Takes the lowest free offset of the node's pool.
    pub fn allocate(&mut self, node: &Node) -> Result<u32> {
        let id = node.id.0;
        let size = ipam::pool_size(node.ipv4_pool);
        loop {
            let chunk = match self
                .tables
                .pool_free
                .read()?
                .range((id, 0)..=(id, u32::MAX))?
                .next()
            {
                Some(row) => row?.0.value().1,
                None => return Err(Error::PoolExhausted { node: node.id }),
            };
            let mut bits = self.chunk_bits(id, chunk)?;
            let Some(offset) = ipam::first_free(&bits, chunk, size) else {
                // Only reserved offsets remain in this chunk.
                self.tables.pool_free.write()?.remove((id, chunk))?;
                continue;
            };
            ipam::set(&mut bits, offset, true);
            self.tables
                .pool_bits
                .write()?
                .insert((id, chunk), bits.as_slice())?;
            if ipam::first_free(&bits, chunk, size).is_none() {
                self.tables.pool_free.write()?.remove((id, chunk))?;
            }
            return Ok(offset);
        }
    }

    /// Takes a given offset of the node's pool (an imported peer keeps its address);
    /// refuses a reserved or taken one.
    pub fn claim(&mut self, node: &Node, offset: u32) -> Result<()> {
        let id = node.id.0;
        let size = ipam::pool_size(node.ipv4_pool);
        if offset >= size || ipam::is_reserved(size, offset) {
            return Err(Error::Conflict(format!(
                "{} is not a client address of node {}",
                ipam::host_v4(node.ipv4_pool, offset),
                node.id
            )));
        }
        let chunk = offset / ipam::CHUNK_BITS;
        let mut bits = self.chunk_bits(id, chunk)?;
        if ipam::is_set(&bits, offset) {
            return Err(Error::Conflict(format!(
                "{} is taken on node {}",
                ipam::host_v4(node.ipv4_pool, offset),
                node.id
            )));
        }
        ipam::set(&mut bits, offset, true);
        self.tables
            .pool_bits
            .write()?
            .insert((id, chunk), bits.as_slice())?;
        if ipam::first_free(&bits, chunk, size).is_none() {
            self.tables.pool_free.write()?.remove((id, chunk))?;
        }
        Ok(())
    }

    fn release(&mut self, node: &Node, offset: u32) -> Result<()> {
        let id = node.id.0;
        let chunk = offset / ipam::CHUNK_BITS;
        let mut bits = self.chunk_bits(id, chunk)?;
        ipam::set(&mut bits, offset, false);
        self.tables
            .pool_bits
            .write()?
            .insert((id, chunk), bits.as_slice())?;
        self.tables.pool_free.write()?.insert((id, chunk), ())?;
        Ok(())
    }

    // ---- desired state

    /// Puts the peer into (or takes it out of) its node's desired state, bumping the
    /// node's revision for every public key whose entry changes.
    pub fn set_desired(&mut self, rec: &PeerRecord, want: bool) -> Result<()> {
        let (node, peer) = (rec.peer.node, rec.peer.id);
        let old = self.desired_entry(node, peer)?;
        let new = want.then(|| DesiredEntry::from_record(rec));
        if old == new {
            return Ok(());
        }
        let key = (node.0, peer.0);
        match &new {
            Some(entry) => self
                .tables
                .desired
                .write()?
                .insert(key, encode(entry).as_slice())?,
            None => self.tables.desired.write()?.remove(key)?,
        };
        if let Some(old) = &old
            && new.as_ref().is_none_or(|n| n.public_key != old.public_key)
        {
            self.bump(node, Some(&old.public_key))?;
        }
        if let Some(new) = &new {
            self.bump(node, Some(&new.public_key))?;
        }
        Ok(())
    }

    // ---- lifecycle

    pub fn put_node_status(&mut self, node: NodeId, status: &NodeStatus) -> Result<()> {
        self.tables
            .node_status
            .write()?
            .insert(node.0, encode_json(status).as_slice())?;
        Ok(())
    }

    pub fn forget_node_status(&mut self, node: NodeId) -> Result<()> {
        self.tables.node_status.write()?.remove(node.0)?;
        Ok(())
    }

    /// Adds a peer's new counter readings; returns the bytes they add.
    pub fn account_peer(&mut self, peer: PeerId, rx: u64, tx: u64) -> Result<(u64, u64)> {
        let t = self.tables.peer_traffic.write()?;
        let (last_rx, last_tx, total_rx, total_tx) =
            t.get(peer.0)?.map_or((0, 0, 0, 0), |v| v.value());
        let d_rx = counter_delta(last_rx, rx);
        let d_tx = counter_delta(last_tx, tx);
        if (rx, tx) != (last_rx, last_tx) {
            t.insert(
                peer.0,
                (
                    rx,
                    tx,
                    total_rx.saturating_add(d_rx),
                    total_tx.saturating_add(d_tx),
                ),
            )?;
        }
        Ok((d_rx, d_tx))
    }

    pub fn forget_peer_traffic(&mut self, peer: PeerId) -> Result<()> {
        self.tables.peer_traffic.write()?.remove(peer.0)?;
        Ok(())
    }

    pub fn put_usage(&mut self, user: UserId, usage: &Usage) -> Result<()> {
        self.tables
            .usage
            .write()?
            .insert(user.0, encode(usage).as_slice())?;
        Ok(())
    }

    pub fn set_suspended(&mut self, user: UserId, until: Option<Timestamp>) -> Result<()> {
        let t = self.tables.suspended.write()?;
        match until {
            Some(u) => t.insert(user.0, u.0)?,
            None => t.remove(user.0)?,
        };
        Ok(())
    }

    pub fn forget_user_lifecycle(&mut self, user: UserId) -> Result<()> {
        let t = &mut self.tables;
        t.usage.write()?.remove(user.0)?;
        t.suspended.write()?.remove(user.0)?;
        t.sent_once.write()?.retain_in(
            (user.0, "", i64::MIN)..(user.0 + 1, "", i64::MIN),
            |_, ()| false,
        )?;
        Ok(())
    }

    /// Records that `what` was sent for `anchor`; false if it already was.
    pub fn mark_sent(&mut self, user: UserId, what: &str, anchor: i64) -> Result<bool> {
        let t = self.tables.sent_once.write()?;
        Ok(t.insert((user.0, what, anchor), ())?.is_none())
    }

    /// Queues a notification.
    pub fn notify(&mut self, to: Recipient, message: Message) -> Result<u64> {
        let id = self.next_id("next_notification")?;
        let n = Notification {
            id,
            at: self.state.now,
            recipient: to,
            message,
        };
        self.tables
            .outbox
            .write()?
            .insert(id, encode_json(&n).as_slice())?;
        self.state.commit.notified += 1;
        Ok(id)
    }

    /// Moves a consumer's cursor forward (never back), and drops notifications every
    /// consumer has passed.
    pub fn advance_cursor(
        &mut self,
        key: &'static str,
        upto: u64,
        all: &[&'static str],
    ) -> Result<u64> {
        let next = self.cursor(key)?.max(upto);
        self.tables.meta.write()?.insert(key, next)?;
        let mut low = u64::MAX;
        for &k in all {
            low = low.min(self.cursor(k)?);
        }
        if low > 0 {
            self.tables
                .outbox
                .write()?
                .retain_in(0..=low, |_, _| false)?;
        }
        Ok(next)
    }
}
