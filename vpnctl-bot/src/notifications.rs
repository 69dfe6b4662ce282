//! Delivers the control plane's notification outbox: access reminders, quota
//! notices and moved devices to users, in their language; node health, drift and
//! evacuations to the admin chats.
//!
//! Delivery is at least once. The [`Courier`] long-polls `GET /v1/notifications`,
//! delivers in order, and acknowledges each notification as soon as it is done with
//! it, so that a restart (or the courier being cut off at shutdown) repeats at most
//! the one notification that was in flight. It looks at the stop signal between
//! notifications, never in the middle of one.
//!
//! "Done" includes chats that will never take a message (the user blocked the bot,
//! the chat is gone): those are logged and skipped, not retried forever. A passing
//! failure (Telegram 5xx, the control plane failing a request) stops the batch
//! there; that notification and the ones after it come again after a back-off. One
//! notification gets [`MAX_ATTEMPTS`] tries: the last delivers what it can (a moved
//! device's explanation with a pointer to /get_config instead of the config), and
//! then the notification is given up with a warning, so that one bad notification
//! does not hold up everything behind it. Telegram being out of reach altogether
//! (network errors, flood control) spends no attempt: nothing else could go either.

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
/// Tries one notification gets before it is given up.
pub const MAX_ATTEMPTS: u32 = 5;
/// Back-off after a failure: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// A fetch that comes back empty sooner than this (a server that does not hold
/// the request) is followed by a pause, so the loop never spins.
const MIN_ROUND: Duration = Duration::from_secs(1);

/// Resolves when the courier should stop.
pub type Stop = Shared<BoxFuture<'static, ()>>;

/// What became of one notification (worst last, for [`Ord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Delivered, undeliverable for good, or given up: acknowledge it.
    Done,
    /// Telegram is out of reach: try again later without spending an attempt;
    /// acknowledge nothing from here on.
    Wait,
    /// A failure of this notification: try again later, up to [`MAX_ATTEMPTS`] in
    /// all; acknowledge nothing from here on.
    Retry,
}

/// How a failed Telegram request should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The chat will not take messages: blocked bot, deleted account, no such chat.
    Gone,
    /// Telegram refused this message for good (a bad request); retrying won't help.
    Refused,
    /// Telegram's own errors (5xx), odd answers: worth a few more tries.
    Passing,
    /// Telegram out of reach (network) or flood control: nothing can go now.
    Unreachable,
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
        RequestError::InvalidJson { .. } => Failure::Passing,
        RequestError::RetryAfter(_) | RequestError::Network(_) | RequestError::Io(_) => {
            Failure::Unreachable
        }
    }
}

/// The notification being retried: the attempts it failed, and the steps that
/// already went out, so that a retry does not repeat them (to the admins that got
/// an alert, or the explanation before a config that failed). Only the first
/// notification not yet done can be retried, so one is all there is to track.
#[derive(Debug, Default)]
struct Progress {
    id: u64,
    failed: u32,
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
            self.failed = 0;
            self.done.clear();
        }
    }

    /// Whether the attempt under way is the notification's last.
    fn last_attempt(&self) -> bool {
        self.failed + 1 >= MAX_ATTEMPTS
    }

    /// Counts a failed attempt; true if that was the last one.
    fn fail(&mut self) -> bool {
        self.failed += 1;
        self.failed >= MAX_ATTEMPTS
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
    /// The last notification delivered (done with), and the last acknowledged.
    /// They differ only while the control plane refuses acknowledgements; what
    /// was delivered meanwhile is not delivered again when it comes back.
    delivered: Option<u64>,
    acked: Option<u64>,
}

