//! The handles code holds on to: counters, gauges and histograms whose
//! updates are plain atomic operations, with no lock on the way.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// A monotonic count (`smtp.session.inet4`). Clones share the value.
#[derive(Debug, Clone, Default)]
pub struct Counter(pub(crate) Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        // Relaxed: a statistic orders nothing; readers only need each
        // increment to land once.
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level that goes up and down (`smtp.session`, `queue.envelope`).
#[derive(Debug, Clone, Default)]
pub struct Gauge(pub(crate) Arc<AtomicI64>);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Takes one away.
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `n` (negative to lower the level).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the level.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current level.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A distribution of observations (delivery delay in seconds) in fixed
/// buckets, with Prometheus semantics: cumulative `le` buckets, a sum and a
/// count. Clones share the data.
#[derive(Debug, Clone)]
pub struct Histogram(pub(crate) Arc<HistogramCore>);

#[derive(Debug)]
pub(crate) struct HistogramCore {
    /// Upper bounds, finite, strictly increasing.
    pub bounds: Vec<f64>,
    /// Per-bucket (not cumulative) counts; one more than `bounds`, the last
    /// one for observations above every bound (`+Inf`). The count is their
    /// total, so `+Inf` and `_count` can never disagree in an exposition.
    pub counts: Vec<AtomicU64>,
    /// Sum of observations, as `f64` bits.
    pub sum_bits: AtomicU64,
}

/// A consistent-enough reading of a histogram: per-bucket counts read one
/// by one (an observation racing the reading may show in the count but not
/// yet in the sum, as with every Prometheus client).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramReading {
    /// `(upper bound, cumulative count)`, ending with `(+Inf, count)`.
    pub cumulative: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    /// Bounds are cleaned up rather than refused: non-finite ones dropped
    /// (`+Inf` is always there anyway), the rest sorted and deduplicated.
    pub(crate) fn new(buckets: &[f64]) -> Histogram {
        let mut bounds: Vec<f64> = buckets.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(HistogramCore {
            bounds,
            counts,
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records one observation. NaN is ignored: it would poison the sum
    /// for the life of the daemon.
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let core = &self.0;
        let idx = core.bounds.partition_point(|b| *b < v);
        core.counts[idx].fetch_add(1, Ordering::Relaxed);
        let mut cur = core.sum_bits.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match core.sum_bits.compare_exchange_weak(
                cur,
                new,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
    }

    /// The bucket upper bounds in use (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.0.bounds
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of observations so far.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum_bits.load(Ordering::Relaxed))
    }

    pub(crate) fn read(&self) -> HistogramReading {
        let core = &self.0;
        let mut acc = 0u64;
        let mut cumulative = Vec::with_capacity(core.counts.len());
        for (i, c) in core.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            let bound = core.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            cumulative.push((bound, acc));
        }
        HistogramReading {
            cumulative,
            sum: self.sum(),
            count: acc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_gauge_move_as_asked() {
        let c = Counter::default();
        c.inc();
        c.add(41);
        assert_eq!(c.clone().get(), 42);
        let g = Gauge::default();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
        g.set(-5);
        assert_eq!(g.get(), -5);
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_le_semantics() {
        let h = Histogram::new(&[5.0, 1.0, f64::INFINITY, 1.0, f64::NAN]);
        assert_eq!(h.bounds(), &[1.0, 5.0]);
        for v in [0.5, 1.0, 3.0, 10.0, f64::NAN] {
            h.observe(v);
        }
        let r = h.read();
        assert_eq!(r.cumulative, vec![(1.0, 2), (5.0, 3), (f64::INFINITY, 4)]);
        assert_eq!(r.count, 4);
        assert_eq!(r.sum, 14.5);
    }
}
