//! The one way the bot sends messages: [`Telegram::send`] books a slot with the
//! [`Pacer`] for the chat, sends, and honours a `retry_after`. Calls that are not
//! messages (answering a button, editing a keyboard, deleting, chat actions) go
//! straight through [`Telegram::raw`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::requests::{Output, Request};
use teloxide::types::{ChatAction, ChatId};
use tracing::{debug, warn};

use crate::pacer::{Class, Pacer};

/// How often one message is sent again after Telegram said `retry_after`.
const RETRIES_AFTER_FLOOD: u32 = 5;

/// How long an action may run before the user sees "typing…".
const ACTION_AFTER: Duration = Duration::from_millis(400);

/// Telegram shows a chat action for about 5 s; it is repeated while work goes on.
const ACTION_EVERY: Duration = Duration::from_millis(4500);

/// The Telegram client and the pacer every message goes through.
#[derive(Debug, Clone)]
pub struct Telegram {
    bot: Bot,
    pacer: Arc<Pacer>,
}

impl Telegram {
    pub fn new(bot: Bot, pacer: Arc<Pacer>) -> Self {
        Self { bot, pacer }
    }

    /// The client itself, for calls that are not messages.
    pub fn raw(&self) -> &Bot {
        &self.bot
    }

    /// Sends the message `request` to `chat` within Telegram's limits. A
    /// `retry_after` freezes every send until it has passed, then this one is
    /// tried again (a few times at most).
    pub async fn send<R>(
        &self,
        chat: ChatId,
        class: Class,
        request: R,
    ) -> Result<Output<R>, RequestError>
    where
        R: Request<Err = RequestError>,
    {
        let sent = self
            .send_if(chat, class, request, || std::future::ready(true))
            .await?;
        Ok(sent.expect("a message that always goes went"))
    }

    /// [`Telegram::send`], but once its slot has come `go` is asked whether the
    /// message should still go (a broadcast may have been cancelled while it
    /// waited); `None` when it did not.
    pub async fn send_if<R, G, F>(
        &self,
        chat: ChatId,
        class: Class,
        request: R,
        go: G,
    ) -> Result<Option<Output<R>>, RequestError>
    where
        R: Request<Err = RequestError>,
        G: Fn() -> F,
        F: Future<Output = bool>,
    {
        let mut floods = 0;
        loop {
            self.pacer.acquire(chat, class).await;
            if !go().await {
                return Ok(None);
            }
            match request.send_ref().await {
                Err(RequestError::RetryAfter(after)) if floods < RETRIES_AFTER_FLOOD => {
                    floods += 1;
                    warn!(
                        chat = chat.0,
                        retry_after = ?after.duration(),
                        "Telegram asked to slow down; every send waits"
                    );
                    self.pacer.freeze(after.duration());
                }
                other => return other.map(Some),
            }
        }
    }

    /// Runs `work` showing `action` ("sending a file…") in `chat` from the start
    /// until it is done: preparing a config always takes a moment.
    pub async fn working<T>(
        &self,
        chat: ChatId,
        action: ChatAction,
        work: impl Future<Output = T>,
    ) -> T {
        self.with_action(chat, action, Duration::ZERO, work).await
    }

    /// Runs `work`; if it takes a moment, shows "typing…" in `chat` until it is
    /// done, so that a slow control plane is not silence.
    pub async fn typing_if_slow<T>(&self, chat: ChatId, work: impl Future<Output = T>) -> T {
        self.with_action(chat, ChatAction::Typing, ACTION_AFTER, work)
            .await
    }

    async fn with_action<T>(
        &self,
        chat: ChatId,
        action: ChatAction,
        after: Duration,
        work: impl Future<Output = T>,
    ) -> T {
        let work = std::pin::pin!(work);
        let show = async {
            tokio::time::sleep(after).await;
            loop {
                if let Err(e) = self.bot.send_chat_action(chat, action).await {
                    debug!(error = %e, "chat action not shown");
                }
                tokio::time::sleep(ACTION_EVERY).await;
            }
        };
        tokio::select! {
            out = work => out,
            () = show => unreachable!("showing an action never ends"),
        }
    }
}
