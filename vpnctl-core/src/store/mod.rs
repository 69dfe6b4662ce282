//! The redb store: every table definition, every transaction, and the record codecs.
//!
//! One [`Store`] owns the database file. Writes go through `Store::write`, which runs
//! a closure against a `Tx` (one write transaction) and returns only once the commit
//! is durable; an error from the closure aborts the transaction, so nothing is ever
//! partly written. Reads go through `Store::read` on a consistent snapshot, an `Rx`.
//!
//! **Group commit.** Concurrent writes share one redb transaction and so one
//! commit and one fsync. Writers take turns on the open batch's transaction, each
//! running its closure on it; the writer that finds nobody else arriving commits
//! the batch (`Durability::Immediate`), and every member is answered only once that
//! commit is on disk. A closure that fails before opening any table to write leaves
//! the batch as it found it; one that fails after writing (or panics) aborts the
//! batch, and the other members run their closures again in a new one, which is
//! why a write closure is `FnMut`. The writer that aborted runs again too, first
//! in a fresh batch, and answers with its error only if it fails there as well:
//! no answer rests on writes that were thrown away. A member whose closure failed
//! waits for the batch too, since its answer may rest on the writes before it.
//! Alone, a write costs what it did before; under load a batch of up to
//! [`BATCH_MAX`] writes costs one commit. Nothing is seen before it is durable:
//! callers are answered and listeners told after the commit, and redb shows a
//! commit to new readers only after its fsync, so no node ever applies a revision
//! that a crash could take back.
//!
//! `Tx` and `Rx` are one type, `Txn`, over the two kinds of redb transaction
//! (`Write`, `Read`), so every reader is written once for both:
//!
//! - `tables.rs`: every table, declared once, opened on first use;
//! - `codec.rs`: how rows are encoded (postcard records, JSON where the API tags or
//!   fields grow) and the stored shapes of peers and desired entries;
//! - `read.rs`: the readers, for both kinds of transaction;
//! - `write.rs`: the writers, which keep indexes, pool bitmaps, the desired state,
//!   revisions and change logs, and the outbox in step.
//!
//! A schema version in the `meta` table guards the record layouts; `migrate` is
//! where upgrades go.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redb::{
    Database, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition, TableError, Value, WriteTransaction,
};
use serde::Deserialize;

use crate::error::{Result, StorageError};
use crate::model::{Actor, Event, Node, NodeId, User};
use crate::time::Timestamp;
use crate::vault::Vault;

mod billing;
mod codec;
mod read;
mod tables;
mod write;

pub(crate) use billing::day_of;
pub(crate) use codec::PeerRecord;
use codec::{decode, encode};
pub use tables::TableDump;
use tables::Tables;

/// Every table of a store read in one read transaction: a consistent point in time,
/// taken while writers go on (redb readers never block writers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    pub schema_version: u64,
    pub tables: Vec<TableDump>,
}

impl Dump {
    /// Rows over all tables.
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }

    /// The rows of the table named `name` (its name in the file).
    pub fn table(&self, name: &str) -> Option<&TableDump> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// This dump without what a restore makes anew (the event log's identity, the
    /// numbering of notifications and broadcasts, node revisions and their change
    /// logs; see [`Store::restore`]): what a restored store and its backup agree on,
    /// row for row. A node's peer count, kept beside its revision, stays.
    #[must_use]
    pub fn without_positions(mut self) -> Self {
        for table in &mut self.tables {
            match table.name.as_str() {
                "changes" => table.rows.clear(),
                "node_revisions" => {
                    for (_, value) in &mut table.rows {
                        let (_, _, count) = <(u64, u64, u64) as Value>::from_bytes(value);
                        *value = <(u64, u64, u64) as Value>::as_bytes(&(0, 0, count)).to_vec();
                    }
                }
                "meta" => table.rows.retain(|(k, _)| {
                    !CLIENT_SEQUENCES
                        .iter()
                        .any(|s| k.as_slice() == s.as_bytes())
                        && k.as_slice() != LOG_ID.as_bytes()
                }),
                _ => {}
            }
        }
        self
    }
}

