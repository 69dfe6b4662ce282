//! What endpoints and the courier work with, in one [`Services`] value injected
//! with `dptree::deps!`: the Telegram client and its pacer, the control plane, the
//! policy from the settings, the rate limiters, the in-memory session and the
//! durable state.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use teloxide::types::{ChatId, MessageId, User as TgUser};
use tracing::warn;
use vpnctl_client::ApiClient;
use vpnctl_core::Locale;

use crate::config::Config;
use crate::deletions::Deletions;
use crate::ratelimit::RateLimiter;
use crate::state::BotState;
use crate::telegram::Telegram;

/// The control plane: a bot-scope client, plus an admin-scope one when configured.
#[derive(Debug, Clone)]
pub struct Api {
    pub bot: ApiClient,
    pub admin: Option<ApiClient>,
}

/// What the settings decide for the handlers.
#[derive(Debug, Clone)]
pub struct Policy {
    pub admin_ids: Arc<HashSet<i64>>,
    pub allowed_ids: Arc<HashSet<i64>>,
    /// Sent configs are deleted from the chat after this long.
    pub delete_after: Option<Duration>,
    /// Configs are sent with `protect_content` (then they cannot be saved).
    pub protect_configs: bool,
    /// /servers answers people without an account too.
    pub servers_public: bool,
    /// What /paysupport and /terms answer, when the operator set it.
    pub pay_support_text: Option<Arc<str>>,
    pub terms_text: Option<Arc<str>>,
    /// Scheduled backups go to the admin chats in parts of at most this size.
    pub backup_part_bytes: u64,
}

impl Policy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            admin_ids: Arc::new(config.admin_ids.iter().copied().collect()),
            allowed_ids: Arc::new(config.allowed_ids.iter().copied().collect()),
            delete_after: config.delete_after(),
            protect_configs: config.protect_configs,
            servers_public: config.servers_public,
            pay_support_text: config.pay_support_text.as_deref().map(Arc::from),
            terms_text: config.terms_text.as_deref().map(Arc::from),
            backup_part_bytes: config.backup_part_bytes,
        }
    }

    pub fn is_admin(&self, user: Option<&TgUser>) -> bool {
        user.and_then(telegram_id)
            .is_some_and(|id| self.admin_ids.contains(&id))
    }
}

/// Per-user rate limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub issue: Arc<RateLimiter>,
    pub rotate: Arc<RateLimiter>,
    pub redeem: Arc<RateLimiter>,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            issue: Arc::new(RateLimiter::per_hour(config.issue_per_hour)),
            rotate: Arc::new(RateLimiter::per_hour(config.rotate_per_hour)),
            redeem: Arc::new(RateLimiter::per_hour(config.redeem_per_hour)),
        }
    }
}

/// Locales read from the control plane kept in memory, at most (two generations of
/// half this each).
const STORED_KEPT: usize = 50_000;

/// Recently used entries, bounded: a young and an old generation. A hit in the old
/// one moves the entry to the young one; when the young one is full it becomes the
/// old one and the old one is dropped. Users active in the last generation stay;
/// memory stays under `STORED_KEPT` entries whatever the number of users.
#[derive(Debug, Default)]
struct Generations {
    young: HashMap<i64, Option<Locale>>,
    old: HashMap<i64, Option<Locale>>,
}

impl Generations {
    fn insert(&mut self, key: i64, value: Option<Locale>) {
        if self.young.len() >= STORED_KEPT / 2 && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&key);
        self.young.insert(key, value);
    }

    fn get(&mut self, key: i64) -> Option<Option<Locale>> {
        if let Some(v) = self.young.get(&key) {
            return Some(*v);
        }
        let v = self.old.remove(&key)?;
        self.insert(key, v);
        Some(v)
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// What the bot holds only in memory, bounded: locales read from the control plane
/// (so it is asked once per user, not per update), and the keyboards being worked
/// on right now (so a double tap waits for the first).
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Stored locales read from the API (`None`: no account).
    stored: Arc<Mutex<Generations>>,
    busy: Arc<Mutex<HashSet<(i64, i32)>>>,
    /// Broadcast → (when asked, cancelled): asked again after [`BROADCAST_CHECK`].
    broadcasts: Arc<Mutex<HashMap<u64, (std::time::Instant, bool)>>>,
}

/// How long the bot trusts what it heard about a broadcast being cancelled.
pub const BROADCAST_CHECK: Duration = Duration::from_secs(1);

