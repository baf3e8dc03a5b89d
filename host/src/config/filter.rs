//! `filter NAME …` lines: chains, wasm components (a file or a bundled
//! one) with their limits, grants and own `key value` settings, and
//! OpenSMTPD's proc/phase forms kept as words.

use std::path::PathBuf;
use std::time::Duration;

use super::cursor::Cursor;
use super::error::{ConfigError, ErrorKind};
use super::model::*;
use super::parser::{Parser, RefKind};
use super::units;

/// The components built into wasmtpd, usable as `filter NAME dnsbl …`.
pub const BUNDLED_FILTERS: &[&str] = &["dnsbl", "regex", "spamscore"];

impl Parser {
    pub fn filter(&mut self, c: &mut Cursor) -> Result<(), ConfigError> {
        let origin = c.origin();
        let name = c.string("a filter name")?;
        let kind = if c.eat_kw("chain") {
            let members = self.brace_list(c)?;
            c.expect_end()?;
            FilterKind::Chain(members)
        } else if c.eat_kw("wasm") {
            let path = c.string("the path of a .wasm component")?;
            FilterKind::Wasm(Box::new(wasm_options(
                c,
                WasmSource::Path(PathBuf::from(path)),
            )?))
        } else if c.eat_kw("phase") {
            FilterKind::Builtin(Box::new(self.builtin(c)?))
        } else if let Some(bundled) = c.peek_word().filter(|w| BUNDLED_FILTERS.contains(w)) {
            let source = WasmSource::Bundled(bundled.to_string());
            c.bump();
            FilterKind::Wasm(Box::new(wasm_options(c, source)?))
        } else {
            if c.at_end() {
                return Err(c.syntax("wasm, dnsbl, regex, spamscore, chain or phase"));
            }
            let words = c.rest_as_words();
            for w in &words {
                if let Some(t) = w.strip_prefix('<').and_then(|w| w.strip_suffix('>')) {
                    self.refer(RefKind::Table, t, origin.clone());
                }
            }
            FilterKind::Other(words)
        };
        if let Some(prev) = self.config.filters.get(&name) {
            return Err(ConfigError::new(
                origin,
                ErrorKind::Duplicate {
                    what: "filter",
                    name,
                    previous: prev.origin.to_string(),
                },
            ));
        }
        self.config
            .filters
            .insert(name.clone(), FilterDef { name, kind, origin });
        Ok(())
    }
}

/// Phases a builtin filter may act in.
const BUILTIN_PHASES: &[&str] = &[
    "connect",
    "helo",
    "ehlo",
    "auth",
    "mail-from",
    "rcpt-to",
    "data",
    "commit",
];
const DECISIONS: &[&str] = &[
    "bypass",
    "junk",
    "reject",
    "disconnect",
    "rewrite",
    "report",
];

impl Parser {
    /// `phase P match [!]COND … DECISION` (after `filter NAME phase`).
    fn builtin(&mut self, c: &mut Cursor) -> Result<BuiltinFilter, ConfigError> {
        let origin = c.origin();
        let phase = c.string("a phase")?;
        if !BUILTIN_PHASES.contains(&phase.as_str()) {
            return Err(ConfigError::new(
                origin,
                ErrorKind::BadValue {
                    what: "filter phase",
                    value: phase,
                },
            ));
        }
        if !c.eat_kw("match") {
            return Err(c.syntax("match"));
        }
        let mut conditions = Vec::new();
        while !c.peek_word().is_some_and(|w| DECISIONS.contains(&w)) {
            if c.at_end() {
                return Err(
                    c.syntax("a decision (bypass, junk, reject, disconnect, rewrite, report)")
                );
            }
            let negated = c.eat_bang();
            let cond = match c.peek_word() {
                Some("fcrdns") => {
                    c.bump();
                    Cond::Fcrdns
                }
                // Only tables follow these here, so a decision keyword
                // after them is never read as their value.
                Some("rdns") => {
                    c.bump();
                    Cond::From(FromCond::Rdns(self.table_pattern(c)?))
                }
                Some("src") => {
                    c.bump();
                    match self.table_pattern(c)? {
                        Some(p) => Cond::From(FromCond::Src(p)),
                        None => return Err(c.syntax("a table <name>")),
                    }
                }
                Some("auth") => {
                    c.bump();
                    Cond::Auth(self.table_pattern(c)?)
                }
                _ => self.condition(c)?,
            };
            conditions.push(Condition { negated, cond });
        }
        let at = c.origin();
        let word = c.string("a decision")?;
        let mut value = |what: &'static str| c.string(what);
        let decision = match word.as_str() {
            "bypass" => BuiltinDecision::Bypass,
            "junk" => BuiltinDecision::Junk,
            "reject" => BuiltinDecision::Reject(value("a reply, \"550 message\"")?),
            "disconnect" => BuiltinDecision::Disconnect(value("a reply, \"421 message\"")?),
            "rewrite" => BuiltinDecision::Rewrite(value("a value")?),
            "report" => BuiltinDecision::Report(value("a value")?),
            _ => return Err(ConfigError::new(at, ErrorKind::SyntaxNear(word))),
        };
        c.expect_end()?;
        Ok(BuiltinFilter {
            phase,
            conditions,
            decision,
        })
    }

