//! Metric keys: one structured key, two spellings.
//!
//! A key is a *family* (dotted, OpenSMTPD style, without label values) plus
//! labels. `smtpctl show stats` spells it with each label value inserted
//! right after the family segment naming the label; Prometheus spells it as
//! `wasmtpd_<family with underscores>` plus `{label="value"}`.
//!
//! Mapping rule for plain dotted names (deterministic): scanning left to
//! right, a segment found in [`LABELS`] that is followed by at least two
//! more segments takes the next segment as its label value. So
//! `filter.dnsbl.calls` is family `filter.calls` with `filter="dnsbl"`,
//! `tenant.acme.filter.dnsbl.calls` is family `tenant.filter.calls` with
//! `tenant="acme"` and `filter="dnsbl"`, while `filter.calls` (nothing after
//! the would-be value) has no label. A value parsed this way is a single
//! segment; names with dots (a tenant `example.org`) go through
//! [`crate::stats::Stats::counter_with`] and friends, which take labels
//! apart from the family.

use std::fmt::Write as _;

/// Family segments that carry a label value in the dotted form.
pub const LABELS: &[&str] = &["filter", "tenant"];

/// Prefix of every Prometheus metric name.
pub const PROMETHEUS_PREFIX: &str = "wasmtpd_";

/// A metric's identity in the registry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    /// Dotted family without label values, e.g. `filter.calls`.
    pub family: String,
    /// Label name and value, in the order their segments appear in `family`.
    pub labels: Vec<(String, String)>,
}

impl Key {
    /// Parses a dotted show-stats name by the [`LABELS`] table.
    pub fn parse(name: &str) -> Key {
        let segs: Vec<&str> = name.split('.').collect();
        let mut family = Vec::with_capacity(segs.len());
        let mut labels = Vec::new();
        let mut i = 0;
        while i < segs.len() {
            let seg = segs[i];
            family.push(seg);
            if LABELS.contains(&seg) && i + 2 < segs.len() {
                labels.push((seg.to_string(), segs[i + 1].to_string()));
                i += 2;
            } else {
                i += 1;
            }
        }
        Key {
            family: family.join("."),
            labels,
        }
    }

    /// Builds a key from a family and explicit labels. A label whose name is
    /// not a segment of the family is put in front of it, so that every
    /// label has a place in the dotted form.
    pub fn with_labels(family: &str, labels: &[(&str, &str)]) -> Key {
        let mut segs: Vec<String> = family.split('.').map(str::to_string).collect();
        for (name, _) in labels.iter().rev() {
            if !segs.iter().any(|s| s == name) {
                segs.insert(0, (*name).to_string());
            }
        }
        // Labels in the order of their segments, so equal keys compare equal
        // whatever order the caller listed them in.
        let mut ordered: Vec<(String, String)> = Vec::with_capacity(labels.len());
        for seg in &segs {
            if let Some((n, v)) = labels.iter().find(|(n, _)| n == seg) {
                if !ordered.iter().any(|(o, _)| o == n) {
                    ordered.push(((*n).to_string(), (*v).to_string()));
                }
            }
        }
        Key {
            family: segs.join("."),
            labels: ordered,
        }
    }

    /// The `smtpctl show stats` spelling: label values after their segment.
    pub fn show(&self) -> String {
        self.spell(|name| Some(self.value_of(name)?.to_string()))
    }

    /// The family with `<label>` placeholders, for HELP texts.
    pub fn pattern(&self) -> String {
        self.spell(|name| self.value_of(name).map(|_| format!("<{name}>")))
    }

    fn value_of(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn spell(&self, value: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::with_capacity(self.family.len() + 16);
        for (i, seg) in self.family.split('.').enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(seg);
            if let Some(v) = value(seg) {
                out.push('.');
                out.push_str(&v);
            }
        }
        out
    }

