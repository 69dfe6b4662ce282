//! What the API listener allows a client: the `[limits]` table of vpnctld's config
//! (connection caps, timeouts, rate limits) and the per-address rate limiter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The `[limits]` table. Every value has a default; see docs/operations.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open connections at once, all clients together; more are closed on accept.
    pub max_connections: usize,
    /// Open connections at once from one IP address.
    pub max_connections_per_address: usize,
    /// Seconds a client has to finish the TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Seconds a client has to send a request's headers, counted from when the
    /// server starts waiting for them, so a keep-alive connection with no request
    /// for this long is closed too.
    pub header_read_timeout_secs: u64,
    /// Seconds without a byte moving either way (a client that stops reading its
    /// answer, or stops sending its body) before the connection is closed; a
    /// long-poll waiting for a change does not count.
    pub idle_timeout_secs: u64,
    /// Seconds a request may take (reading its body included), except long-polls
    /// (bounded by their own wait) and the event stream.
    pub request_timeout_secs: u64,
    /// Seconds an event stream stays open; the dashboard then reconnects with
    /// `after=` and misses nothing.
    pub event_stream_max_secs: u64,
    /// `POST /v1/enroll` per minute from one address.
    pub enroll_per_minute: u32,
    /// Requests refused for a missing or unknown token per minute from one address;
    /// past it, every request from that address gets 429 until the minute ends.
    pub auth_failures_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_address: 256,
            handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 30,
            request_timeout_secs: 30,
            event_stream_max_secs: 3600,
            enroll_per_minute: 10,
            auth_failures_per_minute: 60,
        }
    }
}

impl Limits {
    /// Refuses zeros and caps that contradict each other.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("event_stream_max_secs", self.event_stream_max_secs),
            ("enroll_per_minute", u64::from(self.enroll_per_minute)),
            (
                "auth_failures_per_minute",
                u64::from(self.auth_failures_per_minute),
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.max_connections_per_address > self.max_connections {
            return Err("max_connections_per_address is more than max_connections".into());
        }
        Ok(())
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn event_stream_max(&self) -> Duration {
        Duration::from_secs(self.event_stream_max_secs)
    }
}

/// Addresses tracked at most; when full, windows that ended are dropped, and if
/// none has, the oldest window goes. Bounds memory under address-spraying.
const MAX_TRACKED: usize = 65_536;

/// Counts events per address in fixed one-minute windows.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    window: Duration,
    counts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, Duration::from_secs(60))
    }

    pub fn new(per_minute: u32, window: Duration) -> Self {
        Self {
            per_minute,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event from `addr`; false when it is over the limit.
    pub fn hit(&self, addr: IpAddr) -> bool {
        self.update(addr, 1)
    }

    /// Whether `addr` is over the limit now, without counting.
    pub fn exceeded(&self, addr: IpAddr) -> bool {
        !self.update(addr, 0)
    }

    fn update(&self, addr: IpAddr, add: u32) -> bool {
        let now = Instant::now();
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if add > 0 && counts.len() >= MAX_TRACKED && !counts.contains_key(&addr) {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
            if counts.len() >= MAX_TRACKED
                && let Some(oldest) = counts.iter().min_by_key(|(_, (s, _))| *s).map(|(a, _)| *a)
            {
                counts.remove(&oldest);
            }
        }
        let entry = if add > 0 {
            counts.entry(addr).or_insert((now, 0))
        } else {
            match counts.get_mut(&addr) {
                Some(entry) => entry,
                None => return true,
            }
        };
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(add);
        entry.1 <= self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_is_refused() {
        Limits::default().validate().unwrap();
        let zero = Limits {
            idle_timeout_secs: 0,
            ..Limits::default()
        };
        assert_eq!(
            zero.validate().unwrap_err(),
            "idle_timeout_secs must be at least 1"
        );
    }

    #[test]
    fn limits_per_address_per_window() {
        let limiter = RateLimiter::new(3, Duration::from_millis(200));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!limiter.exceeded(a));
        assert!((0..3).all(|_| limiter.hit(a)));
        assert!(!limiter.exceeded(a));
        assert!(!limiter.hit(a));
        assert!(limiter.exceeded(a));
        assert!(limiter.hit(b), "other addresses are not affected");
        std::thread::sleep(Duration::from_millis(250));
        assert!(!limiter.exceeded(a));
        assert!(limiter.hit(a), "a new window starts afresh");
    }
}
