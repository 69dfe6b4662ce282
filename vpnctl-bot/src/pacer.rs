//! Telegram's message limits, kept on the bot's side: about 30 messages a second in
//! all, one a second per chat (20 a minute in groups).
//!
//! Every message gets a *slot*: a moment at least `1 s / overall` after the previous
//! slot in time, and at least the chat gap after the chat's last one. Slots are
//! handed out smoothly, not in bursts, and a message for a chat that must wait does
//! not hold up messages for other chats: it takes a later slot and leaves the earlier
//! ones free. A small margin below each limit absorbs the jitter between the moment
//! a request leaves and the moment Telegram counts it.
//!
//! Two classes: replies to what a user just did take the first free slot; bulk
//! messages (notifications) take a slot only within [`BULK_HORIZON`] of when they
//! could go, so that a mass notice never queues replies behind it for more than
//! that. A `retry_after` from Telegram freezes every slot until it has passed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use teloxide::types::ChatId;
use tokio::time::Instant;

/// How far ahead of its earliest moment a bulk message may book a slot.
pub const BULK_HORIZON: Duration = Duration::from_millis(500);

/// The share of each window kept free for jitter: limits are applied over
/// `window × (1 + MARGIN)`.
const MARGIN: f64 = 0.05;

/// Chats whose next allowed moment is remembered before old ones are forgotten.
const CHATS_KEPT: usize = 10_000;

/// Who is waiting for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A reply to something a user just did.
    Reply,
    /// A notification: may wait behind replies.
    Bulk,
}

/// Telegram's limits, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_sec_overall: u32,
    pub per_sec_chat: u32,
    /// Per minute in group chats (negative chat ids).
    pub per_min_group: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_sec_overall: 30,
            per_sec_chat: 1,
            per_min_group: 20,
        }
    }
}

/// Hands out send slots within [`Limits`]; shared by everything that sends.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    chat_gap: Duration,
    group_gap: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    epoch: Instant,
    /// Slots booked from now on, as multiples of `interval` since `epoch`.
    booked: BTreeSet<u64>,
    /// The earliest moment each chat may get its next message.
    chats: HashMap<i64, Instant>,
    /// Telegram asked to wait until then.
    frozen_until: Instant,
}

impl Pacer {
    pub fn new(limits: Limits) -> Self {
        let with_margin = |window: Duration, n: u32| window.mul_f64(1.0 + MARGIN) / n.max(1);
        let now = Instant::now();
        Self {
            interval: with_margin(Duration::from_secs(1), limits.per_sec_overall),
            chat_gap: with_margin(Duration::from_secs(1), limits.per_sec_chat),
            group_gap: with_margin(Duration::from_secs(1), limits.per_sec_chat)
                .max(with_margin(Duration::from_secs(60), limits.per_min_group)),
            state: Mutex::new(State {
                epoch: now,
                booked: BTreeSet::new(),
                chats: HashMap::new(),
                frozen_until: now,
            }),
        }
    }

    /// Waits until a message to `chat` may go, and books that moment.
    pub async fn acquire(&self, chat: ChatId, class: Class) {
        loop {
            match self.book(chat, class, Instant::now()) {
                Ok(at) => {
                    tokio::time::sleep_until(at).await;
                    // A freeze that came meanwhile moves the message behind it.
                    if self.frozen_until() <= at {
                        return;
                    }
                }
                Err(retry_at) => tokio::time::sleep_until(retry_at).await,
            }
        }
    }

    /// Telegram said `retry_after`: nothing goes before it has passed.
    pub fn freeze(&self, wait: Duration) {
        let mut s = self.lock();
        let until = Instant::now() + wait;
        if until > s.frozen_until {
            s.frozen_until = until;
        }
    }

