//! Delivers the control plane's notification outbox: access reminders, quota
//! notices and moved devices to users, in their language; node health, drift and
//! evacuations to the admin chats.
//!
//! **Concurrent across chats, in order within one.** The [`Courier`] long-polls
//! `GET /v1/notifications` (up to [`BATCH`] at a time) and puts each notification
//! in its chat's *lane* (the admin chats share one). Up to [`LANES`] lanes deliver
//! at once; within a lane one notification at a time, in the outbox's order. How
//! fast messages leave is the [`crate::pacer::Pacer`]'s business (Telegram's
//! limits, `retry_after`); notifications book slots as bulk, so replies to users
//! are not queued behind a mass notice.
//!
//! **At least once.** Notifications are acknowledged up to the first one not yet
//! done (`POST /v1/notifications/ack`, at most every [`ACK_EVERY`] while busy).
//! What is done beyond that point is remembered in the bot's durable state, so a
//! restart repeats only what was not finished. "Done" includes chats that will
//! never take a message (blocked bot, deleted account): logged and skipped. A
//! passing failure (Telegram 5xx, the control plane failing a request) is retried
//! in its lane with a back-off; after [`MAX_ATTEMPTS`] the last attempt delivers
//! what it can (a moved device's notice pointing to /get_config instead of the
//! config) and the notification is given up with a warning. Telegram out of reach
//! altogether (network, flood control) spends no attempt.
//!
//! A moved device gets two messages: the new `.conf` with the explanation as its
//! caption, then the QR code, both deleted later like any sent config.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use teloxide::prelude::*;
use teloxide::types::{ChatId, InputFile};
use teloxide::{ApiError, RequestError};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use vpnctl_client::ClientError;
use vpnctl_core::{Locale, Message as Notice, Notification, PeerId, Recipient, Timestamp};
use vpnctl_daemon::Backoff;

use crate::BotError;
use crate::delivery::{ConfigFile, tunnel_file_name};
use crate::i18n::Text;
use crate::pacer::Class;
use crate::services::Services;

/// Notifications fetched per request (the control plane's maximum).
pub const BATCH: usize = 1000;
/// More are fetched once fewer than this are left to do.
const REFILL: usize = BATCH / 2;
/// Lanes (chats) delivering at once.
pub const LANES: usize = 100;
/// How long one fetch waits on the server for something to arrive.
pub const LONG_POLL: Duration = Duration::from_secs(25);
/// Tries one notification gets before it is given up.
pub const MAX_ATTEMPTS: u32 = 5;
/// Acknowledgements while busy, at most this often.
pub const ACK_EVERY: Duration = Duration::from_millis(250);
/// A fetch that brought nothing new while work is left is not repeated sooner.
const MIN_ROUND: Duration = Duration::from_secs(1);
/// How long lanes get at shutdown to finish the notification they are on.
const LANE_GRACE: Duration = Duration::from_secs(2);

fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Resolves when the courier should stop.
pub type Stop = Shared<BoxFuture<'static, ()>>;

fn stopped(stop: &Stop) -> bool {
    stop.clone().now_or_never().is_some()
}

/// Sleeps for `wait`; true if told to stop meanwhile.
pub(crate) async fn pause(stop: &Stop, wait: Duration) -> bool {
    tokio::select! {
        () = stop.clone() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

/// What became of one attempt (worst last, for [`Ord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Delivered, undeliverable for good, or given up.
    Done,
    /// Telegram is out of reach: try again later without spending an attempt.
    Wait,
    /// A failure of this notification: try again, up to [`MAX_ATTEMPTS`] in all.
    Retry,
}

/// How a failed Telegram request should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The chat will not take messages: blocked bot, deleted account, no such chat.
    Gone,
    /// Telegram refused this message for good (a bad request).
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

/// Where a notification is delivered, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    User(i64),
    Admins,
}

fn lane(n: &Notification) -> Lane {
    match n.recipient {
        Recipient::User { telegram_id, .. } => Lane::User(telegram_id),
        Recipient::Admins => Lane::Admins,
    }
}

