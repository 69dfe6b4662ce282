//! What the bot must remember across restarts, in a small redb file in its state
//! directory (`bot.redb`): deletions of sent configs still to do, keyboards already
//! used, languages users chose, and notifications delivered but not yet
//! acknowledged to the control plane (so that a restart does not send them again).
//! Nothing here is secret: chat, message and notification ids, times, language
//! codes.
//!
//! Memory stays bounded whatever the number of users: the records live on disk,
//! redb's page cache is capped at [`CACHE_BYTES`], and used keyboards are forgotten
//! after [`BUTTONS_KEPT`].
//!
//! Every call runs on tokio's blocking pool; each write commits durably before it
//! returns.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use vpnctl_core::api::billing::ReceivedPayment;
use vpnctl_core::{Locale, Timestamp};

/// (due, chat, message) → attempts made.
const DELETIONS: TableDefinition<'_, (i64, i64, i32), u32> = TableDefinition::new("deletions");
/// (chat, message) → when the keyboard was used.
const BUTTONS: TableDefinition<'_, (i64, i32), i64> = TableDefinition::new("used_buttons");
/// Telegram user id → chosen language code.
const LANGUAGES: TableDefinition<'_, i64, &str> = TableDefinition::new("languages");
/// Notification id → when it was delivered; kept until acknowledged.
const DELIVERED: TableDefinition<'_, u64, i64> = TableDefinition::new("delivered");
/// Telegram charge id → a payment Telegram confirmed (JSON of `ReceivedPayment`),
/// kept until the control plane has applied it.
const PAYMENTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("held_payments");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

const SCHEMA: u64 = 1;
/// redb's page cache.
pub const CACHE_BYTES: usize = 4 << 20;
/// How long a used keyboard is remembered: far longer than anyone scrolls back to
/// press one (and a used keyboard is normally removed from its message anyway).
pub const BUTTONS_KEPT: i64 = 30 * 86_400;
/// Used keyboards are pruned after this many new ones.
const PRUNE_EVERY: u32 = 1024;

/// The state file could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("bot state in {path}: {source}")]
    Open {
        path: String,
        source: Box<redb::Error>,
    },
    #[error("bot state: {0}")]
    Storage(Box<redb::Error>),
    #[error("bot state file has schema {found}, this bot knows {SCHEMA}")]
    Schema { found: u64 },
    #[error("bot state: {0}")]
    Task(String),
}

impl<E: Into<redb::Error>> From<E> for StateError {
    fn from(e: E) -> Self {
        Self::Storage(Box::new(e.into()))
    }
}

/// One message to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    pub due: Timestamp,
    pub chat: i64,
    pub message: i32,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// The bot's durable state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BotState {
    db: Arc<Database>,
    marks: Arc<AtomicU32>,
}

