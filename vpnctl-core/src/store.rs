//! The redb store: every table definition, every transaction, and the record codecs.
//!
//! One [`Store`] owns the database file. Writes go through [`Store::write`], which runs
//! a closure against a [`Tx`] holding all tables of one write transaction and commits
//! it durably (redb's default `Immediate` durability) before returning; an error from
//! the closure aborts the transaction, so nothing is ever partly written. Reads go
//! through [`Store::read`] on a consistent snapshot.
//!
//! Records are postcard-encoded (compact, fast); events are JSON because their enum
//! is internally tagged for the API. A schema version in the `meta` table guards the
//! record layouts; [`migrate`] is where upgrades go.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{ApiToken, JoinRecord, TokenId};
use crate::error::{Entity, Error, Result, StorageError};
use crate::ipam;
use crate::keys::{PresharedKey, PublicKey};
use crate::model::{Actor, Event, EventKind, Invite, Node, NodeId, Peer, PeerId, User, UserId};
use crate::reconcile::PeerSpec;
use crate::time::Timestamp;
use crate::vault::Vault;

/// Version of the record layouts this build reads and writes.
pub const SCHEMA_VERSION: u64 = 2;

/// Change-log entries kept per node; a node further behind gets a snapshot.
const LOG_KEEP: u64 = 8192;
/// A delta with more distinct keys than this is sent as a snapshot instead.
pub const DELTA_MAX_KEYS: usize = 2048;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const META_BYTES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta_bytes");
const USERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("users");
const USERS_BY_TG: TableDefinition<'_, i64, u64> = TableDefinition::new("users_by_telegram");
/// (until, user) of users whose access has an end that has not been swept yet.
const USERS_BY_UNTIL: TableDefinition<'_, (i64, u64), ()> = TableDefinition::new("users_by_until");
const INVITES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("invites");
/// SHA-256 of the invite code → invite id; the code itself is never stored.
const INVITES_BY_CODE: TableDefinition<'_, &[u8; 32], u64> =
    TableDefinition::new("invites_by_code");
const NODES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("nodes");
const NODES_BY_NAME: TableDefinition<'_, &str, u64> = TableDefinition::new("nodes_by_name");
/// node → (revision, log floor, peer count). Changes with revision > floor are in
/// `changes`.
const NODE_REVS: TableDefinition<'_, u64, (u64, u64, u64)> = TableDefinition::new("node_revisions");
const PEERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("peers");
const PEERS_BY_USER: TableDefinition<'_, (u64, u64), ()> = TableDefinition::new("peers_by_user");
const PEERS_BY_NODE: TableDefinition<'_, (u64, u64), ()> = TableDefinition::new("peers_by_node");
/// (user, node, lower-cased device name) → peer: device names are unique per user and
/// node.
const DEVICES: TableDefinition<'_, (u64, u64, &str), u64> = TableDefinition::new("devices");
/// user → number of peers (the device limit check without a scan).
const USER_PEER_COUNT: TableDefinition<'_, u64, u64> = TableDefinition::new("user_peer_count");
const PEERS_BY_KEY: TableDefinition<'_, (&[u8; 32], u64), u64> =
    TableDefinition::new("peers_by_key");
const ADDR_V4: TableDefinition<'_, (u64, u32), u64> = TableDefinition::new("addresses_v4");
const ADDR_V6: TableDefinition<'_, (u64, u128), u64> = TableDefinition::new("addresses_v6");
/// (node, chunk) of pool chunks that still have a free address.
const POOL_FREE: TableDefinition<'_, (u64, u32), ()> = TableDefinition::new("pool_free_chunks");
/// (node, chunk) → allocation bitmap; a chunk without a row is all free.
const POOL_BITS: TableDefinition<'_, (u64, u32), &[u8]> = TableDefinition::new("pool_bitmaps");
/// (node, peer) → what the node must configure for that peer. Exactly the peers that
/// belong on the node while it is enabled.
const DESIRED: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("desired");
/// (node, revision) → public key touched by that revision (empty: interface reset).
const CHANGES: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("changes");
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
const TOKENS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("api_tokens");
/// Hash of a token's secret → token id.
const TOKENS_BY_HASH: TableDefinition<'_, &[u8; 32], u64> =
    TableDefinition::new("api_tokens_by_hash");
/// Hash of a join secret → pending enrollment.
const JOINS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("join_secrets");
/// node → [`NodeStatus`] (JSON: it grows fields).
const NODE_STATUS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("node_status");
/// peer → (last rx counter, last tx counter, total rx, total tx).
const PEER_TRAFFIC: TableDefinition<'_, u64, (u64, u64, u64, u64)> =
    TableDefinition::new("peer_traffic");
/// user → [`Usage`].
const USAGE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("usage");
/// user → end of the period that suspended them (quota used up).
const SUSPENDED: TableDefinition<'_, u64, i64> = TableDefinition::new("suspended_users");
/// Notifications to deliver, by id (JSON).
const OUTBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("outbox");
/// (user, what, anchor) for what is sent once: e.g. (7, "remind-3", until).
const SENT_ONCE: TableDefinition<'_, (u64, &str, i64), ()> = TableDefinition::new("sent_once");

/// A peer as stored: the public [`Peer`] plus sealed key material.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PeerRecord {
    pub peer: Peer,
    pub offset: u32,
    pub private_key_sealed: Option<Vec<u8>>,
    pub preshared_key_sealed: Vec<u8>,
}

/// One peer of a node's desired state, as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct DesiredEntry {
    pub public_key: PublicKey,
    pub preshared_key_sealed: Vec<u8>,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

impl DesiredEntry {
    pub fn from_record(rec: &PeerRecord) -> Self {
        Self {
            public_key: rec.peer.public_key,
            preshared_key_sealed: rec.preshared_key_sealed.clone(),
            ipv4: rec.peer.ipv4,
            ipv6: rec.peer.ipv6,
        }
    }

    fn to_spec(&self, vault: &Vault) -> Result<PeerSpec> {
        let psk = vault.open(&self.preshared_key_sealed, self.public_key.as_bytes())?;
        let mut ips = vec![ipnet::IpNet::from(ipnet::Ipv4Net::from(self.ipv4))];
        if let Some(v6) = self.ipv6 {
            ips.push(ipnet::IpNet::from(ipnet::Ipv6Net::from(v6)));
        }
        Ok(PeerSpec::new(
            self.public_key,
            Some(PresharedKey::from_bytes(*psk)),
            ips,
            None,
        ))
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("records always serialize")
}

fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| {
        StorageError::Corrupt {
            table,
            reason: e.to_string(),
        }
        .into()
    })
}

