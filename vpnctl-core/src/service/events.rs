//! The event log.

use crate::error::Result;
use crate::model::{Event, EventKind, NodeId, Severity, validate_display_name};

use super::Vpnctl;

impl Vpnctl {
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(|rx| rx.events_after(after, limit))
    }

    pub fn recent_events(&self, limit: usize) -> Result<Vec<Event>> {
        self.read(|rx| rx.recent_events(limit))
    }

    /// Appends a notice (health, alerts) to the event log.
    pub fn notice(&self, severity: Severity, node: Option<NodeId>, message: &str) -> Result<()> {
        let message = validate_display_name("message", message, 500)?;
        self.write(|tx| {
            tx.event(EventKind::Notice {
                severity,
                node,
                message,
            })
        })
    }
}
