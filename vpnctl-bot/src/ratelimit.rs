//! Per-user sliding-window rate limits (config issuing, rotation, invite attempts).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` events per `window` for each key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    events: Mutex<HashMap<i64, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            events: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_hour(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(3600))
    }

    /// Records an event for `key` if allowed; otherwise says how long to wait.
    pub fn check(&self, key: i64) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: i64, now: Instant) -> Result<(), Duration> {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget idle users now and then so the map stays small.
        if events.len() > 10_000 {
            events.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let queue = events.entry(key).or_default();
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            queue.pop_front();
        }
        if queue.len() >= self.limit as usize {
            let oldest = queue.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        queue.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_window() {
        let rl = RateLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(rl.check_at(1, t0).is_ok());
        assert!(rl.check_at(1, t0).is_ok());
        let wait = rl.check_at(1, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(rl.check_at(2, t0).is_ok(), "other users are not affected");
        assert!(rl.check_at(1, t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn zero_limit_refuses() {
        let rl = RateLimiter::new(0, Duration::from_secs(1));
        assert!(rl.check(5).is_err());
    }
}
