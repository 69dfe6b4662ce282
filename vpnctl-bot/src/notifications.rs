//! Delivers the control plane's notification outbox: access reminders, quota
//! notices and moved devices to users, in their language; node health, drift and
//! evacuations to the admin chats.
//!
//! Delivery is at least once. The [`Courier`] long-polls `GET /v1/notifications`,
//! delivers in order, and acknowledges up to the last notification it is done with.
//! "Done" includes chats that will never take a message (the user blocked the bot,
//! the chat is gone): those are logged and skipped, not retried forever. A passing
//! failure (network, Telegram 5xx, the control plane away) stops the batch there;
//! that notification and the ones after it come again after a back-off.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use teloxide::prelude::*;
use teloxide::types::ChatId;
use teloxide::{ApiError, RequestError};
use tracing::{debug, info, warn};
use vpnctl_client::{ApiClient, ClientError};
use vpnctl_core::{Locale, Message as Notice, Notification, PeerId, Recipient};

use crate::alerts::Alerts;
use crate::handlers::{send_config, tunnel_file_name};
use crate::i18n::Text;
use crate::services::Settings;
use crate::{BotError, TgBot};

/// Notifications fetched per request.
pub const BATCH: usize = 50;
/// How long one fetch waits on the server for something to arrive.
pub const LONG_POLL: Duration = Duration::from_secs(25);
/// Back-off after a failure: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// A fetch that comes back empty sooner than this (a server that does not hold
/// the request) is followed by a pause, so the loop never spins.
const MIN_ROUND: Duration = Duration::from_secs(1);

/// Resolves when the courier should stop.
pub type Stop = Shared<BoxFuture<'static, ()>>;

/// What became of one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Delivered, or undeliverable for good: acknowledge it.
    Done,
    /// A passing failure: try again later; acknowledge nothing from here on.
    Retry,
}

/// How a failed Telegram request should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The chat will not take messages: blocked bot, deleted account, no such chat.
    Gone,
    /// Telegram refused this message for good (a bad request); retrying won't help.
    Refused,
    /// Network, Telegram's own errors, flood control: worth another try.
    Passing,
}

fn classify(e: &RequestError) -> Failure {
    match e {
        RequestError::Api(
            ApiError::BotBlocked
            | ApiError::ChatNotFound
            | ApiError::UserDeactivated
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots,
        ) => Failure::Gone,
        // teloxide knows no error codes, only descriptions: a 403 it has no variant
        // for still starts with "Forbidden"; 5xx answers land here too.
        RequestError::Api(ApiError::Unknown(text)) => {
            if text.starts_with("Forbidden") {
                Failure::Gone
            } else if text.starts_with("Bad Request") {
                Failure::Refused
            } else {
                Failure::Passing
            }
        }
        RequestError::Api(_) | RequestError::MigrateToChatId(_) => Failure::Refused,
        RequestError::RetryAfter(_)
        | RequestError::Network(_)
        | RequestError::InvalidJson { .. }
        | RequestError::Io(_) => Failure::Passing,
    }
}

/// Steps of the notification being retried that already went out, so that a
/// retry does not repeat them (to the admins that got an alert, or the
/// explanation before a config that failed).
#[derive(Debug, Default)]
struct Progress {
    id: u64,
    done: HashSet<(i64, Step)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    Text,
    Config,
}

impl Progress {
    fn start(&mut self, id: u64) {
        if self.id != id {
            self.id = id;
            self.done.clear();
        }
    }

    fn is_done(&self, chat: ChatId, step: Step) -> bool {
        self.done.contains(&(chat.0, step))
    }

    fn mark(&mut self, chat: ChatId, step: Step) {
        self.done.insert((chat.0, step));
    }
}

/// Doubling waits between failed rounds.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF.0 }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF.1);
        wait
    }

    fn reset(&mut self) {
        self.next = BACKOFF.0;
    }
}