/// Version of the record layouts this build reads and writes.
pub const SCHEMA_VERSION: u64 = 3;

/// Change-log entries kept per node; a node further behind gets a snapshot.
const LOG_KEEP: u64 = 8192;
/// A delta with more distinct keys than this is sent as a snapshot instead.
pub const DELTA_MAX_KEYS: usize = 2048;

/// What a restore moves to a new epoch: see [`Store::restore`].
pub use crate::model::{RESTORE_EPOCH, restore_epoch};

/// The meta key of the event log's identity: random, made when the store is
/// created and made anew by a restore. A follower resuming with another is told the
/// store was restored (its numbers now name other events).
pub(crate) const LOG_ID: &str = "event_log_id";

/// The id sequences clients keep a high-water mark of besides the event log: the
/// notification outbox (the bot skips ids at or below the highest it took) and
/// broadcasts (the bot remembers cancelled ones by id).
const CLIENT_SEQUENCES: [&str; 2] = ["next_notification", "next_broadcast"];

fn new_log_id() -> u64 {
    use rand_core::RngCore as _;
    // 53 bits, exact as a JavaScript number; never 0.
    (rand_core::OsRng.next_u64() >> 11).max(1)
}

/// Moves a store just loaded from a backup past everything its clients may have
/// seen of the lost store. They hold positions the backup never reached: the last
/// event an admin's dashboard saw, the last notification the bot took, the revision
/// a node applied; once the restored store had gone that far again, those numbers
/// would name other events, notifications and changes, and a client resuming there
/// would silently miss what differs.
/// - The event log gets a new identity (`LOG_ID`): a follower resuming with the
///   old one is refused at once (409), whatever the numbers; events keep their
///   numbering, so admins read `#1235` after `#1234`.
/// - Notifications and broadcasts go on from `E + 1`, and every node's revision
///   moves to `E` with no change log below it (each node takes one snapshot), where
///   `E` is a multiple of 2²¹ above every number the backup holds, counted in
///   seconds of the wall clock ([`restore_epoch`]): restores a second or more apart
///   never share one.
fn new_epoch(tables: &mut Tables<'_, Write>, now: Timestamp) -> Result<(), StorageError> {
    let mut highest = 0;
    for key in CLIENT_SEQUENCES {
        let n = tables.meta.read()?.get(key)?.map_or(1, |v| v.value());
        highest = highest.max(n.saturating_sub(1));
    }
    let mut revisions = Vec::new();
    for row in tables.node_revs.read()?.iter()? {
        let (node, value) = row?;
        let (rev, _, count) = value.value();
        highest = highest.max(rev);
        revisions.push((node.value(), count));
    }
    let epoch = restore_epoch(highest, now);
    let meta = tables.meta.write()?;
    for key in CLIENT_SEQUENCES {
        meta.insert(key, epoch.saturating_add(1))?;
    }
    meta.insert(LOG_ID, new_log_id())?;
    let node_revs = tables.node_revs.write()?;
    for (node, count) in revisions {
        node_revs.insert(node, (epoch, epoch, count))?;
    }
    tables.changes.write()?.retain(|_, _| false)?;
    Ok(())
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
    group: GroupCommit,
}

/// The most writes one batch takes before it commits even though more writers are
/// arriving: bounds a batch's latency under endless load.
pub const BATCH_MAX: usize = 64;

/// A write closure that runs this long is logged with where it was called from.
const SLOW_WRITE: Duration = Duration::from_millis(100);

/// Where the store's batches stand (see the module's "group commit").
#[derive(Debug, Default)]
struct GroupCommit {
    /// The batch being filled, if any: its transaction holds redb's write lock.
    open: Mutex<Option<Batch>>,
    /// Writers between arriving and finishing their closure; the last one of them
    /// commits the batch.
    arriving: AtomicUsize,
    /// Batches whose commit returned: readers can see them, and they are on disk.
    published: AtomicU64,
    /// Writes that were committed, and batches (one fsync each), for figures.
    writes: AtomicU64,
    syncs: AtomicU64,
}

