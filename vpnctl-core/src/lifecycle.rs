//! What keeps the service running by itself: node health with hysteresis, traffic
//! accounting that survives counter resets, quotas per period, and the outbox of
//! notifications (user reminders, admin alerts) that frontends deliver.
//!
//! Everything here is pure: the store and the service call it with the clock's
//! `now`, so tests drive it with a [`crate::ManualClock`].

use serde::{Deserialize, Serialize};

pub use vpnctl_api::lifecycle::{
    Consumer, Health, Message, Notification, Probe, Quota, QuotaPeriod, Recipient, Traffic, Usage,
};

use crate::error::{Error, Result};
use crate::model::NodeId;
use crate::time::{DAY, Timestamp};

// ------------------------------------------------------------------ health

/// Thresholds for [`assess`] and the hysteresis of [`NodeStatus::observe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthPolicy {
    /// A report older than this makes the node degraded.
    pub report_late_secs: i64,
    /// A report older than this makes the node down.
    pub report_down_secs: i64,
    /// Applied revision behind the desired one for longer than this: degraded.
    pub lag_secs: i64,
    /// Probe round trips above this: degraded.
    pub probe_slow_ms: u32,
    /// This many failed probes in a row: down (fewer: degraded).
    pub probe_failures_down: u32,
    /// Consecutive observations needed to enter a worse state.
    pub worse_after: u32,
    /// Consecutive observations needed to enter a better state.
    pub better_after: u32,
    /// At most one drift alert per node in this many seconds.
    pub drift_alert_every_secs: i64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            report_late_secs: 45,
            report_down_secs: 90,
            lag_secs: 60,
            probe_slow_ms: 1000,
            probe_failures_down: 3,
            worse_after: 2,
            better_after: 3,
            drift_alert_every_secs: 600,
        }
    }
}

impl HealthPolicy {
    pub fn validate(&self) -> Result<()> {
        if self.report_late_secs <= 0 || self.report_down_secs < self.report_late_secs {
            return Err(Error::invalid(
                "health",
                "need 0 < report_late_secs <= report_down_secs",
            ));
        }
        if self.worse_after == 0 || self.better_after == 0 || self.probe_failures_down == 0 {
            return Err(Error::invalid(
                "health",
                "worse_after, better_after and probe_failures_down must be at least 1",
            ));
        }
        Ok(())
    }
}

/// What the control plane knows of a node between its reports; persisted, so health
/// and totals survive a control plane restart.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    pub health: Health,
    /// When `health` last changed.
    pub since: Option<Timestamp>,
    /// Why the node is in `health`, e.g. `no report for 95 s`.
    pub reason: String,
    /// A different state seen in consecutive observations, not yet confirmed.
    pub pending: Option<(Health, u32)>,
    pub last_report_at: Option<Timestamp>,
    pub applied_revision: u64,
    /// Since when the applied revision trails the desired one.
    pub behind_since: Option<Timestamp>,
    pub interface_up: bool,
    pub errors: Vec<String>,
    pub peers_connected: u32,
    pub probe: Option<Probe>,
    pub probe_failures: u32,
    pub traffic: Traffic,
    pub last_drift_alert: Option<Timestamp>,
    /// The node's own time of the newest report taken into account (older ones
    /// arriving late are not accounted again).
    pub report_sent_at: Option<Timestamp>,
    /// The daemon's health/metrics port from its latest report: what the control
    /// plane probes at the node's endpoint host.
    pub health_port: Option<u16>,
}

/// A confirmed change of a node's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthChange {
    pub node: NodeId,
    pub from: Health,
    pub to: Health,
    pub reason: String,
}

