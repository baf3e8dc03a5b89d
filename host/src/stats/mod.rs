//! Counters, gauges and histograms of the daemon, read as
//! `smtpctl show stats` lines (with `smtpctl monitor` deltas and JSON) and
//! as Prometheus text.
//!
//! [`Stats`] is the registry: cheap to clone, shared by every process part
//! that counts. Looking a name up takes a lock; the handle it returns
//! ([`Counter`], [`Gauge`], [`Histogram`]) updates atomics only, so hot
//! paths look their handles up once and keep them.
//!
//! Names are OpenSMTPD's dotted keys. Per-filter and per-tenant figures
//! carry their filter or tenant as a segment (`filter.dnsbl.calls`), which
//! becomes a Prometheus label (`wasmtpd_filter_calls_total{filter="dnsbl"}`);
//! the rule is in [`key`]. Asking again for a name returns a handle on the
//! same value; asking for it as another kind (a gauge where a counter is)
//! logs a warning and returns a handle counted nowhere, rather than
//! failing the caller over a statistic.

pub mod key;

mod handles;
mod prometheus;
mod snapshot;

pub use handles::{Counter, Gauge, Histogram};
pub use snapshot::{Snapshot, Value};

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use key::Key;

/// Bucket bounds in seconds for delivery delays: from immediate to the
/// four days after which OpenSMTPD gives up on an envelope by default.
pub const DELAY_BUCKETS: &[f64] = &[
    1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0, 345600.0,
];

/// The statistics registry. Clones share it.
#[derive(Debug, Clone)]
pub struct Stats {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    metrics: RwLock<BTreeMap<Key, Metric>>,
}

#[derive(Debug, Clone)]
pub(crate) enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl Metric {
    fn kind(&self) -> &'static str {
        match self {
            Metric::Counter(_) => "counter",
            Metric::Gauge(_) => "gauge",
            Metric::Histogram(_) => "histogram",
        }
    }
}

impl Stats {
    /// An empty registry; `uptime` counts from `start` (the daemon's start).
    pub fn new(start: Instant) -> Stats {
        Stats {
            inner: Arc::new(Inner {
                start,
                metrics: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// The counter under a dotted name, created at zero on first use.
    pub fn counter(&self, name: &str) -> Counter {
        self.counter_key(Key::parse(name))
    }

    /// The counter of a family with explicit labels, for label values that
    /// are not single segments: `counter_with("tenant.messages",
    /// &[("tenant", "example.org")])`. A label whose name is not a segment
    /// of the family is put in front of it.
    pub fn counter_with(&self, family: &str, labels: &[(&str, &str)]) -> Counter {
        self.counter_key(Key::with_labels(family, labels))
    }

    /// The gauge under a dotted name, created at zero on first use.
    pub fn gauge(&self, name: &str) -> Gauge {
        self.gauge_key(Key::parse(name))
    }

    /// The gauge of a family with explicit labels (see [`Stats::counter_with`]).
    pub fn gauge_with(&self, family: &str, labels: &[(&str, &str)]) -> Gauge {
        self.gauge_key(Key::with_labels(family, labels))
    }

    /// The histogram under a dotted name. `buckets` are upper bounds
    /// (non-finite ones dropped, sorted, `+Inf` implied); they count only
    /// the first time the name is asked for.
    pub fn histogram(&self, name: &str, buckets: &[f64]) -> Histogram {
        self.histogram_key(Key::parse(name), buckets)
    }

    /// The histogram of a family with explicit labels (see
    /// [`Stats::counter_with`]).
    pub fn histogram_with(
        &self,
        family: &str,
        labels: &[(&str, &str)],
        buckets: &[f64],
    ) -> Histogram {
        self.histogram_key(Key::with_labels(family, labels), buckets)
    }

    /// Every statistic now, plus `uptime` (seconds) and `uptime.human`.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(Instant::now())
    }

    /// Every statistic, with the uptime as of `now`. Histograms show as
    /// `NAME.count` and `NAME.sum`.
    pub fn snapshot_at(&self, now: Instant) -> Snapshot {
        let mut snap = Snapshot::default();
        for (key, metric) in self.metrics() {
            let show = key.show();
            match metric {
                Metric::Counter(c) => snap.insert(show, Value::Counter(c.get())),
                Metric::Gauge(g) => snap.insert(show, Value::Gauge(g.get())),
                Metric::Histogram(h) => {
                    snap.insert(format!("{show}.count"), Value::Counter(h.count()));
                    snap.insert(format!("{show}.sum"), Value::Sum(h.sum()));
                }
            }
        }
        let up = self.uptime_secs(now);
        snap.insert("uptime".into(), Value::Gauge(up));
        snap.insert(
            "uptime.human".into(),
            Value::Text(crate::scheduler::human_delay(up)),
        );
        snap
    }

    /// Everything in the Prometheus text exposition format 0.0.4, plus
    /// `wasmtpd_uptime_seconds`.
    pub fn render_prometheus(&self) -> String {
        let up = self.uptime_secs(Instant::now());
        prometheus::render(&self.metrics(), up)
    }

    fn uptime_secs(&self, now: Instant) -> i64 {
        let secs = now.saturating_duration_since(self.inner.start).as_secs();
        i64::try_from(secs).unwrap_or(i64::MAX)
    }

    /// The handles, copied out so that reading them holds no lock.
    fn metrics(&self) -> Vec<(Key, Metric)> {
        let map = self
            .inner
            .metrics
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|(k, m)| (k.clone(), m.clone())).collect()
    }

    fn counter_key(&self, key: Key) -> Counter {
        match self.entry(key, "counter", || Metric::Counter(Counter::default())) {
            Ok(Metric::Counter(c)) => c,
            _ => Counter::default(),
        }
    }

    fn gauge_key(&self, key: Key) -> Gauge {
        match self.entry(key, "gauge", || Metric::Gauge(Gauge::default())) {
            Ok(Metric::Gauge(g)) => g,
            _ => Gauge::default(),
        }
    }

    fn histogram_key(&self, key: Key, buckets: &[f64]) -> Histogram {
        match self.entry(key, "histogram", || {
            Metric::Histogram(Histogram::new(buckets))
        }) {
            Ok(Metric::Histogram(h)) => h,
            _ => Histogram::new(buckets),
        }
    }

    /// The metric under `key`, made by `make` if absent; `Err` (already
    /// logged) when the key holds another kind than `kind`.
    fn entry(
        &self,
        key: Key,
        kind: &'static str,
        make: impl FnOnce() -> Metric,
    ) -> Result<Metric, ()> {
        let found = {
            let map = self
                .inner
                .metrics
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            map.get(&key).cloned()
        };
        let metric = match found {
            Some(m) => m,
            None => {
                let mut map = self
                    .inner
                    .metrics
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                // Another thread may have won the race for the write lock.
                map.entry(key.clone()).or_insert_with(make).clone()
            }
        };
        if metric.kind() == kind {
            Ok(metric)
        } else {
            tracing::warn!(
                stat = %key.show(),
                registered = metric.kind(),
                asked = kind,
                "statistic asked for as another kind; this handle counts nowhere"
            );
            Err(())
        }
    }
}

#[cfg(test)]
mod tests;