/// One write transaction that several writers share.
struct Batch {
    txn: WriteTransaction,
    /// Closures that ran in it and wait for its outcome.
    members: usize,
    /// Of those, the ones that succeeded (to count writes).
    succeeded: u64,
    outcome: Arc<Outcome>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

/// How a batch ended, for its members.
#[derive(Debug, Default)]
struct Outcome {
    done: Mutex<Option<Done>>,
    ready: Condvar,
}

#[derive(Debug, Clone)]
enum Done {
    /// On disk: the members' answers stand.
    Committed,
    /// Aborted by a member that failed after writing: run again.
    Again,
    /// The commit failed: whether any of it reached the disk is unknown (redb says
    /// a failed commit may still have been made durable).
    Failed(String),
}

impl Outcome {
    fn set(&self, done: Done) {
        *lock(&self.done) = Some(done);
        self.ready.notify_all();
    }

    fn wait(&self) -> Done {
        let mut done = lock(&self.done);
        loop {
            if let Some(d) = done.as_ref() {
                return d.clone();
            }
            done = self
                .ready
                .wait(done)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Aborts the open batch (a member failed after writing): its other members run
/// again. They are told before the transaction goes, so that nothing that happens
/// while it is dropped can leave them waiting.
fn abort(open: &mut MutexGuard<'_, Option<Batch>>) {
    let Batch { txn, outcome, .. } = open.take().expect("a batch is open");
    outcome.set(Done::Again);
    drop(txn);
}

/// One writer counted in [`GroupCommit::arriving`] until it leaves (or unwinds).
struct Arrival<'a> {
    group: &'a GroupCommit,
    here: bool,
}

impl<'a> Arrival<'a> {
    fn new(group: &'a GroupCommit) -> Self {
        group.arriving.fetch_add(1, Ordering::SeqCst);
        Self { group, here: true }
    }

    /// Stops counting this writer; true when no other writer is arriving.
    fn leave(&mut self) -> bool {
        self.here = false;
        self.group.arriving.fetch_sub(1, Ordering::SeqCst) == 1
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if self.here {
            self.group.arriving.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Store {
    /// Opens (or creates) the database at `path`. Fails when another process has it
    /// open, when it was written by a newer schema, or when `vault` is not the key file
    /// the database was created with.
    pub fn open(path: &Path, vault: Vault) -> Result<Self, StorageError> {
        Self::open_with_cache(path, vault, crate::service::DEFAULT_STORE_CACHE_BYTES)
    }

    /// [`Store::open`] with a page cache of `cache_bytes` (redb's default is 1 GiB).
    pub fn open_with_cache(
        path: &Path,
        vault: Vault,
        cache_bytes: usize,
    ) -> Result<Self, StorageError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let store = Self {
            db,
            vault,
            group: GroupCommit::default(),
        };
        store.init()?;
        Ok(store)
    }

    fn init(&self) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        {
            let mut tables = Tables::<Write>::new(&txn);
            let found = tables
                .meta
                .read()?
                .get("schema_version")?
                .map(|v| v.value());
            match found {
                None => {
                    tables
                        .meta
                        .write()?
                        .insert("schema_version", SCHEMA_VERSION)?;
                }
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StorageError::SchemaTooNew {
                        found: v,
                        supported: SCHEMA_VERSION,
                    });
                }
                Some(v) if v < SCHEMA_VERSION => {
                    migrate(&mut tables, v)?;
                    tables
                        .meta
                        .write()?
                        .insert("schema_version", SCHEMA_VERSION)?;
                }
                Some(_) => {}
            }
            let fingerprint = self.vault.fingerprint();
            let stored = tables
                .meta_bytes
                .read()?
                .get("vault_fingerprint")?
                .map(|v| v.value().to_vec());
            match stored {
                None => {
                    tables
                        .meta_bytes
                        .write()?
                        .insert("vault_fingerprint", fingerprint.as_slice())?;
                }
                Some(f) if f != fingerprint => return Err(StorageError::KeyMismatch),
                Some(_) => {}
            }
            if tables.meta.read()?.get(LOG_ID)?.is_none() {
                tables.meta.write()?.insert(LOG_ID, new_log_id())?;
            }
            tables.create_all()?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Runs `f` in a write transaction (shared with concurrent writers, see the
    /// module's "group commit") and returns once its commit is durable; on error
    /// nothing of `f` is written. `f` may run more than once: only its last run's
    /// writes and answer count.
    pub(crate) fn write<T>(
        &self,
        actor: &Actor,
        now: Timestamp,
        at: &'static std::panic::Location<'static>,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T>,
    ) -> Result<(T, Commit)> {
        loop {
            let mut arrival = Arrival::new(&self.group);
            let mut open = lock(&self.group.open);
            // Runs `f` on the open batch; again as the first member of a fresh one
            // when it failed after writing on top of others' writes, so that its
            // error never rests on writes that were thrown away.
            let (result, outcome) = loop {
                if open.is_none() {
                    let txn = match self.db.begin_write() {
                        Ok(txn) => txn,
                        Err(e) => {
                            arrival.leave();
                            return Err(StorageError::from(e).into());
                        }
                    };
                    *open = Some(Batch {
                        txn,
                        members: 0,
                        succeeded: 0,
                        outcome: Arc::default(),
                    });
                }
                let batch = open.as_mut().expect("a batch is open");
                let wrote = Cell::new(false);
                let started = Instant::now();
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut tx = Txn {
                        vault: &self.vault,
                        tables: Tables::tracked(&batch.txn, &wrote),
                        state: Writing {
                            actor: actor.clone(),
                            now,
                            commit: Commit::default(),
                            touched: BTreeSet::new(),
                        },
                    };
                    let out = f(&mut tx)?;
                    tx.finish()?;
                    Ok((out, tx.state.commit))
                    // The tables close here, for the next writer.
                }));
                let held = started.elapsed();
                if held >= SLOW_WRITE {
                    // Every other writer waited this long: worth knowing where.
                    tracing::warn!(
                        ms = held.as_millis(),
                        %at,
                        "a write held the store's write lock for long"
                    );
                }
                match ran {
                    Ok(Err(e)) if wrote.get() => {
                        // Its writes cannot be taken out of the batch alone.
                        let alone = batch.members == 0;
                        abort(&mut open);
                        if alone {
                            arrival.leave();
                            return Err(e);
                        }
                    }
                    Ok(result) => {
                        batch.members += 1;
                        batch.succeeded += u64::from(result.is_ok());
                        break (result, Arc::clone(&batch.outcome));
                    }
                    Err(panic) => {
                        abort(&mut open);
                        arrival.leave();
                        drop(open);
                        std::panic::resume_unwind(panic);
                    }
                }
            };
            let last = arrival.leave();
            let full = open.as_ref().is_some_and(|b| b.members >= BATCH_MAX);
            if last || full {
                let batch = open.take().expect("a batch is open");
                drop(open);
                self.commit(batch);
            } else {
                drop(open);
            }
            match outcome.wait() {
                Done::Committed => return result,
                Done::Again => {}
                Done::Failed(reason) => {
                    return Err(StorageError::Io(std::io::Error::other(format!(
                        "commit failed: {reason}"
                    )))
                    .into());
                }
            }
        }
    }

    /// Commits `batch` durably and tells its members how it went.
    fn commit(&self, batch: Batch) {
        let Batch {
            txn,
            succeeded,
            outcome,
            ..
        } = batch;
        if succeeded == 0 {
            // Only refusals, none of which wrote: nothing to put on disk.
            drop(txn);
            outcome.set(Done::Committed);
            return;
        }
        // A panic in redb must not leave the members waiting for ever.
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| txn.commit()));
        let (done, panic) = match committed {
            Ok(Ok(())) => {
                self.group.published.fetch_add(1, Ordering::SeqCst);
                self.group.syncs.fetch_add(1, Ordering::Relaxed);
                self.group.writes.fetch_add(succeeded, Ordering::Relaxed);
                (Done::Committed, None)
            }
            Ok(Err(e)) => (Done::Failed(e.to_string()), None),
            Err(panic) => (Done::Failed("the commit panicked".into()), Some(panic)),
        };
        outcome.set(done);
        if let Some(panic) = panic {
            std::panic::resume_unwind(panic);
        }
    }