/// Judges a node from what is known now, without hysteresis: the worst finding wins.
pub fn assess(
    status: &NodeStatus,
    desired_revision: u64,
    now: Timestamp,
    policy: &HealthPolicy,
) -> (Health, String) {
    let Some(last) = status.last_report_at else {
        if status.probe_failures >= policy.probe_failures_down {
            return (Health::Down, "never reported, endpoint unreachable".into());
        }
        return (Health::Unknown, "never reported".into());
    };
    let age = now.seconds().saturating_sub(last.seconds());
    if age > policy.report_down_secs {
        return (Health::Down, format!("no report for {age} s"));
    }
    if status.probe_failures >= policy.probe_failures_down {
        let why = status
            .probe
            .as_ref()
            .and_then(|p| p.error.clone())
            .unwrap_or_else(|| "no answer".into());
        return (
            Health::Down,
            format!(
                "endpoint unreachable ({} probes failed: {why})",
                status.probe_failures
            ),
        );
    }
    if !status.interface_up {
        return (Health::Down, "WireGuard interface is down".into());
    }
    let mut findings = Vec::new();
    if age > policy.report_late_secs {
        findings.push(format!("last report {age} s ago"));
    }
    if let Some(first) = status.errors.first() {
        findings.push(format!(
            "{} reconcile error(s): {first}",
            status.errors.len()
        ));
    }
    if status.applied_revision < desired_revision
        && let Some(behind) = status.behind_since
    {
        let lag = now.seconds().saturating_sub(behind.seconds());
        if lag > policy.lag_secs {
            findings.push(format!(
                "applied revision {} trails {desired_revision} for {lag} s",
                status.applied_revision
            ));
        }
    }
    if status.probe_failures > 0 {
        findings.push(format!("{} probe(s) failed", status.probe_failures));
    } else if let Some(rtt) = status.probe.as_ref().and_then(|p| p.rtt_ms)
        && rtt > policy.probe_slow_ms
    {
        findings.push(format!("probe round trip {rtt} ms"));
    }
    if findings.is_empty() {
        (Health::Up, "ok".into())
    } else {
        // A reason goes into the event log and alerts: never longer than this.
        let reason = findings.join("; ");
        (
            Health::Degraded,
            vpnctl_api::text::clean_line(&reason, crate::report::MAX_REASON_CHARS),
        )
    }
}

impl NodeStatus {
    /// Feeds one observation through the hysteresis: a new state is taken only after
    /// it was seen `worse_after` (or `better_after`) times in a row. The first real
    /// observation of a node that was `Unknown` is taken at once.
    pub fn observe(
        &mut self,
        node: NodeId,
        seen: Health,
        reason: String,
        now: Timestamp,
        policy: &HealthPolicy,
    ) -> Option<HealthChange> {
        if seen == self.health {
            self.pending = None;
            self.reason = reason;
            return None;
        }
        // Consecutive observations on the same side (worse or better) count
        // together: Degraded, Down, Degraded from Up is three bad readings in a row.
        let worse = rank(seen) > rank(self.health);
        let count = match self.pending {
            Some((h, n)) if (rank(h) > rank(self.health)) == worse => n + 1,
            _ => 1,
        };
        let needed = if self.health == Health::Unknown {
            1
        } else if worse {
            policy.worse_after
        } else {
            policy.better_after
        };
        if count < needed {
            self.pending = Some((seen, count));
            return None;
        }
        let change = HealthChange {
            node,
            from: self.health,
            to: seen,
            reason: reason.clone(),
        };
        self.health = seen;
        self.since = Some(now);
        self.reason = reason;
        self.pending = None;
        Some(change)
    }
}

fn rank(h: Health) -> u8 {
    match h {
        Health::Up => 0,
        Health::Unknown => 1,
        Health::Degraded => 2,
        Health::Down => 3,
    }
}

/// Whether a change is worth telling the admins: anything that gets worse, and the
/// recovery from a state that was alerted. A node's first report is not news.
pub fn is_alert(change: &HealthChange) -> bool {
    !matches!(
        (change.from, change.to),
        (Health::Unknown, Health::Up) | (Health::Degraded | Health::Down, Health::Unknown)
    )
}

// ------------------------------------------------------------------ traffic

/// Bytes added since the last reading of a WireGuard counter. A smaller reading
/// means the counter restarted (interface re-created, node rebooted, key rotated):
/// everything it shows now is new.
pub fn counter_delta(last: u64, now: u64) -> u64 {
    if now >= last { now - last } else { now }
}

/// Share of the quota at which the user is warned.
pub const QUOTA_WARN_PERCENT: u64 = 80;

// ------------------------------------------------------------------ outbox

/// Where a consumer's outbox cursor is kept.
pub(crate) fn cursor_key(consumer: Consumer) -> &'static str {
    match consumer {
        Consumer::Bot => "outbox_cursor_bot",
        Consumer::Webhook => "outbox_cursor_webhook",
    }
}

/// The reminders sent before access ends, in days (default 3 and 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReminderDays(pub Vec<u32>);

impl Default for ReminderDays {
    fn default() -> Self {
        Self(vec![3, 1])
    }
}

