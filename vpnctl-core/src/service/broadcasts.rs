//! Broadcasts: one admin text to many users. Creating one queues a notification per
//! recipient in one transaction (so each user is in it once), and the bot delivers
//! them like every notification: at least once, paced to Telegram's limits, and
//! not again after a restart. Cancelling drops what the bot has not read yet and
//! tells it to skip what it already holds.

use std::collections::BTreeSet;

use tracing::instrument;

use crate::access::Access;
use crate::api::broadcast::{Audience, Broadcast, MAX_BROADCAST};
use crate::error::{Error, Result};
use crate::lifecycle::{self, Consumer, Message};
use crate::model::{EventKind, User, UserId, UserState};
use crate::store::Txn;

use super::Vpnctl;
use super::tx::notify_user;

/// Broadcasts listed at most.
pub const BROADCASTS_LISTED: usize = 100;

/// The users `audience` names who can be told (a Telegram id, not disabled), in id
/// order.
fn recipients<M: crate::store::Mode>(
    rx: &Txn<'_, M>,
    audience: &Audience,
    now: crate::time::Timestamp,
) -> Result<Vec<User>> {
    let in_region = match audience {
        Audience::Region(code) => {
            let nodes: Vec<_> = rx
                .nodes()?
                .into_iter()
                .filter(|n| n.region.code.eq_ignore_ascii_case(code))
                .collect();
            if nodes.is_empty() {
                return Err(Error::invalid(
                    "region",
                    format!("no node has region code {code:?}"),
                ));
            }
            let mut users = BTreeSet::new();
            for node in &nodes {
                for peer in rx.node_peers(node.id)? {
                    users.insert(peer.user);
                }
            }
            Some(users)
        }
        _ => None,
    };
    let mut out = Vec::new();
    for user in rx.users()? {
        if user.telegram_id.is_none() || user.state == UserState::Disabled {
            continue;
        }
        let lapsed = matches!(Access::of(&user, now), Access::Lapsed { .. });
        let wanted = match audience {
            Audience::Active => !lapsed,
            Audience::Lapsed => lapsed,
            Audience::All => true,
            Audience::Region(_) => in_region
                .as_ref()
                .is_some_and(|set: &BTreeSet<UserId>| set.contains(&user.id)),
        };
        if wanted {
            out.push(user);
        }
    }
    Ok(out)
}

fn check_text(text: &str) -> Result<&str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::invalid("text", "must not be empty"));
    }
    if text.chars().count() > MAX_BROADCAST {
        return Err(Error::invalid(
            "text",
            format!("at most {MAX_BROADCAST} characters (one Telegram message)"),
        ));
    }
    Ok(text)
}

impl Vpnctl {
    /// How many users a broadcast to `audience` would reach now.
    pub fn broadcast_recipients(&self, audience: &Audience) -> Result<u32> {
        let now = self.now();
        let n = self.read(|rx| recipients(rx, audience, now))?.len();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Queues `text` for every user of `audience` who has Telegram.
    #[instrument(skip(self, text), fields(actor = %self.actor))]
    pub fn create_broadcast(&self, text: &str, audience: Audience) -> Result<Broadcast> {
        let text = check_text(text)?.to_owned();
        self.write(|tx| {
            let now = tx.now();
            let users = recipients(tx, &audience, now)?;
            if users.is_empty() {
                return Err(Error::invalid(
                    "audience",
                    format!("no user with Telegram is {audience}"),
                ));
            }
            let id = tx.next_id("next_broadcast")?;
            let mut first = None;
            let mut last = 0;
            for user in &users {
                // The text is kept once, in the broadcast's record, and put into
                // each message as the outbox is read: 100,000 recipients of a
                // 4 KB text would otherwise write 400 MB in this transaction.
                let message = Message::Broadcast {
                    broadcast: id,
                    text: String::new(),
                };
                notify_user(tx, user, message)?;
                let queued = tx.cursor("next_notification")?.saturating_sub(1);
                first.get_or_insert(queued);
                last = queued;
            }
            let b = Broadcast {
                id,
                text: text.clone(),
                audience: audience.clone(),
                created_at: now,
                total: u32::try_from(users.len()).unwrap_or(u32::MAX),
                first_notification: first.unwrap_or(0),
                last_notification: last,
                cancelled_at: None,
                handled: 0,
            };
            tx.put_broadcast(&b)?;
            tx.event(EventKind::BroadcastQueued {
                broadcast: id,
                recipients: b.total,
            })?;
            Ok(b)
        })
    }

    /// One broadcast, with how many of its messages the bot has handled.
    pub fn broadcast(&self, id: u64) -> Result<Broadcast> {
        self.read(|rx| {
            let mut b = rx.broadcast(id)?;
            b.handled = handled(&b, rx.cursor(lifecycle::cursor_key(Consumer::Bot))?);
            Ok(b)
        })
    }

    /// The newest broadcasts first.
    pub fn broadcasts(&self) -> Result<Vec<Broadcast>> {
        self.read(|rx| {
            let cursor = rx.cursor(lifecycle::cursor_key(Consumer::Bot))?;
            let mut all = rx.broadcasts(BROADCASTS_LISTED)?;
            for b in &mut all {
                b.handled = handled(b, cursor);
            }
            Ok(all)
        })
    }

    /// Stops a broadcast: what no consumer has read yet is dropped, and the bot skips
    /// what it holds. Cancelling again changes nothing.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn cancel_broadcast(&self, id: u64) -> Result<Broadcast> {
        self.write(|tx| {
            let mut b = tx.broadcast(id)?;
            if b.cancelled_at.is_none() {
                b.cancelled_at = Some(tx.now());
                tx.put_broadcast(&b)?;
                if b.total > 0 {
                    // What the bot has not read yet (a broadcast is the bot's to
                    // deliver; the webhook is told of it by the event).
                    let read = tx.cursor(lifecycle::cursor_key(Consumer::Bot))?;
                    tx.drop_notifications(b.first_notification.max(read + 1), b.last_notification)?;
                }
                tx.event(EventKind::BroadcastCancelled { broadcast: id })?;
            }
            b.handled = handled(&b, tx.cursor(lifecycle::cursor_key(Consumer::Bot))?);
            Ok(b)
        })
    }
}

/// How many of `b`'s notifications lie at or below the bot's cursor.
fn handled(b: &Broadcast, cursor: u64) -> u32 {
    if b.total == 0 || cursor < b.first_notification {
        return 0;
    }
    let upto = cursor.min(b.last_notification);
    u32::try_from(upto - b.first_notification + 1).unwrap_or(u32::MAX)
}
