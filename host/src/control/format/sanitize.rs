//! Escaping of envelope text for line-oriented output.
//!
//! Envelopes carry client-supplied text (HELO names, local parts, which may
//! legally contain `|`, remote error lines). `show queue` is split on `|`
//! by scripts and every output is split on newlines, so such text must not
//! be able to add a field or a line, nor send terminal escapes to the
//! operator's screen. Printable text, non-ASCII letters included, is kept
//! as is so internationalised addresses stay readable.

use std::borrow::Cow;
use std::fmt::Write;

/// Escapes `s` so it is one field of one line:
///
/// - `\` becomes `\\`, so an escape in the output always comes from here;
/// - `|` becomes `\x7c`;
/// - CR, LF and TAB become `\r`, `\n`, `\t`;
/// - other control characters (C0, DEL, C1) become `\xHH` or `\u{HHHH}`;
/// - Unicode line/paragraph separators, bidirectional overrides and
///   zero-width characters become `\u{HHHH}`, since they can reorder or
///   hide what the operator sees.
pub fn escape_field(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() && needs_escape(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c == '|' || c.is_control() || is_invisible_format(c)
}

/// Format characters that change how the rest of a line looks.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}'   // zero-width space/joiners, LRM, RLM
        | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings
        | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
        | '\u{feff}'              // zero-width no-break space
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched() {
        assert!(matches!(escape_field("joe@example.org"), Cow::Borrowed(_)));
        assert_eq!(escape_field("jösé@exämple.org"), "jösé@exämple.org");
        assert_eq!(escape_field("421 Try again later"), "421 Try again later");
    }

    #[test]
    fn separators_and_line_breaks_are_escaped() {
        assert_eq!(escape_field("a|b"), "a\\x7cb");
        assert_eq!(escape_field("x\r\ny"), "x\\r\\ny");
        assert_eq!(escape_field("tab\there"), "tab\\there");
        assert_eq!(escape_field("back\\slash"), "back\\\\slash");
    }

    #[test]
    fn terminal_and_bidi_tricks_are_escaped() {
        assert_eq!(escape_field("\x1b[2J"), "\\x1b[2J");
        assert_eq!(escape_field("\x7f\0"), "\\x7f\\x00");
        assert_eq!(escape_field("\u{85}"), "\\u{0085}");
        assert_eq!(escape_field("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(escape_field("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn escaped_text_has_no_separator_or_break() {
        let hostile = "x|y\r\nz\u{2029}\u{0}|";
        let out = escape_field(hostile);
        assert!(!out.contains(['|', '\r', '\n', '\u{2029}', '\0']));
    }
}