/// What a committed write changed, for listeners (event stream, node long-polls).
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub events: Vec<Event>,
    /// Nodes whose desired state changed, with their new revision.
    pub revisions: Vec<(NodeId, u64)>,
    /// Notifications queued in the outbox (to wake long-polling consumers).
    pub notified: u32,
}

/// The database file plus the key that seals secrets in it.
#[derive(Debug)]
pub struct Store {
    db: Database,
    vault: Vault,
}

impl Store {
    /// Opens (or creates) the database at `path`. Fails when another process has it
    /// open, when it was written by a newer schema, or when `vault` is not the key file
    /// the database was created with.
    pub fn open(path: &Path, vault: Vault) -> Result<Self, StorageError> {
        let db = Database::create(path)?;
        let store = Self { db, vault };
        store.init()?;
        Ok(store)
    }

    fn init(&self) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                }
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StorageError::SchemaTooNew {
                        found: v,
                        supported: SCHEMA_VERSION,
                    });
                }
                Some(v) if v < SCHEMA_VERSION => {
                    drop(meta);
                    migrate(&txn, v)?;
                    txn.open_table(META)?
                        .insert("schema_version", SCHEMA_VERSION)?;
                }
                Some(_) => {}
            }
            let mut meta_bytes = txn.open_table(META_BYTES)?;
            let fingerprint = self.vault.fingerprint();
            let stored = meta_bytes
                .get("vault_fingerprint")?
                .map(|v| v.value().to_vec());
            match stored {
                None => {
                    meta_bytes.insert("vault_fingerprint", fingerprint.as_slice())?;
                }
                Some(f) if f != fingerprint => return Err(StorageError::KeyMismatch),
                Some(_) => {}
            }
            // Create every table so that readers never meet a missing one.
            txn.open_table(USERS)?;
            txn.open_table(USERS_BY_TG)?;
            txn.open_table(USERS_BY_UNTIL)?;
            txn.open_table(INVITES)?;
            txn.open_table(INVITES_BY_CODE)?;
            txn.open_table(NODES)?;
            txn.open_table(NODES_BY_NAME)?;
            txn.open_table(NODE_REVS)?;
            txn.open_table(PEERS)?;
            txn.open_table(PEERS_BY_USER)?;
            txn.open_table(PEERS_BY_NODE)?;
            txn.open_table(PEERS_BY_KEY)?;
            txn.open_table(DEVICES)?;
            txn.open_table(USER_PEER_COUNT)?;
            txn.open_table(ADDR_V4)?;
            txn.open_table(ADDR_V6)?;
            txn.open_table(POOL_FREE)?;
            txn.open_table(POOL_BITS)?;
            txn.open_table(DESIRED)?;
            txn.open_table(CHANGES)?;
            txn.open_table(EVENTS)?;
            txn.open_table(TOKENS)?;
            txn.open_table(TOKENS_BY_HASH)?;
            txn.open_table(JOINS)?;
            txn.open_table(NODE_STATUS)?;
            txn.open_table(PEER_TRAFFIC)?;
            txn.open_table(USAGE)?;
            txn.open_table(SUSPENDED)?;
            txn.open_table(OUTBOX)?;
            txn.open_table(SENT_ONCE)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Runs `f` in one write transaction and commits it durably; on error nothing is
    /// written.
    pub(crate) fn write<T>(
        &self,
        actor: &Actor,
        now: Timestamp,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<(T, Commit)> {
        let txn = self.db.begin_write()?;
        let (out, commit) = {
            let mut tx = Tx::open(&txn, &self.vault, actor.clone(), now)?;
            let out = f(&mut tx)?;
            tx.finish()?;
            (out, tx.commit)
        };
        txn.commit()?;
        Ok((out, commit))
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Rx<'_>) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read()?;
        f(&Rx {
            txn: &txn,
            vault: &self.vault,
        })
    }
}

/// Upgrades the records of an older schema in place. Version 1 is the first.
fn migrate(txn: &redb::WriteTransaction, from: u64) -> Result<(), StorageError> {
    if from < 2 {
        // Version 2 added `quota` and `suspended` to users.
        #[derive(Deserialize)]
        struct UserV1 {
            id: crate::model::UserId,
            telegram_id: Option<i64>,
            name: String,
            role: crate::model::Role,
            state: crate::model::UserState,
            until: Option<Timestamp>,
            lapsed: bool,
            device_limit: u32,
            locale: crate::model::Locale,
            created_at: Timestamp,
        }
        let mut users = txn.open_table(USERS)?;
        let mut rewritten = Vec::new();
        for row in users.iter()? {
            let (k, v) = row?;
            let old: UserV1 = decode("users", v.value()).map_err(|e| StorageError::Corrupt {
                table: "users",
                reason: e.to_string(),
            })?;
            let new = User {
                id: old.id,
                telegram_id: old.telegram_id,
                name: old.name,
                role: old.role,
                state: old.state,
                until: old.until,
                lapsed: old.lapsed,
                device_limit: old.device_limit,
                locale: old.locale,
                created_at: old.created_at,
                quota: None,
                suspended: false,
            };
            rewritten.push((k.value(), encode(&new)));
        }
        for (k, v) in rewritten {
            users.insert(k, v.as_slice())?;
        }
    }
    Ok(())
}