/// What a lane reports back about one notification.
#[derive(Debug)]
struct Finished {
    lane: Lane,
    id: u64,
    done: bool,
}

/// Which notifications are taken and which are done; what may be acknowledged.
#[derive(Debug, Default)]
struct Ledger {
    /// Taken and not done yet.
    open: BTreeSet<u64>,
    /// The lowest and the highest id ever taken.
    lowest: Option<u64>,
    highest: Option<u64>,
    acked: Option<u64>,
    /// The last id of the latest batch: the control plane takes no acknowledgement
    /// beyond the page it serves.
    served: Option<u64>,
}

impl Ledger {
    fn take(&mut self, id: u64) -> bool {
        if self.highest.is_some_and(|h| id <= h) {
            return false;
        }
        self.highest = Some(id);
        self.lowest.get_or_insert(id);
        self.open.insert(id);
        true
    }

    fn done(&mut self, id: u64) {
        self.open.remove(&id);
    }

    /// A batch was served, ending at `last`.
    fn served(&mut self, last: u64) {
        self.served = Some(last);
    }

    /// A batch that starts at or below what was acknowledged when it was asked
    /// for: the control plane's cursor went back (its store was restored from a
    /// backup). What it sends again was taken before and is not taken again;
    /// forgetting the acknowledgement lets the next ones move its cursor past them,
    /// a page at a time, or a full batch of them would come back for ever and
    /// nothing new would be reached.
    fn went_back(&mut self, first: u64, acked_when_asked: Option<u64>) -> bool {
        let back = acked_when_asked.is_some_and(|a| first <= a);
        if back {
            self.acked = None;
        }
        back
    }

    /// Everything up to here is done (ids are taken in increasing order).
    fn ackable(&self) -> Option<u64> {
        let upto = match self.open.first() {
            // Below the first open one, if anything was taken below it.
            Some(first) => Some(*first - 1).filter(|_| self.lowest.is_some_and(|l| l < *first)),
            None => self.highest,
        };
        upto.map(|u| self.served.map_or(u, |s| u.min(s)))
            .filter(|a| self.acked.is_none_or(|acked| *a > acked))
    }
}

/// The steps of one notification already done, so that a retry does not repeat
/// them (the admins that got an alert, a document sent before its QR failed).
#[derive(Debug, Default)]
struct Progress {
    done: HashSet<(i64, Step)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    Text,
    Document,
    Photo,
    /// Part N (from 0) of a backup file.
    Part(u32),
}

impl Progress {
    fn is_done(&self, chat: ChatId, step: Step) -> bool {
        self.done.contains(&(chat.0, step))
    }

    fn mark(&mut self, chat: ChatId, step: Step) {
        self.done.insert((chat.0, step));
    }
}

/// The delivery task [`crate::BotApp::run`] starts.
#[derive(Debug)]
pub struct Courier {
    s: Services,
    admins: Vec<ChatId>,
}

impl Courier {
    pub fn new(s: Services, admin_ids: &[i64]) -> Self {
        Self {
            s,
            admins: admin_ids.iter().map(|id| ChatId(*id)).collect(),
        }
    }

