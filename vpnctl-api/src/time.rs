//! Time as the domain sees it: whole seconds since the Unix epoch, read from a [`Clock`]
//! that tests (and the demo) can control.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

pub const DAY: i64 = 86_400;

impl Timestamp {
    /// The system's wall clock now. Code that tests must control takes a [`Clock`].
    pub fn now() -> Self {
        Self::from_system(std::time::SystemTime::now())
    }

    /// A system time, rounded down to the second (times before 1970 read as 0).
    pub fn from_system(at: std::time::SystemTime) -> Self {
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Self(secs)
    }

    pub const fn seconds(self) -> i64 {
        self.0
    }

    #[must_use]
    pub const fn plus_seconds(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    #[must_use]
    pub const fn plus_days(self, days: i64) -> Self {
        self.plus_seconds(days.saturating_mul(DAY))
    }

    /// RFC 3339 in UTC, e.g. `2026-11-25T13:10:45Z`.
    pub fn to_rfc3339(self) -> String {
        let format =
            ::time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        ::time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&format).ok())
            .unwrap_or_else(|| self.0.to_string())
    }

    /// Calendar date in UTC, e.g. `2026-11-25`.
    pub fn to_date(self) -> String {
        let format = ::time::macros::format_description!("[year]-[month]-[day]");
        ::time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&format).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_795_612_245).to_date(), "2026-11-25");
    }

    #[test]
    fn manual_clock_is_shared() {
        let clock = ManualClock::new(Timestamp(10));
        let other = clock.clone();
        clock.advance(5);
        assert_eq!(other.now(), Timestamp(15));
    }
}
