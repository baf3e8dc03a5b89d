//! Tests of the registry as its readers see it: show-stats lines, monitor
//! deltas, JSON and Prometheus text (checked line by line by a small
//! parser of the exposition format below).

use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

fn started_ago(secs: u64) -> Instant {
    Instant::now()
        .checked_sub(Duration::from_secs(secs))
        .unwrap()
}

#[test]
fn concurrent_increments_all_count() {
    let stats = Stats::new(Instant::now());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let stats = stats.clone();
            thread::spawn(move || {
                // Half look the handle up once, half every time: both land
                // on the same value.
                let c = stats.counter("smtp.session.inet4");
                let g = stats.gauge("smtp.session");
                let h = stats.histogram("scheduler.delivery.delay", DELAY_BUCKETS);
                for i in 0..10_000u64 {
                    c.inc();
                    stats.counter("smtp.session.inet4").add(2);
                    g.inc();
                    g.dec();
                    h.observe((i % 10) as f64);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let snap = stats.snapshot();
    assert_eq!(
        snap.get("smtp.session.inet4"),
        Some(&Value::Counter(240_000))
    );
    assert_eq!(snap.get("smtp.session"), Some(&Value::Gauge(0)));
    assert_eq!(
        snap.get("scheduler.delivery.delay.count"),
        Some(&Value::Counter(80_000))
    );
    assert_eq!(
        snap.get("scheduler.delivery.delay.sum"),
        Some(&Value::Sum(8.0 * 1000.0 * 45.0))
    );
}

#[test]
fn show_stats_is_sorted_with_uptime() {
    let stats = Stats::new(started_ago(3600));
    stats.gauge("smtp.session").set(3);
    stats.counter("scheduler.delivery.tempfail").inc();
    stats.counter("scheduler.delivery.permfail");
    stats.gauge("queue.envelope").set(5);
    stats.counter("filter.dnsbl.calls").add(7);
    let text = stats.snapshot().render_show_stats();
    assert_eq!(
        text,
        "filter.dnsbl.calls=7\nqueue.envelope=5\nscheduler.delivery.permfail=0\n\
         scheduler.delivery.tempfail=1\nsmtp.session=3\nuptime=3600\nuptime.human=1h0m0s\n"
    );
    let keys: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn uptime_human_in_opensmtpd_form() {
    let start = Instant::now();
    let stats = Stats::new(start);
    let at = |s: u64| stats.snapshot_at(start + Duration::from_secs(s));
    assert_eq!(at(0).get("uptime.human"), Some(&Value::Text("0s".into())));
    assert_eq!(at(93_784).get("uptime"), Some(&Value::Gauge(93_784)));
    assert_eq!(
        at(93_784).get("uptime.human"),
        Some(&Value::Text("1d2h3m4s".into()))
    );
    // A reading taken "before" the start does not go negative.
    let later = Stats::new(start + Duration::from_secs(10));
    assert_eq!(
        later.snapshot_at(start).get("uptime"),
        Some(&Value::Gauge(0))
    );
}

#[test]
fn monitor_delta_between_two_snapshots() {
    let start = Instant::now();
    let stats = Stats::new(start);
    let ok = stats.counter("scheduler.delivery.ok");
    let sessions = stats.gauge("smtp.session");
    ok.add(10);
    sessions.set(4);
    let t0 = stats.snapshot_at(start + Duration::from_secs(1));
    ok.add(3);
    sessions.set(2);
    stats.counter("scheduler.delivery.tempfail").inc();
    let t1 = stats.snapshot_at(start + Duration::from_secs(2));
    let d = t1.delta(&t0);
    assert_eq!(d.get("scheduler.delivery.ok"), Some(&Value::Counter(3)));
    assert_eq!(
        d.get("scheduler.delivery.tempfail"),
        Some(&Value::Counter(1))
    );
    assert_eq!(d.get("smtp.session"), Some(&Value::Gauge(2)));
    assert_eq!(d.get("uptime"), Some(&Value::Gauge(2)));
}

#[test]
fn json_for_show_stats_json() {
    let start = Instant::now();
    let stats = Stats::new(start);
    stats.counter("smtp.session.inet4").add(12);
    let json = serde_json::to_value(stats.snapshot_at(start)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"smtp.session.inet4": 12, "uptime": 0, "uptime.human": "0s"})
    );
}

#[test]
fn same_name_same_value_other_kind_counts_nowhere() {
    let stats = Stats::new(Instant::now());
    stats.counter("a.b").inc();
    stats.counter("a.b").inc();
    let stray = stats.gauge("a.b");
    stray.set(99);
    let snap = stats.snapshot();
    assert_eq!(snap.get("a.b"), Some(&Value::Counter(2)));
    // Explicit labels and the dotted form are one statistic.
    stats
        .counter_with("filter.calls", &[("filter", "dnsbl")])
        .inc();
    assert_eq!(stats.counter("filter.dnsbl.calls").get(), 1);
}

#[test]
fn prometheus_names_labels_and_types() {
    let stats = Stats::new(started_ago(5));
    stats.counter("filter.dnsbl.calls").add(3);
    stats.counter("filter.rspamd.calls").inc();
    stats.counter("filter.dnsbl.fuel").add(1000);
    stats.gauge("smtp.session").set(2);
    stats
        .counter_with("tenant.messages", &[("tenant", "example.org")])
        .inc();
    let text = stats.render_prometheus();
    let samples = check_exposition(&text);
    assert_eq!(samples["wasmtpd_filter_calls_total{filter=\"dnsbl\"}"], 3.0);
    assert_eq!(
        samples["wasmtpd_filter_calls_total{filter=\"rspamd\"}"],
        1.0
    );
    assert_eq!(
        samples["wasmtpd_filter_fuel_total{filter=\"dnsbl\"}"],
        1000.0
    );
    assert_eq!(samples["wasmtpd_smtp_session"], 2.0);
    assert_eq!(
        samples["wasmtpd_tenant_messages_total{tenant=\"example.org\"}"],
        1.0
    );
    assert!(samples["wasmtpd_uptime_seconds"] >= 5.0);
    assert!(text.contains("# TYPE wasmtpd_filter_calls_total counter\n"));
    assert!(text
        .contains("# HELP wasmtpd_filter_calls_total smtpctl show stats: filter.<filter>.calls\n"));
    assert!(text.contains("# TYPE wasmtpd_smtp_session gauge\n"));
    assert_eq!(text.matches("# TYPE wasmtpd_filter_calls_total").count(), 1);
}

#[test]
fn prometheus_histogram_is_cumulative_and_ends_with_inf() {
    let stats = Stats::new(Instant::now());
    let h = stats.histogram("scheduler.delivery.delay", &[1.0, 60.0, 0.5]);
    for v in [0.1, 0.7, 30.0, 30.0, 7200.0] {
        h.observe(v);
    }
    let labelled = stats.histogram("tenant.acme.delay", &[1.0]);
    labelled.observe(2.0);
    let text = stats.render_prometheus();
    let samples = check_exposition(&text);
    let d = "wasmtpd_scheduler_delivery_delay";
    assert_eq!(samples[&format!("{d}_bucket{{le=\"0.5\"}}")], 1.0);
    assert_eq!(samples[&format!("{d}_bucket{{le=\"1\"}}")], 2.0);
    assert_eq!(samples[&format!("{d}_bucket{{le=\"60\"}}")], 4.0);
    assert_eq!(samples[&format!("{d}_bucket{{le=\"+Inf\"}}")], 5.0);
    assert_eq!(samples[&format!("{d}_count")], 5.0);
    assert_eq!(samples[&format!("{d}_sum")], 7260.8);
    assert_eq!(
        samples["wasmtpd_tenant_delay_bucket{tenant=\"acme\",le=\"+Inf\"}"],
        1.0
    );
    assert!(text.contains(&format!("# TYPE {d} histogram\n")));
}

#[test]
fn prometheus_escapes_label_values_and_sanitises_names() {
    let stats = Stats::new(Instant::now());
    stats
        .counter_with("filter.calls", &[("filter", "we\\ird\"na\nme")])
        .inc();
    stats.counter("9mta.conn-ok").inc();
    let text = stats.render_prometheus();
    assert!(
        text.contains("wasmtpd_filter_calls_total{filter=\"we\\\\ird\\\"na\\nme\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("wasmtpd_9mta_conn_ok_total 1\n"), "{text}");
    check_exposition(&text);
}

/// Checks the exposition format line by line and returns `series -> value`
/// (series as written, labels included). Panics on the first violation.
fn check_exposition(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let mut helped = HashSet::new();
    // Per histogram series: (last le, last cumulative count).
    let mut buckets: HashMap<String, (f64, f64)> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid_name(name), "HELP name {name}");
            assert!(helped.insert(name.to_string()), "second HELP for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(valid_name(name), "TYPE name {name}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "type {kind}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE for {name}"
            );
            assert!(
                !samples
                    .keys()
                    .any(|s: &String| family_of(sample_name(s), &types) == Some(name.to_string())),
                "TYPE after samples of {name}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = sample_name(series);
        assert!(valid_name(name), "sample name {name} in {line}");
        if let Some(labels) = series[name.len()..].strip_prefix('{') {
            check_labels(labels.strip_suffix('}').expect("labels closed"));
        } else {
            assert_eq!(series, name, "garbage after name: {line}");
        }
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value {v}")),
        };
        let family = family_of(name, &types).unwrap_or_else(|| panic!("no TYPE before {line}"));
        if types[&family] == "histogram" {
            let base = series.replace(&family, "");
            if let Some(labels) = base.strip_prefix("_bucket") {
                let (le, rest) = split_le(labels);
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                let prev = buckets
                    .entry(format!("{family}{rest}"))
                    .or_insert((f64::NEG_INFINITY, 0.0));
                assert!(le > prev.0, "le increasing: {line}");
                assert!(v >= prev.1, "buckets cumulative: {line}");
                *prev = (le, v);
            } else if let Some(labels) = base.strip_prefix("_count") {
                let last = buckets[&format!("{family}{labels}")];
                assert_eq!(last.0, f64::INFINITY, "buckets end with +Inf: {line}");
                assert_eq!(last.1, v, "+Inf bucket equals _count: {line}");
            }
        }
        assert!(
            samples.insert(series.to_string(), v).is_none(),
            "duplicate {series}"
        );
    }
    samples
}

fn valid_name(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample_name(series: &str) -> &str {
    series.split('{').next().unwrap()
}

/// The TYPE'd family a sample belongs to (histograms add suffixes).
fn family_of(name: &str, types: &HashMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_string());
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find(|b| types.get(*b).map(String::as_str) == Some("histogram"))
        .map(str::to_string)
}

/// `a="x",b="y\"z"`: valid names, quoted values with only `\\ \" \n` escapes.
fn check_labels(mut s: &str) {
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"").expect("label =\"");
        assert!(valid_name(name) && !name.contains(':'), "label name {name}");
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("label value closed") {
                (_, '\\') => {
                    let (_, e) = chars.next().unwrap();
                    assert!(matches!(e, '\\' | '"' | 'n'), "escape \\{e}");
                }
                (_, '\n') => panic!("raw newline in label"),
                (i, '"') => break i,
                _ => {}
            }
        };
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or_else(|| {
            assert!(s.is_empty(), "labels separated by commas: {s}");
            s
        });
    }
}

/// Splits `{a="x",le="1"}` into `1` and the labels without `le`, `{a="x"}`.
fn split_le(labels: &str) -> (String, String) {
    let inner = labels.trim_start_matches('{').trim_end_matches('}');
    let mut le = String::new();
    let mut rest = Vec::new();
    for part in inner.split(',') {
        match part.strip_prefix("le=\"") {
            Some(v) => le = v.trim_end_matches('"').to_string(),
            None => rest.push(part),
        }
    }
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", rest.join(","))
    };
    (le, rest)
}