    /// Fetches, delivers and acknowledges until `stop` resolves.
    pub async fn run(self, stop: Stop) {
        let mut ledger = Ledger::default();
        let mut queues: HashMap<Lane, VecDeque<Notification>> = HashMap::new();
        let mut ready: VecDeque<Lane> = VecDeque::new();
        let mut running: HashSet<Lane> = HashSet::new();
        let mut lanes = JoinSet::new();
        let (finished_tx, mut finished) = mpsc::unbounded_channel::<Finished>();
        let mut fetch: Option<BoxFuture<'static, Result<Vec<Notification>, ClientError>>> = None;
        let mut next_fetch = Instant::now();
        let mut fetch_failures = 0;
        let mut last_ack = Instant::now() - ACK_EVERY;
        // What was acknowledged when the fetch in flight was asked for.
        let mut fetch_acked = None;
        // The last acknowledgement was refused: fetch even with much open, so the
        // page served (after a restore, another) is known again.
        let mut refused = false;
        // Delivered before a restart, but not acknowledged then.
        let mut delivered_before = self.s.state.delivered().await.unwrap_or_else(|e| {
            warn!(error = %e, "could not read delivered notifications");
            HashSet::new()
        });

        loop {
            let open = ledger.open.len();
            if fetch.is_none()
                && Instant::now() >= next_fetch
                && (open < REFILL || std::mem::take(&mut refused))
            {
                let idle = open == 0 && ledger.ackable().is_none();
                let wait = idle.then_some(LONG_POLL);
                let api = self.s.api.bot.clone();
                fetch_acked = ledger.acked;
                fetch = Some(async move { api.notifications(Some(BATCH), wait).await }.boxed());
            }
            let ack_at = last_ack + ACK_EVERY;
            let want_ack = ledger.ackable().is_some();
            tokio::select! {
                () = stop.clone() => break,
                Some(f) = finished.recv() => {
                    running.remove(&f.lane);
                    if f.done {
                        ledger.done(f.id);
                    }
                    if queues.get(&f.lane).is_some_and(|q| !q.is_empty()) {
                        ready.push_back(f.lane);
                    }
                }
                fetched = async { fetch.as_mut().expect("checked").await }, if fetch.is_some() => {
                    fetch = None;
                    match fetched {
                        Ok(batch) => {
                            fetch_failures = 0;
                            if let Some(last) = batch.last() {
                                ledger.served(last.id);
                            }
                            if batch.first().is_some_and(|n| ledger.went_back(n.id, fetch_acked)) {
                                warn!(
                                    first = batch.first().map(|n| n.id),
                                    "the control plane sent notifications already acknowledged \
                                     (restored from a backup?): those taken before are not sent again"
                                );
                            }
                            let mut new = 0;
                            for n in batch {
                                if !ledger.take(n.id) {
                                    continue;
                                }
                                new += 1;
                                if delivered_before.remove(&n.id) {
                                    debug!(id = n.id, "delivered before a restart; not again");
                                    ledger.done(n.id);
                                    continue;
                                }
                                let l = lane(&n);
                                let queue = queues.entry(l).or_default();
                                if queue.is_empty() && !running.contains(&l) {
                                    ready.push_back(l);
                                }
                                queue.push_back(n);
                            }
                            if new == 0 {
                                // Only what is under way came back: wait for it.
                                next_fetch = Instant::now() + MIN_ROUND;
                            }
                        }
                        Err(e) => {
                            fetch_failures += 1;
                            let wait = retry_backoff().delay(fetch_failures);
                            warn!(error = %e, retry_in = ?wait, "could not fetch notifications");
                            next_fetch = Instant::now() + wait;
                        }
                    }
                }
                () = tokio::time::sleep_until(next_fetch), if fetch.is_none() && (open < REFILL || refused) => {}
                () = tokio::time::sleep_until(ack_at), if want_ack => {}
            }
            // Start lanes that have work, as many as allowed.
            while running.len() < LANES {
                let Some(l) = ready.pop_front() else { break };
                if running.contains(&l) {
                    continue;
                }
                let Some(n) = queues.get_mut(&l).and_then(VecDeque::pop_front) else {
                    continue;
                };
                if queues.get(&l).is_some_and(VecDeque::is_empty) {
                    queues.remove(&l);
                }
                running.insert(l);
                let (s, admins, stop, tx) = (
                    self.s.clone(),
                    self.admins.clone(),
                    stop.clone(),
                    finished_tx.clone(),
                );
                lanes.spawn(async move {
                    let done = deliver(&s, &admins, &n, &stop).await;
                    if done && let Err(e) = s.state.mark_delivered(n.id).await {
                        warn!(error = %e, id = n.id, "could not remember a delivered notification");
                    }
                    let _ = tx.send(Finished {
                        lane: l,
                        id: n.id,
                        done,
                    });
                });
            }
            while lanes.try_join_next().is_some() {}
            let busy = !ledger.open.is_empty();
            if !busy || Instant::now() >= last_ack + ACK_EVERY {
                if self.acknowledge(&mut ledger).await {
                    last_ack = Instant::now();
                } else {
                    // Not taken: try again after a pause, not in a spin.
                    last_ack = Instant::now() + MIN_ROUND;
                    next_fetch = next_fetch.max(Instant::now() + MIN_ROUND);
                    refused = true;
                }
            }
        }

        // Lanes finish the notification they are on (they look at the stop signal
        // between attempts); whatever is not done comes again after a restart.
        let grace = tokio::time::sleep(LANE_GRACE);
        tokio::pin!(grace);
        while !running.is_empty() {
            tokio::select! {
                () = &mut grace => break,
                Some(f) = finished.recv() => {
                    running.remove(&f.lane);
                    if f.done {
                        ledger.done(f.id);
                    }
                }
            }
        }
        lanes.abort_all();
        while lanes.join_next().await.is_some() {}
        self.acknowledge(&mut ledger).await;
    }