    /// Prometheus metric name of the family, sanitised, with `suffix`.
    pub fn prometheus_name(&self, suffix: &str) -> String {
        sanitize_name(&format!("{PROMETHEUS_PREFIX}{}{suffix}", self.family))
    }

    /// Prometheus label set, `{a="x",b="y"}`, or empty without labels;
    /// `extra` (the histogram's `le`) comes last.
    pub fn prometheus_labels(&self, extra: Option<(&str, &str)>) -> String {
        let all = self
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(extra);
        let mut out = String::new();
        for (i, (n, v)) in all.enumerate() {
            out.push(if i == 0 { '{' } else { ',' });
            let _ = write!(
                out,
                "{}=\"{}\"",
                sanitize_label_name(n),
                escape_label_value(v)
            );
        }
        if !out.is_empty() {
            out.push('}');
        }
        out
    }
}

/// Makes `raw` a valid metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`: any other
/// character (the dots first of all) becomes `_`, and a leading digit gets
/// a `_` in front.
pub fn sanitize_name(raw: &str) -> String {
    sanitize(raw, true)
}

/// Makes `raw` a valid label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn sanitize_label_name(raw: &str) -> String {
    sanitize(raw, false)
}

fn sanitize(raw: &str, colon: bool) -> String {
    let mut out = String::with_capacity(raw.len() + 1);
    for c in raw.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
        out.push(if ok { c } else { '_' });
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Escapes a label value for the text format: backslash, quote, newline.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a HELP text: backslash and newline (quotes stay as they are).
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_have_no_labels() {
        let k = Key::parse("smtp.session.inet4");
        assert_eq!(k.family, "smtp.session.inet4");
        assert!(k.labels.is_empty());
        assert_eq!(k.show(), "smtp.session.inet4");
        assert_eq!(
            k.prometheus_name("_total"),
            "wasmtpd_smtp_session_inet4_total"
        );
    }

    #[test]
    fn filter_and_tenant_segments_take_the_next_as_label() {
        let k = Key::parse("filter.dnsbl.calls");
        assert_eq!(k.family, "filter.calls");
        assert_eq!(k.labels, vec![("filter".into(), "dnsbl".into())]);
        assert_eq!(k.show(), "filter.dnsbl.calls");
        assert_eq!(k.pattern(), "filter.<filter>.calls");
        assert_eq!(k.prometheus_labels(None), "{filter=\"dnsbl\"}");

        let k = Key::parse("tenant.acme.filter.dnsbl.calls");
        assert_eq!(k.family, "tenant.filter.calls");
        assert_eq!(k.show(), "tenant.acme.filter.dnsbl.calls");
        assert_eq!(
            k.prometheus_labels(Some(("le", "1"))),
            "{tenant=\"acme\",filter=\"dnsbl\",le=\"1\"}"
        );
    }

    #[test]
    fn a_label_segment_without_a_value_stays_in_the_family() {
        let k = Key::parse("filter.calls");
        assert_eq!(k.family, "filter.calls");
        assert!(k.labels.is_empty());
    }

    #[test]
    fn explicit_labels_match_the_parsed_form_and_allow_dots() {
        assert_eq!(
            Key::with_labels("filter.calls", &[("filter", "dnsbl")]),
            Key::parse("filter.dnsbl.calls")
        );
        let k = Key::with_labels("messages", &[("tenant", "example.org")]);
        assert_eq!(k.family, "tenant.messages");
        assert_eq!(k.show(), "tenant.example.org.messages");
        assert_eq!(k.prometheus_labels(None), "{tenant=\"example.org\"}");
        // Listing order does not matter.
        assert_eq!(
            Key::with_labels("tenant.filter.calls", &[("filter", "f"), ("tenant", "t")]),
            Key::parse("tenant.t.filter.f.calls")
        );
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("wasmtpd_a-b.c:d"), "wasmtpd_a_b_c:d");
        assert_eq!(sanitize_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name("a:b"), "a_b");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("x\\y\nz\""), "x\\\\y\\nz\"");
    }
}