impl BotState {
    /// Opens (or creates) `dir/bot.redb`; `None` keeps everything in memory.
    pub fn open(dir: Option<&Path>) -> Result<Self, StateError> {
        let mut builder = Database::builder();
        builder.set_cache_size(CACHE_BYTES);
        let db = match dir {
            Some(dir) => {
                let open_error = |e: redb::Error| StateError::Open {
                    path: dir.display().to_string(),
                    source: Box::new(e),
                };
                std::fs::create_dir_all(dir).map_err(|e| open_error(redb::Error::Io(e)))?;
                builder
                    .create(dir.join("bot.redb"))
                    .map_err(|e| open_error(e.into()))?
            }
            None => builder.create_with_backend(redb::backends::InMemoryBackend::new())?,
        };
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema", SCHEMA)?;
                }
                Some(SCHEMA) => {}
                Some(found) => return Err(StateError::Schema { found }),
            }
            txn.open_table(DELETIONS)?;
            txn.open_table(BUTTONS)?;
            txn.open_table(LANGUAGES)?;
            txn.open_table(DELIVERED)?;
            txn.open_table(PAYMENTS)?;
        }
        txn.commit()?;
        let state = Self {
            db: Arc::new(db),
            marks: Arc::new(AtomicU32::new(0)),
        };
        state.prune_buttons_sync(Timestamp::now())?;
        Ok(state)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StateError::Task(e.to_string()))?
    }

    // ------------------------------------------------------------ deletions

    /// Remembers that `messages` in `chat` are to be deleted at `due`.
    pub async fn schedule_deletions(
        &self,
        due: Timestamp,
        chat: i64,
        messages: Vec<i32>,
    ) -> Result<(), StateError> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut t = txn.open_table(DELETIONS)?;
                for m in messages {
                    t.insert((due.seconds(), chat, m), 0)?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// Deletions due at `now` (overdue ones included), oldest first.
    pub async fn due_deletions(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Deletion>, StateError> {
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(DELETIONS)?;
            let mut out = Vec::new();
            for row in t.range(..=(now.seconds(), i64::MAX, i32::MAX))?.take(limit) {
                let (k, v) = row?;
                let (due, chat, message) = k.value();
                out.push(Deletion {
                    due: Timestamp(due),
                    chat,
                    message,
                    attempts: v.value(),
                });
            }
            Ok(out)
        })
        .await
    }

    /// When the next deletion is due, if any is scheduled.
    pub async fn next_deletion(&self) -> Result<Option<Timestamp>, StateError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(DELETIONS)?;
            Ok(t.first()?.map(|(k, _)| Timestamp(k.value().0)))
        })
        .await
    }

    /// Forgets a deletion (done, or given up).
    pub async fn finish_deletion(&self, d: Deletion) -> Result<(), StateError> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(DELETIONS)?
                .remove((d.due.seconds(), d.chat, d.message))?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// Moves a failed deletion to `to`, counting the attempt.
    pub async fn postpone_deletion(&self, d: Deletion, to: Timestamp) -> Result<(), StateError> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut t = txn.open_table(DELETIONS)?;
                t.remove((d.due.seconds(), d.chat, d.message))?;
                t.insert((to.seconds(), d.chat, d.message), d.attempts + 1)?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// How many deletions are scheduled.
    pub async fn pending_deletions(&self) -> Result<u64, StateError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            Ok(txn.open_table(DELETIONS)?.len()?)
        })
        .await
    }

    // ------------------------------------------------------------ buttons

    /// Whether the keyboard of `message` in `chat` was used.
    pub async fn button_used(&self, chat: i64, message: i32) -> Result<bool, StateError> {
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            Ok(txn.open_table(BUTTONS)?.get((chat, message))?.is_some())
        })
        .await
    }

    /// Marks the keyboard of `message` in `chat` used for good.
    pub async fn mark_button_used(&self, chat: i64, message: i32) -> Result<(), StateError> {
        let prune = self.marks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1;
        let this = self.clone();
        self.blocking(move |db| {
            let now = Timestamp::now();
            let txn = db.begin_write()?;
            txn.open_table(BUTTONS)?
                .insert((chat, message), now.seconds())?;
            txn.commit()?;
            if prune {
                this.prune_buttons_sync(now)?;
            }
            Ok(())
        })
        .await
    }

    fn prune_buttons_sync(&self, now: Timestamp) -> Result<(), StateError> {
        let cutoff = now.seconds() - BUTTONS_KEPT;
        let txn = self.db.begin_write()?;
        txn.open_table(BUTTONS)?.retain(|_, used| used >= cutoff)?;
        txn.commit()?;
        Ok(())
    }

    // ------------------------------------------------------------ notifications

    /// Remembers that notification `id` was delivered.
    pub async fn mark_delivered(&self, id: u64) -> Result<(), StateError> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(DELIVERED)?
                .insert(id, Timestamp::now().seconds())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// Notifications delivered and not yet known to be acknowledged.
    pub async fn delivered(&self) -> Result<std::collections::HashSet<u64>, StateError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(DELIVERED)?;
            let mut out = std::collections::HashSet::new();
            for row in t.iter()? {
                out.insert(row?.0.value());
            }
            Ok(out)
        })
        .await
    }

    /// Forgets delivered notifications up to `upto`: the control plane has them
    /// acknowledged.
    pub async fn forget_delivered(&self, upto: u64) -> Result<(), StateError> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(DELIVERED)?.retain(|id, _| id > upto)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    // ------------------------------------------------------------ payments

    /// Keeps a payment Telegram confirmed until [`BotState::release_payment`].
    pub async fn hold_payment(&self, payment: &ReceivedPayment) -> Result<(), StateError> {
        let json = serde_json::to_vec(payment).map_err(|e| StateError::Task(e.to_string()))?;
        let charge = payment.telegram_charge_id.clone();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(PAYMENTS)?
                .insert(charge.as_str(), json.as_slice())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// The payments held: confirmed by Telegram, not yet applied.
    pub async fn held_payments(&self) -> Result<Vec<ReceivedPayment>, StateError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(PAYMENTS)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (_, v) = row?;
                match serde_json::from_slice(v.value()) {
                    Ok(p) => out.push(p),
                    Err(e) => tracing::error!(error = %e, "an unreadable held payment"),
                }
            }
            Ok(out)
        })
        .await
    }

    /// The control plane has the payment (or refused it for good).
    pub async fn release_payment(&self, charge: &str) -> Result<(), StateError> {
        let charge = charge.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            txn.open_table(PAYMENTS)?.remove(charge.as_str())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    // ------------------------------------------------------------ languages

    /// The language `telegram_id` chose with /language, if they did.
    pub async fn language(&self, telegram_id: i64) -> Result<Option<Locale>, StateError> {
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(LANGUAGES)?;
            Ok(t.get(telegram_id)?.map(|v| match v.value() {
                "ru" => Locale::Ru,
                _ => Locale::En,
            }))
        })
        .await
    }

    pub async fn set_language(&self, telegram_id: i64, locale: Locale) -> Result<(), StateError> {
        self.blocking(move |db| {
            let code = match locale {
                Locale::En => "en",
                Locale::Ru => "ru",
            };
            let txn = db.begin_write()?;
            txn.open_table(LANGUAGES)?.insert(telegram_id, code)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deletions_survive_reopening_and_come_due_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = BotState::open(Some(dir.path())).unwrap();
            s.schedule_deletions(Timestamp(200), 1, vec![10, 11])
                .await
                .unwrap();
            s.schedule_deletions(Timestamp(100), 2, vec![5])
                .await
                .unwrap();
            s.set_language(7, Locale::Ru).await.unwrap();
            s.mark_button_used(1, 9).await.unwrap();
        }
        let s = BotState::open(Some(dir.path())).unwrap();
        assert_eq!(s.next_deletion().await.unwrap(), Some(Timestamp(100)));
        let due = s.due_deletions(Timestamp(150), 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].chat, due[0].message), (2, 5));
        let all = s.due_deletions(Timestamp(1000), 10).await.unwrap();
        assert_eq!(all.len(), 3);
        s.postpone_deletion(all[0], Timestamp(300)).await.unwrap();
        s.finish_deletion(all[1]).await.unwrap();
        let left = s.due_deletions(Timestamp(1000), 10).await.unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(left[1].attempts, 1, "the postponed one counts its attempt");
        assert_eq!(s.language(7).await.unwrap(), Some(Locale::Ru));
        assert_eq!(s.language(8).await.unwrap(), None);
        assert!(s.button_used(1, 9).await.unwrap());
        assert!(!s.button_used(1, 10).await.unwrap());
        for id in [3, 5, 9] {
            s.mark_delivered(id).await.unwrap();
        }
        s.forget_delivered(5).await.unwrap();
        assert_eq!(s.delivered().await.unwrap(), [9].into());
    }

    #[tokio::test]
    async fn old_buttons_are_forgotten() {
        let s = BotState::open(None).unwrap();
        s.mark_button_used(1, 1).await.unwrap();
        s.prune_buttons_sync(Timestamp(Timestamp::now().seconds() + BUTTONS_KEPT + 10))
            .unwrap();
        assert!(!s.button_used(1, 1).await.unwrap());
    }
}