    /// Acknowledges everything done so far, if not done yet; false if the control
    /// plane did not take it (it is tried again later).
    async fn acknowledge(&self, ledger: &mut Ledger) -> bool {
        let Some(upto) = ledger.ackable() else {
            return true;
        };
        match self.s.api.bot.ack_notifications(upto).await {
            Ok(_) => {
                ledger.acked = Some(upto);
                if let Err(e) = self.s.state.forget_delivered(upto).await {
                    warn!(error = %e, "could not forget acknowledged notifications");
                }
                true
            }
            Err(e) => {
                // Not fatal: what a restart meanwhile repeats is at least once.
                warn!(error = %e, upto, "could not acknowledge notifications");
                false
            }
        }
    }
}

/// Delivers `n` with its retries; true when done (delivered, skipped for good or
/// given up), false when stopped first.
async fn deliver(s: &Services, admins: &[ChatId], n: &Notification, stop: &Stop) -> bool {
    let mut progress = Progress::default();
    let mut failed = 0;
    let mut rounds = 0;
    loop {
        if stopped(stop) {
            return false;
        }
        let last = failed + 1 >= MAX_ATTEMPTS;
        let outcome = match &n.recipient {
            Recipient::User {
                user,
                telegram_id,
                locale,
            } => {
                let chat = ChatId(*telegram_id);
                let to = format!("user {user}");
                match tell_user(s, chat, *locale, &n.message, &mut progress, last).await {
                    Ok(()) => {
                        debug!(id = n.id, %user, "notification delivered");
                        Outcome::Done
                    }
                    Err(e) => judge(n.id, &e, &to, failed + 1),
                }
            }
            Recipient::Admins => alert_admins(s, admins, n, &mut progress, failed + 1).await,
        };
        match outcome {
            Outcome::Done => return true,
            Outcome::Retry => {
                failed += 1;
                if failed >= MAX_ATTEMPTS {
                    warn!(
                        id = n.id,
                        attempts = MAX_ATTEMPTS,
                        "notification still not delivered; given up"
                    );
                    return true;
                }
            }
            Outcome::Wait => {}
        }
        rounds += 1;
        if pause(stop, retry_backoff().delay(rounds)).await {
            return false;
        }
    }
}

/// Logs a failure and decides whether to retry.
fn judge(id: u64, e: &BotError, to: &str, attempt: u32) -> Outcome {
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
        other => {
            warn!(id, to, error = %other, "notification skipped");
            Outcome::Done
        }
    }
}

async fn say(s: &Services, chat: ChatId, text: String) -> Result<(), RequestError> {
    let request = s.tg.raw().send_message(chat, text);
    s.tg.send(chat, Class::Bulk, request).await?;
    Ok(())
}

