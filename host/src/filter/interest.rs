//! What a filter asked to see (its `init` answer) and the host's checks
//! before handing it an event: subscriptions, and guards, pattern sets
//! the host matches first so that a filter whose answer can only be
//! "proceed" is not called.
//!
//! A call costs far more in a busy daemon than the filter's own work:
//! every instance a session touches and every call into it is cold in
//! the caches (measured: ~9 µs for a call that does nothing, against
//! ~0.5 µs hot). A regex filter on clean mail answers "proceed" to
//! everything; with guards its instance is not even started.

use std::sync::Arc;

use super::bindings::{Guarded, Phase, Subscriptions};
use super::regex::{CompiledSet, RegexCache};

/// Guards one filter may give: every check is host work done for it on
/// every session, outside its fuel and budgets. A guard per phase and a
/// few for the message are plenty.
pub const MAX_GUARDS: usize = 32;

/// A filter's `init` answer with its guards resolved to compiled sets.
pub struct Interest {
    pub subscriptions: Subscriptions,
    phase_guards: Vec<(Phase, Arc<CompiledSet>)>,
    message_guards: Vec<Arc<CompiledSet>>,
}

impl Interest {
    /// Resolves the guards' `host-regex` handles in the filter's sets.
    /// A handle the filter never got from `compile`, or too many guards,
    /// is a bad answer.
    pub fn resolve(subscriptions: Subscriptions, sets: &RegexCache) -> Result<Interest, String> {
        if subscriptions.guards.len() > MAX_GUARDS {
            return Err(format!("more than {MAX_GUARDS} guards"));
        }
        let mut phase_guards = Vec::new();
        let mut message_guards = Vec::new();
        for guard in &subscriptions.guards {
            let set = sets
                .get(guard.patterns)
                .ok_or_else(|| format!("guard with unknown pattern set {}", guard.patterns))?;
            match guard.on {
                Guarded::Phase(phase) => phase_guards.push((phase, set)),
                Guarded::Message => message_guards.push(set),
            }
        }
        Ok(Interest {
            subscriptions,
            phase_guards,
            message_guards,
        })
    }

    /// Nothing asked for yet: the answer of an instance before `init`.
    pub fn nothing() -> Interest {
        Interest {
            subscriptions: Subscriptions {
                phases: Vec::new(),
                data_lines: false,
                reports: false,
                reusable: false,
                per_message: false,
                guards: Vec::new(),
            },
            phase_guards: Vec::new(),
            message_guards: Vec::new(),
        }
    }

    pub fn subscribed(&self, phase: Phase) -> bool {
        self.subscriptions.phases.contains(&phase)
    }

    /// Whether the filter wants `phase` with this parameter: subscribed,
    /// and, when it guarded the phase, a pattern of one of those guards
    /// matches `param`.
    pub fn wants_phase(&self, phase: Phase, param: &str) -> bool {
        let mut guards = self
            .phase_guards
            .iter()
            .filter(|(p, _)| *p == phase)
            .peekable();
        self.subscribed(phase)
            && (guards.peek().is_none() || guards.any(|(_, set)| set.is_match(param.as_bytes())))
    }

    /// Whether the filter wants this message (CRLF lines) at all: its
    /// lines, and its commit phase. With message guards, a pattern of one
    /// of them must match one of the message's unfolded header fields or
    /// one of its body lines. The fields are unfolded into a buffer of
    /// one field per line, so both parts are searched whole (a search per
    /// line costs more than the matching of a short line).
    pub fn wants_message(&self, content: &[u8]) -> bool {
        if self.message_guards.is_empty() {
            return true;
        }
        let (header, body) = split_header(content);
        let fields = unfold(header);
        self.message_guards
            .iter()
            .any(|set| set.any_line_may_match(&fields) || set.any_line_may_match(body))
    }

    #[cfg(test)]
    pub fn guards_message(&self) -> bool {
        !self.message_guards.is_empty()
    }
}

/// The header (its lines, CRLF ended) and the body after the empty line
/// between them; a message without that line is all header.
fn split_header(content: &[u8]) -> (&[u8], &[u8]) {
    if let Some(body) = content.strip_prefix(b"\r\n") {
        return (&[], body);
    }
    match memchr::memmem::find(content, b"\r\n\r\n") {
        Some(i) => (&content[..i + 2], &content[i + 4..]),
        None => (content, &[]),
    }
}