    /// A number that grows with every commit, counted once the commit is visible:
    /// a cache of anything read from the store stays good while this reads the same
    /// as it did before the cache was filled.
    pub fn generation(&self) -> u64 {
        self.group.published.load(Ordering::SeqCst)
    }

    /// Writes committed and batches (fsyncs) made so far: their ratio is the
    /// batching.
    pub fn commit_figures(&self) -> (u64, u64) {
        (
            self.group.writes.load(Ordering::Relaxed),
            self.group.syncs.load(Ordering::Relaxed),
        )
    }

    /// Every table as stored bytes, from one read transaction.
    pub fn dump(&self) -> Result<Dump, StorageError> {
        let txn = self.db.begin_read()?;
        let tables = Tables::<Read>::new(&txn);
        let schema_version = tables
            .meta
            .read()?
            .get("schema_version")?
            .map_or(SCHEMA_VERSION, |v| v.value());
        Ok(Dump {
            schema_version,
            tables: tables.dump()?,
        })
    }

    /// Writes `dump` as a new database at `path` (which must not exist) sealed by
    /// `vault`: the same rows, byte for byte, except the event log's identity and
    /// the notification, broadcast and node revision sequences, which are made anew
    /// (`new_epoch`: so no client mistakes a position in the lost store for one in
    /// the restored). Refuses a dump of another schema version or of another vault
    /// key.
    pub fn restore(path: &Path, vault: Vault, dump: &Dump) -> Result<Self, StorageError> {
        if dump.schema_version != SCHEMA_VERSION {
            return Err(StorageError::Corrupt {
                table: "backup",
                reason: format!(
                    "it holds schema version {}, this build reads {SCHEMA_VERSION}",
                    dump.schema_version
                ),
            });
        }
        let fingerprint = dump
            .table("meta_bytes")
            .and_then(|t| t.rows.iter().find(|(k, _)| k == b"vault_fingerprint"));
        if fingerprint.is_some_and(|(_, v)| v.as_slice() != vault.fingerprint()) {
            return Err(StorageError::KeyMismatch);
        }
        if path.exists() {
            return Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists; restore into a new place", path.display()),
            )));
        }
        // The same bounded page cache as a running store: a restore on a small VPS
        // must not grow to the size of the database.
        let db = Database::builder()
            .set_cache_size(crate::service::DEFAULT_STORE_CACHE_BYTES)
            .create(path)?;
        let txn = db.begin_write()?;
        {
            let mut tables = Tables::<Write>::new(&txn);
            tables.load(&dump.tables)?;
            new_epoch(&mut tables, Timestamp::now())?;
        }
        txn.commit()?;
        let store = Self {
            db,
            vault,
            group: GroupCommit::default(),
        };
        store.init()?;
        Ok(store)
    }

    /// Runs `f` on a consistent snapshot. It never waits for writers: every commit
    /// is `Immediate`, and redb shows a commit to new readers only once its fsync is
    /// done, so a snapshot holds nothing a crash could take back.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Rx<'_>) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read()?;
        let out = f(&Txn {
            vault: &self.vault,
            tables: Tables::new(&txn),
            state: (),
        })?;
        Ok(out)
    }
}

