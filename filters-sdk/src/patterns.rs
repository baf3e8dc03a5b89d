//! Sets of regular expressions matched against bytes, compiled and run by
//! the host (`host-regex`): Rust regex syntax with `regex::bytes`
//! semantics (Unicode aware, `(?-u:\xFF)` allowed).
//!
//! A set is compiled once for the filter, not once per session: the
//! host hands every session asking for the same patterns the same
//! compiled set. Compiling a Unicode-aware regex inside the guest would
//! cost milliseconds on every session.

#[cfg(target_family = "wasm")]
use crate::bindings::wasmtpd::filter::host_regex;

/// Off wasm (a filter's unit tests on the build machine) the same
/// matching runs in-process with the `regex` crate, the engine the host
/// uses, so tests see what the daemon will do.
#[cfg(not(target_family = "wasm"))]
mod host_regex {
    use regex::bytes::RegexSet;
    use std::cell::RefCell;

    pub struct Compiled {
        pub handle: u32,
        pub errors: Vec<(u32, String)>,
    }

    thread_local! {
        static SETS: RefCell<Vec<(Option<RegexSet>, Vec<u32>)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn compile(patterns: &[String]) -> Compiled {
        let (mut good, mut origin, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for (i, p) in patterns.iter().enumerate() {
            match regex::bytes::Regex::new(p) {
                Ok(_) => {
                    good.push(p.as_str());
                    origin.push(i as u32);
                }
                Err(e) => errors.push((i as u32, e.to_string().replace('\n', " "))),
            }
        }
        let set = RegexSet::new(&good).ok();
        SETS.with(|s| {
            let mut s = s.borrow_mut();
            s.push((set, origin));
            Compiled {
                handle: (s.len() - 1) as u32,
                errors,
            }
        })
    }

    pub fn matches(handle: u32, text: &[u8]) -> Vec<u32> {
        SETS.with(|s| match s.borrow().get(handle as usize) {
            Some((Some(set), origin)) => set.matches(text).iter().map(|i| origin[i]).collect(),
            _ => Vec::new(),
        })
    }

    pub fn is_match(handle: u32, text: &[u8]) -> bool {
        SETS.with(|s| match s.borrow().get(handle as usize) {
            Some((Some(set), _)) => set.is_match(text),
            _ => false,
        })
    }

    pub fn matches_any_line(handle: u32, lines: &[u8]) -> Vec<u32> {
        let mut found: Vec<u32> = crate::lines::iter(lines)
            .flat_map(|l| matches(handle, l))
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// A compiled set; remembers which of the caller's patterns compiled.
#[derive(Debug, Default, Clone)]
pub struct Patterns {
    /// None when no pattern was given.
    handle: Option<u32>,
    len: usize,
}

/// A pattern that did not compile: its index and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub index: usize,
    pub message: String,
}

impl Patterns {
    /// Compiles the patterns (or finds them compiled); those that do not
    /// parse come back as errors and never match.
    pub fn compile<S: AsRef<str>>(sources: &[S]) -> (Patterns, Vec<PatternError>) {
        if sources.is_empty() {
            return (Patterns::default(), Vec::new());
        }
        let list: Vec<String> = sources.iter().map(|s| s.as_ref().to_string()).collect();
        let compiled = host_regex::compile(&list);
        let errors: Vec<PatternError> = compiled
            .errors
            .into_iter()
            .map(|(index, message)| PatternError {
                index: index as usize,
                message,
            })
            .collect();
        let len = sources.len() - errors.len();
        (
            Patterns {
                handle: Some(compiled.handle),
                len,
            },
            errors,
        )
    }

    /// The same as [`Patterns::compile`]; kept for callers that only ask
    /// [`Patterns::is_match`].
    pub fn compile_any<S: AsRef<str>>(sources: &[S]) -> (Patterns, Vec<PatternError>) {
        Self::compile(sources)
    }

    /// A guard on these patterns for the subscriptions: the host calls
    /// the filter for `on` only when one of them matches (see the
    /// crate's docs). None when no pattern was given; when none
    /// compiled, the guard matches nothing, as the patterns do.
    pub fn guard(&self, on: crate::Guarded) -> Option<crate::Guard> {
        self.handle.map(|patterns| crate::Guard { on, patterns })
    }

    /// How many patterns compiled.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any pattern matches `text`.
    pub fn is_match(&self, text: &[u8]) -> bool {
        match self.handle {
            Some(h) if self.len > 0 => host_regex::is_match(h, text),
            _ => false,
        }
    }

    /// Whether any pattern matches any of `lines` (CRLF-terminated, see
    /// [`crate::lines`]; each line on its own), in one call to the host.
    pub fn is_match_any_line(&self, lines: &[u8]) -> bool {
        let mut any = false;
        self.each_match_any_line(lines, |_| any = true);
        any
    }

    /// Calls `f` once with the caller's index of every pattern matching
    /// at least one of `lines` (CRLF-terminated, see [`crate::lines`];
    /// each line on its own). One call to the host for the whole batch:
    /// per-line calls cost more than the matching.
    pub fn each_match_any_line(&self, lines: &[u8], mut f: impl FnMut(usize)) {
        if lines.is_empty() {
            return;
        }
        if let Some(h) = self.handle.filter(|_| self.len > 0) {
            for i in host_regex::matches_any_line(h, lines) {
                f(i as usize);
            }
        }
    }

    /// Calls `f` with the caller's index of every pattern matching `text`.
    pub fn each_match(&self, text: &[u8], mut f: impl FnMut(usize)) {
        if let Some(h) = self.handle.filter(|_| self.len > 0) {
            for i in host_regex::matches(h, text) {
                f(i as usize);
            }
        }
    }
}
