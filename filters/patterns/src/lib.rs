//! Sets of regular expressions matched against bytes, for the guest
//! filters (regex, spamscore).
//!
//! Patterns use Rust regex syntax with `regex::bytes` semantics (Unicode
//! aware, `(?-u:\xFF)` allowed). All patterns of a set compile into one
//! automaton: cheaper to build than one regex each (they share the
//! Unicode class automata) and several times faster to run, since a line
//! is scanned once for all of them.
//!
//! This uses regex-automata without its `std` feature: with it, compiling
//! builds a std `HashMap`, whose `RandomState` asks WASI for random keys —
//! a trap in the host's sandbox, which links no WASI.

use regex_automata::meta::{Config, Regex};
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};

/// A compiled set; knows which configured pattern each of its patterns
/// was.
#[derive(Debug)]
pub struct Patterns {
    re: Option<Regex>,
    /// Index in the caller's list of each compiled pattern.
    origin: Vec<usize>,
    kind: MatchKind,
}

impl Default for Patterns {
    fn default() -> Self {
        Patterns {
            re: None,
            origin: Vec::new(),
            kind: MatchKind::All,
        }
    }
}

/// A pattern that did not compile: its index and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub index: usize,
    pub message: String,
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new().utf8(false)
}

impl Patterns {
    /// Compiles the patterns that parse, for [`Patterns::each_match`]
    /// (and `is_match`); the others come back as errors.
    pub fn compile<S: AsRef<str>>(sources: &[S]) -> (Patterns, Vec<PatternError>) {
        Self::build(sources, MatchKind::All)
    }

    /// Like [`Patterns::compile`], for [`Patterns::is_match`] only: often
    /// several times cheaper to build, since the automaton may stop at
    /// the first match of any pattern.
    pub fn compile_any<S: AsRef<str>>(sources: &[S]) -> (Patterns, Vec<PatternError>) {
        Self::build(sources, MatchKind::LeftmostFirst)
    }

    fn build<S: AsRef<str>>(sources: &[S], kind: MatchKind) -> (Patterns, Vec<PatternError>) {
        let mut hirs = Vec::with_capacity(sources.len());
        let mut origin = Vec::with_capacity(sources.len());
        let mut errors = Vec::new();
        for (index, source) in sources.iter().enumerate() {
            match syntax::parse_with(source.as_ref(), &syntax_config()) {
                Ok(hir) => {
                    hirs.push(hir);
                    origin.push(index);
                }
                // The syntax error's own text carries a caret under the
                // culprit; on one line for the log.
                Err(e) => errors.push(PatternError {
                    index,
                    message: e.to_string().replace('\n', " "),
                }),
            }
        }
        if hirs.is_empty() {
            return (Patterns::default(), errors);
        }
        let built = Regex::builder()
            .syntax(syntax_config())
            .configure(
                Config::new()
                    .match_kind(kind)
                    .utf8_empty(false)
                    // Only "which patterns match" is asked: no capture
                    // states, no engines that exist to resolve captures.
                    .which_captures(WhichCaptures::None)
                    .onepass(false)
                    .backtrack(false),
            )
            .build_many_from_hir(&hirs);
        match built {
            Ok(re) => (
                Patterns {
                    re: Some(re),
                    origin,
                    kind,
                },
                errors,
            ),
            // Past parsing, what fails is a size limit: say so for all.
            Err(e) => {
                errors.extend(origin.iter().map(|&index| PatternError {
                    index,
                    message: e.to_string(),
                }));
                errors.sort_by_key(|e| e.index);
                (Patterns::default(), errors)
            }
        }
    }

    /// How many patterns compiled.
    pub fn len(&self) -> usize {
        self.origin.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origin.is_empty()
    }

    /// Whether any pattern matches `text`.
    pub fn is_match(&self, text: &[u8]) -> bool {
        self.re.as_ref().is_some_and(|re| re.is_match(text))
    }

    /// Calls `f` with the caller's index of every pattern matching `text`.
    /// The set must come from [`Patterns::compile`].
    pub fn each_match(&self, text: &[u8], mut f: impl FnMut(usize)) {
        let Some(re) = &self.re else { return };
        debug_assert_eq!(self.kind, MatchKind::All, "built by compile_any");
        let mut set = regex_automata::PatternSet::new(re.pattern_len());
        re.which_overlapping_matches(&Input::new(text), &mut set);
        for id in set.iter() {
            f(self.origin[id.as_usize()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(p: &Patterns, text: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        p.each_match(text, |i| out.push(i));
        out
    }

    #[test]
    fn every_matching_pattern_is_reported_by_its_index() {
        let (p, errors) = Patterns::compile(&["(?i)viagra", "(unclosed", r"\$\d+", "cheap"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, 1);
        assert!(
            errors[0].message.contains("unclosed group"),
            "{}",
            errors[0].message
        );
        assert_eq!(p.len(), 3);
        assert_eq!(matching(&p, b"cheap VIAGRA for $100"), [0, 2, 3]);
        assert_eq!(matching(&p, b"nothing"), Vec::<usize>::new());
        assert!(p.is_match(b"so cheap"));
        assert!(!p.is_match(b"nothing"));
    }

    #[test]
    fn any_sets_answer_is_match() {
        let (p, errors) = Patterns::compile_any(&["(?i)viagra", "[", "cheap$"]);
        assert_eq!(errors.len(), 1);
        assert!(p.is_match(b"VIAGRA"));
        assert!(p.is_match(b"so cheap"));
        assert!(!p.is_match(b"cheap stuff"));
    }

    #[test]
    fn bytes_that_are_not_utf8_match_too() {
        let (p, _) = Patterns::compile(&[r"(?-u:\xff)", "(?i)click here"]);
        assert_eq!(matching(&p, b"\xfe\xff CLICK HERE"), [0, 1]);
    }

    #[test]
    fn an_empty_set_matches_nothing() {
        let (p, errors) = Patterns::compile::<&str>(&[]);
        assert!(errors.is_empty() && p.is_empty());
        assert!(!p.is_match(b"x"));
        assert_eq!(matching(&p, b"x"), Vec::<usize>::new());
    }
}
