//! regex: refuses (or marks as junk) what matches regular expressions, in
//! the spirit of OpenSMTPD's `filter … match regex`.
//!
//! Configuration (every pattern key repeatable, values are Rust regex
//! syntax matched against bytes like `regex::bytes`; add `(?i)` for case
//! folding):
//! - `helo RE` — the HELO/EHLO name;
//! - `mail-from RE`, `rcpt-to RE` — the address, without brackets;
//! - `header RE` — each unfolded header field, "Name: value";
//! - `body RE` — each body line;
//! - `action reject|junk` — default `reject`;
//! - `message TEXT` — the reply text, default "Message rejected by content
//!   filter", sent as `550 5.7.1 TEXT`.
//!
//! Only the phases the configured keys need are subscribed. helo,
//! mail-from and rcpt-to decide at once; header and body matches are
//! remembered and decided at `commit`. Every subscription is guarded by
//! its patterns (the message by the header patterns and by the body
//! patterns), so the host calls the filter only for what matches: on
//! clean mail it is never started.
//!
//! Patterns are compiled by the host (`host-regex`), once for the filter
//! and not per session, when an instance starts; a pattern that does not
//! compile is logged then and ignored. The patterns of a key are matched
//! together, in one pass over each line.

use std::rc::Rc;

use wasmtpd_filter::message::{MessageReader, Part};
use wasmtpd_filter::patterns::Patterns;
use wasmtpd_filter::{
    config, log, Decision, Filter, Guard, Guarded, Lines, LinesOut, Phase, Session, Subscriptions,
};

const DEFAULT_MESSAGE: &str = "Message rejected by content filter";

/// The patterns of one key, compiled on first use.
#[derive(Default, Clone)]
struct KeyPatterns {
    key: &'static str,
    sources: Vec<String>,
    compiled: Option<Patterns>,
}

