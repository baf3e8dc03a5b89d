//! spamscore: scores each message with content rules and DNS blocklists,
//! adds `X-Spam-Score` and `X-Spam-Status` at the top of the header, and
//! marks messages at or above the threshold as junk.
//!
//! Configuration:
//! - `rule "[NAME] SCORE header|body REGEX"` (repeatable) — SCORE is added
//!   once per message when REGEX (Rust syntax, matched against bytes; use
//!   `(?i)` for case folding) matches an unfolded header field ("Subject:
//!   cheap pills") or a body line. Unnamed rules are called R1, R2, … by
//!   their position among the rules; a NAME (letters, digits, `_`, `-`)
//!   can be given first: `rule "PILLS 3.5 header ^Subject:.*(?i)viagra"`.
//!   Negative scores are allowed.
//! - `dnsbl "SCORE ZONE"` (repeatable) — the client's address is looked
//!   up at connect as the dnsbl filter does; a listing adds SCORE to every
//!   message of the session, as test `DNSBL_ZONE`. Needs `allow dns`;
//!   lookup errors count as not listed.
//! - `threshold SCORE` — default 5.0; at or above it the message is junk.
//! - `max-scan BYTES` — how much of the message is scanned, default
//!   262144: body lines after that pass unscanned. Nothing is held back:
//!   lines pass on as they come, and the score's fields go on top of the
//!   message with the last batch (`prepend` in the interface).
//!
//! `X-Spam-Score`/`X-Spam-Status` fields the message already carries are
//! removed (only the batch holding them is copied), so a sender cannot
//! vouch for itself.
//!
//! Without `dnsbl` the filter keeps nothing between messages and says so
//! (`per-message`): any free instance may score the next message.
//!
//! Bad rules, zones or numbers are logged and skipped (defaults kept).
//! Patterns are compiled by the host (`host-regex`), once for the filter
//! rather than per session, when an instance starts; a pattern that does
//! not compile is logged then.

use std::net::IpAddr;
use std::rc::Rc;

use wasmtpd_filter::message::{MessageReader, Part};
use wasmtpd_filter::patterns::Patterns;
use wasmtpd_filter::{
    config, lines, log, net, Decision, Filter, Lines, LinesOut, Phase, Session, Subscriptions,
};

const DEFAULT_THRESHOLD: f64 = 5.0;
const DEFAULT_MAX_SCAN: usize = 262_144;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Header,
    Body,
}

/// A rule as configured.
#[derive(Debug, Clone, PartialEq)]
struct RuleSpec {
    name: String,
    score: f64,
    target: Target,
    pattern: String,
}

/// The rules compiled: one pattern set per target, matched in one pass
/// over each line; `*_rules` map a set's pattern to its rule's index.
#[derive(Debug, Default, Clone)]
struct Compiled {
    header: Patterns,
    header_rules: Vec<usize>,
    body: Patterns,
    body_rules: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
struct DnsblRule {
    name: String,
    score: f64,
    zone: String,
}

fn parse_score(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Splits off the first space-separated word.
fn word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], s[end..].trim_start()))
}

/// Parses `"[NAME] SCORE header|body REGEX"`; `position` is the rule's
/// 1-based index, for its default name.
fn parse_rule(value: &str, position: usize) -> Result<RuleSpec, String> {
    let (first, rest) = word(value).ok_or("empty rule")?;
    let (name, score, rest) = match parse_score(first) {
        Some(score) => (format!("R{position}"), score, rest),
        None => {
            if !valid_name(first) {
                return Err(format!("bad rule name or score {first:?}"));
            }
            let (score, rest) = word(rest).ok_or("missing score")?;
            let score = parse_score(score).ok_or_else(|| format!("bad score {score:?}"))?;
            (first.to_string(), score, rest)
        }
    };
    let (target, pattern) = word(rest).ok_or("missing header|body")?;
    let target = match target.to_ascii_lowercase().as_str() {
        "header" => Target::Header,
        "body" => Target::Body,
        other => return Err(format!("expected header or body, not {other:?}")),
    };
    if pattern.is_empty() {
        return Err("missing pattern".into());
    }
    Ok(RuleSpec {
        name,
        score,
        target,
        pattern: pattern.to_string(),
    })
}