/// Upgrades the records of an older schema in place. Version 1 is the first.
fn migrate(tables: &mut Tables<'_, Write>, from: u64) -> Result<(), StorageError> {
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
        let users = tables.users.write()?;
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
    if from < 3 {
        migrate_nodes_v2(tables)?;
    }
    Ok(())
}

/// Version 3 added `transport` to nodes: every node written before it is plain
/// WireGuard.
fn migrate_nodes_v2(tables: &mut Tables<'_, Write>) -> Result<(), StorageError> {
    #[derive(Deserialize)]
    struct NodeV2 {
        id: NodeId,
        name: String,
        region: crate::model::Region,
        endpoint: crate::model::Endpoint,
        listen_port: u16,
        public_key: Option<crate::keys::PublicKey>,
        ipv4_pool: ipnet::Ipv4Net,
        ipv6_pool: Option<ipnet::Ipv6Net>,
        dns: Vec<std::net::IpAddr>,
        mtu: u16,
        capacity: u32,
        client_allowed_ips: Vec<ipnet::IpNet>,
        persistent_keepalive: u16,
        state: crate::model::NodeState,
        created_at: Timestamp,
    }
    let nodes = tables.nodes.write()?;
    let mut rewritten = Vec::new();
    for row in nodes.iter()? {
        let (k, v) = row?;
        let old: NodeV2 = decode("nodes", v.value()).map_err(|e| StorageError::Corrupt {
            table: "nodes",
            reason: e.to_string(),
        })?;
        let new = Node {
            id: old.id,
            name: old.name,
            region: old.region,
            endpoint: old.endpoint,
            listen_port: old.listen_port,
            public_key: old.public_key,
            ipv4_pool: old.ipv4_pool,
            ipv6_pool: old.ipv6_pool,
            dns: old.dns,
            mtu: old.mtu,
            capacity: old.capacity,
            client_allowed_ips: old.client_allowed_ips,
            persistent_keepalive: old.persistent_keepalive,
            state: old.state,
            created_at: old.created_at,
            transport: crate::transport::Transport::Wireguard,
        };
        rewritten.push((k.value(), encode(&new)));
    }
    for (k, v) in rewritten {
        nodes.insert(k, v.as_slice())?;
    }
    Ok(())
}