impl KeyPatterns {
    fn new(key: &'static str) -> Self {
        KeyPatterns {
            key,
            ..KeyPatterns::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Compiles the patterns unless done; returns the errors, once.
    fn prepare(&mut self) -> Vec<String> {
        if self.compiled.is_some() {
            return Vec::new();
        }
        let (compiled, errors) = Patterns::compile_any(&self.sources);
        self.compiled = Some(compiled);
        errors
            .into_iter()
            .map(|e| {
                let source = &self.sources[e.index];
                format!("{} pattern {source:?} ignored: {}", self.key, e.message)
            })
            .collect()
    }

    /// A guard on the (prepared) patterns.
    fn guard(&self, on: Guarded) -> Option<Guard> {
        self.compiled.as_ref()?.guard(on)
    }

    /// Whether a (prepared) pattern matches.
    fn any_match(&self, text: &[u8]) -> bool {
        self.compiled.as_ref().is_some_and(|p| p.is_match(text))
    }

    /// Whether a pattern matches one of `lines` (CRLF-terminated), asked
    /// in one host call.
    fn any_match_line(&self, lines: &[u8]) -> bool {
        self.compiled
            .as_ref()
            .is_some_and(|p| p.is_match_any_line(lines))
    }

    #[cfg(test)]
    fn compiled_len(&self) -> usize {
        self.compiled.as_ref().map_or(0, Patterns::len)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Action {
    #[default]
    Reject,
    Junk,
}

#[derive(Clone)]
struct Rules {
    helo: KeyPatterns,
    mail_from: KeyPatterns,
    rcpt_to: KeyPatterns,
    header: KeyPatterns,
    body: KeyPatterns,
    action: Action,
    message: String,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            helo: KeyPatterns::new("helo"),
            mail_from: KeyPatterns::new("mail-from"),
            rcpt_to: KeyPatterns::new("rcpt-to"),
            header: KeyPatterns::new("header"),
            body: KeyPatterns::new("body"),
            action: Action::Reject,
            message: DEFAULT_MESSAGE.to_string(),
        }
    }
}

impl Rules {
    /// Reads the configuration pairs; the errors are for the log.
    fn parse(pairs: &[(String, String)]) -> (Rules, Vec<String>) {
        let mut rules = Rules::default();
        let mut errors = Vec::new();
        for (key, value) in pairs {
            let patterns = match key.as_str() {
                "helo" => &mut rules.helo,
                "mail-from" => &mut rules.mail_from,
                "rcpt-to" => &mut rules.rcpt_to,
                "header" => &mut rules.header,
                "body" => &mut rules.body,
                "action" => {
                    match value.trim().to_ascii_lowercase().as_str() {
                        "reject" => rules.action = Action::Reject,
                        "junk" => rules.action = Action::Junk,
                        other => errors.push(format!("unknown action {other:?}, using reject")),
                    }
                    continue;
                }
                "message" => {
                    rules.message = value.clone();
                    continue;
                }
                other => {
                    errors.push(format!("unknown key {other:?} ignored"));
                    continue;
                }
            };
            patterns.sources.push(value.clone());
        }
        (rules, errors)
    }

    fn subscriptions(&self) -> Subscriptions {
        let mut phases = Vec::new();
        if !self.helo.is_empty() {
            phases.extend([Phase::Helo, Phase::Ehlo]);
        }
        if !self.mail_from.is_empty() {
            phases.push(Phase::MailFrom);
        }
        if !self.rcpt_to.is_empty() {
            phases.push(Phase::RcptTo);
        }
        let content = !self.header.is_empty() || !self.body.is_empty();
        if content {
            phases.push(Phase::Commit);
        }
        let mut guards: Vec<Guard> = [Phase::Helo, Phase::Ehlo, Phase::MailFrom, Phase::RcptTo]
            .into_iter()
            .filter_map(|phase| self.for_phase(phase)?.guard(Guarded::Phase(phase)))
            .collect();
        // Two guards for the message are alternatives: the header
        // patterns over its fields and lines, the body patterns too (more
        // than the filter itself matches, which a guard may be).
        guards.extend(self.header.guard(Guarded::Message));
        guards.extend(self.body.guard(Guarded::Message));
        Subscriptions {
            phases,
            data_lines: content,
            reports: false,
            reusable: true,
            // Addresses are decided at once; only the message is kept.
            per_message: true,
            guards,
        }
    }

    fn verdict(&self) -> Decision {
        match self.action {
            Action::Reject => Decision::reject(550, "5.7.1", self.message.clone()),
            Action::Junk => Decision::Junk,
        }
    }

    /// The patterns for a phase's parameter (compiled by
    /// [`Rules::prepare_all`] at init).
    fn for_phase(&self, phase: Phase) -> Option<&KeyPatterns> {
        match phase {
            Phase::Helo | Phase::Ehlo => Some(&self.helo),
            Phase::MailFrom => Some(&self.mail_from),
            Phase::RcptTo => Some(&self.rcpt_to),
            _ => None,
        }
    }

    /// Compiles every key's patterns; errors for the log.
    fn prepare_all(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for key in [&mut self.helo, &mut self.mail_from, &mut self.rcpt_to] {
            errors.extend(key.prepare());
        }
        errors.extend(self.prepare_content());
        errors
    }

    /// Compiles the content patterns; errors for the log.
    fn prepare_content(&mut self) -> Vec<String> {
        let mut errors = self.header.prepare();
        errors.extend(self.body.prepare());
        errors
    }
}

/// The message being scanned.
#[derive(Default, Clone)]
struct Scan {
    reader: MessageReader,
    /// Header fields completed in the batch under way, one per line.
    fields: Lines,
    matched: bool,
    /// The last batch was seen; the next batch starts a new message.
    done: bool,
}

impl Scan {
    /// Looks at `lines` with the (prepared) content patterns: the header
    /// fields the batch completed, unfolded, in one host call, and its
    /// body lines in another.
    fn feed(&mut self, rules: &Rules, lines: &[u8], last: bool) {
        if self.done {
            *self = Scan::default();
        }
        let fields = &mut self.fields;
        let mut collect = |part: Part<'_>| {
            if let Part::Header(field) = part {
                fields.push(field);
            }
        };
        let body = self.reader.feed_header(lines, &mut collect);
        if last {
            self.reader.finish(&mut collect);
            self.done = true;
        }
        if !self.fields.is_empty() {
            let fields = std::mem::take(&mut self.fields);
            if !self.matched && rules.header.any_match_line(fields.as_bytes()) {
                self.matched = true;
            }
        }
        if !self.matched && rules.body.any_match_line(body) {
            self.matched = true;
        }
    }
}

/// The filter's value: the rules, shared (every session's value is a
/// copy of the one init left, and the rules never change after init),
/// and the message being scanned.
#[derive(Default, Clone)]
struct RegexFilter {
    rules: Rc<Rules>,
    scan: Scan,
}

fn log_errors(errors: Vec<String>) {
    for e in errors {
        log::error(&e);
    }
}

impl Filter for RegexFilter {
    fn init(&mut self) -> Subscriptions {
        let (mut rules, errors) = Rules::parse(&config::all());
        log_errors(errors);
        // Compiled here, once per instance: every session starts from a
        // copy of what init left (see the SDK), handles included.
        log_errors(rules.prepare_all());
        let subscriptions = rules.subscriptions();
        self.rules = Rc::new(rules);
        subscriptions
    }