/// All tables of one write transaction.
pub(crate) struct Tx<'t> {
    /// For the tables only some writes need, opened on demand.
    pub txn: &'t redb::WriteTransaction,
    pub vault: &'t Vault,
    pub actor: Actor,
    pub now: Timestamp,
    meta: Table<'t, &'static str, u64>,
    users: Table<'t, u64, &'static [u8]>,
    users_by_tg: Table<'t, i64, u64>,
    users_by_until: Table<'t, (i64, u64), ()>,
    invites: Table<'t, u64, &'static [u8]>,
    invites_by_code: Table<'t, &'static [u8; 32], u64>,
    nodes: Table<'t, u64, &'static [u8]>,
    nodes_by_name: Table<'t, &'static str, u64>,
    node_revs: Table<'t, u64, (u64, u64, u64)>,
    peers: Table<'t, u64, &'static [u8]>,
    peers_by_user: Table<'t, (u64, u64), ()>,
    peers_by_node: Table<'t, (u64, u64), ()>,
    peers_by_key: Table<'t, (&'static [u8; 32], u64), u64>,
    devices: Table<'t, (u64, u64, &'static str), u64>,
    user_peer_count: Table<'t, u64, u64>,
    addr_v4: Table<'t, (u64, u32), u64>,
    addr_v6: Table<'t, (u64, u128), u64>,
    pool_free: Table<'t, (u64, u32), ()>,
    pool_bits: Table<'t, (u64, u32), &'static [u8]>,
    desired: Table<'t, (u64, u64), &'static [u8]>,
    changes: Table<'t, (u64, u64), &'static [u8]>,
    events: Table<'t, u64, &'static [u8]>,
    tokens: Table<'t, u64, &'static [u8]>,
    tokens_by_hash: Table<'t, &'static [u8; 32], u64>,
    joins: Table<'t, &'static [u8; 32], &'static [u8]>,
    commit: Commit,
    /// Nodes whose change log may need pruning at the end of the transaction.
    touched: BTreeSet<u64>,
}

impl<'t> Tx<'t> {
    fn open(
        txn: &'t redb::WriteTransaction,
        vault: &'t Vault,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Self> {
        Ok(Self {
            txn,
            vault,
            actor,
            now,
            meta: txn.open_table(META)?,
            users: txn.open_table(USERS)?,
            users_by_tg: txn.open_table(USERS_BY_TG)?,
            users_by_until: txn.open_table(USERS_BY_UNTIL)?,
            invites: txn.open_table(INVITES)?,
            invites_by_code: txn.open_table(INVITES_BY_CODE)?,
            nodes: txn.open_table(NODES)?,
            nodes_by_name: txn.open_table(NODES_BY_NAME)?,
            node_revs: txn.open_table(NODE_REVS)?,
            peers: txn.open_table(PEERS)?,
            peers_by_user: txn.open_table(PEERS_BY_USER)?,
            peers_by_node: txn.open_table(PEERS_BY_NODE)?,
            peers_by_key: txn.open_table(PEERS_BY_KEY)?,
            devices: txn.open_table(DEVICES)?,
            user_peer_count: txn.open_table(USER_PEER_COUNT)?,
            addr_v4: txn.open_table(ADDR_V4)?,
            addr_v6: txn.open_table(ADDR_V6)?,
            pool_free: txn.open_table(POOL_FREE)?,
            pool_bits: txn.open_table(POOL_BITS)?,
            desired: txn.open_table(DESIRED)?,
            changes: txn.open_table(CHANGES)?,
            events: txn.open_table(EVENTS)?,
            tokens: txn.open_table(TOKENS)?,
            tokens_by_hash: txn.open_table(TOKENS_BY_HASH)?,
            joins: txn.open_table(JOINS)?,
            commit: Commit::default(),
            touched: BTreeSet::new(),
        })
    }

    /// Prunes change logs and records the final revision of every touched node.
    fn finish(&mut self) -> Result<()> {
        for node in std::mem::take(&mut self.touched) {
            let Some((rev, floor, count)) = self.node_revs.get(node)?.map(|v| v.value()) else {
                continue;
            };
            if rev - floor > LOG_KEEP {
                let new_floor = rev - LOG_KEEP / 2;
                self.changes
                    .retain_in((node, floor)..=(node, new_floor), |_, _| false)?;
                self.node_revs.insert(node, (rev, new_floor, count))?;
            }
            self.commit.revisions.push((NodeId(node), rev));
        }
        Ok(())
    }

    pub fn next_id(&mut self, sequence: &'static str) -> Result<u64> {
        let next = self.meta.get(sequence)?.map_or(1, |v| v.value());
        self.meta.insert(sequence, next + 1)?;
        Ok(next)
    }

    pub fn event(&mut self, kind: EventKind) -> Result<()> {
        let seq = self.next_id("next_event")?;
        let event = Event {
            seq,
            at: self.now,
            actor: self.actor.clone(),
            kind,
        };
        let json = serde_json::to_vec(&event).expect("events always serialize");
        self.events.insert(seq, json.as_slice())?;
        self.commit.events.push(event);
        Ok(())
    }

    // ---- users

    pub fn user(&self, id: UserId) -> Result<User> {
        match self.users.get(id.0)? {
            Some(v) => decode("users", v.value()),
            None => Err(Error::not_found(Entity::User, id)),
        }
    }

    pub fn user_by_telegram(&self, telegram_id: i64) -> Result<Option<User>> {
        let id = self.users_by_tg.get(telegram_id)?.map(|v| v.value());
        id.map(|id| self.user(UserId(id))).transpose()
    }

    /// Writes `new`, keeping the Telegram and expiry indexes in step with `old`.
    pub fn put_user(&mut self, old: Option<&User>, new: &User) -> Result<()> {
        let id = new.id.0;
        if old.and_then(|u| u.telegram_id) != new.telegram_id {
            if let Some(tg) = new.telegram_id {
                if let Some(other) = self.users_by_tg.get(tg)?.map(|v| v.value())
                    && other != id
                {
                    return Err(Error::Conflict(format!(
                        "Telegram id {tg} already belongs to user {other}"
                    )));
                }
                self.users_by_tg.insert(tg, id)?;
            }
            if let Some(tg) = old.and_then(|u| u.telegram_id) {
                self.users_by_tg.remove(tg)?;
            }
        }
        let key = |u: &User| u.until.filter(|_| !u.lapsed).map(|t| (t.0, u.id.0));
        let (old_key, new_key) = (old.and_then(key), key(new));
        if old_key != new_key {
            if let Some(k) = old_key {
                self.users_by_until.remove(k)?;
            }
            if let Some(k) = new_key {
                self.users_by_until.insert(k, ())?;
            }
        }
        self.users.insert(id, encode(new).as_slice())?;
        Ok(())
    }

