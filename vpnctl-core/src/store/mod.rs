//! The redb store: every table definition, every transaction, and the record codecs.
//!
//! One [`Store`] owns the database file. Writes go through `Store::write`, which runs
//! a closure against a `Tx` (one write transaction) and returns only once the commit
//! is durable; an error from the closure aborts the transaction, so nothing is ever
//! partly written. Reads go through `Store::read` on a consistent snapshot, an `Rx`.
//!
//! **Group commit.** Each write is its own redb transaction, committed without a
//! sync (`Durability::None`), so it stays atomic on its own and a failing closure
//! never touches its neighbours' writes. Writers then meet in `make_durable`: the
//! first to arrive commits an empty `Immediate` transaction, whose one fsync makes
//! every commit before it durable, and the writers that queued meanwhile find their
//! work already on disk. Under load one fsync serves many writes; alone, a write
//! costs what it did before. Nothing is seen before it is durable: callers are
//! answered and listeners told after the sync, and a read whose snapshot may hold a
//! commit not yet synced waits for that sync before it returns (so no node ever
//! applies a revision that a crash could take back).
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

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, Durability, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    Table, TableDefinition, TableError, Value, WriteTransaction,
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
}

/// Version of the record layouts this build reads and writes.
pub const SCHEMA_VERSION: u64 = 3;

/// Change-log entries kept per node; a node further behind gets a snapshot.
const LOG_KEEP: u64 = 8192;
/// A delta with more distinct keys than this is sent as a snapshot instead.
pub const DELTA_MAX_KEYS: usize = 2048;

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

/// Where the store's commits stand: how many were made and how many of those are
/// on disk (see the module's "group commit").
#[derive(Debug, Default)]
struct GroupCommit {
    /// Write transactions counted just before their (unsynced) commit.
    committed: AtomicU64,
    /// Every counted commit up to this one is durable.
    durable: AtomicU64,
    /// Held by the thread syncing; the others wait here for its result.
    syncing: Mutex<()>,
    /// Syncs done, for tests and figures: writes per sync is the batching.
    syncs: AtomicU64,
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
            tables.create_all()?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Runs `f` in one write transaction and returns once the commit is durable; on
    /// error nothing is written.
    pub(crate) fn write<T>(
        &self,
        actor: &Actor,
        now: Timestamp,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<(T, Commit)> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        let (out, commit) = {
            let mut tx = Txn {
                vault: &self.vault,
                tables: Tables::new(&txn),
                state: Writing {
                    actor: actor.clone(),
                    now,
                    commit: Commit::default(),
                    touched: BTreeSet::new(),
                },
            };
            let out = f(&mut tx)?;
            tx.finish()?;
            (out, tx.state.commit)
            // The tables close here, before the commit.
        };
        // Counted before the commit, so a reader whose snapshot holds it sees the count.
        let seq = self.group.committed.fetch_add(1, Ordering::SeqCst) + 1;
        txn.commit()?;
        self.make_durable(seq)?;
        Ok((out, commit))
    }

    /// Returns once commit `seq` (and every one before it) is on disk: at once when a
    /// sync already covered it, else after the sync this thread makes or waits for.
    fn make_durable(&self, seq: u64) -> Result<(), StorageError> {
        if self.group.durable.load(Ordering::SeqCst) >= seq {
            return Ok(());
        }
        let _syncing = self
            .group
            .syncing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.group.durable.load(Ordering::SeqCst) >= seq {
            return Ok(());
        }
        // Holding the write lock: every counted commit has been made (or aborted).
        let txn = self.db.begin_write()?;
        let upto = self.group.committed.load(Ordering::SeqCst);
        txn.commit()?;
        self.group.durable.fetch_max(upto, Ordering::SeqCst);
        self.group.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Commits made and syncs done so far: their ratio is the batching.
    pub fn commit_figures(&self) -> (u64, u64) {
        (
            self.group.committed.load(Ordering::Relaxed),
            self.group.syncs.load(Ordering::Relaxed),
        )
    }

    /// Every table as stored bytes, from one read transaction.
    pub fn dump(&self) -> Result<Dump, StorageError> {
        let txn = self.db.begin_read()?;
        let seen = self.group.committed.load(Ordering::SeqCst);
        self.make_durable(seen)?;
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
    /// `vault`: the same rows, byte for byte. Refuses a dump of another schema
    /// version or of another vault key.
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

    /// Runs `f` on a consistent snapshot. Returns only once everything the snapshot
    /// may hold is durable (usually at once: a wait happens only while a write's sync
    /// is under way).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Rx<'_>) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read()?;
        let seen = self.group.committed.load(Ordering::SeqCst);
        let out = f(&Txn {
            vault: &self.vault,
            tables: Tables::new(&txn),
            state: (),
        })?;
        self.make_durable(seen)?;
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
