//! What the control plane tells about the service running itself: node health,
//! probes, traffic totals, quotas and their periods, and the outbox of notifications
//! (user reminders, admin alerts) that frontends deliver.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::transport::TransportKind;

use crate::error::InvalidInput;
use crate::model::{Locale, NodeId, PeerId, UserId};
use crate::time::{DAY, Timestamp};

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
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, InvalidInput> {
        match s {
            "daily" | "day" => Ok(Self::Daily),
            "weekly" | "week" => Ok(Self::Weekly),
            "monthly" | "month" => Ok(Self::Monthly),
            _ => Err(InvalidInput::new(
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
    /// The node's transport or its AmneziaWG parameters changed: the device's old
    /// config no longer connects. The frontend sends the new one (same keys).
    ConfigChanged {
        device: String,
        peer: PeerId,
        node: String,
        region: String,
        transport: TransportKind,
    },
    /// Admins: a node's transport (or its parameters) changed; `devices` clients
    /// need new configs, and users with Telegram are sent theirs.
    NodeTransportChanged {
        node: NodeId,
        name: String,
        transport: TransportKind,
        devices: u32,
    },
    /// Admins: a scheduled backup was written and may be sent to their chat; the
    /// (encrypted) file is `GET /v1/backups/{file}`.
    BackupTaken {
        file: String,
        bytes: u64,
    },
    /// A payment was applied: to the user a receipt, to the admins a short notice.
    PaymentReceived {
        payment: crate::model::PaymentId,
        user: UserId,
        user_name: String,
        plan: crate::billing::PlanName,
        stars: u32,
        days: u32,
        until: Option<Timestamp>,
    },
    /// Admins asked for a refund: the bot returns the Stars with Telegram
    /// (`refundStarPayment`) and reports the result
    /// (`POST /v1/payments/{id}/refund-result`).
    RefundRequested {
        payment: crate::model::PaymentId,
        telegram_id: i64,
        telegram_charge_id: String,
        stars: u32,
    },
    /// The Stars went back and access was shortened to `until`.
    PaymentRefunded {
        payment: crate::model::PaymentId,
        user: UserId,
        user_name: String,
        stars: u32,
        until: Option<Timestamp>,
    },
    /// Admins: Telegram refused a refund.
    RefundFailed {
        payment: crate::model::PaymentId,
        reason: String,
    },
    /// An admin's text to many users, as written; skipped once the broadcast is
    /// cancelled.
    Broadcast {
        broadcast: u64,
        text: String,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
