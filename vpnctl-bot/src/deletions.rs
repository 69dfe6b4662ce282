//! Deleting sent configs from chats when their time is up, durably: the schedule
//! lives in [`BotState`], so a deletion survives a restart or a crash and runs at
//! the next start if it is overdue by then.
//!
//! A message that is already gone (the user deleted it, or it is older than
//! Telegram lets a bot delete) is forgotten; a failure that may pass (network,
//! Telegram 5xx) is tried again later with a back-off, [`MAX_ATTEMPTS`] times.

use std::sync::Arc;
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{ChatId, MessageId};
use teloxide::{ApiError, RequestError};
use tokio::sync::Notify;
use tracing::{debug, info, warn};
use vpnctl_core::Timestamp;
use vpnctl_daemon::Backoff;

use crate::notifications::Stop;
use crate::state::{BotState, Deletion, StateError};

/// Tries one deletion gets.
pub const MAX_ATTEMPTS: u32 = 8;
/// Deletions handled per round.
const BATCH: usize = 100;
/// The longest the runner sleeps without looking at the schedule again.
const IDLE: Duration = Duration::from_secs(60);

/// Schedules deletions and wakes the runner when one is added.
#[derive(Debug, Clone)]
pub struct Deletions {
    state: BotState,
    added: Arc<Notify>,
}

impl Deletions {
    pub fn new(state: BotState) -> Self {
        Self {
            state,
            added: Arc::new(Notify::new()),
        }
    }

    /// Schedules `messages` in `chat` for deletion after `after`.
    pub async fn schedule(
        &self,
        chat: ChatId,
        messages: &[MessageId],
        after: Duration,
    ) -> Result<(), StateError> {
        if messages.is_empty() {
            return Ok(());
        }
        let secs = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
        let due = Timestamp::now().plus_seconds(secs);
        self.state
            .schedule_deletions(due, chat.0, messages.iter().map(|m| m.0).collect())
            .await?;
        self.added.notify_one();
        Ok(())
    }

    /// Deletes what is due until `stop` resolves; overdue deletions first.
    pub async fn run(self, bot: Bot, stop: Stop) {
        let backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(600));
        loop {
            let wait = match self.round(&bot, backoff).await {
                Ok(wait) => wait,
                Err(e) => {
                    warn!(error = %e, "could not read the deletion schedule");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                () = stop.clone() => return,
                () = self.added.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Runs the due deletions; returns how long to sleep until the next one.
    async fn round(&self, bot: &Bot, backoff: Backoff) -> Result<Duration, StateError> {
        loop {
            let due = self.state.due_deletions(Timestamp::now(), BATCH).await?;
            if due.is_empty() {
                break;
            }
            for d in &due {
                self.delete(bot, *d, backoff).await?;
            }
            if due.len() < BATCH {
                break;
            }
        }
        let Some(next) = self.state.next_deletion().await? else {
            return Ok(IDLE);
        };
        let secs = next.seconds().saturating_sub(Timestamp::now().seconds());
        Ok(Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(IDLE))
    }

    async fn delete(&self, bot: &Bot, d: Deletion, backoff: Backoff) -> Result<(), StateError> {
        match bot
            .delete_message(ChatId(d.chat), MessageId(d.message))
            .await
        {
            Ok(_) => {
                debug!(chat = d.chat, message = d.message, "sent config deleted");
                self.state.finish_deletion(d).await
            }
            Err(RequestError::Api(
                ApiError::MessageToDeleteNotFound
                | ApiError::MessageCantBeDeleted
                | ApiError::BotBlocked
                | ApiError::ChatNotFound
                | ApiError::UserDeactivated,
            )) => {
                info!(
                    chat = d.chat,
                    message = d.message,
                    "sent config already gone or no longer deletable"
                );
                self.state.finish_deletion(d).await
            }
            Err(e) if d.attempts + 1 >= MAX_ATTEMPTS => {
                warn!(chat = d.chat, message = d.message, error = %e, "could not delete a sent config; given up");
                self.state.finish_deletion(d).await
            }
            Err(e) => {
                let wait = backoff.delay(d.attempts + 1);
                warn!(chat = d.chat, message = d.message, error = %e, retry_in = ?wait, "could not delete a sent config");
                let secs = i64::try_from(wait.as_secs().max(1)).unwrap_or(i64::MAX);
                self.state
                    .postpone_deletion(d, Timestamp::now().plus_seconds(secs))
                    .await
            }
        }
    }
}