async fn tell_user(
    s: &Services,
    chat: ChatId,
    l: Locale,
    message: &Notice,
    progress: &mut Progress,
    last: bool,
) -> Result<(), BotError> {
    let text = match message {
        Notice::AccessEndsSoon { until, .. } => {
            let now = Timestamp::now();
            if *until <= now {
                // Over by now: "ended" follows; "ends soon" would contradict it.
                debug!("access reminder arrived after the end; skipped");
                return Ok(());
            }
            let renew = crate::handlers::payments::on_sale(s).await;
            return remind(
                s,
                chat,
                l,
                Text::AccessEndsSoon {
                    until: *until,
                    now,
                    renew,
                },
                renew,
            )
            .await;
        }
        Notice::AccessEnded { until } => {
            let renew = crate::handlers::payments::on_sale(s).await;
            return remind(
                s,
                chat,
                l,
                Text::AccessEndedOn {
                    until: *until,
                    renew,
                },
                renew,
            )
            .await;
        }
        Notice::QuotaWarning {
            used,
            limit,
            resets_at,
        } => Text::QuotaWarning {
            used: *used,
            limit: *limit,
            resets: *resets_at,
        },
        Notice::QuotaExceeded {
            used,
            limit,
            resets_at,
        } => Text::QuotaExceeded {
            used: *used,
            limit: *limit,
            resets: *resets_at,
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
                transport: None,
            };
            return device_moved(s, chat, l, &moved, progress, last).await;
        }
        Notice::ConfigChanged {
            device,
            peer,
            node,
            region,
            transport,
        } => {
            let changed = Moved {
                device,
                new_peer: *peer,
                from: node,
                to: node,
                region,
                transport: Some(*transport),
            };
            return device_moved(s, chat, l, &changed, progress, last).await;
        }
        Notice::PaymentReceived {
            plan,
            stars,
            days,
            until,
            ..
        } => {
            let receipt = Text::Receipt {
                plan: plan.get(l),
                stars: *stars,
                days: *days,
                until: *until,
            };
            say(s, chat, receipt.render(l)).await?;
            return Ok(());
        }
        Notice::Broadcast { broadcast, text } => {
            if s.broadcast_cancelled(*broadcast).await {
                debug!(broadcast, "broadcast cancelled; message skipped");
                return Ok(());
            }
            // Asked again when its turn has come: a message that waited for
            // Telegram's pace while the broadcast was cancelled does not go.
            let request =
                s.tg.raw()
                    .send_message(chat, Text::Operator { text }.render(l));
            let sent =
                s.tg.send_if(chat, Class::Bulk, request, || async {
                    !s.broadcast_cancelled(*broadcast).await
                })
                .await?;
            if sent.is_none() {
                debug!(broadcast, "broadcast cancelled; message skipped");
            }
            return Ok(());
        }
        Notice::PaymentRefunded { stars, until, .. } => Text::Refunded {
            stars: *stars,
            until: *until,
        },
        Notice::NodeHealth { .. }
        | Notice::NodeDrift { .. }
        | Notice::NodeEvacuated { .. }
        | Notice::NodeTransportChanged { .. }
        | Notice::RefundRequested { .. }
        | Notice::RefundFailed { .. }
        | Notice::BackupTaken { .. } => {
            // Admin news addressed to a user: nothing a user should read.
            warn!("an admin notification was addressed to a user; skipped");
            return Ok(());
        }
    };
    say(s, chat, text.render(l)).await?;
    Ok(())
}

/// An access reminder, with a "Renew" button when `renew`.
async fn remind(
    s: &Services,
    chat: ChatId,
    l: Locale,
    text: Text<'_>,
    renew: bool,
) -> Result<(), BotError> {
    let mut request = s.tg.raw().send_message(chat, text.render(l));
    if renew {
        request = request.reply_markup(crate::handlers::payments::renew_keyboard(l));
    }
    s.tg.send(chat, Class::Bulk, request).await?;
    Ok(())
}

/// A moved device, as [`device_moved`] needs it; with `transport`, a device that
/// stayed but whose server changed its transport (a new config, same keys).
struct Moved<'a> {
    device: &'a str,
    new_peer: PeerId,
    from: &'a str,
    to: &'a str,
    region: &'a str,
    transport: Option<vpnctl_core::transport::TransportKind>,
}

impl Moved<'_> {
    fn text(&self, config_follows: bool) -> Text<'_> {
        if let Some(transport) = self.transport {
            return Text::ConfigChanged {
                device: self.device,
                server: self.to,
                transport,
                config_follows,
            };
        }
        Text::DeviceMoved {
            device: self.device,
            from: self.from,
            to: self.to,
            region: self.region,
            config_follows,
        }
    }
}

