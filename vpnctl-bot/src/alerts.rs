//! Alerts to the admin chats: the entry point the control plane side calls.

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

    /// Sends `text` to each admin chat; returns how many got it.
    pub async fn send(&self, text: &str, locale: Locale) -> usize {
        let message = Text::Alert { text }.render(locale);
        let mut delivered = 0;
        for chat in &self.admins {
            match self.bot.send_message(*chat, message.clone()).await {
                Ok(_) => delivered += 1,
                Err(e) => warn!(error = %e, chat = chat.0, "alert not delivered"),
            }
        }
        delivered
    }
}