    pub fn delete_user_record(&mut self, user: &User) -> Result<()> {
        if let Some(tg) = user.telegram_id {
            self.users_by_tg.remove(tg)?;
        }
        if let Some(until) = user.until {
            self.users_by_until.remove((until.0, user.id.0))?;
        }
        self.users.remove(user.id.0)?;
        Ok(())
    }

    /// Users whose unswept access ended at or before `now`.
    pub fn users_due(&self, now: Timestamp) -> Result<Vec<UserId>> {
        let mut out = Vec::new();
        for row in self
            .users_by_until
            .range((i64::MIN, 0)..=(now.0, u64::MAX))?
        {
            out.push(UserId(row?.0.value().1));
        }
        Ok(out)
    }

    // ---- invites

    pub fn invite(&self, id: crate::model::InviteId) -> Result<Invite> {
        match self.invites.get(id.0)? {
            Some(v) => decode("invites", v.value()),
            None => Err(Error::not_found(Entity::Invite, id)),
        }
    }

    pub fn invite_by_code_hash(&self, hash: &[u8; 32]) -> Result<Option<Invite>> {
        let id = self.invites_by_code.get(hash)?.map(|v| v.value());
        id.map(|id| self.invite(crate::model::InviteId(id)))
            .transpose()
    }

    pub fn put_invite(&mut self, invite: &Invite, code_hash: Option<&[u8; 32]>) -> Result<()> {
        if let Some(hash) = code_hash {
            if self.invites_by_code.get(hash)?.is_some() {
                return Err(Error::Conflict("invite code collision; try again".into()));
            }
            self.invites_by_code.insert(hash, invite.id.0)?;
        }
        self.invites
            .insert(invite.id.0, encode(invite).as_slice())?;
        Ok(())
    }

    // ---- tokens

    pub fn insert_token(&mut self, token: &ApiToken, hash: &[u8; 32]) -> Result<()> {
        if self.tokens_by_hash.insert(hash, token.id.0)?.is_some() {
            return Err(Error::Conflict("token collision; try again".into()));
        }
        let json = serde_json::to_vec(token).expect("tokens serialize");
        self.tokens.insert(token.id.0, json.as_slice())?;
        Ok(())
    }

    /// Deletes a token; returns it if it existed.
    pub fn delete_token(&mut self, id: TokenId) -> Result<Option<ApiToken>> {
        let Some(json) = self.tokens.remove(id.0)?.map(|v| v.value().to_vec()) else {
            return Ok(None);
        };
        self.tokens_by_hash.retain(|_, v| v != id.0)?;
        decode_json("api_tokens", &json).map(Some)
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        let mut out = Vec::new();
        for row in self.tokens.iter()? {
            out.push(decode_json("api_tokens", row?.1.value())?);
        }
        Ok(out)
    }

    pub fn insert_join(&mut self, hash: &[u8; 32], join: &JoinRecord) -> Result<()> {
        let json = serde_json::to_vec(join).expect("joins serialize");
        self.joins.insert(hash, json.as_slice())?;
        Ok(())
    }

    /// Removes and returns a pending enrollment (join secrets are single-use).
    pub fn take_join(&mut self, hash: &[u8; 32]) -> Result<Option<JoinRecord>> {
        let json = self.joins.remove(hash)?.map(|v| v.value().to_vec());
        json.map(|j| decode_json("join_secrets", &j)).transpose()
    }

    // ---- nodes

    pub fn node(&self, id: NodeId) -> Result<Node> {
        match self.nodes.get(id.0)? {
            Some(v) => decode("nodes", v.value()),
            None => Err(Error::not_found(Entity::Node, id)),
        }
    }

    pub fn node_id_by_name(&self, name: &str) -> Result<Option<NodeId>> {
        Ok(self.nodes_by_name.get(name)?.map(|v| NodeId(v.value())))
    }

    /// Creates a node record with its pool index and revision row.
    pub fn insert_node(&mut self, node: &Node) -> Result<()> {
        if self.node_id_by_name(&node.name)?.is_some() {
            return Err(Error::Conflict(format!(
                "a node named {:?} exists",
                node.name
            )));
        }
        let id = node.id.0;
        self.nodes_by_name.insert(node.name.as_str(), id)?;
        self.nodes.insert(id, encode(node).as_slice())?;
        self.node_revs.insert(id, (0, 0, 0))?;
        for chunk in 0..ipam::chunk_count(ipam::pool_size(node.ipv4_pool)) {
            self.pool_free.insert((id, chunk), ())?;
        }
        Ok(())
    }

    pub fn put_node(&mut self, node: &Node) -> Result<()> {
        self.nodes.insert(node.id.0, encode(node).as_slice())?;
        Ok(())
    }

    pub fn delete_node_record(&mut self, node: &Node) -> Result<()> {
        let id = node.id.0;
        self.nodes_by_name.remove(node.name.as_str())?;
        self.nodes.remove(id)?;
        self.node_revs.remove(id)?;
        self.pool_free
            .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        self.pool_bits
            .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        self.changes
            .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
        self.desired
            .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
        Ok(())
    }

    pub fn node_peer_count(&self, node: NodeId) -> Result<u64> {
        Ok(self.node_revs.get(node.0)?.map_or(0, |v| v.value().2))
    }

    fn adjust_peer_count(&mut self, node: NodeId, delta: i64) -> Result<()> {
        let (rev, floor, count) = self.node_revs.get(node.0)?.map_or((0, 0, 0), |v| v.value());
        let count = count.saturating_add_signed(delta);
        self.node_revs.insert(node.0, (rev, floor, count))?;
        Ok(())
    }

    /// Bumps the node's revision, logging which key changed (`None`: the interface
    /// itself changed and deltas across this revision are impossible).
    pub fn bump(&mut self, node: NodeId, key: Option<&PublicKey>) -> Result<u64> {
        let (rev, floor, count) = self.node_revs.get(node.0)?.map_or((0, 0, 0), |v| v.value());
        let rev = rev + 1;
        self.node_revs.insert(node.0, (rev, floor, count))?;
        let bytes: &[u8] = key.map_or(&[], |k| k.as_bytes().as_slice());
        self.changes.insert((node.0, rev), bytes)?;
        self.touched.insert(node.0);
        Ok(rev)
    }

    // ---- peers