impl Courier {
    pub fn new(bot: TgBot, api: ApiClient, alerts: Alerts, settings: Settings) -> Self {
        Self {
            bot,
            api,
            alerts,
            settings,
            progress: Progress::default(),
            delivered: None,
            acked: None,
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
            let mut stalled = false;
            for n in &batch {
                // Between notifications only: one in flight finishes (or is cut off
                // by the bot's shutdown grace) and is the only one that comes again.
                if stopped(&stop) {
                    break;
                }
                if self.delivered.is_some_and(|d| n.id <= d) {
                    // Delivered before; only its acknowledgement failed.
                    continue;
                }
                match self.deliver(n).await {
                    Outcome::Done => {
                        self.delivered = Some(n.id);
                        if !self.acknowledge().await {
                            stalled = true;
                            break;
                        }
                    }
                    Outcome::Retry | Outcome::Wait => {
                        stalled = true;
                        break;
                    }
                }
            }
            // Those skipped above as delivered before still need acknowledging.
            if !self.acknowledge().await {
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

    /// Acknowledges everything delivered so far, if not done yet; false if the
    /// control plane did not take it (it is tried again with the next one).
    async fn acknowledge(&mut self) -> bool {
        let Some(upto) = self.delivered else {
            return true;
        };
        if self.acked.is_some_and(|a| a >= upto) {
            return true;
        }
        match self.api.ack_notifications(upto).await {
            Ok(_) => {
                self.acked = Some(upto);
                true
            }
            Err(e) => {
                // Not fatal: kept in memory, and what a restart meanwhile would
                // repeat is at least once.
                warn!(error = %e, upto, "could not acknowledge notifications");
                false
            }
        }
    }

    /// One attempt at `n`; after the last failed one, `n` is given up.
    async fn deliver(&mut self, n: &Notification) -> Outcome {
        self.progress.start(n.id);
        let (outcome, to) = match &n.recipient {
            Recipient::User {
                user,
                telegram_id,
                locale,
            } => {
                let chat = ChatId(*telegram_id);
                let to = format!("user {user}");
                match self.tell_user(chat, *locale, &n.message).await {
                    Ok(()) => {
                        debug!(id = n.id, %user, "notification delivered");
                        (Outcome::Done, to)
                    }
                    Err(e) => (self.failed(n.id, &e, &to), to),
                }
            }
            Recipient::Admins => (self.alert_admins(n).await, "admins".to_owned()),
        };
        if outcome != Outcome::Retry || !self.progress.fail() {
            return outcome;
        }
        warn!(
            id = n.id,
            to,
            attempts = MAX_ATTEMPTS,
            "notification still not delivered; given up"
        );
        Outcome::Done
    }

    /// Logs a failure and decides whether to retry.
    fn failed(&self, id: u64, e: &BotError, to: &str) -> Outcome {
        let attempt = self.progress.failed + 1;
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
                    warn!(id, to, attempt, error = %te, "notification not delivered");
                    Outcome::Retry
                }
                Failure::Unreachable => {
                    warn!(id, to, error = %te, "Telegram out of reach; notification waits");
                    Outcome::Wait
                }
            },
            BotError::Api(ae) => {
                warn!(id, to, attempt, error = %ae, "control plane failed a notification's request");
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
    /// config cannot be fetched for good (the user's own key, the peer gone), or
    /// still not on the last attempt, the explanation points to /get_config instead;
    /// so does a second message when the config cannot be sent.
    async fn device_moved(
        &mut self,
        chat: ChatId,
        l: Locale,
        m: &Moved<'_>,
    ) -> Result<(), BotError> {
        let last = self.progress.last_attempt();
        let fetched = match self.fetch(m.new_peer).await {
            Ok(config) => Some(config),
            Err(e) if e.status().is_some_and(|s| s < 500) => {
                info!(peer = %m.new_peer, error = %e, "moved device's config not available; pointing to /get_config");
                None
            }
            Err(e) if last => {
                warn!(peer = %m.new_peer, error = %e, "moved device's config still not available; pointing to /get_config");
                None
            }
            Err(e) => return Err(e.into()),
        };
        if !self.progress.is_done(chat, Step::Text) {
            let text = m.text(fetched.is_some()).render(l);
            self.bot.send_message(chat, text).await?;
            self.progress.mark(chat, Step::Text);
        }
        let Some((config, qr)) = fetched else {
            return Ok(());
        };
        if !self.progress.is_done(chat, Step::Config) {
            let file = tunnel_file_name(None, m.to, m.device);
            let sent = send_config(&self.bot, chat, &self.settings, l, m.to, file, config, qr);
            match sent.await {
                Ok(()) => self.progress.mark(chat, Step::Config),
                Err(BotError::Telegram(e))
                    if classify(&e) == Failure::Refused
                        || (last && classify(&e) == Failure::Passing) =>
                {
                    // The explanation promised a config that will not come.
                    warn!(peer = %m.new_peer, error = %e, "moved device's config could not be sent; pointing to /get_config");
                    self.bot.send_message(chat, m.text(false).render(l)).await?;
                    self.progress.mark(chat, Step::Config);
                }
                Err(e) => return Err(e),
            }
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
                    outcome = outcome.max(self.failed(n.id, &BotError::Telegram(e), &to));
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

impl Moved<'_> {
    /// The explanation: "the config follows", or "send /get_config".
    fn text(&self, config_follows: bool) -> Text<'_> {
        Text::DeviceMoved {
            device: self.device,
            from: self.from,
            to: self.to,
            region: self.region,
            config_follows,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn blocked_and_missing_chats_are_gone_5xx_passing_network_unreachable() {
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
        assert_eq!(classify(&io), Failure::Unreachable);
        let flood = RequestError::RetryAfter(teloxide::types::Seconds::from_seconds(3));
        assert_eq!(classify(&flood), Failure::Unreachable);
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

    #[test]
    fn attempts_are_counted_per_notification() {
        let mut p = Progress::default();
        p.start(7);
        for _ in 1..MAX_ATTEMPTS {
            assert!(!p.last_attempt());
            assert!(!p.fail());
            p.start(7);
        }
        assert!(p.last_attempt());
        assert!(p.fail(), "the last attempt failed: given up");
        p.start(8);
        assert!(!p.last_attempt(), "the next notification starts afresh");
    }

    #[test]
    fn the_worst_outcome_wins() {
        assert_eq!(Outcome::Done.max(Outcome::Wait), Outcome::Wait);
        assert_eq!(Outcome::Retry.max(Outcome::Wait), Outcome::Retry);
    }
}