/// Sleeps for `wait`; true if told to stop meanwhile.
async fn pause(stop: &Stop, wait: Duration) -> bool {
    tokio::select! {
        () = stop.clone() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

fn stopped(stop: &Stop) -> bool {
    stop.clone().now_or_never().is_some()
}

/// The delivery task [`crate::BotApp::run`] starts.
#[derive(Debug)]
pub struct Courier {
    bot: TgBot,
    api: ApiClient,
    alerts: Alerts,
    settings: Settings,
    progress: Progress,
}

impl Courier {
    pub fn new(bot: TgBot, api: ApiClient, alerts: Alerts, settings: Settings) -> Self {
        Self {
            bot,
            api,
            alerts,
            settings,
            progress: Progress::default(),
        }
    }

    /// Fetches, delivers and acknowledges until `stop` resolves.
    pub async fn run(mut self, stop: Stop) {
        let mut backoff = Backoff::default();
        loop {
            let started = Instant::now();
            let fetched = tokio::select! {
                () = stop.clone() => return,
                r = self.api.notifications(Some(BATCH), Some(LONG_POLL)) => r,
            };
            let batch = match fetched {
                Ok(batch) => batch,
                Err(e) => {
                    let wait = backoff.next();
                    warn!(error = %e, retry_in = ?wait, "could not fetch notifications");
                    if pause(&stop, wait).await {
                        return;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                backoff.reset();
                if started.elapsed() < MIN_ROUND && pause(&stop, MIN_ROUND).await {
                    return;
                }
                continue;
            }
            let mut handled = None;
            let mut stalled = false;
            for n in &batch {
                if stopped(&stop) {
                    break;
                }
                match self.deliver(n).await {
                    Outcome::Done => handled = Some(n.id),
                    Outcome::Retry => {
                        stalled = true;
                        break;
                    }
                }
            }
            if let Some(upto) = handled
                && let Err(e) = self.api.ack_notifications(upto).await
            {
                // Not fatal: what was delivered comes again and is sent twice.
                warn!(error = %e, upto, "could not acknowledge notifications");
                stalled = true;
            }
            if stalled {
                let wait = backoff.next();
                debug!(retry_in = ?wait, "notification delivery paused");
                if pause(&stop, wait).await {
                    return;
                }
            } else {
                backoff.reset();
            }
        }
    }

    async fn deliver(&mut self, n: &Notification) -> Outcome {
        self.progress.start(n.id);
        match &n.recipient {
            Recipient::User {
                user,
                telegram_id,
                locale,
            } => {
                let chat = ChatId(*telegram_id);
                let outcome = self.tell_user(chat, *locale, &n.message).await;
                match outcome {
                    Ok(()) => {
                        debug!(id = n.id, %user, "notification delivered");
                        Outcome::Done
                    }
                    Err(e) => self.failed(n.id, &e, &format!("user {user}")),
                }
            }
            Recipient::Admins => self.alert_admins(n).await,
        }
    }

    /// Logs a failure and decides whether to retry.
    fn failed(&self, id: u64, e: &BotError, to: &str) -> Outcome {
        match e {
            BotError::Telegram(te) => match classify(te) {
                Failure::Gone => {
                    info!(id, to, error = %te, "chat does not take messages; notification skipped");
                    Outcome::Done
                }
                Failure::Refused => {
                    warn!(id, to, error = %te, "Telegram refused a notification; skipped");
                    Outcome::Done
                }
                Failure::Passing => {
                    warn!(id, to, error = %te, "notification not delivered; will retry");
                    Outcome::Retry
                }
            },
            BotError::Api(ae) => {
                warn!(id, to, error = %ae, "control plane unavailable for a notification; will retry");
                Outcome::Retry
            }
            BotError::Config(ce) => {
                warn!(id, to, error = %ce, "notification skipped");
                Outcome::Done
            }
        }
    }

    async fn tell_user(
        &mut self,
        chat: ChatId,
        l: Locale,
        message: &Notice,
    ) -> Result<(), BotError> {
        let text = match message {
            Notice::AccessEndsSoon { until, days_left } => Text::AccessEndsSoon {
                until: until.to_date(),
                days_left: *days_left,
            },
            Notice::AccessEnded { until } => Text::AccessEndedOn {
                until: until.to_date(),
            },
            Notice::QuotaWarning {
                used,
                limit,
                resets_at,
            } => Text::QuotaWarning {
                used: *used,
                limit: *limit,
                resets: resets_at.to_date(),
            },
            Notice::QuotaExceeded {
                used,
                limit,
                resets_at,
            } => Text::QuotaExceeded {
                used: *used,
                limit: *limit,
                resets: resets_at.to_date(),
            },
            Notice::QuotaRestored => Text::QuotaRestored,
            Notice::DeviceMoved {
                device,
                new_peer,
                from_node,
                to_node,
                to_region,
            } => {
                let moved = Moved {
                    device,
                    new_peer: *new_peer,
                    from: from_node,
                    to: to_node,
                    region: to_region,
                };
                return self.device_moved(chat, l, &moved).await;
            }
            Notice::NodeHealth { .. } | Notice::NodeDrift { .. } | Notice::NodeEvacuated { .. } => {
                // Admin news addressed to a user: nothing a user should read.
                warn!("an admin notification was addressed to a user; skipped");
                return Ok(());
            }
        };
        self.bot.send_message(chat, text.render(l)).await?;
        Ok(())
    }

    /// Explains the move, then sends the new config like /get_config does. When the
    /// config cannot be fetched for good (the user's own key, the peer gone), the
    /// explanation points to /get_config instead.
    async fn device_moved(
        &mut self,
        chat: ChatId,
        l: Locale,
        m: &Moved<'_>,
    ) -> Result<(), BotError> {
        let fetched = match self.fetch(m.new_peer).await {
            Ok(config) => Some(config),
            Err(e) if e.status().is_some_and(|s| s < 500) => {
                info!(peer = %m.new_peer, error = %e, "moved device's config not available; pointing to /get_config");
                None
            }
            Err(e) => return Err(e.into()),
        };
        if !self.progress.is_done(chat, Step::Text) {
            let text = Text::DeviceMoved {
                device: m.device,
                from: m.from,
                to: m.to,
                region: m.region,
                config_follows: fetched.is_some(),
            };
            self.bot.send_message(chat, text.render(l)).await?;
            self.progress.mark(chat, Step::Text);
        }
        let Some((config, qr)) = fetched else {
            return Ok(());
        };
        if !self.progress.is_done(chat, Step::Config) {
            let file = tunnel_file_name(None, m.to, m.device);
            send_config(&self.bot, chat, &self.settings, l, m.to, file, config, qr).await?;
            self.progress.mark(chat, Step::Config);
        }
        Ok(())
    }

    async fn fetch(&self, peer: PeerId) -> Result<(String, Vec<u8>), ClientError> {
        let config = self.api.peer_config(peer).await?;
        let qr = self.api.peer_qr_png(peer).await?;
        Ok((config, qr))
    }

    /// Alerts every admin chat (in English: admins have no language setting); a
    /// retry skips the chats that already got it.
    async fn alert_admins(&mut self, n: &Notification) -> Outcome {
        let text = match &n.message {
            Notice::NodeHealth {
                name,
                from,
                to,
                reason,
                ..
            } => Text::NodeHealthChanged {
                name,
                from: *from,
                to: *to,
                reason,
            },
            Notice::NodeDrift { name, removed, .. } => Text::NodeDrift {
                name,
                removed: *removed,
            },
            Notice::NodeEvacuated {
                name,
                moved,
                failed,
                ..
            } => Text::NodeEvacuated {
                name,
                moved: *moved,
                failed: *failed,
            },
            Notice::AccessEndsSoon { .. }
            | Notice::AccessEnded { .. }
            | Notice::QuotaWarning { .. }
            | Notice::QuotaExceeded { .. }
            | Notice::QuotaRestored
            | Notice::DeviceMoved { .. } => {
                warn!(
                    id = n.id,
                    "a user notification was addressed to the admins; skipped"
                );
                return Outcome::Done;
            }
        }
        .render(Locale::En);
        if self.alerts.chats().is_empty() {
            debug!(id = n.id, "no admin chat configured; alert dropped");
            return Outcome::Done;
        }
        let mut outcome = Outcome::Done;
        for chat in self.alerts.chats().to_vec() {
            if self.progress.is_done(chat, Step::Text) {
                continue;
            }
            match self.alerts.send_to(chat, text.clone()).await {
                Ok(()) => self.progress.mark(chat, Step::Text),
                Err(e) => {
                    let to = format!("admin chat {}", chat.0);
                    if self.failed(n.id, &BotError::Telegram(e), &to) == Outcome::Retry {
                        outcome = Outcome::Retry;
                    }
                }
            }
        }
        outcome
    }
}

/// A moved device, as [`Courier::device_moved`] needs it.
struct Moved<'a> {
    device: &'a str,
    new_peer: PeerId,
    from: &'a str,
    to: &'a str,
    region: &'a str,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn blocked_and_missing_chats_are_gone_network_is_passing() {
        for e in [
            ApiError::BotBlocked,
            ApiError::ChatNotFound,
            ApiError::UserDeactivated,
        ] {
            assert_eq!(classify(&RequestError::Api(e)), Failure::Gone);
        }
        let forbidden = ApiError::Unknown("Forbidden: something new".into());
        assert_eq!(classify(&RequestError::Api(forbidden)), Failure::Gone);
        let server = ApiError::Unknown("Internal Server Error".into());
        assert_eq!(classify(&RequestError::Api(server)), Failure::Passing);
        assert_eq!(
            classify(&RequestError::Api(ApiError::MessageIsTooLong)),
            Failure::Refused
        );
        let io = RequestError::Io(Arc::new(std::io::Error::other("reset")));
        assert_eq!(classify(&io), Failure::Passing);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..7).map(|_| b.next().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next(), Duration::from_secs(1));
    }

    #[test]
    fn progress_is_per_notification() {
        let mut p = Progress::default();
        p.start(7);
        p.mark(ChatId(1), Step::Text);
        p.start(7);
        assert!(p.is_done(ChatId(1), Step::Text));
        assert!(!p.is_done(ChatId(1), Step::Config));
        p.start(8);
        assert!(!p.is_done(ChatId(1), Step::Text));
    }
}