    pub fn peer(&self, id: PeerId) -> Result<PeerRecord> {
        match self.peers.get(id.0)? {
            Some(v) => decode("peers", v.value()),
            None => Err(Error::not_found(Entity::Peer, id)),
        }
    }

    pub fn user_peer_ids(&self, user: UserId) -> Result<Vec<PeerId>> {
        let mut out = Vec::new();
        for row in self.peers_by_user.range((user.0, 0)..=(user.0, u64::MAX))? {
            out.push(PeerId(row?.0.value().1));
        }
        Ok(out)
    }

    pub fn node_peer_ids(&self, node: NodeId) -> Result<Vec<PeerId>> {
        let mut out = Vec::new();
        for row in self.peers_by_node.range((node.0, 0)..=(node.0, u64::MAX))? {
            out.push(PeerId(row?.0.value().1));
        }
        Ok(out)
    }

    pub fn user_peer_count(&self, user: UserId) -> Result<u64> {
        Ok(self.user_peer_count.get(user.0)?.map_or(0, |v| v.value()))
    }

    fn adjust_user_count(&mut self, user: UserId, delta: i64) -> Result<()> {
        let count = self.user_peer_count(user)?.saturating_add_signed(delta);
        if count == 0 {
            self.user_peer_count.remove(user.0)?;
        } else {
            self.user_peer_count.insert(user.0, count)?;
        }
        Ok(())
    }

    pub fn device_taken(&self, user: UserId, node: NodeId, device: &str) -> Result<bool> {
        let lower = device.to_lowercase();
        Ok(self
            .devices
            .get((user.0, node.0, lower.as_str()))?
            .is_some())
    }

    pub fn key_taken(&self, key: &PublicKey, node: NodeId) -> Result<bool> {
        Ok(self.peers_by_key.get((key.as_bytes(), node.0))?.is_some())
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
        if self.addr_v4.get((node, u32::from(p.ipv4)))?.is_some() {
            return Err(corrupt("addresses_v4", format!("address {}", p.ipv4)));
        }
        if let Some(v6) = p.ipv6
            && self.addr_v6.get((node, u128::from(v6)))?.is_some()
        {
            return Err(corrupt("addresses_v6", format!("address {v6}")));
        }
        if self
            .peers_by_key
            .get((p.public_key.as_bytes(), node))?
            .is_some()
        {
            return Err(corrupt(
                "peers_by_key",
                format!("public key {}", p.public_key),
            ));
        }
        if self
            .devices
            .get((p.user.0, node, device.as_str()))?
            .is_some()
        {
            return Err(corrupt("devices", format!("device {:?}", p.device)));
        }
        self.addr_v4.insert((node, u32::from(p.ipv4)), id)?;
        if let Some(v6) = p.ipv6 {
            self.addr_v6.insert((node, u128::from(v6)), id)?;
        }
        self.peers_by_key
            .insert((p.public_key.as_bytes(), node), id)?;
        self.devices.insert((p.user.0, node, device.as_str()), id)?;
        self.peers_by_user.insert((p.user.0, id), ())?;
        self.peers_by_node.insert((node, id), ())?;
        self.peers.insert(id, encode(rec).as_slice())?;
        self.adjust_user_count(p.user, 1)?;
        self.adjust_peer_count(p.node, 1)
    }

    /// Rewrites a peer whose public key changed (rotation); addresses stay.
    pub fn replace_peer_key(&mut self, old: &PeerRecord, new: &PeerRecord) -> Result<()> {
        let node = new.peer.node.0;
        if self
            .peers_by_key
            .insert((new.peer.public_key.as_bytes(), node), new.peer.id.0)?
            .is_some()
        {
            return Err(Error::Conflict(format!(
                "public key {} is already used on node {node}",
                new.peer.public_key
            )));
        }
        self.peers_by_key
            .remove((old.peer.public_key.as_bytes(), node))?;
        self.peers.insert(new.peer.id.0, encode(new).as_slice())?;
        Ok(())
    }

    pub fn delete_peer(&mut self, rec: &PeerRecord, node: &Node) -> Result<()> {
        let p = &rec.peer;
        let (id, n) = (p.id.0, p.node.0);
        self.addr_v4.remove((n, u32::from(p.ipv4)))?;
        if let Some(v6) = p.ipv6 {
            self.addr_v6.remove((n, u128::from(v6)))?;
        }
        self.peers_by_key.remove((p.public_key.as_bytes(), n))?;
        self.devices
            .remove((p.user.0, n, p.device.to_lowercase().as_str()))?;
        self.peers_by_user.remove((p.user.0, id))?;
        self.peers_by_node.remove((n, id))?;
        self.peers.remove(id)?;
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
            let chunk = match self.pool_free.range((id, 0)..=(id, u32::MAX))?.next() {
                Some(row) => row?.0.value().1,
                None => return Err(Error::PoolExhausted { node: node.id }),
            };
            let mut bits = self.chunk_bits(id, chunk)?;
            let Some(offset) = ipam::first_free(&bits, chunk, size) else {
                // Only reserved offsets remain in this chunk.
                self.pool_free.remove((id, chunk))?;
                continue;
            };
            ipam::set(&mut bits, offset, true);
            self.pool_bits.insert((id, chunk), bits.as_slice())?;
            if ipam::first_free(&bits, chunk, size).is_none() {
                self.pool_free.remove((id, chunk))?;
            }
            return Ok(offset);
        }
    }

    fn release(&mut self, node: &Node, offset: u32) -> Result<()> {
        let id = node.id.0;
        let chunk = offset / ipam::CHUNK_BITS;
        let mut bits = self.chunk_bits(id, chunk)?;
        ipam::set(&mut bits, offset, false);
        self.pool_bits.insert((id, chunk), bits.as_slice())?;
        self.pool_free.insert((id, chunk), ())?;
        Ok(())
    }

    fn chunk_bits(&self, node: u64, chunk: u32) -> Result<[u8; ipam::CHUNK_BYTES]> {
        let mut bits = [0u8; ipam::CHUNK_BYTES];
        if let Some(v) = self.pool_bits.get((node, chunk))? {
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
        Ok(self.desired.get((node.0, peer.0))?.is_some())
    }

    /// Puts the peer into (or takes it out of) its node's desired state, bumping the
    /// node's revision for every public key whose entry changes.
    pub fn set_desired(&mut self, rec: &PeerRecord, want: bool) -> Result<()> {
        let key = (rec.peer.node.0, rec.peer.id.0);
        let old: Option<DesiredEntry> = match self.desired.get(key)? {
            Some(v) => Some(decode("desired", v.value())?),
            None => None,
        };
        let new = want.then(|| DesiredEntry::from_record(rec));
        let same = match (&old, &new) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.public_key == b.public_key
                    && a.preshared_key_sealed == b.preshared_key_sealed
                    && a.ipv4 == b.ipv4
                    && a.ipv6 == b.ipv6
            }
            _ => false,
        };
        if same {
            return Ok(());
        }
        match &new {
            Some(entry) => self.desired.insert(key, encode(entry).as_slice())?,
            None => self.desired.remove(key)?,
        };
        if let Some(old) = &old
            && new.as_ref().is_none_or(|n| n.public_key != old.public_key)
        {
            self.bump(rec.peer.node, Some(&old.public_key))?;
        }
        if let Some(new) = &new {
            self.bump(rec.peer.node, Some(&new.public_key))?;
        }
        Ok(())
    }
}