/// Parses `"SCORE ZONE"`.
fn parse_dnsbl(value: &str) -> Result<DnsblRule, String> {
    let (score, zone) = word(value).ok_or("empty dnsbl")?;
    let score = parse_score(score).ok_or_else(|| format!("bad score {score:?}"))?;
    let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
    if !net::valid_zone(&zone) {
        return Err(format!(
            "invalid zone {:?}",
            zone.escape_debug().to_string()
        ));
    }
    Ok(DnsblRule {
        name: format!("DNSBL_{zone}"),
        score,
        zone,
    })
}

#[derive(Clone)]
struct Settings {
    specs: Vec<RuleSpec>,
    /// The rules, compiled at `init` (see [`Settings::prepare`]).
    compiled: Option<Compiled>,
    dnsbls: Vec<DnsblRule>,
    threshold: f64,
    max_scan: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            specs: Vec::new(),
            compiled: None,
            dnsbls: Vec::new(),
            threshold: DEFAULT_THRESHOLD,
            max_scan: DEFAULT_MAX_SCAN,
        }
    }
}

impl Settings {
    /// Reads the configuration pairs; the errors are for the log.
    fn parse(pairs: &[(String, String)]) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let mut errors = Vec::new();
        let mut position = 0;
        for (key, value) in pairs {
            match key.as_str() {
                "rule" => {
                    position += 1;
                    match parse_rule(value, position) {
                        Ok(rule) => s.specs.push(rule),
                        Err(e) => errors.push(format!("rule {position} ignored: {e}")),
                    }
                }
                "dnsbl" => match parse_dnsbl(value) {
                    Ok(d) => s.dnsbls.push(d),
                    Err(e) => errors.push(format!("dnsbl {value:?} ignored: {e}")),
                },
                "threshold" => match parse_score(value.trim()) {
                    Some(t) => s.threshold = t,
                    None => errors.push(format!("bad threshold {value:?}")),
                },
                "max-scan" => match value.trim().parse() {
                    Ok(n) => s.max_scan = n,
                    Err(_) => errors.push(format!("bad max-scan {value:?}")),
                },
                other => errors.push(format!("unknown key {other:?} ignored")),
            }
        }
        (s, errors)
    }

    /// Compiles the rules unless done; returns the errors, once.
    fn prepare(&mut self) -> Vec<String> {
        if self.compiled.is_some() {
            return Vec::new();
        }
        let mut errors = Vec::new();
        let mut compiled = Compiled::default();
        for target in [Target::Header, Target::Body] {
            let rules: Vec<usize> = (0..self.specs.len())
                .filter(|&i| self.specs[i].target == target)
                .collect();
            let sources: Vec<&str> = rules
                .iter()
                .map(|&i| self.specs[i].pattern.as_str())
                .collect();
            let (set, failed) = Patterns::compile(&sources);
            errors.extend(failed.into_iter().map(|e| {
                let spec = &self.specs[rules[e.index]];
                format!(
                    "rule {} ignored: bad pattern {:?}: {}",
                    spec.name, spec.pattern, e.message
                )
            }));
            match target {
                Target::Header => (compiled.header, compiled.header_rules) = (set, rules),
                Target::Body => (compiled.body, compiled.body_rules) = (set, rules),
            }
        }
        self.compiled = Some(compiled);
        errors
    }

    fn subscriptions(&self) -> Subscriptions {
        let mut phases = Vec::new();
        if !self.dnsbls.is_empty() {
            phases.push(Phase::Connect);
        }
        phases.push(Phase::Commit);
        Subscriptions {
            phases,
            data_lines: true,
            reports: false,
            reusable: true,
            // The DNSBL answers from the connection are the session's.
            per_message: self.dnsbls.is_empty(),
            guards: Vec::new(),
        }
    }
}

/// A message's score and the tests that made it.
#[derive(Debug, Clone, PartialEq)]
struct Score {
    total: f64,
    tests: Vec<String>,
}

