//! `host-regex`: pattern sets compiled once per filter and shared by all
//! its sessions. Compiling a Unicode-aware regex inside a guest costs
//! milliseconds of fuel; doing it per session would cost more than the
//! rest of the session. Matching here is linear in the text (the `regex`
//! crate never backtracks), and each session's scanned bytes are
//! budgeted by the caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Sets a filter may compile, and their size.
const MAX_SETS: usize = 256;
const MAX_PATTERNS: usize = 1024;
const MAX_PATTERN_LEN: usize = 4096;
/// The compiled program and lazy DFA cache per set.
const SIZE_LIMIT: usize = 16 << 20;
const DFA_SIZE_LIMIT: usize = 4 << 20;

/// One compiled set.
pub struct CompiledSet {
    set: Option<RegexSet>,
    /// The same patterns as one alternation, asked first whether
    /// anything matches at all. A `RegexSet` search runs its DFA over
    /// every byte (it must find every pattern); a single regex starts
    /// from literal prefilters and skips ahead: 1 µs instead of 14 µs
    /// over 8 KB of text no pattern matches, which is most mail.
    any: Option<Regex>,
    /// The alternation with `^` and `$` at line ends, for whole batches.
    joined_any: Option<Regex>,
    /// The same patterns with `^` and `$` at line ends (CRLF, CR or LF),
    /// run once over a whole batch of lines (see
    /// [`CompiledSet::matches_any_line`]). None when a pattern anchors to
    /// the whole text (`\A`, `\z`, `(?-m)^`): over many lines it would
    /// mean something else.
    joined: Option<RegexSet>,
    /// The caller's index of each pattern of `set`.
    origin: Vec<u32>,
    pub errors: Vec<(u32, String)>,
}

impl CompiledSet {
    fn build(patterns: &[String]) -> CompiledSet {
        let mut good = Vec::new();
        let mut origin = Vec::new();
        let mut errors = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let i = i as u32;
            if p.len() > MAX_PATTERN_LEN {
                errors.push((i, format!("pattern longer than {MAX_PATTERN_LEN} bytes")));
                continue;
            }
            match builder(std::slice::from_ref(p)).build() {
                Ok(_) => {
                    good.push(p.as_str());
                    origin.push(i);
                }
                Err(e) => errors.push((i, e.to_string().replace('\n', " "))),
            }
        }
        let set = match builder(&good).build() {
            Ok(set) => Some(set),
            Err(e) => {
                // Each compiled alone but not together: a size limit.
                errors.extend(origin.drain(..).map(|i| (i, e.to_string())));
                errors.sort();
                None
            }
        };
        let joined = match &set {
            Some(_) if good.iter().all(|p| joinable(p)) => {
                builder(&good).multi_line(true).crlf(true).build().ok()
            }
            _ => None,
        };
        let any = set.as_ref().and_then(|_| alternation(&good, false));
        let joined_any = joined.as_ref().and_then(|_| alternation(&good, true));
        CompiledSet {
            set,
            any,
            joined_any,
            joined,
            origin,
            errors,
        }
    }

    pub fn matches(&self, text: &[u8]) -> Vec<u32> {
        match &self.set {
            Some(_) if self.any.as_ref().is_some_and(|a| !a.is_match(text)) => Vec::new(),
            Some(set) => set.matches(text).iter().map(|i| self.origin[i]).collect(),
            None => Vec::new(),
        }
    }

    pub fn is_match(&self, text: &[u8]) -> bool {
        match &self.any {
            Some(any) => any.is_match(text),
            None => self.set.as_ref().is_some_and(|s| s.is_match(text)),
        }
    }

    /// Whether a pattern may match one of the lines of `text`: true when
    /// one does, and possibly when a match spans lines (one search over
    /// the whole text, see [`CompiledSet::matches_any_line`]).
    pub fn any_line_may_match(&self, text: &[u8]) -> bool {
        match &self.joined_any {
            Some(joined) => joined.is_match(text),
            None => lines_of(text).any(|line| self.is_match(line)),
        }
    }

    /// The caller's indexes of the patterns matching at least one line
    /// of `text` (lines ending with LF or CRLF, each matched without its
    /// line end), ascending.
    ///
    /// One search over the whole text first: a match inside a line is a
    /// match there too (CR and LF end a line for `^` and `$` and are
    /// non-word bytes for `\b`), so a pattern it does not find matches
    /// no line. Only the patterns it finds, usually none, are checked
    /// line by line. One search instead of one per line: each search
    /// has a fixed cost (prefilters restart), more than the matching of
    /// a short line.
    pub fn matches_any_line(&self, text: &[u8]) -> Vec<u32> {
        let Some(set) = &self.set else {
            return Vec::new();
        };
        if self.joined_any.as_ref().is_some_and(|a| !a.is_match(text)) {
            return Vec::new();
        }
        let mut maybe = vec![true; set.len()];
        let mut left = set.len();
        if let Some(joined) = &self.joined {
            maybe.fill(false);
            for i in joined.matches(text).iter() {
                maybe[i] = true;
            }
            left = maybe.iter().filter(|m| **m).count();
        }
        let mut seen = vec![false; set.len()];
        for line in lines_of(text) {
            if left == 0 {
                break;
            }
            for i in set.matches(line).iter() {
                if maybe[i] && !seen[i] {
                    seen[i] = true;
                    left -= 1;
                }
            }
        }
        let mut found: Vec<u32> = (0..set.len())
            .filter(|&i| seen[i])
            .map(|i| self.origin[i])
            .collect();
        found.sort_unstable();
        found
    }
}

