//! The Prometheus text exposition format (0.0.4) of the registry, written
//! by hand: it is a few lines of formatting over our own registry, where an
//! exporter crate would bring a second registry and a global recorder, and
//! would not give the `show stats` view and deltas the control socket needs.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use super::key::{escape_help, sanitize_name, Key, PROMETHEUS_PREFIX};
use super::Metric;

struct Family {
    kind: &'static str,
    help: String,
    samples: String,
}

/// Renders every metric, families sorted by name, one HELP and TYPE each.
pub(crate) fn render(metrics: &[(Key, Metric)], uptime_secs: i64) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (key, metric) in metrics {
        let (name, kind) = match metric {
            Metric::Counter(_) => (key.prometheus_name("_total"), "counter"),
            Metric::Gauge(_) => (key.prometheus_name(""), "gauge"),
            Metric::Histogram(_) => (key.prometheus_name(""), "histogram"),
        };
        let series = format!("{name}{}", key.prometheus_labels(None));
        let family = families.entry(name.clone()).or_insert_with(|| Family {
            kind,
            help: format!("smtpctl show stats: {}", key.pattern()),
            samples: String::new(),
        });
        // Two dotted names can sanitise to one metric name (`a-b`, `a.b`);
        // the first keeps it, since a family has one type and a series
        // may appear once.
        if family.kind != kind || !seen.insert(series) {
            tracing::warn!(stat = %key.show(), metric = %name, "statistic clashes with another in Prometheus; left out");
            continue;
        }
        let out = &mut family.samples;
        let labels = key.prometheus_labels(None);
        match metric {
            Metric::Counter(c) => {
                let _ = writeln!(out, "{name}{labels} {}", c.get());
            }
            Metric::Gauge(g) => {
                let _ = writeln!(out, "{name}{labels} {}", g.get());
            }
            Metric::Histogram(h) => {
                let r = h.read();
                for (bound, n) in &r.cumulative {
                    let le = format_f64(*bound);
                    let labels = key.prometheus_labels(Some(("le", &le)));
                    let _ = writeln!(out, "{name}_bucket{labels} {n}");
                }
                let _ = writeln!(out, "{name}_sum{labels} {}", format_f64(r.sum));
                let _ = writeln!(out, "{name}_count{labels} {}", r.count);
            }
        }
    }
    let uptime = sanitize_name(&format!("{PROMETHEUS_PREFIX}uptime_seconds"));
    families.entry(uptime.clone()).or_insert_with(|| Family {
        kind: "gauge",
        help: "Seconds since the daemon started (show stats: uptime)".into(),
        samples: format!("{uptime} {uptime_secs}\n"),
    });

    let mut out = String::new();
    for (name, f) in &families {
        if f.samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {name} {}", f.kind);
        out.push_str(&f.samples);
    }
    out
}

/// Go's float syntax for the special values, Rust's shortest exact form
/// (never an exponent Prometheus cannot read) for the rest.
fn format_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_in_prometheus_syntax() {
        assert_eq!(format_f64(f64::INFINITY), "+Inf");
        assert_eq!(format_f64(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_f64(f64::NAN), "NaN");
        assert_eq!(format_f64(1.0), "1");
        assert_eq!(format_f64(0.25), "0.25");
    }
}
