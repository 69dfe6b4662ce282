//! Alerts to the admin chats: node health, drift and evacuations from the
//! notification outbox (see [`crate::notifications`]), or any text an embedder sends.

use teloxide::prelude::*;
use teloxide::types::ChatId;
use tracing::warn;
use vpnctl_core::Locale;

use crate::TgBot;
use crate::i18n::Text;

/// Sends alerts (node down/up, errors) to every configured admin chat.
#[derive(Debug, Clone)]
pub struct Alerts {
    bot: TgBot,
    admins: Vec<ChatId>,
}

impl Alerts {
    pub fn new(bot: TgBot, admin_ids: &[i64]) -> Self {
        Self {
            bot,
            admins: admin_ids.iter().map(|id| ChatId(*id)).collect(),
        }
    }

    /// The admin chats alerts go to.
    pub fn chats(&self) -> &[ChatId] {
        &self.admins
    }

    /// Sends `text` to each admin chat; returns how many got it.
    pub async fn send(&self, text: &str, locale: Locale) -> usize {
        let message = Text::Alert { text }.render(locale);
        let mut delivered = 0;
        for chat in &self.admins {
            match self.send_to(*chat, message.clone()).await {
                Ok(()) => delivered += 1,
                Err(e) => warn!(error = %e, chat = chat.0, "alert not delivered"),
            }
        }
        delivered
    }

    /// Sends an already worded alert to one admin chat.
    pub async fn send_to(&self, chat: ChatId, text: String) -> Result<(), teloxide::RequestError> {
        self.bot.send_message(chat, text).await?;
        Ok(())
    }
}
