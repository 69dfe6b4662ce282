//! Alerts to the admin chats: node health, drift and evacuations come from the
//! notification outbox (see [`crate::notifications`]); [`Alerts`] sends any text an
//! embedder has.

use teloxide::prelude::*;
use teloxide::types::ChatId;
use tracing::warn;
use vpnctl_core::Locale;

use crate::i18n::Text;
use crate::pacer::Class;
use crate::telegram::Telegram;

/// Sends alerts to every configured admin chat.
#[derive(Debug, Clone)]
pub struct Alerts {
    tg: Telegram,
    admins: Vec<ChatId>,
}

impl Alerts {
    pub fn new(tg: Telegram, admin_ids: &[i64]) -> Self {
        Self {
            tg,
            admins: admin_ids.iter().map(|id| ChatId(*id)).collect(),
        }
    }

    /// Sends `text` to each admin chat; returns how many got it.
    pub async fn send(&self, text: &str, locale: Locale) -> usize {
        let message = Text::Alert { text }.render(locale);
        let mut delivered = 0;
        for chat in &self.admins {
            let request = self.tg.raw().send_message(*chat, message.clone());
            match self.tg.send(*chat, Class::Bulk, request).await {
                Ok(_) => delivered += 1,
                Err(e) => warn!(error = %e, chat = chat.0, "alert not delivered"),
            }
        }
        delivered
    }
}
