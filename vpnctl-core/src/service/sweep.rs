//! The periodic sweep: expiry, reminders, quota period resets.

use tracing::instrument;

use crate::error::Result;
use crate::lifecycle::Message;
use crate::model::{EventKind, UserId, UserState};
use crate::time::{DAY, Timestamp};

use super::tx::{notify_user, notify_user_once, recheck_quota, sync_user_peers};
use super::{SweepOutcome, Vpnctl};

impl Vpnctl {
    /// Marks users whose access has ended as lapsed and takes their peers off the
    /// nodes. The control plane calls this every few seconds; returns who lapsed.
    pub fn expire_due(&self) -> Result<Vec<UserId>> {
        self.write(|tx| {
            let due = tx.users_due(tx.now())?;
            for id in &due {
                let old = tx.user(*id)?;
                let mut user = old.clone();
                user.lapsed = true;
                tx.put_user(Some(&old), &user)?;
                sync_user_peers(tx, &user)?;
                tx.event(EventKind::AccessExpired { user: *id })?;
                notify_user_once(
                    tx,
                    &user,
                    "ended",
                    old.until.map_or(0, Timestamp::seconds),
                    Message::AccessEnded {
                        until: old.until.unwrap_or(tx.now()),
                    },
                )?;
            }
            Ok(due)
        })
    }

    /// Expires access that ended, reminds users whose access ends soon, and lifts
    /// quota suspensions whose period is over. Every notice is queued once.
    #[instrument(skip(self))]
    pub fn sweep(&self) -> Result<SweepOutcome> {
        let reminders = self.policy().reminders.clone();
        let now = self.now();
        // Most sweeps find nothing: look first, so an idle system does not write.
        let (expire, remind, restore) = self.read(|rx| rx.sweep_work(now, &reminders))?;
        let mut out = SweepOutcome::default();
        if expire {
            out.expired = self.expire_due()?;
        }
        if !remind && !restore {
            return Ok(out);
        }
        let (reminded, restored) = self.write(|tx| {
            let mut reminded = Vec::new();
            let horizon = tx.now().plus_days(i64::from(reminders.max()));
            for (id, until) in tx.users_ending(tx.now(), horizon)? {
                let Some(days) = reminders.due(until, tx.now()) else {
                    continue;
                };
                if tx.was_sent(id, &format!("remind-{days}"), until.seconds())? {
                    continue;
                }
                // A later window covers the earlier ones: one message, all marked.
                // Users nobody can tell are marked too, so no sweep looks at them again.
                for &d in reminders.0.iter().filter(|&&d| d >= days) {
                    tx.mark_sent(id, &format!("remind-{d}"), until.seconds())?;
                }
                let user = tx.user(id)?;
                // A user suspended for quota still wants to know their access ends.
                if user.state != UserState::Active || user.lapsed {
                    continue;
                }
                let left = until.seconds() - tx.now().seconds();
                let days_left = u32::try_from((left + DAY - 1) / DAY).unwrap_or(u32::MAX);
                if notify_user(tx, &user, Message::AccessEndsSoon { until, days_left })? {
                    reminded.push(id);
                }
            }
            let mut restored = Vec::new();
            for id in tx.suspensions_over(tx.now())? {
                let old = tx.user(id)?;
                let mut user = old.clone();
                recheck_quota(tx, &mut user)?;
                if user.suspended {
                    continue;
                }
                tx.put_user(Some(&old), &user)?;
                sync_user_peers(tx, &user)?;
                tx.event(EventKind::QuotaRestored { user: id })?;
                notify_user(tx, &user, Message::QuotaRestored)?;
                restored.push(id);
            }
            Ok((reminded, restored))
        })?;
        out.reminded = reminded;
        out.restored = restored;
        Ok(out)
    }
}
