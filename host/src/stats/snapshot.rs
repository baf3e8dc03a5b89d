//! A reading of every statistic at one moment, in `smtpctl show stats`
//! form: sorted `key=value` lines, JSON for `--json`, and the differences
//! `smtpctl monitor` prints each second.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// One value of a snapshot. Serialises as a bare number or string.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A monotonic count; a histogram's `.count` too.
    Counter(u64),
    /// A level (`smtp.session`, `uptime`).
    Gauge(i64),
    /// A histogram's `.sum`: grows like a counter, but not in whole units.
    Sum(f64),
    /// Text (`uptime.human`).
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Counter(v) => write!(f, "{v}"),
            Value::Gauge(v) => write!(f, "{v}"),
            Value::Sum(v) => write!(f, "{v}"),
            Value::Text(v) => f.write_str(v),
        }
    }
}

/// Statistics by show-stats key, sorted by key. Serialises as a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Snapshot {
    values: BTreeMap<String, Value>,
}

impl Snapshot {
    pub(crate) fn insert(&mut self, key: String, value: Value) {
        self.values.insert(key, value);
    }

    /// The value under a show-stats key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// Keys and values, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `key=value\n` lines sorted by key, as `smtpctl show stats` prints.
    pub fn render_show_stats(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.values {
            out.push_str(k);
            out.push('=');
            out.push_str(&v.to_string());
            out.push('\n');
        }
        out
    }

    /// What changed since `earlier`, for `smtpctl monitor`: counters and
    /// sums become the increase (a key absent earlier counts from zero, a
    /// counter that went down — the daemon restarted — shows its new value),
    /// while levels and texts are the current reading, since a difference
    /// of levels says little (monitor's `curr` columns). Keys gone since
    /// `earlier` are not in the result.
    pub fn delta(&self, earlier: &Snapshot) -> Snapshot {
        let values = self
            .values
            .iter()
            .map(|(k, now)| {
                let v = match (now, earlier.values.get(k)) {
                    (Value::Counter(n), Some(Value::Counter(e))) if n >= e => Value::Counter(n - e),
                    (Value::Sum(n), Some(Value::Sum(e))) if n >= e => Value::Sum(n - e),
                    (v, _) => v.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        Snapshot { values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(items: &[(&str, Value)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (k, v) in items {
            s.insert((*k).to_string(), v.clone());
        }
        s
    }

    #[test]
    fn renders_sorted_key_value_lines() {
        let s = snap(&[
            ("uptime.human", Value::Text("1h0m0s".into())),
            ("queue.envelope", Value::Gauge(5)),
            ("scheduler.delivery.ok", Value::Counter(10)),
        ]);
        assert_eq!(
            s.render_show_stats(),
            "queue.envelope=5\nscheduler.delivery.ok=10\nuptime.human=1h0m0s\n"
        );
    }

    #[test]
    fn delta_subtracts_counters_and_keeps_levels() {
        let before = snap(&[
            ("smtp.session", Value::Gauge(3)),
            ("smtp.session.inet4", Value::Counter(12)),
            ("mta.delay.sum", Value::Sum(1.5)),
            ("gone", Value::Counter(1)),
            ("restarted", Value::Counter(100)),
        ]);
        let after = snap(&[
            ("smtp.session", Value::Gauge(2)),
            ("smtp.session.inet4", Value::Counter(15)),
            ("mta.delay.sum", Value::Sum(4.0)),
            ("new", Value::Counter(7)),
            ("restarted", Value::Counter(4)),
            ("uptime.human", Value::Text("5s".into())),
        ]);
        let d = after.delta(&before);
        assert_eq!(
            d.render_show_stats(),
            "mta.delay.sum=2.5\nnew=7\nrestarted=4\nsmtp.session=2\n\
             smtp.session.inet4=3\nuptime.human=5s\n"
        );
    }

    #[test]
    fn serialises_as_a_flat_json_object() {
        let s = snap(&[
            ("smtp.session", Value::Gauge(-1)),
            ("uptime.human", Value::Text("0s".into())),
            ("x.count", Value::Counter(2)),
        ]);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"smtp.session":-1,"uptime.human":"0s","x.count":2}"#
        );
    }
}
