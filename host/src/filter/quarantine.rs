//! A filter that keeps failing is set aside for a while: new sessions
//! skip instantiating it and get its failure policy straight away, so a
//! broken filter costs its sessions a reply, not CPU and memory.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures within `WINDOW` that put a filter in quarantine.
pub const THRESHOLD: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a quarantine lasts.
pub const DURATION: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Quarantine {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    recent: VecDeque<Instant>,
    until: Option<Instant>,
    /// Failures and quarantines since the filter was loaded.
    failures: u64,
    quarantines: u64,
}

impl Quarantine {
    /// Counts a failure; true when it starts a quarantine.
    pub fn record_failure(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.failures += 1;
        while s
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            s.recent.pop_front();
        }
        s.recent.push_back(now);
        if s.recent.len() >= THRESHOLD && s.until.is_none_or(|u| u <= now) {
            s.until = Some(now + DURATION);
            s.recent.clear();
            s.quarantines += 1;
            return true;
        }
        false
    }

    pub fn is_quarantined(&self, now: Instant) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.until.is_some_and(|u| u > now)
    }

    /// (failures, quarantines) so far.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.failures, s.quarantines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_after_repeated_failures_then_release() {
        let q = Quarantine::default();
        let t0 = Instant::now();
        for i in 0..THRESHOLD - 1 {
            assert!(!q.record_failure(t0 + Duration::from_secs(i as u64)));
        }
        assert!(!q.is_quarantined(t0 + Duration::from_secs(5)));
        assert!(q.record_failure(t0 + Duration::from_secs(5)));
        assert!(q.is_quarantined(t0 + Duration::from_secs(6)));
        assert!(!q.is_quarantined(t0 + Duration::from_secs(6) + DURATION));
        assert_eq!(q.counts(), (THRESHOLD as u64, 1));
    }

    #[test]
    fn sparse_failures_do_not_quarantine() {
        let q = Quarantine::default();
        let t0 = Instant::now();
        for i in 0..20u64 {
            assert!(!q.record_failure(t0 + WINDOW * i as u32 / 2));
        }
    }
}