impl Score {
    /// The two fields, built by hand: the float formatting machinery is
    /// a large piece of code to bring into the caches on every message.
    fn headers(&self, threshold: f64) -> [Vec<u8>; 2] {
        let verdict = if self.total >= threshold { "Yes" } else { "No" };
        let mut score = String::from("X-Spam-Score: ");
        push_tenths(&mut score, self.total);
        let mut status = String::from("X-Spam-Status: ");
        status.push_str(verdict);
        status.push_str(", score=");
        push_tenths(&mut status, self.total);
        status.push_str(" required=");
        push_tenths(&mut status, threshold);
        status.push_str(" tests=");
        if self.tests.is_empty() {
            status.push_str("none");
        }
        for (i, test) in self.tests.iter().enumerate() {
            if i > 0 {
                status.push(',');
            }
            status.push_str(test);
        }
        [score.into_bytes(), status.into_bytes()]
    }
}

/// `x` rounded to one decimal ("6.5", "-1.0"), as SpamAssassin shows
/// scores; halves round away from zero.
fn push_tenths(out: &mut String, x: f64) {
    let t = (x * 10.0).round();
    if !t.is_finite() || t.abs() >= 1e15 {
        out.push_str(&format!("{x:.1}"));
        return;
    }
    let t = t as i64;
    if t < 0 {
        out.push('-');
    }
    let t = t.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut n = t / 10;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[at..].iter().for_each(|d| out.push(char::from(*d)));
    out.push('.');
    out.push(char::from(b'0' + (t % 10) as u8));
}

fn is_spam_field(line: &[u8]) -> bool {
    [&b"x-spam-score:"[..], b"x-spam-status:"]
        .iter()
        .any(|p| line.len() >= p.len() && line[..p.len()].eq_ignore_ascii_case(p))
}

/// One message on its way through.
#[derive(Default, Clone)]
struct Message {
    reader: MessageReader,
    /// Header fields completed in the batch under way, unfolded, one per
    /// line: matched in one host call.
    fields: Lines,
    hits: Vec<bool>,
    /// Bytes of the message seen so far: past `max-scan`, the body is no
    /// longer matched.
    seen: usize,
    /// Dropping a forged X-Spam field and its continuation lines.
    dropping: bool,
    /// The message's score, once its last batch went through.
    score: Option<Score>,
    /// The last batch went through: the next batch is a new message.
    done: bool,
}

impl Message {
    fn scan(&mut self, line: &[u8]) {
        let fields = &mut self.fields;
        self.reader.feed(line, |part| {
            if let Part::Header(field) = part {
                fields.push(field);
            }
        });
    }

    /// Marks the header rules matching the fields read so far.
    fn match_fields(&mut self, settings: &Settings) {
        let Some(c) = &settings.compiled else { return };
        if self.fields.is_empty() {
            return;
        }
        let hits = &mut self.hits;
        hits.resize(settings.specs.len(), false);
        c.header
            .each_match_any_line(self.fields.as_bytes(), |i| hits[c.header_rules[i]] = true);
        self.fields = Lines::new();
    }

    fn scan_body(&mut self, settings: &Settings, body: &[u8]) {
        let Some(c) = &settings.compiled else { return };
        let hits = &mut self.hits;
        hits.resize(settings.specs.len(), false);
        c.body
            .each_match_any_line(body, |i| hits[c.body_rules[i]] = true);
    }

    fn total(&mut self, settings: &Settings, listed: &[(String, f64)]) -> Score {
        let fields = &mut self.fields;
        self.reader.finish(|part| {
            if let Part::Header(field) = part {
                fields.push(field);
            }
        });
        self.match_fields(settings);
        let hits = &mut self.hits;
        hits.resize(settings.specs.len(), false);
        let mut score = Score {
            total: 0.0,
            tests: Vec::new(),
        };
        let rules = &settings.specs;
        for (rule, _) in rules.iter().zip(hits.iter()).filter(|(_, hit)| **hit) {
            score.total += rule.score;
            score.tests.push(rule.name.clone());
        }
        for (name, points) in listed {
            score.total += points;
            score.tests.push(name.clone());
        }
        score
    }

