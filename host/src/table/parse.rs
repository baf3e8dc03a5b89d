//! The table(5) text file format, as OpenSMTPD's `parse_table_line` reads it.
//!
//! - Blank lines and lines whose first non-blank character is `#` are
//!   skipped. A `#` later in a line is data (passwords may contain it).
//! - A comment `# @list` before the first entry forces a list.
//! - Otherwise the first entry decides the shape: a single word makes the
//!   table a list (one key per line), anything with a blank makes it a map.
//! - Map lines are `key value`, `key: value` or `key:value`. The key ends at
//!   the first blank or `:`; then blanks and `:`-followed-by-blank are
//!   skipped, so a value may itself start with `:` (`list: :include:/f`).
//!   A key written `[v6addr]`, or a bare IPv6 address/network, ends at the
//!   first blank instead, so `::1 localhost` works (OpenSMTPD splits it at
//!   the first colon).
//! - Keys are lowercased (OpenSMTPD does the same, and lowercases every
//!   lookup key), values are kept as written. A repeated key replaces the
//!   earlier one, with a warning.

use std::path::Path;

use super::error::TableError;

/// A parsed table: whether it is a list, and its entries in file order
/// (lists have no values).
pub(crate) struct Parsed {
    pub list: bool,
    pub entries: Vec<(String, Option<String>)>,
}

pub(crate) fn parse_text(text: &str, origin: &Path) -> Result<Parsed, TableError> {
    let mut shape: Option<bool> = None; // Some(true) = list
    let mut entries = Vec::new();
    let err = |line: usize, msg: String| TableError::Syntax {
        path: origin.to_path_buf(),
        line,
        msg,
    };
    let mut first_entry_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if shape.is_none() && comment.trim() == "@list" {
                shape = Some(true);
            }
            continue;
        }
        let is_list = *shape.get_or_insert_with(|| {
            first_entry_line = lineno;
            !line.contains(char::is_whitespace)
        });
        if is_list {
            if line.contains(char::is_whitespace) {
                let why = if first_entry_line > 0 {
                    format!(
                        "the table is a list because line {first_entry_line} holds a single word"
                    )
                } else {
                    "the table is declared `# @list`".to_string()
                };
                return Err(err(
                    lineno,
                    format!("list entry {line:?} contains a blank ({why})"),
                ));
            }
            entries.push((line.to_lowercase(), None));
            continue;
        }
        let (key, value) = split_map_line(line);
        if key.is_empty() {
            return Err(err(lineno, format!("missing key in {line:?}")));
        }
        match value {
            Some(v) => entries.push((key.to_lowercase(), Some(v.to_string()))),
            None => return Err(err(lineno, format!("missing value for key {key:?}"))),
        }
    }
    Ok(Parsed {
        list: shape.unwrap_or(false),
        entries,
    })
}

/// Splits a map line into key and value (None when there is no value).
fn split_map_line(line: &str) -> (&str, Option<&str>) {
    let key_end = if line.starts_with('[') {
        line.find(char::is_whitespace).unwrap_or(line.len())
    } else {
        let first_word = line.split(char::is_whitespace).next().unwrap_or("");
        let word = first_word.trim_end_matches(':');
        if word.contains(':') && is_ipv6ish(word) {
            word.len()
        } else {
            line.find(|c: char| c.is_whitespace() || c == ':')
                .unwrap_or(line.len())
        }
    };
    let key = &line[..key_end];
    let rest = &line[key_end..];
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let sep_colon = c == b':' && (i + 1 == bytes.len() || bytes[i + 1].is_ascii_whitespace());
        if c.is_ascii_whitespace() || sep_colon || (i == 0 && c == b':') {
            i += 1;
        } else {
            break;
        }
    }
    let value = rest[i..].trim();
    (key, (!value.is_empty()).then_some(value))
}

fn is_ipv6ish(word: &str) -> bool {
    let addr = word.split('/').next().unwrap_or(word);
    addr.parse::<std::net::Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Parsed, TableError> {
        parse_text(t, Path::new("/etc/mail/t"))
    }

    #[test]
    fn map_separators() {
        let p = parse("a b\nB: c, d\ne:f\ng : h\nlist: :include:/x\n::1 localhost\n[::2] h2\n")
            .unwrap();
        assert!(!p.list);
        let got: Vec<_> = p
            .entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "b"),
                ("b", "c, d"),
                ("e", "f"),
                ("g", "h"),
                ("list", ":include:/x"),
                ("::1", "localhost"),
                ("[::2]", "h2"),
            ]
        );
    }

    #[test]
    fn list_detection() {
        let p = parse("# comment\n\nExample.org\n*.example.net\n").unwrap();
        assert!(p.list);
        assert_eq!(p.entries[0].0, "example.org");
        let p = parse("# @list\n").unwrap();
        assert!(p.list);
    }

    #[test]
    fn bad_lines_carry_line_numbers() {
        let e = parse("root: admin\n\nbob\n").err().unwrap().to_string();
        assert_eq!(e, "/etc/mail/t:3: missing value for key \"bob\"");
        let e = parse("a\nb c\n").err().unwrap().to_string();
        assert!(e.starts_with("/etc/mail/t:2: list entry"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }
}