    /// `[regex] <table>`, or nothing.
    fn table_pattern(&mut self, c: &mut Cursor) -> Result<Option<Pattern>, ConfigError> {
        let is_table = matches!(c.peek(), Some(super::lexer::Tok::TableRef(_)));
        if is_table || c.is_kw("regex") {
            self.pattern(c).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The engine's options, then everything else as the filter's own
/// `key value` pairs. The option names are therefore reserved.
fn wasm_options(c: &mut Cursor, source: WasmSource) -> Result<WasmFilter, ConfigError> {
    let mut f = WasmFilter::new(source);
    let mut seen: Vec<&'static str> = Vec::new();
    let mut once = |c: &Cursor, opt: &'static str| {
        if seen.contains(&opt) {
            Err(c.error(ErrorKind::RepeatedOption(opt.to_string())))
        } else {
            seen.push(opt);
            Ok(())
        }
    };
    while !c.at_end() {
        let origin = c.origin();
        let key = c.string("an option or a key")?;
        match key.as_str() {
            "fuel" => {
                once(c, "fuel")?;
                f.fuel = Some(positive(c, "fuel")?);
            }
            "session-fuel" => {
                once(c, "session-fuel")?;
                f.session_fuel = Some(positive(c, "session-fuel")?);
            }
            "memory" => {
                once(c, "memory")?;
                let s = c.string("a size")?;
                match units::parse_size(&s) {
                    Some(n) if n >= 64 * 1024 => f.memory = Some(n),
                    _ => return Err(ConfigError::new(origin, ErrorKind::BadSize(s))),
                }
            }
            "timeout" => {
                once(c, "timeout")?;
                let s = c.string("a duration")?;
                match parse_timeout(&s) {
                    Some(d) if !d.is_zero() => f.timeout = Some(d),
                    _ => return Err(ConfigError::new(origin, ErrorKind::BadDuration(s))),
                }
            }
            "on-error" => {
                once(c, "on-error")?;
                let s = c.string("tempfail, reject or proceed")?;
                f.on_error = match s.as_str() {
                    "tempfail" => OnError::Tempfail,
                    "reject" => OnError::Reject,
                    "proceed" => OnError::Proceed,
                    _ => {
                        return Err(ConfigError::new(
                            origin,
                            ErrorKind::BadValue {
                                what: "on-error policy (tempfail, reject, proceed)",
                                value: s,
                            },
                        ))
                    }
                };
            }
            "allow" => loop {
                let origin = c.origin();
                let cap = c.string("a capability (dns, kv)")?;
                match cap.as_str() {
                    "dns" => f.allow_dns = true,
                    "kv" => f.allow_kv = true,
                    _ => {
                        return Err(ConfigError::new(
                            origin,
                            ErrorKind::BadValue {
                                what: "capability (dns, kv)",
                                value: cap,
                            },
                        ))
                    }
                }
                if !c.eat(&super::lexer::Tok::Comma) {
                    break;
                }
            },
            "dns-queries" => {
                once(c, "dns-queries")?;
                f.dns_queries = Some(positive(c, "dns-queries")?);
            }
            "max-use" => {
                once(c, "max-use")?;
                f.max_use = Some(positive(c, "max-use")?);
            }
            _ => {
                let value = c.string("a value for the filter's key")?;
                f.params.push((key, value));
            }
        }
    }
    Ok(f)
}

fn positive<T>(c: &mut Cursor, _what: &'static str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    let origin = c.origin();
    let n: T = c.number("a number")?;
    if n > T::default() {
        Ok(n)
    } else {
        Err(ConfigError::new(
            origin,
            ErrorKind::BadNumber("0".to_string()),
        ))
    }
}

/// A duration as smtpd.conf writes it, plus milliseconds (`250ms`): a
/// filter's deadline is usually well under a second.
fn parse_timeout(s: &str) -> Option<Duration> {
    match s.strip_suffix("ms") {
        Some(ms) if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) => {
            ms.parse().ok().map(Duration::from_millis)
        }
        _ => units::parse_duration(s),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::model::*;

    fn parse_str(text: &str) -> Result<Config, crate::config::error::ConfigErrors> {
        crate::config::parse_str(text, std::path::Path::new("t.conf"))
    }

    fn wasm(cfg: &Config, name: &str) -> WasmFilter {
        match &cfg.filters[name].kind {
            FilterKind::Wasm(w) => (**w).clone(),
            other => panic!("not wasm: {other:?}"),
        }
    }

    #[test]
    fn wasm_filter_with_limits_grants_and_settings() {
        let cfg = parse_str(
            "filter f wasm \"/etc/mail/f.wasm\" fuel 1000000 memory 16M timeout 250ms \
             on-error proceed allow dns, kv dns-queries 20 max-use 1 zone zen.example zone b.example\n",
        )
        .unwrap();
        let f = wasm(&cfg, "f");
        assert_eq!(f.source, WasmSource::Path("/etc/mail/f.wasm".into()));
        assert_eq!(f.fuel, Some(1_000_000));
        assert_eq!(f.memory, Some(16 << 20));
        assert_eq!(f.timeout, Some(std::time::Duration::from_millis(250)));
        assert_eq!(f.on_error, OnError::Proceed);
        assert!(f.allow_dns && f.allow_kv);
        assert_eq!(f.dns_queries, Some(20));
        assert_eq!(f.max_use, Some(1));
        assert_eq!(
            f.params,
            vec![
                ("zone".to_string(), "zen.example".to_string()),
                ("zone".to_string(), "b.example".to_string())
            ]
        );
    }

    #[test]
    fn bundled_filters_by_name() {
        let cfg = parse_str("filter rbl dnsbl zone zen.example allow dns\n").unwrap();
        let f = wasm(&cfg, "rbl");
        assert_eq!(f.source, WasmSource::Bundled("dnsbl".into()));
        assert!(f.allow_dns && !f.allow_kv);
        assert_eq!(f.on_error, OnError::Tempfail);
    }

    #[test]
    fn builtin_filters_as_opensmtpd_writes_them() {
        let cfg = parse_str(
            "table bad { 192.0.2.0/24 }\n\
             filter a phase connect match !rdns disconnect \"550 no rDNS\"\n\
             filter b phase connect match src <bad> reject \"550 go away\"\n\
             filter c phase mail-from match !fcrdns junk\n\
             filter d phase helo match helo regex <bad> bypass\n",
        )
        .unwrap();
        let FilterKind::Builtin(a) = &cfg.filters["a"].kind else {
            panic!()
        };
        assert_eq!(a.phase, "connect");
        assert!(a.conditions[0].negated);
        assert_eq!(a.conditions[0].cond, Cond::From(FromCond::Rdns(None)));
        assert_eq!(
            a.decision,
            BuiltinDecision::Disconnect("550 no rDNS".into())
        );
        let FilterKind::Builtin(c) = &cfg.filters["c"].kind else {
            panic!()
        };
        assert_eq!(c.conditions[0].cond, Cond::Fcrdns);
        assert_eq!(c.decision, BuiltinDecision::Junk);
        for bad in [
            "filter x phase nowhere match rdns junk\n",
            "filter x phase connect rdns junk\n",
            "filter x phase connect match rdns\n",
            "filter x phase connect match rdns reject\n",
        ] {
            let err = parse_str(bad).unwrap_err().to_string();
            assert!(err.contains(":1:"), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_filter_options_say_where_and_why() {
        for (line, why) in [
            ("filter f wasm \"/f.wasm\" on-error maybe\n", "on-error"),
            ("filter f wasm \"/f.wasm\" memory lots\n", "invalid size"),
            (
                "filter f wasm \"/f.wasm\" timeout soon\n",
                "invalid duration",
            ),
            ("filter f wasm \"/f.wasm\" allow files\n", "capability"),
            ("filter f wasm \"/f.wasm\" fuel 1 fuel 2\n", "given twice"),
            ("filter f wasm \"/f.wasm\" zone\n", "value"),
            ("filter f wasm\n", "path"),
        ] {
            let err = parse_str(line).unwrap_err().to_string();
            assert!(err.contains(":1:") && err.contains(why), "{line}: {err}");
        }
    }
}
