//! Every redb table of the store, declared once, and how a transaction opens them.
//!
//! [`Tables`] holds one [`Lazy`] slot per table: a table is opened the first time a
//! transaction touches it and stays open until the transaction ends. A small write
//! (a token, an acknowledgement) so opens the two or three tables it needs instead
//! of all of them, and a bulk write opens each table once however many rows it
//! touches. Nothing outside the `store` module sees a table.

use std::cell::{Cell, OnceCell};

use redb::{Key, ReadableTable, Table, TableDefinition, TableError, Value};

use crate::error::StorageError;

use super::Mode;
use super::Write;

/// One table of one transaction, opened on first use.
pub(super) struct Lazy<'t, M: Mode, K: Key + 'static, V: Value + 'static> {
    txn: &'t M::Txn,
    def: TableDefinition<'static, K, V>,
    /// Boxed: a redb table handle is ~200 bytes and most transactions open only a
    /// few of the tables, so an unboxed set would cost every read a 6 KiB struct.
    table: OnceCell<Box<M::Table<'t, K, V>>>,
    /// Set when the table is opened to write: a write that fails before any table
    /// was opened to write left its transaction as it found it.
    wrote: Option<&'t Cell<bool>>,
}

impl<'t, M: Mode, K: Key + 'static, V: Value + 'static> Lazy<'t, M, K, V> {
    fn new(txn: &'t M::Txn, name: &'static str, wrote: Option<&'t Cell<bool>>) -> Self {
        Self {
            txn,
            def: TableDefinition::new(name),
            table: OnceCell::new(),
            wrote,
        }
    }

    /// The table, to read.
    pub(super) fn read(&self) -> Result<&M::Table<'t, K, V>, TableError> {
        if let Some(table) = self.table.get() {
            return Ok(table);
        }
        let table = Box::new(M::open(self.txn, self.def)?);
        Ok(self.table.get_or_init(|| table))
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> Lazy<'t, Write, K, V> {
    /// The table, to write (redb creates it if it does not exist yet).
    pub(super) fn write(&mut self) -> Result<&mut Table<'t, K, V>, TableError> {
        if let Some(wrote) = self.wrote {
            wrote.set(true);
        }
        if self.table.get().is_none() {
            let table = Box::new(self.txn.open_table(self.def)?);
            // Cannot fail: the cell was empty and nobody else holds it.
            let _ = self.table.set(table);
        }
        Ok(self.table.get_mut().expect("the table was opened above"))
    }
}

