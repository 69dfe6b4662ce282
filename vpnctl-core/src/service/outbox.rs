//! The outbox: notifications for frontends, acknowledged per consumer.

use crate::error::{Error, Result};
use crate::lifecycle::{self, Consumer, Message, Notification, Recipient};

use super::Vpnctl;

impl Vpnctl {
    /// Notifications `consumer` has not acknowledged yet, oldest first.
    pub fn notifications(&self, consumer: Consumer, limit: usize) -> Result<Vec<Notification>> {
        self.read(|rx| {
            let after = rx.cursor(lifecycle::cursor_key(consumer))?;
            let mut out = rx.notifications_after(after, limit.clamp(1, 1000))?;
            // A broadcast's text is stored once, in its record, not per recipient.
            let mut text: Option<(u64, String)> = None;
            for n in &mut out {
                if let Message::Broadcast {
                    broadcast,
                    text: slot,
                } = &mut n.message
                    && slot.is_empty()
                {
                    if text.as_ref().is_none_or(|(id, _)| id != broadcast) {
                        let found = match rx.broadcast(*broadcast) {
                            Ok(b) => b.text,
                            // Broadcast records are never deleted; were one gone, its
                            // message would stay empty rather than stop the outbox.
                            Err(Error::NotFound { .. }) => String::new(),
                            Err(e) => return Err(e),
                        };
                        text = Some((*broadcast, found));
                    }
                    if let Some((_, t)) = &text {
                        slot.clone_from(t);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Marks everything up to `upto` as handled by `consumer`; returns its cursor.
    /// An `upto` beyond the newest notification is refused: it would silently swallow
    /// notifications that do not exist yet.
    pub fn ack_notifications(&self, consumer: Consumer, upto: u64) -> Result<u64> {
        self.write(|tx| {
            let newest = tx.cursor("next_notification")?.saturating_sub(1);
            if upto > newest {
                return Err(Error::invalid(
                    "upto",
                    format!("{upto} is beyond the newest notification ({newest})"),
                ));
            }
            tx.advance_cursor(
                lifecycle::cursor_key(consumer),
                upto,
                &[
                    lifecycle::cursor_key(Consumer::Bot),
                    lifecycle::cursor_key(Consumer::Webhook),
                ],
            )
        })
    }

    /// Tells the admins' chats that the scheduled backup `file` (`bytes` long) was
    /// written; the bot fetches and sends it. Returns the notification's id.
    pub fn announce_backup(&self, file: &str, bytes: u64) -> Result<u64> {
        self.write(|tx| {
            tx.notify(
                Recipient::Admins,
                Message::BackupTaken {
                    file: file.to_owned(),
                    bytes,
                },
            )
        })
    }
}
