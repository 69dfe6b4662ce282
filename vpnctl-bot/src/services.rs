//! The services endpoints get injected with `dptree::deps!`: the API client, the
//! settings, the rate limiters and the per-chat session (language, used buttons).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use teloxide::types::{ChatId, MessageId, User as TgUser};
use vpnctl_client::ApiClient;
use vpnctl_core::Locale;

use crate::config::Config;
use crate::ratelimit::RateLimiter;

/// The control plane: a bot-scope client, plus an admin-scope one when configured.
#[derive(Debug, Clone)]
pub struct Api {
    pub bot: ApiClient,
    pub admin: Option<ApiClient>,
}

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub admin_ids: Arc<HashSet<i64>>,
    pub allowed_ids: Arc<HashSet<i64>>,
    /// Sent configs are deleted from the chat after this long.
    pub delete_after: Option<Duration>,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            admin_ids: Arc::new(config.admin_ids.iter().copied().collect()),
            allowed_ids: Arc::new(config.allowed_ids.iter().copied().collect()),
            delete_after: config.delete_after(),
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

/// How many used keyboards are remembered (older ones are forgotten first).
const USED_KEYBOARDS: usize = 100_000;

/// Keyboards (chat, message) already used, and their order for forgetting.
type UsedKeyboards = (HashSet<(i64, i32)>, VecDeque<(i64, i32)>);

/// The only dialogue state the bot holds: chosen languages, and keyboards already
/// used (so a double tap or a replayed button never issues twice).
#[derive(Debug, Clone, Default)]
pub struct Session {
    locales: Arc<Mutex<HashMap<i64, Locale>>>,
    /// Stored locales read from the API (`None`: no account), to ask once per user.
    stored: Arc<Mutex<HashMap<i64, Option<Locale>>>>,
    used: Arc<Mutex<UsedKeyboards>>,
}

impl Session {
    /// The user's language: chosen with /language, else their Telegram language.
    pub fn locale(&self, user: Option<&TgUser>) -> Locale {
        let Some(user) = user else {
            return Locale::En;
        };
        if let Some(id) = telegram_id(user)
            && let Some(l) = self
                .locales
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&id)
        {
            return *l;
        }
        Locale::from_language_code(user.language_code.as_deref())
    }

    /// The user's language: chosen with /language, else their stored locale (asked
    /// from the API once), else their Telegram language.
    pub async fn resolve_locale(&self, api: &Api, user: Option<&TgUser>) -> Locale {
        let Some(id) = user.and_then(telegram_id) else {
            return self.locale(user);
        };
        if let Some(l) = self.lock_locales().get(&id) {
            return *l;
        }
        let cached = self.lock_stored().get(&id).copied();
        let stored = match cached {
            Some(stored) => stored,
            None => match api.bot.user_by_telegram(id).await {
                Ok(found) => {
                    let stored = found.map(|u| u.locale);
                    self.remember_stored(id, stored);
                    stored
                }
                // Unreachable control plane: the Telegram language will do.
                Err(_) => None,
            },
        };
        stored.unwrap_or_else(|| self.locale(user))
    }

    /// Records what the API stores for a user (after sign-up or a change).
    pub fn remember_stored(&self, telegram_id: i64, locale: Option<Locale>) {
        let mut stored = self.lock_stored();
        if stored.len() > USED_KEYBOARDS {
            stored.clear();
        }
        stored.insert(telegram_id, locale);
    }

    fn lock_locales(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Locale>> {
        self.locales.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_stored(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Option<Locale>>> {
        self.stored.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_locale(&self, telegram_id: i64, locale: Locale) {
        self.locales
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(telegram_id, locale);
    }

    /// Marks a keyboard message used; false if it already was.
    pub fn consume(&self, chat: ChatId, message: MessageId) -> bool {
        let key = (chat.0, message.0);
        let mut guard = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if !set.insert(key) {
            return false;
        }
        order.push_back(key);
        if order.len() > USED_KEYBOARDS
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }
}

/// A Telegram user's id as the API stores it.
pub fn telegram_id(user: &TgUser) -> Option<i64> {
    i64::try_from(user.id.0).ok()
}