    fn frozen_until(&self) -> Instant {
        self.lock().frozen_until
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Books the first free slot for `chat` at or after its earliest moment; for a
    /// bulk message only within the horizon, else `Err(when to ask again)`.
    fn book(&self, chat: ChatId, class: Class, now: Instant) -> Result<Instant, Instant> {
        let mut s = self.lock();
        let gap = if chat.0 < 0 {
            self.group_gap
        } else {
            self.chat_gap
        };
        let mut earliest = now.max(s.frozen_until);
        if let Some(next) = s.chats.get(&chat.0) {
            earliest = earliest.max(*next);
        }
        let slot_of = |at: Instant, epoch: Instant| {
            let nanos = at.saturating_duration_since(epoch).as_nanos();
            let step = self.interval.as_nanos().max(1);
            u64::try_from(nanos.div_ceil(step)).unwrap_or(u64::MAX)
        };
        // Forget slots in the past.
        let current = slot_of(now, s.epoch).saturating_sub(1);
        s.booked = s.booked.split_off(&current);
        let mut slot = slot_of(earliest, s.epoch);
        while s.booked.contains(&slot) {
            slot += 1;
        }
        let step = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        let at = s.epoch + Duration::from_nanos(step.saturating_mul(slot));
        if class == Class::Bulk && at > earliest + BULK_HORIZON {
            return Err(at - BULK_HORIZON);
        }
        s.booked.insert(slot);
        if s.chats.len() >= CHATS_KEPT {
            s.chats.retain(|_, next| *next > now);
        }
        s.chats.insert(chat.0, at + gap);
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer() -> Pacer {
        Pacer::new(Limits::default())
    }

    #[tokio::test(start_paused = true)]
    async fn overall_rate_is_smooth_and_under_the_limit() {
        let p = pacer();
        let start = Instant::now();
        let mut times = Vec::new();
        for chat in 1..=91 {
            times.push(p.book(ChatId(chat), Class::Reply, start).unwrap());
        }
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(34), "{pair:?}");
        }
        // In any one second at most 30 (here: fewer, the margin).
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(in_window <= 30, "{in_window} in the second from {i}");
        }
        // 90 intervals: a little over 3 s, the price of the margin.
        let span = times[90] - times[0];
        assert!(
            span >= Duration::from_secs(3) && span < Duration::from_millis(3200),
            "{span:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_chat_leaves_earlier_slots_to_others() {
        let p = pacer();
        let now = Instant::now();
        let first = p.book(ChatId(1), Class::Reply, now).unwrap();
        let second = p.book(ChatId(1), Class::Reply, now).unwrap();
        assert!(
            second - first >= Duration::from_secs(1),
            "one a second per chat"
        );
        let other = p.book(ChatId(2), Class::Reply, now).unwrap();
        assert!(
            other < second,
            "another chat goes before chat 1's second message"
        );
        let group_first = p.book(ChatId(-5), Class::Reply, now).unwrap();
        let group_second = p.book(ChatId(-5), Class::Reply, now).unwrap();
        assert!(
            group_second - group_first >= Duration::from_secs(3),
            "20 a minute in groups"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_books_only_near_its_moment_so_replies_are_not_queued_behind() {
        let p = pacer();
        let now = Instant::now();
        let mut bulk = 0;
        for chat in 1..=1000 {
            if p.book(ChatId(chat), Class::Bulk, now).is_ok() {
                bulk += 1;
            }
        }
        assert!(bulk <= 16, "only half a second of bulk booked: {bulk}");
        let reply = p.book(ChatId(5000), Class::Reply, now).unwrap();
        assert!(
            reply - now <= BULK_HORIZON + Duration::from_millis(40),
            "{:?}",
            reply - now
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_freezes_every_slot() {
        let p = pacer();
        p.freeze(Duration::from_secs(3));
        let now = Instant::now();
        let at = p.book(ChatId(1), Class::Reply, now).unwrap();
        assert!(at - now >= Duration::from_secs(3));
        let started = Instant::now();
        p.acquire(ChatId(2), Class::Bulk).await;
        assert!(Instant::now() - started >= Duration::from_secs(3));
    }
}