impl Session {
    /// Records what the API stores for a user (after sign-up or a change).
    pub fn remember_stored(&self, telegram_id: i64, locale: Option<Locale>) {
        self.stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(telegram_id, locale);
    }

    fn stored(&self, telegram_id: i64) -> Option<Option<Locale>> {
        self.stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(telegram_id)
    }

    /// How many users' locales are held (bounded by `STORED_KEPT`).
    pub fn remembered(&self) -> usize {
        self.stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Takes the keyboard of `message` for one press; `None` if a press of it is
    /// already being handled. The keyboard is free again when the guard drops.
    pub fn take_keyboard(&self, chat: ChatId, message: MessageId) -> Option<KeyboardGuard> {
        let key = (chat.0, message.0);
        let inserted = self
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
        inserted.then(|| KeyboardGuard {
            busy: self.busy.clone(),
            key,
        })
    }
}

/// A keyboard being worked on; see [`Session::take_keyboard`].
#[derive(Debug)]
pub struct KeyboardGuard {
    busy: Arc<Mutex<HashSet<(i64, i32)>>>,
    key: (i64, i32),
}

impl Drop for KeyboardGuard {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// Everything a handler or the courier needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Services {
    pub tg: Telegram,
    pub api: Api,
    pub policy: Policy,
    pub limits: Limits,
    pub session: Session,
    pub state: BotState,
    pub deletions: Deletions,
}

impl Services {
    /// Whether broadcast `id` was cancelled (asked at most every
    /// [`BROADCAST_CHECK`]). When the control plane cannot say, it was not: the
    /// message goes, as every notification does at least once.
    pub async fn broadcast_cancelled(&self, id: u64) -> bool {
        let now = std::time::Instant::now();
        {
            let known = self
                .session
                .broadcasts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((at, cancelled)) = known.get(&id)
                && (*cancelled || now.duration_since(*at) < BROADCAST_CHECK)
            {
                return *cancelled;
            }
        }
        let cancelled = match self.api.bot.broadcast(id).await {
            Ok(b) => b.cancelled_at.is_some(),
            Err(e) if e.status() == Some(404) => true,
            Err(e) => {
                warn!(error = %e, broadcast = id, "could not ask whether a broadcast was cancelled");
                false
            }
        };
        let mut known = self
            .session
            .broadcasts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if known.len() > 1000 {
            known.clear();
        }
        known.insert(id, (now, cancelled));
        cancelled
    }

    /// The user's language: chosen with /language, else stored with their account
    /// (asked from the control plane once), else their Telegram language.
    pub async fn locale(&self, user: Option<&TgUser>) -> Locale {
        let Some(user) = user else {
            return Locale::En;
        };
        let telegram = Locale::from_language_code(user.language_code.as_deref());
        let Some(id) = telegram_id(user) else {
            return telegram;
        };
        match self.state.language(id).await {
            Ok(Some(chosen)) => return chosen,
            Ok(None) => {}
            Err(e) => warn!(error = %e, "could not read a chosen language"),
        }
        let stored = match self.session.stored(id) {
            Some(stored) => stored,
            None => match self.api.bot.user_by_telegram(id).await {
                Ok(found) => {
                    let stored = found.map(|u| u.locale);
                    self.session.remember_stored(id, stored);
                    stored
                }
                // Unreachable control plane: the Telegram language will do.
                Err(_) => None,
            },
        };
        stored.unwrap_or(telegram)
    }

    /// The language of an admin chat: the one chosen there, else English.
    pub async fn admin_locale(&self, chat: ChatId) -> Locale {
        self.state
            .language(chat.0)
            .await
            .ok()
            .flatten()
            .unwrap_or(Locale::En)
    }
}

/// A Telegram user's id as the API stores it.
pub fn telegram_id(user: &TgUser) -> Option<i64> {
    i64::try_from(user.id.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_locales_are_bounded_and_recent_ones_stay() {
        let session = Session::default();
        session.remember_stored(1, Some(Locale::Ru));
        for id in 2..=(STORED_KEPT as i64 * 2) {
            session.remember_stored(id, None);
            if id % 1000 == 0 {
                // User 1 keeps talking to the bot.
                assert_eq!(session.stored(1), Some(Some(Locale::Ru)));
            }
        }
        assert!(
            session.remembered() <= STORED_KEPT,
            "{}",
            session.remembered()
        );
        assert_eq!(session.stored(1), Some(Some(Locale::Ru)));
        assert_eq!(session.stored(2), None, "long-idle users are forgotten");
    }
}