/// Header lines with each field's continuation lines joined to it,
/// without their CRLF (as the SDK's `MessageReader` gives fields), one
/// field per CRLF-ended line.
fn unfold(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len());
    for line in header.split_inclusive(|&b| b == b'\n') {
        let line = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        let continues = matches!(line.first(), Some(b' ' | b'\t'));
        if continues && !out.is_empty() {
            out.truncate(out.len() - 2);
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::bindings::Guard;

    fn interest(guards: &[(Guarded, &[&str])]) -> Interest {
        let sets = RegexCache::default();
        let mut subscriptions = Interest::nothing().subscriptions;
        subscriptions.phases = vec![Phase::Helo, Phase::MailFrom, Phase::Commit];
        subscriptions.data_lines = true;
        for (on, patterns) in guards {
            let patterns = patterns.iter().map(|p| p.to_string()).collect();
            let (handle, _) = sets.compile(patterns).unwrap();
            subscriptions.guards.push(Guard {
                on: *on,
                patterns: handle,
            });
        }
        Interest::resolve(subscriptions, &sets).unwrap()
    }

    #[test]
    fn a_guarded_phase_is_wanted_only_when_a_pattern_matches() {
        let i = interest(&[(Guarded::Phase(Phase::MailFrom), &["^spammer@", "@bad\\."])]);
        assert!(i.wants_phase(Phase::MailFrom, "spammer@example.org"));
        assert!(i.wants_phase(Phase::MailFrom, "x@bad.example"));
        assert!(!i.wants_phase(Phase::MailFrom, "alice@example.org"));
        // Unguarded phases go by the subscription alone.
        assert!(i.wants_phase(Phase::Helo, "anything"));
        assert!(!i.wants_phase(Phase::RcptTo, "bob@example.org"));
    }

    #[test]
    fn a_message_guard_matches_unfolded_fields_and_body_lines() {
        let i = interest(&[(Guarded::Message, &["^Subject:.*pills", "EICAR"])]);
        assert!(i.guards_message());
        let clean = b"From: a@b\r\nSubject: hello\r\n\r\nnothing here\r\n";
        assert!(!i.wants_message(clean));
        // The field matches only once unfolded.
        let folded = b"From: a@b\r\nSubject: cheap\r\n pills\r\n\r\nbody\r\n";
        assert!(i.wants_message(folded));
        let body = b"Subject: hi\r\n\r\nline\r\nX5O!P%@AP EICAR test\r\n";
        assert!(i.wants_message(body));
        // No empty line: all header; a last field is still a field.
        assert!(i.wants_message(b"Subject: pills"));
        assert!(!i.wants_message(b""));
        // A pattern anchored to the whole text is matched field by field.
        let anchored = interest(&[(Guarded::Message, &["(?-m)^Subject:.*pills$"])]);
        assert!(anchored.wants_message(b"From: a\r\nSubject: more\r\n\tpills\r\n\r\n"));
        assert!(!anchored.wants_message(b"From: a\r\nSubject: more\r\n\r\npills\r\n"));
    }

    #[test]
    fn several_guards_for_one_event_are_alternatives() {
        let i = interest(&[
            (Guarded::Message, &["^Subject:.*pills"]),
            (Guarded::Message, &["EICAR"]),
            (Guarded::Phase(Phase::MailFrom), &["^a@"]),
            (Guarded::Phase(Phase::MailFrom), &["^b@"]),
        ]);
        assert!(i.wants_message(b"Subject: pills\r\n\r\nclean\r\n"));
        assert!(i.wants_message(b"Subject: hi\r\n\r\nEICAR\r\n"));
        assert!(!i.wants_message(b"Subject: hi\r\n\r\nclean\r\n"));
        assert!(i.wants_phase(Phase::MailFrom, "b@example.org"));
        assert!(!i.wants_phase(Phase::MailFrom, "c@example.org"));
    }

    #[test]
    fn too_many_guards_are_a_bad_answer() {
        let sets = RegexCache::default();
        let (handle, _) = sets.compile(vec!["x".into()]).unwrap();
        let mut subscriptions = Interest::nothing().subscriptions;
        subscriptions.guards = vec![
            Guard {
                on: Guarded::Message,
                patterns: handle,
            };
            MAX_GUARDS + 1
        ];
        assert!(Interest::resolve(subscriptions, &sets).is_err());
    }

    #[test]
    fn no_guard_wants_every_message_and_an_unknown_set_is_refused() {
        assert!(interest(&[]).wants_message(b"Subject: x\r\n\r\n"));
        let mut subscriptions = Interest::nothing().subscriptions;
        subscriptions.guards.push(Guard {
            on: Guarded::Message,
            patterns: 7,
        });
        let err = Interest::resolve(subscriptions, &RegexCache::default()).err();
        assert_eq!(err.as_deref(), Some("guard with unknown pattern set 7"));
    }

    #[test]
    fn header_and_body_split_at_the_first_empty_line() {
        assert_eq!(
            split_header(b"A: 1\r\n\r\nb\r\n\r\nc\r\n"),
            (&b"A: 1\r\n"[..], &b"b\r\n\r\nc\r\n"[..])
        );
        assert_eq!(split_header(b"\r\nbody\r\n"), (&b""[..], &b"body\r\n"[..]));
        assert_eq!(split_header(b"A: 1\r\n"), (&b"A: 1\r\n"[..], &b""[..]));
        assert_eq!(
            unfold(b"A: 1\r\n 2\r\n\t3\r\nB: 4\r\n"),
            b"A: 1 2\t3\r\nB: 4\r\n"
        );
        // A first line that looks like a continuation starts a field.
        assert_eq!(unfold(b" odd\r\nB: 4\r\n"), b" odd\r\nB: 4\r\n");
    }
}
