//! When to try a deferred envelope again.
//!
//! Doubling from `min` up to `max`, like Postfix's minimal/maximal backoff
//! (300 s / 4000 s there); OpenSMTPD's own schedule is similar in spirit.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(300),
            max: Duration::from_secs(4000),
        }
    }
}

impl Backoff {
    /// Delay before attempt number `tries + 1`, `tries` >= 1 having failed.
    pub fn delay(&self, tries: u32) -> Duration {
        let shift = tries.saturating_sub(1).min(16);
        self.min.saturating_mul(1u32 << shift).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let b = Backoff {
            min: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(1), Duration::from_secs(10));
        assert_eq!(b.delay(2), Duration::from_secs(20));
        assert_eq!(b.delay(3), Duration::from_secs(40));
        assert_eq!(b.delay(4), Duration::from_secs(60));
        assert_eq!(b.delay(400), Duration::from_secs(60));
    }
}