/// A consistent read snapshot.
pub(crate) struct Rx<'t> {
    txn: &'t ReadTransaction,
    pub vault: &'t Vault,
}

impl Rx<'_> {
    fn get<K: redb::Key + 'static>(
        &self,
        def: TableDefinition<'_, K, &'static [u8]>,
        key: K::SelfType<'_>,
    ) -> Result<Option<Vec<u8>>> {
        let t = self.txn.open_table(def)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    pub fn user(&self, id: UserId) -> Result<User> {
        match self.get(USERS, id.0)? {
            Some(b) => decode("users", &b),
            None => Err(Error::not_found(Entity::User, id)),
        }
    }

    pub fn user_by_telegram(&self, telegram_id: i64) -> Result<Option<User>> {
        let t = self.txn.open_table(USERS_BY_TG)?;
        let id = t.get(telegram_id)?.map(|v| v.value());
        id.map(|id| self.user(UserId(id))).transpose()
    }

    pub fn users(&self) -> Result<Vec<User>> {
        all(&self.txn.open_table(USERS)?, "users")
    }

    pub fn invites(&self) -> Result<Vec<Invite>> {
        all(&self.txn.open_table(INVITES)?, "invites")
    }

    pub fn invite(&self, id: crate::model::InviteId) -> Result<Invite> {
        match self.get(INVITES, id.0)? {
            Some(b) => decode("invites", &b),
            None => Err(Error::not_found(Entity::Invite, id)),
        }
    }

    pub fn node(&self, id: NodeId) -> Result<Node> {
        match self.get(NODES, id.0)? {
            Some(b) => decode("nodes", &b),
            None => Err(Error::not_found(Entity::Node, id)),
        }
    }

    pub fn node_by_name(&self, name: &str) -> Result<Option<Node>> {
        let t = self.txn.open_table(NODES_BY_NAME)?;
        let id = t.get(name)?.map(|v| v.value());
        id.map(|id| self.node(NodeId(id))).transpose()
    }

    pub fn nodes(&self) -> Result<Vec<Node>> {
        all(&self.txn.open_table(NODES)?, "nodes")
    }

    /// (revision, log floor, peer count)
    pub fn node_rev(&self, id: NodeId) -> Result<(u64, u64, u64)> {
        let t = self.txn.open_table(NODE_REVS)?;
        t.get(id.0)?
            .map(|v| v.value())
            .ok_or_else(|| Error::not_found(Entity::Node, id))
    }

    pub fn peer(&self, id: PeerId) -> Result<PeerRecord> {
        match self.get(PEERS, id.0)? {
            Some(b) => decode("peers", &b),
            None => Err(Error::not_found(Entity::Peer, id)),
        }
    }

    pub fn peers(&self) -> Result<Vec<Peer>> {
        let recs: Vec<PeerRecord> = all(&self.txn.open_table(PEERS)?, "peers")?;
        Ok(recs.into_iter().map(|r| r.peer).collect())
    }

    fn peers_in(&self, def: TableDefinition<'_, (u64, u64), ()>, owner: u64) -> Result<Vec<Peer>> {
        let index = self.txn.open_table(def)?;
        let peers = self.txn.open_table(PEERS)?;
        let mut out = Vec::new();
        for row in index.range((owner, 0)..=(owner, u64::MAX))? {
            let id = row?.0.value().1;
            if let Some(v) = peers.get(id)? {
                out.push(decode::<PeerRecord>("peers", v.value())?.peer);
            }
        }
        Ok(out)
    }

    pub fn user_peers(&self, user: UserId) -> Result<Vec<Peer>> {
        self.peers_in(PEERS_BY_USER, user.0)
    }

    pub fn node_peers(&self, node: NodeId) -> Result<Vec<Peer>> {
        self.peers_in(PEERS_BY_NODE, node.0)
    }

    /// Peers with this public key, on any node.
    pub fn peers_by_key(&self, key: &PublicKey) -> Result<Vec<PeerId>> {
        let t = self.txn.open_table(PEERS_BY_KEY)?;
        let mut out = Vec::new();
        for row in t.range((key.as_bytes(), 0)..=(key.as_bytes(), u64::MAX))? {
            out.push(PeerId(row?.1.value()));
        }
        Ok(out)
    }

    pub fn peer_by_v4(&self, node: NodeId, addr: Ipv4Addr) -> Result<Option<PeerId>> {
        let t = self.txn.open_table(ADDR_V4)?;
        Ok(t.get((node.0, u32::from(addr)))?.map(|v| PeerId(v.value())))
    }

    pub fn peer_by_v6(&self, node: NodeId, addr: Ipv6Addr) -> Result<Option<PeerId>> {
        let t = self.txn.open_table(ADDR_V6)?;
        Ok(t.get((node.0, u128::from(addr)))?
            .map(|v| PeerId(v.value())))
    }

    /// The node's desired peers (ignores whether the node is enabled), sorted by key.
    /// How many peers the desired table holds for `node` (keys only, nothing decoded).
    pub fn desired_count(&self, node: NodeId) -> Result<u64> {
        let t = self.txn.open_table(DESIRED)?;
        let mut n = 0;
        for row in t.range((node.0, 0)..=(node.0, u64::MAX))? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    pub fn desired_specs(&self, node: NodeId) -> Result<Vec<PeerSpec>> {
        let t = self.txn.open_table(DESIRED)?;
        let mut out = Vec::new();
        for row in t.range((node.0, 0)..=(node.0, u64::MAX))? {
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
        let t = self.txn.open_table(CHANGES)?;
        let mut keys = BTreeSet::new();
        for row in t.range((node.0, after + 1)..=(node.0, to))? {
            let (_, v) = row?;
            let bytes = v.value();
            let Ok(arr) = <[u8; 32]>::try_from(bytes) else {
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
        let by_key = self.txn.open_table(PEERS_BY_KEY)?;
        let Some(peer) = by_key.get((key.as_bytes(), node.0))?.map(|v| v.value()) else {
            return Ok(None);
        };
        let desired = self.txn.open_table(DESIRED)?;
        let Some(v) = desired.get((node.0, peer))? else {
            return Ok(None);
        };
        let entry: DesiredEntry = decode("desired", v.value())?;
        if entry.public_key != *key {
            return Ok(None);
        }
        entry.to_spec(self.vault).map(Some)
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        let t = self.txn.open_table(TOKENS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(decode_json("api_tokens", row?.1.value())?);
        }
        Ok(out)
    }

    /// The lowest free offset of the node's pool, as [`Tx::allocate`] would take it.
    pub fn next_free_offset(&self, node: &Node) -> Result<u32> {
        let id = node.id.0;
        let size = ipam::pool_size(node.ipv4_pool);
        let free = self.txn.open_table(POOL_FREE)?;
        let bits_table = self.txn.open_table(POOL_BITS)?;
        for row in free.range((id, 0)..=(id, u32::MAX))? {
            let chunk = row?.0.value().1;
            let mut bits = [0u8; ipam::CHUNK_BYTES];
            if let Some(v) = bits_table.get((id, chunk))? {
                let stored = v.value();
                if stored.len() == ipam::CHUNK_BYTES {
                    bits.copy_from_slice(stored);
                }
            }
            if let Some(offset) = ipam::first_free(&bits, chunk, size) {
                return Ok(offset);
            }
        }
        Err(Error::PoolExhausted { node: node.id })
    }

    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        let index = self.txn.open_table(TOKENS_BY_HASH)?;
        let Some(id) = index.get(hash)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let tokens = self.txn.open_table(TOKENS)?;
        let json = tokens.get(id)?.map(|v| v.value().to_vec());
        json.map(|j| decode_json("api_tokens", &j)).transpose()
    }

    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        let t = self.txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for row in t.range(after.saturating_add(1)..)?.take(limit) {
            out.push(decode_event(row?.1.value())?);
        }
        Ok(out)
    }

    pub fn recent_events(&self, limit: usize) -> Result<Vec<Event>> {
        let t = self.txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for row in t.iter()?.rev().take(limit) {
            out.push(decode_event(row?.1.value())?);
        }
        out.reverse();
        Ok(out)
    }
}

// ---------------------------------------------------------------- lifecycle

use crate::lifecycle::{NodeStatus, Notification, Recipient, Usage};

impl Tx<'_> {
    pub fn node_ids(&self) -> Result<Vec<NodeId>> {
        let mut out = Vec::new();
        for row in self.nodes.iter()? {
            out.push(NodeId(row?.0.value()));
        }
        Ok(out)
    }

    /// The node's current desired revision.
    pub fn desired_revision(&self, node: NodeId) -> Result<u64> {
        Ok(self.node_revs.get(node.0)?.map_or(0, |v| v.value().0))
    }

    pub fn peer_id_by_key(&self, node: NodeId, key: &PublicKey) -> Result<Option<PeerId>> {
        Ok(self
            .peers_by_key
            .get((key.as_bytes(), node.0))?
            .map(|v| PeerId(v.value())))
    }

    pub fn node_status(&self, node: NodeId) -> Result<NodeStatus> {
        node_status_in(&self.txn.open_table(NODE_STATUS)?, node)
    }

    pub fn put_node_status(&mut self, node: NodeId, status: &NodeStatus) -> Result<()> {
        let json = serde_json::to_vec(status).expect("status serializes");
        self.txn
            .open_table(NODE_STATUS)?
            .insert(node.0, json.as_slice())?;
        Ok(())
    }

    pub fn forget_node_status(&mut self, node: NodeId) -> Result<()> {
        self.txn.open_table(NODE_STATUS)?.remove(node.0)?;
        Ok(())
    }

    /// Adds a peer's new counter readings; returns the bytes they add.
    pub fn account_peer(&mut self, peer: PeerId, rx: u64, tx: u64) -> Result<(u64, u64)> {
        let mut t = self.txn.open_table(PEER_TRAFFIC)?;
        let (last_rx, last_tx, total_rx, total_tx) =
            t.get(peer.0)?.map_or((0, 0, 0, 0), |v| v.value());
        let d_rx = crate::lifecycle::counter_delta(last_rx, rx);
        let d_tx = crate::lifecycle::counter_delta(last_tx, tx);
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
        self.txn.open_table(PEER_TRAFFIC)?.remove(peer.0)?;
        Ok(())
    }

    pub fn usage(&self, user: UserId) -> Result<Usage> {
        usage_in(&self.txn.open_table(USAGE)?, user)
    }

    pub fn put_usage(&mut self, user: UserId, usage: &Usage) -> Result<()> {
        self.txn
            .open_table(USAGE)?
            .insert(user.0, encode(usage).as_slice())?;
        Ok(())
    }

    pub fn set_suspended(&mut self, user: UserId, until: Option<Timestamp>) -> Result<()> {
        let mut t = self.txn.open_table(SUSPENDED)?;
        match until {
            Some(u) => t.insert(user.0, u.0)?,
            None => t.remove(user.0)?,
        };
        Ok(())
    }

    /// Suspended users whose period ended at or before `now`.
    pub fn suspensions_over(&self, now: Timestamp) -> Result<Vec<UserId>> {
        let t = self.txn.open_table(SUSPENDED)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if v.value() <= now.0 {
                out.push(UserId(k.value()));
            }
        }
        Ok(out)
    }

    pub fn forget_user_lifecycle(&mut self, user: UserId) -> Result<()> {
        self.txn.open_table(USAGE)?.remove(user.0)?;
        self.txn.open_table(SUSPENDED)?.remove(user.0)?;
        self.txn.open_table(SENT_ONCE)?.retain_in(
            (user.0, "", i64::MIN)..(user.0 + 1, "", i64::MIN),
            |_, ()| false,
        )?;
        Ok(())
    }

    /// Users whose unswept access ends in `(after, upto]`.
    pub fn users_ending(
        &self,
        after: Timestamp,
        upto: Timestamp,
    ) -> Result<Vec<(UserId, Timestamp)>> {
        let mut out = Vec::new();
        for row in self
            .users_by_until
            .range((after.0, u64::MAX)..=(upto.0, u64::MAX))?
        {
            let (until, id) = row?.0.value();
            out.push((UserId(id), Timestamp(until)));
        }
        Ok(out)
    }

    /// Records that `what` was sent for `anchor`; false if it already was.
    pub fn mark_sent(&mut self, user: UserId, what: &str, anchor: i64) -> Result<bool> {
        let mut t = self.txn.open_table(SENT_ONCE)?;
        Ok(t.insert((user.0, what, anchor), ())?.is_none())
    }

    pub fn was_sent(&self, user: UserId, what: &str, anchor: i64) -> Result<bool> {
        let t = self.txn.open_table(SENT_ONCE)?;
        Ok(t.get((user.0, what, anchor))?.is_some())
    }

    /// Queues a notification.
    pub fn notify(&mut self, to: Recipient, message: crate::lifecycle::Message) -> Result<u64> {
        let id = self.next_id("next_notification")?;
        let n = Notification {
            id,
            at: self.now,
            recipient: to,
            message,
        };
        let json = serde_json::to_vec(&n).expect("notifications serialize");
        self.txn.open_table(OUTBOX)?.insert(id, json.as_slice())?;
        self.commit.notified += 1;
        Ok(id)
    }

    pub fn cursor(&self, key: &'static str) -> Result<u64> {
        Ok(self.meta.get(key)?.map_or(0, |v| v.value()))
    }

    /// Moves a consumer's cursor forward (never back), and drops notifications every
    /// consumer has passed.
    pub fn advance_cursor(
        &mut self,
        key: &'static str,
        upto: u64,
        all: &[&'static str],
    ) -> Result<u64> {
        let current = self.cursor(key)?;
        let next = current.max(upto);
        self.meta.insert(key, next)?;
        let mut low = u64::MAX;
        for k in all {
            low = low.min(self.meta.get(*k)?.map_or(0, |v| v.value()));
        }
        if low > 0 {
            self.txn
                .open_table(OUTBOX)?
                .retain_in(0..=low, |_, _| false)?;
        }
        Ok(next)
    }
}

impl Rx<'_> {
    /// What a sweep at `now` has to do, found without writing: (access ended,
    /// a reminder not yet queued, a quota suspension that is over).
    pub fn sweep_work(
        &self,
        now: Timestamp,
        reminders: &crate::lifecycle::ReminderDays,
    ) -> Result<(bool, bool, bool)> {
        let until = self.txn.open_table(USERS_BY_UNTIL)?;
        let expire = until
            .range((i64::MIN, 0)..=(now.0, u64::MAX))?
            .next()
            .is_some();
        let horizon = now.plus_days(i64::from(reminders.max()));
        let sent = self.txn.open_table(SENT_ONCE)?;
        let mut remind = false;
        for row in until.range((now.0, u64::MAX)..=(horizon.0, u64::MAX))? {
            let (t, user) = row?.0.value();
            if let Some(d) = reminders.due(Timestamp(t), now)
                && sent
                    .get((user, format!("remind-{d}").as_str(), t))?
                    .is_none()
            {
                remind = true;
                break;
            }
        }
        let suspended = self.txn.open_table(SUSPENDED)?;
        let mut restore = false;
        for row in suspended.iter()? {
            if row?.1.value() <= now.0 {
                restore = true;
                break;
            }
        }
        Ok((expire, remind, restore))
    }

    pub fn node_status(&self, node: NodeId) -> Result<NodeStatus> {
        node_status_in(&self.txn.open_table(NODE_STATUS)?, node)
    }

    pub fn usage(&self, user: UserId) -> Result<Usage> {
        usage_in(&self.txn.open_table(USAGE)?, user)
    }

    /// A peer's accounted (rx, tx) totals.
    pub fn peer_traffic(&self, peer: PeerId) -> Result<(u64, u64)> {
        let t = self.txn.open_table(PEER_TRAFFIC)?;
        Ok(t.get(peer.0)?.map_or((0, 0), |v| {
            let (_, _, rx, tx) = v.value();
            (rx, tx)
        }))
    }

    pub fn cursor(&self, key: &'static str) -> Result<u64> {
        let t = self.txn.open_table(META)?;
        Ok(t.get(key)?.map_or(0, |v| v.value()))
    }

    pub fn notifications_after(&self, after: u64, limit: usize) -> Result<Vec<Notification>> {
        let t = self.txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for row in t.range(after.saturating_add(1)..)?.take(limit) {
            out.push(decode_json("outbox", row?.1.value())?);
        }
        Ok(out)
    }
}

/// A node's status as stored (the default before its first report).
fn node_status_in(t: &impl ReadableTable<u64, &'static [u8]>, node: NodeId) -> Result<NodeStatus> {
    t.get(node.0)?.map_or_else(
        || Ok(NodeStatus::default()),
        |v| decode_json("node_status", v.value()),
    )
}

/// A user's accounted usage (zero before any traffic).
fn usage_in(t: &impl ReadableTable<u64, &'static [u8]>, user: UserId) -> Result<Usage> {
    t.get(user.0)?
        .map_or_else(|| Ok(Usage::default()), |v| decode("usage", v.value()))
}

fn decode_event(bytes: &[u8]) -> Result<Event> {
    decode_json("events", bytes)
}

fn decode_json<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        StorageError::Corrupt {
            table,
            reason: e.to_string(),
        }
        .into()
    })
}

fn all<T: DeserializeOwned>(
    table: &redb::ReadOnlyTable<u64, &'static [u8]>,
    name: &'static str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        out.push(decode(name, row?.1.value())?);
    }
    Ok(out)
}
