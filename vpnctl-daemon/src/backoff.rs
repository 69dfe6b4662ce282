//! Waits between retries.

use std::time::Duration;

/// Retry delays: `initial · 2ⁿ`, capped at `max`, each drawn uniformly from the
/// upper half of that ceiling so that clients which failed together (nodes that lost
/// the control plane at once) do not all come back at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The ceiling of the wait before retry number `failures` (1 after the first
    /// failure; 0 means no wait).
    pub fn ceiling(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry number `failures`, with jitter: in `[ceiling/2, ceiling]`.
    pub fn delay(&self, failures: u32) -> Duration {
        self.ceiling(failures).mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::ZERO);
        assert_eq!(b.ceiling(1), Duration::from_millis(500));
        assert_eq!(b.ceiling(3), Duration::from_secs(2));
        assert_eq!(b.ceiling(40), Duration::from_secs(30));
        for failures in 1..20 {
            let d = b.delay(failures);
            let c = b.ceiling(failures);
            assert!(
                d >= c / 2 && d <= c,
                "{failures}: {d:?} not in [{:?}, {c:?}]",
                c / 2
            );
        }
    }
}