/// The new config with the explanation as its caption, then the QR code. When the
/// config cannot be fetched for good (the user's own key, the peer gone), or still
/// not on the last attempt, or cannot be sent, the explanation goes out as a text
/// pointing to /get_config instead.
async fn device_moved(
    s: &Services,
    chat: ChatId,
    l: Locale,
    m: &Moved<'_>,
    progress: &mut Progress,
    last: bool,
) -> Result<(), BotError> {
    if progress.is_done(chat, Step::Text) {
        return Ok(());
    }
    let pointer = async |progress: &mut Progress| -> Result<(), BotError> {
        say(s, chat, m.text(false).render(l)).await?;
        progress.mark(chat, Step::Text);
        Ok(())
    };
    let mut file = None;
    if !progress.is_done(chat, Step::Photo) {
        match fetch(s, m.new_peer).await {
            Ok((text, qr_png)) => {
                file = Some(ConfigFile {
                    file_name: tunnel_file_name(None, m.to, m.device, &text),
                    text,
                    qr_png,
                    caption: m.text(true).render(l),
                });
            }
            Err(e) if e.status().is_some_and(|s| s < 500) => {
                info!(peer = %m.new_peer, error = %e, "moved device's config not available; pointing to /get_config");
                return pointer(progress).await;
            }
            Err(e) if last => {
                warn!(peer = %m.new_peer, error = %e, "moved device's config still not available; pointing to /get_config");
                return pointer(progress).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some(file) = file else {
        return Ok(());
    };
    let gives_up = |e: &RequestError| {
        classify(e) == Failure::Refused || (last && classify(e) == Failure::Passing)
    };
    if !progress.is_done(chat, Step::Document) {
        match s.send_config_document(chat, Class::Bulk, &file).await {
            Ok(()) => progress.mark(chat, Step::Document),
            Err(e) if gives_up(&e) => {
                warn!(peer = %m.new_peer, error = %e, "moved device's config could not be sent; pointing to /get_config");
                return pointer(progress).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    match s.send_config_qr(chat, Class::Bulk, l, &file).await {
        Ok(()) => progress.mark(chat, Step::Photo),
        // The config is in the chat; the QR code is a convenience.
        Err(e) if gives_up(&e) => {
            warn!(peer = %m.new_peer, error = %e, "moved device's QR code could not be sent");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn fetch(s: &Services, peer: PeerId) -> Result<(String, Option<Vec<u8>>), ClientError> {
    let config = s.api.bot.peer_config(peer).await?;
    let qr = crate::delivery::fetch_qr(&s.api.bot, peer).await?;
    Ok((config, qr))
}

/// A scheduled backup (encrypted by vpnctld to the admin's key or passphrase) to
/// every admin chat, as documents of at most `backup_part_bytes` each, in order; a
/// retry skips the parts each chat already got. Not deleted later: it is a backup.
async fn send_backup(
    s: &Services,
    admins: &[ChatId],
    n: &Notification,
    file: &str,
    progress: &mut Progress,
    attempt: u32,
) -> Outcome {
    if admins.is_empty() {
        debug!(id = n.id, "no admin chat configured; backup not sent");
        return Outcome::Done;
    }
    let blob = match s.api.bot.backup_file(file).await {
        Ok(blob) => blob,
        Err(e) if e.status() == Some(404) => {
            warn!(
                id = n.id,
                file, "the announced backup is gone (deleted by retention?); not sent"
            );
            return Outcome::Done;
        }
        Err(e) => return judge(n.id, &BotError::Api(e), "admin chats (backup)", attempt),
    };
    let part_len = usize::try_from(s.policy.backup_part_bytes)
        .unwrap_or(usize::MAX)
        .max(1);
    let parts: Vec<&[u8]> = blob.chunks(part_len).collect();
    let total = u32::try_from(parts.len()).unwrap_or(u32::MAX);
    let bytes = u64::try_from(blob.len()).unwrap_or(u64::MAX);
    let mut outcome = Outcome::Done;
    for chat in admins {
        let l = s.admin_locale(*chat).await;
        for (i, part) in (0..total).zip(&parts) {
            if progress.is_done(*chat, Step::Part(i)) {
                continue;
            }
            let name = if total == 1 {
                file.to_owned()
            } else {
                format!("{file}.part{}", i + 1)
            };
            let caption = Text::BackupFile {
                file,
                part: i + 1,
                parts: total,
                bytes,
            }
            .render(l);
            let request =
                s.tg.raw()
                    .send_document(*chat, InputFile::memory(part.to_vec()).file_name(name))
                    .caption(caption);
            match s.tg.send(*chat, Class::Bulk, request).await {
                Ok(_) => progress.mark(*chat, Step::Part(i)),
                Err(e) => {
                    let to = format!("admin chat {}", chat.0);
                    outcome = outcome.max(judge(n.id, &BotError::Telegram(e), &to, attempt));
                    // The parts go in order: the rest wait for the retry.
                    break;
                }
            }
        }
    }
    outcome
}

/// Alerts every admin chat in its language; a retry skips the chats that got it.
async fn alert_admins(
    s: &Services,
    admins: &[ChatId],
    n: &Notification,
    progress: &mut Progress,
    attempt: u32,
) -> Outcome {
    if let Notice::BackupTaken { file, .. } = &n.message {
        return send_backup(s, admins, n, file, progress, attempt).await;
    }
    if let Notice::RefundRequested {
        payment,
        telegram_id,
        telegram_charge_id,
        ..
    } = &n.message
    {
        return refund(s, n.id, *payment, *telegram_id, telegram_charge_id, attempt).await;
    }
    if admin_text(&n.message, Locale::En).is_none() {
        warn!(
            id = n.id,
            "not an admin notification (or nothing to say); skipped"
        );
        return Outcome::Done;
    }
    if admins.is_empty() {
        debug!(id = n.id, "no admin chat configured; alert dropped");
        return Outcome::Done;
    }
    let mut outcome = Outcome::Done;
    for chat in admins {
        if progress.is_done(*chat, Step::Text) {
            continue;
        }
        let l = s.admin_locale(*chat).await;
        let Some(text) = admin_text(&n.message, l) else {
            return Outcome::Done;
        };
        match say(s, *chat, text.render(l)).await {
            Ok(()) => progress.mark(*chat, Step::Text),
            Err(e) => {
                let to = format!("admin chat {}", chat.0);
                outcome = outcome.max(judge(n.id, &BotError::Telegram(e), &to, attempt));
            }
        }
    }
    outcome
}

/// What the admins are told of `message`, in `l`; `None` for what is not theirs to
/// read (or handled otherwise: backups, refunds).
fn admin_text(message: &Notice, l: Locale) -> Option<Text<'_>> {
    Some(match message {
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
        Notice::NodeTransportChanged {
            name,
            transport,
            devices,
            ..
        } => Text::NodeTransportChanged {
            name,
            transport: *transport,
            devices: *devices,
        },
        Notice::PaymentReceived {
            user_name,
            plan,
            stars,
            ..
        } => Text::PaymentNotice {
            user: user_name,
            plan: plan.get(l),
            stars: *stars,
        },
        Notice::PaymentRefunded {
            user_name, stars, ..
        } => Text::RefundNotice {
            user: user_name,
            stars: *stars,
        },
        Notice::RefundFailed { payment, reason } => Text::RefundFailedNotice {
            payment: payment.0,
            reason,
        },
        Notice::BackupTaken { .. } | Notice::RefundRequested { .. } | Notice::Broadcast { .. } => {
            return None;
        }
        Notice::AccessEndsSoon { .. }
        | Notice::ConfigChanged { .. }
        | Notice::AccessEnded { .. }
        | Notice::QuotaWarning { .. }
        | Notice::QuotaExceeded { .. }
        | Notice::QuotaRestored
        | Notice::DeviceMoved { .. } => return None,
    })
}

/// Returns the Stars of a payment with Telegram and reports the result to the
/// control plane, which shortens access once the refund is confirmed. Telegram
/// out of reach or failing passes: tried again (a second refund of the same
/// charge is answered `CHARGE_ALREADY_REFUNDED`, which core counts as done).
async fn refund(
    s: &Services,
    id: u64,
    payment: vpnctl_core::PaymentId,
    telegram_id: i64,
    charge: &str,
    attempt: u32,
) -> Outcome {
    let Ok(user) = u64::try_from(telegram_id) else {
        warn!(id, %payment, "a refund for a chat that is not a user; skipped");
        return Outcome::Done;
    };
    let sent =
        s.tg.raw()
            .refund_star_payment(
                teloxide::types::UserId(user),
                teloxide::types::TelegramTransactionId(charge.to_owned()),
            )
            .await;
    let error = match sent {
        Ok(_) => None,
        Err(e) => match classify(&e) {
            Failure::Unreachable => {
                warn!(id, %payment, error = %e, "Telegram out of reach; the refund waits");
                return Outcome::Wait;
            }
            Failure::Passing => {
                warn!(id, %payment, attempt, error = %e, "refund not made yet");
                return Outcome::Retry;
            }
            Failure::Gone | Failure::Refused => Some(e.to_string()),
        },
    };
    match s.api.bot.refund_result(payment, error.clone()).await {
        Ok(_) => {
            info!(id, %payment, refused = error.is_some(), "refund handled");
            Outcome::Done
        }
        Err(e) => {
            warn!(id, %payment, attempt, error = %e, "could not report a refund's result");
            Outcome::Retry
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
    fn acknowledged_up_to_the_first_open_one() {
        let mut l = Ledger::default();
        assert_eq!(l.ackable(), None);
        for id in [3, 4, 5, 7] {
            assert!(l.take(id));
        }
        assert!(!l.take(4), "taken once");
        assert_eq!(l.ackable(), None, "3 is still open");
        l.done(4);
        l.done(5);
        assert_eq!(l.ackable(), None, "3 is still open");
        l.done(3);
        assert_eq!(l.ackable(), Some(6), "up to 7, which is open");
        l.acked = Some(6);
        assert_eq!(l.ackable(), None);
        l.done(7);
        assert_eq!(l.ackable(), Some(7));
    }

    /// A control plane restored from a backup: its cursor is back at 40, the bot
    /// took up to 60 before and acknowledged it. What comes again is not taken
    /// again, and the acknowledgements move the cursor past it a page at a time
    /// (the control plane takes none beyond the page it served; before, a batch of
    /// a thousand such came back for ever).
    #[test]
    fn a_cursor_that_went_back_is_moved_past_what_was_taken() {
        let mut l = Ledger::default();
        for id in 1..=60 {
            assert!(l.take(id));
            l.done(id);
        }
        l.served(60);
        assert_eq!(l.ackable(), Some(60));
        l.acked = Some(60);
        // A batch asked for before an acknowledgement landed is no restore.
        assert!(!l.went_back(41, Some(40)));
        assert_eq!(l.acked, Some(60));
        // Pages of ten from 41: taken before, acknowledged past.
        assert!(l.went_back(41, Some(60)));
        l.served(50);
        assert!((41..=50).all(|id| !l.take(id)), "taken before");
        assert_eq!(l.ackable(), Some(50), "within the page served");
        l.acked = Some(50);
        assert!(!l.went_back(51, Some(50)));
        l.served(60);
        assert_eq!(l.ackable(), Some(60));
        l.acked = Some(60);
        // The restored store's new notifications come after them.
        assert!(l.take(1 << 40));
    }

    #[test]
    fn progress_is_per_step_and_chat() {
        let mut p = Progress::default();
        p.mark(ChatId(1), Step::Document);
        assert!(p.is_done(ChatId(1), Step::Document));
        assert!(!p.is_done(ChatId(1), Step::Photo));
        assert!(!p.is_done(ChatId(2), Step::Document));
    }

    #[test]
    fn the_worst_outcome_wins() {
        assert_eq!(Outcome::Done.max(Outcome::Wait), Outcome::Wait);
        assert_eq!(Outcome::Retry.max(Outcome::Wait), Outcome::Retry);
    }
}