/// A kind of redb transaction: how it opens a table, and what it carries besides
/// its tables.
pub(crate) trait Mode {
    type Txn;
    type Table<'t, K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>;
    type State;

    fn open<'t, K: Key + 'static, V: Value + 'static>(
        txn: &'t Self::Txn,
        def: TableDefinition<'static, K, V>,
    ) -> Result<Self::Table<'t, K, V>, TableError>;
}

/// A read transaction: a consistent snapshot.
pub(crate) enum Read {}

impl Mode for Read {
    type Txn = ReadTransaction;
    type Table<'t, K: Key + 'static, V: Value + 'static> = ReadOnlyTable<K, V>;
    type State = ();

    fn open<K: Key + 'static, V: Value + 'static>(
        txn: &ReadTransaction,
        def: TableDefinition<'static, K, V>,
    ) -> Result<ReadOnlyTable<K, V>, TableError> {
        txn.open_table(def)
    }
}

/// A write transaction: it is attributed to an actor, happens at one instant, and
/// collects what listeners must hear of it.
pub(crate) enum Write {}

impl Mode for Write {
    type Txn = WriteTransaction;
    type Table<'t, K: Key + 'static, V: Value + 'static> = Table<'t, K, V>;
    type State = Writing;

    fn open<'t, K: Key + 'static, V: Value + 'static>(
        txn: &'t WriteTransaction,
        def: TableDefinition<'static, K, V>,
    ) -> Result<Table<'t, K, V>, TableError> {
        txn.open_table(def)
    }
}

/// What a write transaction carries besides its tables.
pub(crate) struct Writing {
    actor: Actor,
    now: Timestamp,
    commit: Commit,
    /// Nodes whose change log may need pruning at the end of the transaction.
    touched: BTreeSet<u64>,
}

/// One transaction over the store's tables. Readers (`read.rs`) serve both kinds;
/// writers (`write.rs`) exist only on `Tx`.
pub(crate) struct Txn<'t, M: Mode> {
    pub vault: &'t Vault,
    tables: Tables<'t, M>,
    state: M::State,
}

/// A write transaction.
pub(crate) type Tx<'t> = Txn<'t, Write>;
/// A consistent read snapshot.
pub(crate) type Rx<'t> = Txn<'t, Read>;