    fn on_phase(&mut self, _: &Session, phase: Phase, param: &str) -> Decision {
        match phase {
            Phase::MailFrom => self.scan = Scan::default(),
            Phase::Commit => {
                let matched = std::mem::take(&mut self.scan).matched;
                if matched {
                    log::info("message content matched");
                    return self.rules.verdict();
                }
                return Decision::Proceed;
            }
            _ => {}
        }
        let patterns = self.rules.for_phase(phase);
        if patterns.is_some_and(|p| p.any_match(param.as_bytes())) {
            log::info(&format!("{} {param:?} matched", phase.name()));
            self.rules.verdict()
        } else {
            Decision::Proceed
        }
    }

    fn on_data_lines(&mut self, _: &Session, lines: Lines, last: bool) -> LinesOut {
        self.scan.feed(&self.rules, lines.as_bytes(), last);
        LinesOut::Pass
    }
}

wasmtpd_filter::export_filter!(RegexFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_subscription_is_guarded_by_its_patterns() {
        let (mut rules, _) = Rules::parse(&pairs(&[
            ("helo", "^bad$"),
            ("mail-from", "^spammer@"),
            ("header", "^Subject:.*pills"),
            ("body", "EICAR"),
        ]));
        assert!(rules.prepare_all().is_empty());
        let on: Vec<Guarded> = rules.subscriptions().guards.iter().map(|g| g.on).collect();
        assert_eq!(
            on,
            [
                Guarded::Phase(Phase::Helo),
                Guarded::Phase(Phase::Ehlo),
                Guarded::Phase(Phase::MailFrom),
                Guarded::Message,
                Guarded::Message
            ]
        );
    }

    /// `text`'s lines (split at LF) in the batch format.
    fn lines(text: &str) -> Vec<u8> {
        text.split('\n')
            .flat_map(|l| [l, "\r\n"])
            .collect::<String>()
            .into_bytes()
    }

    fn content_rules(kv: &[(&str, &str)]) -> Rules {
        let (mut rules, errors) = Rules::parse(&pairs(kv));
        assert!(errors.is_empty());
        assert!(rules.prepare_content().is_empty());
        rules
    }

    #[test]
    fn only_the_configured_phases_are_subscribed() {
        let (rules, errors) = Rules::parse(&pairs(&[("helo", "^bad"), ("rcpt-to", "x")]));
        assert!(errors.is_empty());
        let subs = rules.subscriptions();
        assert_eq!(subs.phases, [Phase::Helo, Phase::Ehlo, Phase::RcptTo]);
        assert!(!subs.data_lines);

        let (rules, _) = Rules::parse(&pairs(&[("body", "x")]));
        let subs = rules.subscriptions();
        assert_eq!(subs.phases, [Phase::Commit]);
        assert!(subs.data_lines);
    }

    #[test]
    fn broken_patterns_are_reported_once_and_skipped() {
        let (mut rules, errors) = Rules::parse(&pairs(&[("body", "(unclosed"), ("body", "ok")]));
        assert!(errors.is_empty(), "nothing compiles before it is needed");
        let errors = rules.prepare_content();
        assert_eq!(rules.body.compiled_len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("(unclosed"));
        assert!(errors[0].contains("unclosed group"), "{}", errors[0]);
        assert!(rules.prepare_content().is_empty());
    }

    #[test]
    fn phase_parameters_are_matched() {
        let (mut rules, _) = Rules::parse(&pairs(&[("mail-from", "(?i)@spam\\.example$")]));
        assert!(rules.prepare_all().is_empty());
        let patterns = rules.for_phase(Phase::MailFrom);
        assert!(patterns.unwrap().any_match(b"a@SPAM.example"));
        let patterns = rules.for_phase(Phase::Helo);
        assert!(!patterns.unwrap().any_match(b"a@SPAM.example"));
        assert!(rules.for_phase(Phase::Data).is_none());
    }

    #[test]
    fn action_and_message_shape_the_verdict() {
        let (rules, _) = Rules::parse(&pairs(&[("helo", "x")]));
        assert_eq!(
            rules.verdict(),
            Decision::reject(550, "5.7.1", DEFAULT_MESSAGE)
        );
        let (rules, _) = Rules::parse(&pairs(&[("message", "No thanks")]));
        assert_eq!(rules.verdict(), Decision::reject(550, "5.7.1", "No thanks"));
        let (rules, _) = Rules::parse(&pairs(&[("action", "junk")]));
        assert_eq!(rules.verdict(), Decision::Junk);
    }

    #[test]
    fn headers_are_matched_unfolded_and_bodies_by_line() {
        let rules = content_rules(&[("header", "^Subject: .*cheap pills")]);
        let mut scan = Scan::default();
        scan.feed(&rules, &lines("Subject: buy\n cheap pills\nFrom: a"), false);
        // The folded field is only complete once the next field starts.
        assert!(scan.matched);

        let mut scan = Scan::default();
        scan.feed(&rules, &lines("From: a\n\nSubject: cheap pills"), true);
        assert!(!scan.matched, "a body line is not a header");

        let rules = content_rules(&[("body", "(?i)click here")]);
        let mut scan = Scan::default();
        scan.feed(&rules, &lines("Subject: hi\n"), false);
        scan.feed(&rules, b"Please CLICK HERE \xff\xfe\r\n", true);
        assert!(scan.matched, "invalid UTF-8 does not stop a match");
    }

    #[test]
    fn byte_patterns_match_non_utf8_lines() {
        let rules = content_rules(&[("body", r"(?-u:\xff)")]);
        let mut scan = Scan::default();
        scan.feed(&rules, &lines("A: b\n\nplain"), false);
        assert!(!scan.matched);
        scan.feed(&rules, b"a\xffb\r\n", true);
        assert!(scan.matched);
    }

    #[test]
    fn a_new_message_starts_clean() {
        let rules = content_rules(&[("body", "spam")]);
        let mut scan = Scan::default();
        scan.feed(&rules, &lines("A: b\n\nspam"), true);
        assert!(scan.matched);
        // No commit reached us (another filter refused first): the next
        // message's first batch resets.
        scan.feed(&rules, &lines("A: b\n\nham"), true);
        assert!(!scan.matched);
    }
}