impl ReminderDays {
    /// The reminder due for an end at `until`, seen at `now`: the smallest window
    /// that contains it (so a user with 12 h left gets the 1-day one, not both).
    pub fn due(&self, until: Timestamp, now: Timestamp) -> Option<u32> {
        let left = until.seconds() - now.seconds();
        if left <= 0 {
            return None;
        }
        self.0
            .iter()
            .copied()
            .filter(|&d| left <= i64::from(d) * DAY)
            .min()
    }

    pub fn max(&self) -> u32 {
        self.0.iter().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(report_age: i64, now: Timestamp) -> NodeStatus {
        NodeStatus {
            last_report_at: Some(now.plus_seconds(-report_age)),
            interface_up: true,
            ..NodeStatus::default()
        }
    }

    #[test]
    fn assessment_follows_report_age_errors_lag_and_probes() {
        let p = HealthPolicy::default();
        let now = Timestamp(1_000_000);
        assert_eq!(assess(&status(5, now), 0, now, &p).0, Health::Up);
        assert_eq!(assess(&status(60, now), 0, now, &p).0, Health::Degraded);
        assert_eq!(assess(&status(91, now), 0, now, &p).0, Health::Down);
        let mut s = status(5, now);
        s.errors.push("boom".into());
        assert_eq!(assess(&s, 0, now, &p).0, Health::Degraded);
        let mut s = status(5, now);
        s.applied_revision = 3;
        s.behind_since = Some(now.plus_seconds(-30));
        assert_eq!(assess(&s, 4, now, &p).0, Health::Up, "short lag is fine");
        s.behind_since = Some(now.plus_seconds(-61));
        assert_eq!(assess(&s, 4, now, &p).0, Health::Degraded);
        let mut s = status(5, now);
        s.probe_failures = 1;
        assert_eq!(assess(&s, 0, now, &p).0, Health::Degraded);
        s.probe_failures = 3;
        assert_eq!(assess(&s, 0, now, &p).0, Health::Down);
        let mut s = status(5, now);
        s.interface_up = false;
        assert_eq!(assess(&s, 0, now, &p).0, Health::Down);
        assert_eq!(
            assess(&NodeStatus::default(), 0, now, &p).0,
            Health::Unknown
        );
    }

    #[test]
    fn hysteresis_needs_consecutive_observations() {
        let p = HealthPolicy::default();
        let (n, t) = (NodeId(1), Timestamp(0));
        let mut s = NodeStatus::default();
        // First observation is taken at once.
        let c = s.observe(n, Health::Up, "ok".into(), t, &p).unwrap();
        assert_eq!((c.from, c.to), (Health::Unknown, Health::Up));
        assert!(!is_alert(&c));
        // One bad reading between good ones changes nothing (no flapping).
        assert!(s.observe(n, Health::Down, "x".into(), t, &p).is_none());
        assert!(s.observe(n, Health::Up, "ok".into(), t, &p).is_none());
        assert!(s.observe(n, Health::Down, "x".into(), t, &p).is_none());
        let c = s.observe(n, Health::Down, "x".into(), t, &p).unwrap();
        assert!(is_alert(&c));
        assert_eq!(s.health, Health::Down);
        // Recovery needs three in a row.
        assert!(s.observe(n, Health::Up, "ok".into(), t, &p).is_none());
        assert!(s.observe(n, Health::Up, "ok".into(), t, &p).is_none());
        let c = s.observe(n, Health::Up, "ok".into(), t, &p).unwrap();
        assert_eq!((c.from, c.to), (Health::Down, Health::Up));
        assert!(is_alert(&c));
    }

    #[test]
    fn counters_that_restart_count_from_zero() {
        assert_eq!(counter_delta(100, 150), 50);
        assert_eq!(counter_delta(100, 30), 30);
        assert_eq!(counter_delta(0, 0), 0);
    }

    #[test]
    fn reminder_windows() {
        let r = ReminderDays::default();
        let now = Timestamp(0);
        assert_eq!(r.due(Timestamp(4 * DAY), now), None);
        assert_eq!(r.due(Timestamp(3 * DAY), now), Some(3));
        assert_eq!(r.due(Timestamp(2 * DAY), now), Some(3));
        assert_eq!(r.due(Timestamp(DAY / 2), now), Some(1));
        assert_eq!(r.due(Timestamp(0), now), None);
    }
}
