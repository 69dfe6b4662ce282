//! What keeps the service running by itself: node health with hysteresis, traffic
//! accounting that survives counter resets, quotas per period, and the outbox of
//! notifications (user reminders, admin alerts) that frontends deliver.
//!
//! Everything here is pure: the store and the service call it with the clock's
//! `now`, so tests drive it with a [`crate::ManualClock`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Locale, NodeId, PeerId, UserId};
use crate::time::{DAY, Timestamp};

// ------------------------------------------------------------------ health

/// A node's health as the control plane judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Never reported.
    #[default]
    Unknown,
    Up,
    /// Serving, but something needs a look (late reports, errors, lag, slow probe).
    Degraded,
    /// Not serving, or not heard from.
    Down,
}

impl Health {
    pub const ALL: [Self; 4] = [Self::Unknown, Self::Up, Self::Degraded, Self::Down];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// One active probe of a node's public endpoint by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub at: Timestamp,
    /// Round trip in milliseconds; `None` when the probe failed.
    pub rtt_ms: Option<u32>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Cumulative bytes, as the control plane accounts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// Bytes from clients to the node.
    pub rx: u64,
    /// Bytes from the node to clients.
    pub tx: u64,
}

impl Traffic {
    pub fn total(self) -> u64 {
        self.rx.saturating_add(self.tx)
    }

    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            rx: self.rx.saturating_add(other.rx),
            tx: self.tx.saturating_add(other.tx),
        }
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
        (Health::Degraded, findings.join("; "))
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

/// How often a quota resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Daily,
    Weekly,
    /// Calendar months, UTC.
    Monthly,
}

impl QuotaPeriod {
    /// The start of the period containing `t` and the start of the next one (UTC).
    pub fn bounds(self, t: Timestamp) -> (Timestamp, Timestamp) {
        let day = t.seconds().div_euclid(DAY);
        match self {
            Self::Daily => (Timestamp(day * DAY), Timestamp((day + 1) * DAY)),
            Self::Weekly => {
                // 1970-01-01 was a Thursday; weeks start on Monday.
                let monday = day - (day + 3).rem_euclid(7);
                (Timestamp(monday * DAY), Timestamp((monday + 7) * DAY))
            }
            Self::Monthly => {
                let (y, m, _) = civil_from_days(day);
                let start = days_from_civil(y, m, 1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let next = days_from_civil(ny, nm, 1);
                (Timestamp(start * DAY), Timestamp(next * DAY))
            }
        }
    }
}

impl std::str::FromStr for QuotaPeriod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "daily" | "day" => Ok(Self::Daily),
            "weekly" | "week" => Ok(Self::Weekly),
            "monthly" | "month" => Ok(Self::Monthly),
            _ => Err(Error::invalid(
                "quota period",
                format!("{s:?}: use daily, weekly or monthly"),
            )),
        }
    }
}

impl fmt::Display for QuotaPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        })
    }
}

/// A traffic allowance (both directions together) per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub bytes: u64,
    pub period: QuotaPeriod,
}

/// Share of the quota at which the user is warned.
pub const QUOTA_WARN_PERCENT: u64 = 80;

/// A user's accounted traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Everything, ever.
    pub total: Traffic,
    /// Bytes (both directions) in the current quota period.
    pub period_bytes: u64,
    /// Start of the period `period_bytes` counts.
    pub period_start: Timestamp,
}

// Howard Hinnant's civil-calendar algorithms (public domain), for month bounds
// without pulling a calendar into the hot path.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

// ------------------------------------------------------------------ outbox

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Recipient {
    /// A user, in their language.
    User {
        user: UserId,
        telegram_id: i64,
        locale: Locale,
    },
    /// The admins' alert chat(s) and webhook.
    Admins,
}

/// What to tell. Frontends word it; the control plane only decides that and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Message {
    /// Access ends in `days_left` days (rounded up).
    AccessEndsSoon {
        until: Timestamp,
        days_left: u32,
    },
    AccessEnded {
        until: Timestamp,
    },
    QuotaWarning {
        used: u64,
        limit: u64,
        resets_at: Timestamp,
    },
    /// Access is suspended until `resets_at`.
    QuotaExceeded {
        used: u64,
        limit: u64,
        resets_at: Timestamp,
    },
    QuotaRestored,
    /// A device was re-issued on another node; the frontend sends its new config.
    DeviceMoved {
        device: String,
        new_peer: PeerId,
        from_node: String,
        to_node: String,
        to_region: String,
    },
    NodeHealth {
        node: NodeId,
        name: String,
        from: Health,
        to: Health,
        reason: String,
    },
    NodeDrift {
        node: NodeId,
        name: String,
        removed: u32,
    },
    NodeEvacuated {
        node: NodeId,
        name: String,
        moved: u32,
        failed: u32,
    },
}

/// One entry of the outbox. Delivery is at least once: a consumer reads after its
/// cursor and acknowledges what it handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: u64,
    pub at: Timestamp,
    pub recipient: Recipient,
    #[serde(flatten)]
    pub message: Message,
}

/// The outbox consumers; each keeps its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consumer {
    Bot,
    Webhook,
}

impl Consumer {
    pub fn cursor_key(self) -> &'static str {
        match self {
            Self::Bot => "outbox_cursor_bot",
            Self::Webhook => "outbox_cursor_webhook",
        }
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
    fn period_bounds() {
        // 2026-11-25T13:00:00Z, a Wednesday.
        let t = Timestamp(1_795_611_600);
        let (s, e) = QuotaPeriod::Monthly.bounds(t);
        assert_eq!(s.to_rfc3339(), "2026-11-01T00:00:00Z");
        assert_eq!(e.to_rfc3339(), "2026-12-01T00:00:00Z");
        let (s, e) = QuotaPeriod::Monthly.bounds(Timestamp(1_797_292_800));
        assert_eq!(s.to_rfc3339(), "2026-12-01T00:00:00Z");
        assert_eq!(e.to_rfc3339(), "2027-01-01T00:00:00Z");
        let (s, e) = QuotaPeriod::Weekly.bounds(t);
        assert_eq!(s.to_rfc3339(), "2026-11-23T00:00:00Z");
        assert_eq!(e.to_rfc3339(), "2026-11-30T00:00:00Z");
        let (s, e) = QuotaPeriod::Daily.bounds(t);
        assert_eq!(s.to_rfc3339(), "2026-11-25T00:00:00Z");
        assert_eq!(e.seconds() - s.seconds(), DAY);
        // Leap February.
        let (s, e) = QuotaPeriod::Monthly.bounds(Timestamp(1_709_251_199)); // 2024-02-29T23:59:59Z
        assert_eq!(s.to_rfc3339(), "2024-02-01T00:00:00Z");
        assert_eq!(e.to_rfc3339(), "2024-03-01T00:00:00Z");
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