    /// Takes a batch; returns what goes on: the batch as it came, or
    /// without the forged X-Spam fields it held. The score's fields go
    /// on top at the end (see `prepend`), so nothing is held back.
    fn feed(
        &mut self,
        settings: &Settings,
        listed: &[(String, f64)],
        batch: &[u8],
        last: bool,
    ) -> LinesOut {
        if self.done {
            *self = Message::default();
        }
        self.done = last;
        let mut lines = lines::iter(batch);
        // The batch without the forged fields, from the first one on.
        let mut kept: Option<Lines> = None;
        let mut at = 0;
        while !self.reader.in_body() {
            let Some(line) = lines.next() else { break };
            let start = at;
            at += line.len() + 2;
            if !line.is_empty() {
                let continues = matches!(line[0], b' ' | b'\t');
                if !continues {
                    self.dropping = is_spam_field(line);
                }
                if self.dropping {
                    kept.get_or_insert_with(|| Lines::from_bytes(batch[..start].to_vec()));
                    continue;
                }
            }
            if let Some(kept) = &mut kept {
                kept.push(line);
            }
            self.scan(line);
        }
        self.match_fields(settings);
        // The rest of the batch is body: matched in one host call.
        let body = lines.rest();
        if self.seen <= settings.max_scan {
            self.scan_body(settings, body);
        }
        self.seen += batch.len();
        if last {
            self.score = Some(self.total(settings, listed));
        }
        match kept {
            Some(mut kept) => {
                kept.push_lines(body);
                kept.into()
            }
            None => LinesOut::Pass,
        }
    }
}

#[derive(Default, Clone)]
struct SpamScore {
    /// Shared by every session's copy of the value: never changed
    /// after init.
    settings: Rc<Settings>,
    /// DNSBL tests the client matched at connect: (name, score).
    listed: Vec<(String, f64)>,
    message: Message,
}

impl SpamScore {
    fn check_client(&mut self, ip: IpAddr) {
        for d in &self.settings.dnsbls {
            match net::dnsbl_listed(ip, &d.zone) {
                Ok(true) => self.listed.push((d.name.clone(), d.score)),
                Ok(false) => {}
                Err(e) => log::warn(&format!("lookup of {ip} at {} failed: {e}", d.zone)),
            }
        }
    }
}

impl Filter for SpamScore {
    fn init(&mut self) -> Subscriptions {
        let (mut settings, errors) = Settings::parse(&config::all());
        for e in errors {
            log::error(&e);
        }
        // Compiled here, once per instance: every session starts from a
        // copy of what init left (see the SDK), handles included.
        for e in settings.prepare() {
            log::error(&e);
        }
        let subscriptions = settings.subscriptions();
        self.settings = Rc::new(settings);
        subscriptions
    }

    fn on_phase(&mut self, _: &Session, phase: Phase, param: &str) -> Decision {
        match phase {
            // The parameter is the client's address: no need to fetch
            // the session's record.
            Phase::Connect => {
                if let Some(ip) = net::client_ip(param) {
                    self.check_client(ip);
                }
                Decision::Proceed
            }
            Phase::Commit => {
                let mut message = std::mem::take(&mut self.message);
                let score = match message.score.take() {
                    Some(s) => s,
                    None => message.total(&self.settings, &self.listed),
                };
                if score.total >= self.settings.threshold {
                    log::info(&format!("junk, score {:.1}", score.total));
                    Decision::Junk
                } else {
                    Decision::Proceed
                }
            }
            _ => Decision::Proceed,
        }
    }

    fn on_data_lines(&mut self, _: &Session, lines: Lines, last: bool) -> LinesOut {
        self.message
            .feed(&self.settings, &self.listed, lines.as_bytes(), last)
    }

    fn prepend(&mut self, _: &Session) -> Lines {
        let mut top = Lines::new();
        if let Some(score) = &self.message.score {
            for field in score.headers(self.settings.threshold) {
                top.push(&field);
            }
        }
        top
    }
}