/// Declares every table once: its field in [`Tables`], its name in the file, its key
/// and value types; and [`Tables::create_all`] over all of them.
macro_rules! tables {
    ($( $(#[$doc:meta])* $field:ident = $name:literal : $key:ty => $value:ty, )*) => {
        /// Every table of the store, each opened on first use within one transaction.
        pub(super) struct Tables<'t, M: Mode> {
            $( $(#[$doc])* pub(super) $field: Lazy<'t, M, $key, $value>, )*
        }

        impl<'t, M: Mode> Tables<'t, M> {
            pub(super) fn new(txn: &'t M::Txn) -> Self {
                Self { $( $field: Lazy::new(txn, $name, None), )* }
            }

            /// [`Tables::new`] that sets `wrote` when any table is opened to write.
            pub(super) fn tracked(txn: &'t M::Txn, wrote: &'t Cell<bool>) -> Self {
                Self { $( $field: Lazy::new(txn, $name, Some(wrote)), )* }
            }
        }

        impl Tables<'_, Write> {
            /// Opens every table, creating the missing ones, so that readers never
            /// meet a table that does not exist.
            pub(super) fn create_all(&mut self) -> Result<(), TableError> {
                $( self.$field.write()?; )*
                Ok(())
            }

            /// Fills each table named in `dump` with its rows (the tables are new and
            /// empty: a restore). A table the dump names but this build lacks is an
            /// error; one it lacks stays empty.
            pub(super) fn load(&mut self, dump: &[TableDump]) -> Result<(), StorageError> {
                for table in dump {
                    match table.name.as_str() {
                        $( $name => load_rows(self.$field.write()?, &table.rows)?, )*
                        other => {
                            return Err(StorageError::Corrupt {
                                table: "backup",
                                reason: format!("unknown table {other:?}"),
                            })
                        }
                    }
                }
                Ok(())
            }
        }

        impl<M: Mode> Tables<'_, M> {
            /// Every row of every table as stored bytes, in key order, in table
            /// declaration order.
            pub(super) fn dump(&self) -> Result<Vec<TableDump>, StorageError> {
                Ok(vec![ $( TableDump {
                    name: $name.to_owned(),
                    rows: dump_rows(self.$field.read()?)?,
                }, )* ])
            }
        }
    };
}

tables! {
    /// Schema version, id sequences (`next_user`, …), outbox cursors.
    meta = "meta": &'static str => u64,
    /// The vault's fingerprint.
    meta_bytes = "meta_bytes": &'static str => &'static [u8],
    users = "users": u64 => &'static [u8],
    users_by_tg = "users_by_telegram": i64 => u64,
    /// (until, user) of users whose access has an end that has not been swept yet.
    users_by_until = "users_by_until": (i64, u64) => (),
    invites = "invites": u64 => &'static [u8],
    /// SHA-256 of the invite code → invite id; the code itself is never stored.
    invites_by_code = "invites_by_code": &'static [u8; 32] => u64,
    nodes = "nodes": u64 => &'static [u8],
    nodes_by_name = "nodes_by_name": &'static str => u64,
    /// node → (revision, log floor, peer count). Changes with revision > floor are in
    /// `changes`.
    node_revs = "node_revisions": u64 => (u64, u64, u64),
    peers = "peers": u64 => &'static [u8],
    peers_by_user = "peers_by_user": (u64, u64) => (),
    peers_by_node = "peers_by_node": (u64, u64) => (),
    /// (public key, node) → peer: one key per node.
    peers_by_key = "peers_by_key": (&'static [u8; 32], u64) => u64,
    /// (user, node, lower-cased device name) → peer: device names are unique per user
    /// and node.
    devices = "devices": (u64, u64, &'static str) => u64,
    /// user → number of peers (the device limit check without a scan).
    user_peer_count = "user_peer_count": u64 => u64,
    addr_v4 = "addresses_v4": (u64, u32) => u64,
    addr_v6 = "addresses_v6": (u64, u128) => u64,
    /// (node, chunk) of pool chunks that still have a free address.
    pool_free = "pool_free_chunks": (u64, u32) => (),
    /// (node, chunk) → allocation bitmap; a chunk without a row is all free.
    pool_bits = "pool_bitmaps": (u64, u32) => &'static [u8],
    /// (node, peer) → what the node must configure for that peer. Exactly the peers
    /// that belong on the node while it is enabled.
    desired = "desired": (u64, u64) => &'static [u8],
    /// (node, revision) → public key touched by that revision (empty: interface reset).
    changes = "changes": (u64, u64) => &'static [u8],
    events = "events": u64 => &'static [u8],
    tokens = "api_tokens": u64 => &'static [u8],
    /// Hash of a token's secret → token id.
    tokens_by_hash = "api_tokens_by_hash": &'static [u8; 32] => u64,
    /// Hash of a join secret → pending enrollment.
    joins = "join_secrets": &'static [u8; 32] => &'static [u8],
    /// node → `NodeStatus` (JSON: it grows fields).
    node_status = "node_status": u64 => &'static [u8],
    /// peer → (last rx counter, last tx counter, total rx, total tx).
    peer_traffic = "peer_traffic": u64 => (u64, u64, u64, u64),
    /// user → `Usage`.
    usage = "usage": u64 => &'static [u8],
    /// user → end of the period that suspended them (quota used up).
    suspended = "suspended_users": u64 => i64,
    /// Notifications to deliver, by id (JSON).
    outbox = "outbox": u64 => &'static [u8],
    /// (user, what, anchor) for what is sent once: e.g. (7, "remind-3", until).
    sent_once = "sent_once": (u64, &'static str, i64) => (),
    /// Plans (JSON: they grow fields).
    plans = "plans": u64 => &'static [u8],
    /// Orders, one per invoice (JSON).
    orders = "orders": u64 => &'static [u8],
    /// Payments (JSON).
    payments = "payments": u64 => &'static [u8],
    /// Telegram's charge id → payment: each charge is applied once.
    payments_by_charge = "payments_by_charge": &'static str => u64,
    /// (user, payment) of every payment.
    payments_by_user = "payments_by_user": (u64, u64) => (),
    /// (UTC day, plan) → (payments, stars, refunds, refunded stars).
    revenue = "revenue_by_day": (i64, u64) => (u64, u64, u64, u64),
    /// plan → the same, since the start: what `/metrics` shows without a scan.
    revenue_total = "revenue_total": u64 => (u64, u64, u64, u64),
    /// (user, order) → the Stars subscription it started (JSON).
    subscriptions = "subscriptions": (u64, u64) => &'static [u8],
    /// invite → the plan it grants (a trial).
    invite_plans = "invite_plans": u64 => u64,
    /// Broadcasts (JSON).
    broadcasts = "broadcasts": u64 => &'static [u8],
}

/// A table's rows as stored bytes: (key, value).
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// One table of a [`super::Dump`]: its name in the file and its rows as stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDump {
    pub name: String,
    pub rows: Rows,
}

fn dump_rows<K: Key + 'static, V: Value + 'static>(
    table: &impl ReadableTable<K, V>,
) -> Result<Rows, StorageError> {
    let mut rows = Vec::with_capacity(usize::try_from(table.len()?).unwrap_or(0));
    for row in table.iter()? {
        let (k, v) = row?;
        rows.push((
            K::as_bytes(&k.value()).as_ref().to_vec(),
            V::as_bytes(&v.value()).as_ref().to_vec(),
        ));
    }
    Ok(rows)
}

fn load_rows<K: Key + 'static, V: Value + 'static>(
    table: &mut Table<'_, K, V>,
    rows: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), StorageError> {
    for (k, v) in rows {
        table.insert(K::from_bytes(k), V::from_bytes(v))?;
    }
    Ok(())
}