/// The lines of `text` without their LF or CRLF; a last line without one
/// counts too.
fn lines_of(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let nothing = text.is_empty();
    text.split(|&b| b == b'\n')
        .filter(move |_| !nothing)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Whether `pattern` means the same in a line and in lines joined by LF
/// with `^`/`$` at line ends: no assertion about the whole text's start
/// or end. A pattern that cannot be parsed here is not.
fn joinable(pattern: &str) -> bool {
    use regex_syntax::hir::Look;
    let parsed = regex_syntax::ParserBuilder::new()
        .multi_line(true)
        .utf8(false)
        .build()
        .parse(pattern);
    match parsed {
        Ok(hir) => {
            let looks = hir.properties().look_set();
            !looks.contains(Look::Start) && !looks.contains(Look::End)
        }
        Err(_) => false,
    }
}

/// `patterns` as one regex matching where any of them does (each in its
/// own group, so its inline flags stay its own). None for no pattern, or
/// when the whole does not compile (a size limit, or an `(?x)` comment
/// that swallows the closing parenthesis): the set answers alone then.
fn alternation(patterns: &[&str], lines: bool) -> Option<Regex> {
    if patterns.is_empty() {
        return None;
    }
    let whole: Vec<String> = patterns.iter().map(|p| format!("(?:{p})")).collect();
    RegexBuilder::new(&whole.join("|"))
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .multi_line(lines)
        .crlf(lines)
        .build()
        .ok()
}

fn builder<S: AsRef<str>>(patterns: &[S]) -> RegexSetBuilder {
    let mut b = RegexSetBuilder::new(patterns);
    b.size_limit(SIZE_LIMIT).dfa_size_limit(DFA_SIZE_LIMIT);
    b
}

#[derive(Debug, thiserror::Error)]
#[error("regex: {0}")]
pub struct RegexLimit(pub &'static str);

/// A filter's compiled sets, by handle and by patterns.
#[derive(Default)]
pub struct RegexCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sets: Vec<Arc<CompiledSet>>,
    by_patterns: HashMap<Vec<String>, u32>,
}

impl Inner {
    fn find(&self, patterns: &[String]) -> Option<(u32, Arc<CompiledSet>)> {
        let h = *self.by_patterns.get(patterns)?;
        Some((h, self.sets.get(h as usize)?.clone()))
    }
}

impl RegexCache {
    /// The handle of `patterns`' set, compiling it the first time.
    pub fn compile(&self, patterns: Vec<String>) -> Result<(u32, Arc<CompiledSet>), RegexLimit> {
        if patterns.len() > MAX_PATTERNS {
            return Err(RegexLimit("too many patterns in one set"));
        }
        if let Some(found) = self.lock().find(&patterns) {
            return Ok(found);
        }
        // Compiled outside the lock: other sessions keep matching.
        let compiled = Arc::new(CompiledSet::build(&patterns));
        let mut inner = self.lock();
        if let Some(found) = inner.find(&patterns) {
            return Ok(found);
        }
        if inner.sets.len() >= MAX_SETS {
            return Err(RegexLimit("too many pattern sets"));
        }
        let h = inner.sets.len() as u32;
        inner.sets.push(compiled.clone());
        inner.by_patterns.insert(patterns, h);
        Ok((h, compiled))
    }

    pub fn get(&self, handle: u32) -> Option<Arc<CompiledSet>> {
        self.lock().sets.get(handle as usize).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sets_compile_once_and_report_bad_patterns_by_index() {
        let cache = RegexCache::default();
        let (h, set) = cache
            .compile(v(&["(?i)viagra", "(unclosed", r"\$\d+", "cheap"]))
            .unwrap();
        assert_eq!(set.errors.len(), 1);
        assert_eq!(set.errors[0].0, 1);
        assert_eq!(set.matches(b"cheap VIAGRA for $100"), [0, 2, 3]);
        assert!(set.is_match(b"so cheap") && !set.is_match(b"nothing"));
        // The same patterns: the same handle, nothing recompiled.
        let (h2, set2) = cache
            .compile(v(&["(?i)viagra", "(unclosed", r"\$\d+", "cheap"]))
            .unwrap();
        assert_eq!(h, h2);
        assert!(Arc::ptr_eq(&set, &set2));
        assert!(cache.get(h).is_some() && cache.get(h + 1).is_none());
    }

    #[test]
    fn a_batch_of_lines_answers_which_patterns_matched_any_line() {
        let cache = RegexCache::default();
        let (_, set) = cache
            .compile(v(&["(unclosed", "cheap", "(?i)click here", "absent"]))
            .unwrap();
        let lines = b"nothing here\r\nCLICK HERE now\r\ncheap, and cheap again\r\nclick here\r\n";
        assert_eq!(set.matches_any_line(lines), [1, 2]);
        assert!(set.matches_any_line(b"").is_empty());
        // Matched line by line: a pattern cannot span two lines.
        assert!(set.matches_any_line(b"click\r\nhere\r\n").is_empty());
        assert!(set.matches_any_line(b"click\nhere").is_empty());
    }

    #[test]
    fn joined_lines_give_the_same_answers_as_line_by_line() {
        let cache = RegexCache::default();
        let patterns = [
            "^Subject",
            "end$",
            r"\bword\b",
            r"a\sb",
            "(?s)x.y",
            "(?-m)^first",
            r"\Afirst",
            "[^q]{3}zz",
            "(?i)CLICK here",
            r"end\s",
            r"end\r",
        ];
        let lines: Vec<&str> = vec![
            "first line",
            "Subject: x",
            "a",
            "b",
            "x",
            "y",
            "sword words",
            "the end",
            "zz",
            "click HERE",
        ];
        let text = lines.iter().map(|l| format!("{l}\r\n")).collect::<String>();
        for (i, p) in patterns.iter().enumerate() {
            let (_, set) = cache.compile(v(&[p])).unwrap();
            let by_line = lines.iter().any(|l| set.is_match(l.as_bytes()));
            assert_eq!(
                set.matches_any_line(text.as_bytes()).len() == 1,
                by_line,
                "pattern {i} {p:?}"
            );
        }
        let (_, all) = cache.compile(v(&patterns)).unwrap();
        assert_eq!(all.matches_any_line(text.as_bytes()), [0, 1, 5, 6, 8]);
        assert!(all.joined.is_none(), "\\A and (?-m)^ rule out joining");
        let (_, plain) = cache.compile(v(&patterns[..5])).unwrap();
        assert!(plain.joined.is_some());
    }

    #[test]
    fn the_quick_check_answers_as_the_set_does() {
        let cache = RegexCache::default();
        // Inline flags stay with their pattern: "CHEAP" must not match.
        let (_, set) = cache.compile(v(&["(?i)click", "cheap"])).unwrap();
        assert!(set.any.is_some() && set.joined_any.is_some());
        assert!(set.is_match(b"CLICK") && !set.is_match(b"CHEAP"));
        assert_eq!(set.matches(b"CHEAP click"), [0]);
        assert!(set.matches_any_line(b"CHEAP\r\nno\r\n").is_empty());
        // A comment eating the group's end: the set answers alone.
        let (_, set) = cache.compile(v(&["(?x)a b # spaced", "c"])).unwrap();
        assert!(set.any.is_none());
        assert!(set.is_match(b"ab") && set.is_match(b"c") && !set.is_match(b"a b"));
        assert_eq!(set.matches_any_line(b"x\r\nab\r\n"), [0]);
    }

    #[test]
    fn bytes_that_are_not_utf8_match_too() {
        let cache = RegexCache::default();
        let (_, set) = cache
            .compile(v(&[r"(?-u:\xff)", "(?i)click here"]))
            .unwrap();
        assert_eq!(set.matches(b"\xfe\xff CLICK HERE"), [0, 1]);
    }

    #[test]
    fn limits_hold() {
        let cache = RegexCache::default();
        assert!(cache
            .compile(vec!["a".to_string(); MAX_PATTERNS + 1])
            .is_err());
        for i in 0..MAX_SETS {
            cache.compile(v(&[&format!("x{i}")])).unwrap();
        }
        assert!(cache.compile(v(&["one more"])).is_err());
        let (_, set) = RegexCache::default()
            .compile(vec!["a".repeat(MAX_PATTERN_LEN + 1)])
            .unwrap();
        assert_eq!(set.errors.len(), 1);
    }
}