wasmtpd_filter::export_filter!(SpamScore);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kv: &[(&str, &str)]) -> Settings {
        let pairs: Vec<_> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (mut s, errors) = Settings::parse(&pairs);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(s.prepare().is_empty());
        s
    }

    /// `text`'s lines (split at LF) in the batch format.
    fn lines(text: &str) -> Vec<u8> {
        text.split('\n')
            .flat_map(|l| [l, "\r\n"])
            .collect::<String>()
            .into_bytes()
    }

    /// The lines a filter replaced a batch with; a batch passed on as is
    /// is none of these.
    fn out(answer: LinesOut) -> Vec<String> {
        match answer {
            LinesOut::Pass => panic!("passed, not replaced"),
            LinesOut::Replace(bytes) => lines::iter(&bytes)
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect(),
        }
    }

    /// The fields that go on top once the message went through.
    fn top(m: &Message, s: &Settings) -> String {
        let score = m.score.as_ref().expect("scored");
        score
            .headers(s.threshold)
            .map(|f| String::from_utf8_lossy(&f).into_owned())
            .join("\n")
    }

    #[test]
    fn scores_show_one_decimal() {
        let shown = |x: f64| {
            let mut s = String::new();
            push_tenths(&mut s, x);
            s
        };
        assert_eq!(shown(0.0), "0.0");
        assert_eq!(shown(6.5), "6.5");
        assert_eq!(shown(1000.0), "1000.0");
        assert_eq!(shown(2.25), "2.3");
        assert_eq!(shown(-1.5), "-1.5");
        assert_eq!(shown(-0.04), "0.0");
        assert_eq!(shown(0.1 + 0.2), "0.3");
        assert_eq!(shown(1e300), format!("{:.1}", 1e300));
    }

    #[test]
    fn rules_parse_with_and_without_names() {
        let r = parse_rule("3.5 header ^Subject:.*(?i)viagra", 1).unwrap();
        assert_eq!(
            (r.name.as_str(), r.score, r.target),
            ("R1", 3.5, Target::Header)
        );
        assert!(Patterns::compile(&[&r.pattern])
            .0
            .is_match(b"Subject: cheap VIAGRA"));
        let r = parse_rule("CLICK -1 body (?i)click  here", 2).unwrap();
        assert_eq!(
            (r.name.as_str(), r.score, r.target),
            ("CLICK", -1.0, Target::Body)
        );
        assert_eq!(
            r.pattern, "(?i)click  here",
            "the pattern keeps inner spaces"
        );
        assert!(parse_rule("3 subject x", 1).is_err());
        assert!(parse_rule("3 body", 1).is_err());
        assert!(parse_rule("bad;name 3 body x", 1).is_err());
        assert!(parse_rule("NaN body x", 1).is_err());
    }

    #[test]
    fn default_names_count_every_rule_position() {
        let (s, errors) = Settings::parse(&[
            ("rule".into(), "1 body a".into()),
            ("rule".into(), "1 nowhere a".into()),
            ("rule".into(), "1 body c".into()),
            ("threshold".into(), "3".into()),
            ("max-scan".into(), "lots".into()),
        ]);
        let names: Vec<_> = s.specs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["R1", "R3"]);
        assert_eq!(errors.len(), 2);
        assert_eq!((s.threshold, s.max_scan), (3.0, DEFAULT_MAX_SCAN));
    }

    #[test]
    fn rules_that_do_not_compile_are_dropped_once() {
        let (mut s, errors) = Settings::parse(&[
            ("rule".into(), "1 body (".into()),
            ("rule".into(), "1 body ok".into()),
        ]);
        assert!(errors.is_empty(), "compiled when the first message comes");
        let errors = s.prepare();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("rule R1 ignored"), "{}", errors[0]);
        let c = s.compiled.as_ref().unwrap();
        assert_eq!((c.body.len(), c.body_rules.as_slice()), (1, &[0, 1][..]));
        let mut m = Message::default();
        m.feed(&s, &[], &lines("A: b\n\nok ("), true);
        assert_eq!(m.score.unwrap().tests, ["R2"]);
        assert!(s.prepare().is_empty());
    }

    #[test]
    fn dnsbl_entries_need_a_score_and_a_clean_zone() {
        assert_eq!(
            parse_dnsbl("2.5 zen.spamhaus.org").unwrap(),
            DnsblRule {
                name: "DNSBL_zen.spamhaus.org".into(),
                score: 2.5,
                zone: "zen.spamhaus.org".into()
            }
        );
        assert!(parse_dnsbl("zen.spamhaus.org").is_err());
        assert!(parse_dnsbl("1 bad zone").is_err());
        let s = settings(&[("dnsbl", "1 bl.example")]);
        assert_eq!(s.subscriptions().phases, [Phase::Connect, Phase::Commit]);
        let s = settings(&[]);
        assert_eq!(s.subscriptions().phases, [Phase::Commit]);
    }

    #[test]
    fn status_headers_go_on_top_once_the_message_is_complete() {
        let s = settings(&[
            ("rule", "3.5 header ^Subject:.*(?i)viagra"),
            ("rule", "2 body (?i)click here"),
            ("rule", "9 body never"),
            ("rule", "1 body click"),
        ]);
        let mut m = Message::default();
        let first = m.feed(
            &s,
            &[],
            &lines("Subject: cheap\n Viagra\nFrom: a@b\n"),
            false,
        );
        assert_eq!(first, LinesOut::Pass, "nothing held back");
        assert!(m.score.is_none());
        let last = m.feed(&s, &[], &lines("Click here\nclick again"), true);
        assert_eq!(last, LinesOut::Pass);
        assert_eq!(
            top(&m, &s),
            "X-Spam-Score: 6.5\n\
             X-Spam-Status: Yes, score=6.5 required=5.0 tests=R1,R2,R4"
        );
        assert_eq!(
            m.score.as_ref().unwrap().total,
            6.5,
            "each rule counts once"
        );
    }

    #[test]
    fn clean_mail_says_no_and_dnsbl_points_count() {
        let s = settings(&[("rule", "1 body x")]);
        let mut m = Message::default();
        let listed = [("DNSBL_bl.example".to_string(), 1.5)];
        m.feed(&s, &listed, &lines("A: b\n\nhello"), true);
        assert_eq!(
            top(&m, &s),
            "X-Spam-Score: 1.5\nX-Spam-Status: No, score=1.5 required=5.0 tests=DNSBL_bl.example"
        );
        let (s, mut m) = (settings(&[]), Message::default());
        m.feed(&s, &[], &lines("A: b\n\nhello"), true);
        assert_eq!(
            top(&m, &s),
            "X-Spam-Score: 0.0\nX-Spam-Status: No, score=0.0 required=5.0 tests=none"
        );
    }

    #[test]
    fn big_messages_are_scanned_up_to_max_scan() {
        let s = settings(&[("max-scan", "20"), ("rule", "1 body late")]);
        let mut m = Message::default();
        assert_eq!(m.feed(&s, &[], &lines("A: b\n"), false), LinesOut::Pass);
        let answer = m.feed(&s, &[], &lines("0123456789\n0123456789"), false);
        assert_eq!(answer, LinesOut::Pass);
        let answer = m.feed(&s, &[], &lines("late"), true);
        assert_eq!(answer, LinesOut::Pass, "not scanned");
        assert!(!m.score.as_ref().unwrap().tests.contains(&"R1".to_string()));
    }

    #[test]
    fn forged_status_fields_are_dropped() {
        let mut m = Message::default();
        let answer = m.feed(
            &settings(&[]),
            &[],
            &lines("From: a\nX-Spam-Status: No,\n  tests=none\nx-spam-score: -10\nSubject: s\n\nX-Spam-Score: body"),
            true,
        );
        assert_eq!(
            out(answer).join("\n"),
            "From: a\nSubject: s\n\nX-Spam-Score: body"
        );
    }

    #[test]
    fn each_message_is_scored_afresh() {
        let s = settings(&[("rule", "6 body spam")]);
        let mut m = Message::default();
        m.feed(&s, &[], &lines("A: b\n\nspam"), true);
        assert_eq!(m.score.as_ref().unwrap().total, 6.0);
        m.feed(&s, &[], &lines("A: b\n\nham"), true);
        assert!(top(&m, &s).starts_with("X-Spam-Score: 0.0"));
    }
}
