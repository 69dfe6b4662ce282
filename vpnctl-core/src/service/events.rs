//! The event log.

use crate::error::Result;
use crate::model::{Event, EventKind, NodeId, Severity, validate_display_name};

use super::Vpnctl;

impl Vpnctl {
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(|rx| rx.events_after(after, limit))
    }

    /// The sequence number of the newest event ever committed (0 before the first),
    /// whether or not retention has pruned it since.
    pub fn last_event_seq(&self) -> Result<u64> {
        self.read(|rx| rx.cursor("next_event"))
            .map(|next| next.saturating_sub(1))
    }

    /// The event log's identity: random, made anew when the store is restored from
    /// a backup. A follower that saw another identity followed a store that is
    /// gone: its numbers name other events here.
    pub fn event_log_id(&self) -> Result<u64> {
        self.read(|rx| rx.cursor(crate::store::LOG_ID))
    }

    /// The newest `limit` events, oldest first.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<Event>> {
        self.events_before(u64::MAX, limit)
    }

    /// The newest `limit` events before sequence number `before`, oldest first: the
    /// page before one already shown, for a log read from its end.
    pub fn events_before(&self, before: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(|rx| rx.events_before(before, limit))
    }

    /// Applies the retention of the event log ([`super::Policy::events_keep_days`],
    /// [`super::Policy::events_keep_max`]): deletes the oldest events in
    /// transactions of at most 10,000, so writers wait at most one batch. Returns how
    /// many went. The control plane runs it hourly.
    pub fn prune_events(&self) -> Result<u64> {
        const BATCH: usize = 10_000;
        let policy = self.policy();
        let before = (policy.events_keep_days > 0)
            .then(|| self.now().plus_days(-i64::from(policy.events_keep_days)));
        let keep_max = policy.events_keep_max;
        let mut total = 0u64;
        loop {
            let gone = self.write(|tx| tx.prune_events(before, keep_max, BATCH))?;
            total += u64::try_from(gone).unwrap_or(u64::MAX);
            if gone < BATCH {
                return Ok(total);
            }
        }
    }

    /// Appends a notice (health, alerts) to the event log.
    pub fn notice(&self, severity: Severity, node: Option<NodeId>, message: &str) -> Result<()> {
        let message = validate_display_name("message", message, 500)?;
        self.write(|tx| {
            tx.event(EventKind::Notice {
                severity,
                node,
                message: message.clone(),
            })
        })
    }
}
