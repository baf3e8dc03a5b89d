//! The message as it will be enqueued: the headers OpenSMTPD's enqueue
//! adds when missing (From, Date, Message-ID), the Bcc header removed,
//! and with `-t` the recipients the To, Cc and Bcc headers name.
//!
//! Pure functions over the CRLF text [`crate::enqueue::input`] read; the
//! caller supplies the clock and the unique part of the Message-ID.

use base64::Engine;
use mail_parser::{Address, MessageParser};

/// What an added From, Date or Message-ID header says.
#[derive(Clone, Debug)]
pub struct Compose<'a> {
    /// The address of an added From header.
    pub from: &'a str,
    /// Its display name (`-F`, or the user's GECOS name).
    pub full_name: Option<&'a str>,
    /// `-t`: extract recipients from the headers.
    pub extract: bool,
    /// RFC 5322 date for an added Date header.
    pub date: &'a str,
    /// `<...>` for an added Message-ID header.
    pub message_id: &'a str,
}

/// The message to send and the recipients its headers named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composed {
    pub content: Vec<u8>,
    /// With `-t`: the addresses of To, Cc and Bcc, as written.
    pub extracted: Vec<String>,
}

/// One header field: its name and the byte range of all its lines.
struct Field {
    name: String,
    start: usize,
    end: usize,
}

/// The header fields and where the body starts (after the empty line,
/// or at the first line that is not a header).
struct Split {
    fields: Vec<Field>,
    body: usize,
}

/// Builds the message to enqueue from `raw` (CRLF lines).
pub fn compose(raw: &[u8], c: &Compose<'_>) -> Composed {
    let split = split_header(raw);
    let has = |name: &str| split.fields.iter().any(|f| f.name == name);
    let mut content = Vec::with_capacity(raw.len() + 256);
    for f in split.fields.iter().filter(|f| f.name != "bcc") {
        content.extend_from_slice(&raw[f.start..f.end]);
    }
    if !has("from") {
        let from = match c.full_name.map(display_name).filter(|n| !n.is_empty()) {
            Some(name) => format!("From: {name} <{}>\r\n", c.from),
            None => format!("From: {}\r\n", c.from),
        };
        content.extend_from_slice(from.as_bytes());
    }
    if !has("date") {
        content.extend_from_slice(format!("Date: {}\r\n", c.date).as_bytes());
    }
    if !has("message-id") {
        content.extend_from_slice(format!("Message-ID: {}\r\n", c.message_id).as_bytes());
    }
    content.extend_from_slice(b"\r\n");
    content.extend_from_slice(&raw[split.body..]);
    let extracted = if c.extract {
        let mut fields = Vec::new();
        for f in &split.fields {
            if matches!(f.name.as_str(), "to" | "cc" | "bcc") {
                fields.extend_from_slice(&raw[f.start..f.end]);
            }
        }
        header_addresses(&fields)
    } else {
        Vec::new()
    };
    Composed { content, extracted }
}

/// The addresses of a comma-separated list as a To header would hold it
/// (display names, groups, comments): how command-line recipients such
/// as `"Joe <joe@example.org>, ann"` are read.
pub fn list_addresses(list: &str) -> Vec<String> {
    let field = format!("To: {}\r\n", list.replace(['\r', '\n'], " "));
    header_addresses(field.as_bytes())
}

/// The addresses of the To, Cc and Bcc fields in `fields`.
fn header_addresses(fields: &[u8]) -> Vec<String> {
    let mut text = fields.to_vec();
    text.extend_from_slice(b"\r\n");
    let Some(msg) = MessageParser::new().parse_headers(&text) else {
        return Vec::new();
    };
    let lists: Vec<&Address<'_>> = msg
        .all_to()
        .chain(msg.all_cc())
        .chain(msg.all_bcc())
        .collect();
    lists
        .into_iter()
        .flat_map(|a| a.iter())
        .filter_map(|a| match (a.address(), a.name()) {
            (Some(addr), _) => Some(addr.to_string()),
            // A bare word (`root`, `To: bob`) is a local user, as for
            // sendmail; the parser sees only a name there.
            (None, Some(word)) if !word.is_empty() && !word.contains(char::is_whitespace) => {
                Some(word.to_string())
            }
            _ => None,
        })
        .collect()
}

fn split_header(raw: &[u8]) -> Split {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let start = pos;
        pos += line.len();
        if start == 0 && line.starts_with(b"From ") {
            // An mbox separator, as mail(1) may write: not a header, and
            // nothing recipients should see.
            continue;
        }
        if line == b"\r\n" {
            return Split { fields, body: pos };
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(last) = fields.last_mut() {
                last.end = pos;
                continue;
            }
        }
        match field_name(line) {
            Some(name) => fields.push(Field {
                name,
                start,
                end: pos,
            }),
            None => {
                return Split {
                    fields,
                    body: start,
                }
            }
        }
    }
    Split { fields, body: pos }
}

/// The lowercase field name when `line` starts a header field.
fn field_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    // RFC 5322's obsolete syntax allows blanks before the colon.
    let name = line[..colon].trim_ascii_end();
    let printable = |b: &u8| (33..=126).contains(b) && *b != b':';
    if name.is_empty() || !name.iter().all(printable) {
        return None;
    }
    Some(String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// A display name for a From header: as-is when it is plain words,
/// quoted when it has specials, RFC 2047 encoded when not ASCII. Control
/// characters are dropped: a full name must not start a new header.
pub fn display_name(name: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim();
    if !name.is_ascii() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(name.as_bytes());
        return format!("=?UTF-8?B?{b64}?=");
    }
    let atext =
        |c: char| c.is_ascii_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atext) {
        return name.to_string();
    }
    let escaped: String = name
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(extract: bool, full_name: Option<&'static str>) -> Compose<'static> {
        Compose {
            from: "joe@host.example",
            full_name,
            extract,
            date: "Thu, 26 Nov 2026 01:30:00 +0000",
            message_id: "<1.abc@host.example>",
        }
    }

    fn text(raw: &str, compose: &Compose<'_>) -> (String, Vec<String>) {
        let out = super::compose(raw.as_bytes(), compose);
        (String::from_utf8(out.content).unwrap(), out.extracted)
    }

    #[test]
    fn t_extracts_to_cc_bcc_and_removes_bcc() {
        let raw = "To: Bob <bob@example.org>, ann@example.net\r\n\
                   Cc: \"Doe, Jane\" <jane@example.com>\r\n\
                   Bcc: secret@example.org,\r\n  other@example.org\r\n\
                   Subject: hi\r\n\r\nbody\r\n";
        let (msg, rcpts) = text(raw, &c(true, None));
        assert_eq!(
            rcpts,
            [
                "bob@example.org",
                "ann@example.net",
                "jane@example.com",
                "secret@example.org",
                "other@example.org"
            ]
        );
        assert!(!msg.contains("Bcc"), "{msg}");
        assert!(!msg.contains("secret") && !msg.contains("other@"), "{msg}");
        assert!(msg.starts_with("To: Bob <bob@example.org>, ann@example.net\r\nCc: "));
        assert!(msg.ends_with("Subject: hi\r\nFrom: joe@host.example\r\nDate: Thu, 26 Nov 2026 01:30:00 +0000\r\nMessage-ID: <1.abc@host.example>\r\n\r\nbody\r\n"), "{msg}");
    }

    #[test]
    fn groups_and_comments_parse() {
        let raw = "To: friends: a@example.org, Bee <b@example.org>;, undisclosed-recipients:;\r\n\
                   cc: c@example.org (Cee)\r\n\r\n";
        let (_, rcpts) = text(raw, &c(true, None));
        assert_eq!(rcpts, ["a@example.org", "b@example.org", "c@example.org"]);
    }

    #[test]
    fn without_t_nothing_is_extracted_but_bcc_still_goes() {
        let raw = "To: bob@example.org\r\nBcc: x@example.org\r\n\r\nhi\r\n";
        let (msg, rcpts) = text(raw, &c(false, None));
        assert!(rcpts.is_empty());
        assert!(!msg.contains("x@example.org"));
    }

    #[test]
    fn existing_headers_are_kept_as_written() {
        let raw = "from: Boss <boss@example.org>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
                   Message-Id: <keep@example.org>\r\n\r\nbody\r\n";
        let (msg, _) = text(raw, &c(false, Some("Joe")));
        assert_eq!(msg, raw);
    }

    #[test]
    fn missing_headers_are_added_with_the_full_name() {
        let (msg, _) = text(
            "Subject: x\r\n\r\nbody\r\n",
            &c(false, Some("Joe Q. Public")),
        );
        assert!(
            msg.contains("From: \"Joe Q. Public\" <joe@host.example>\r\n"),
            "{msg}"
        );
        let (msg, _) = text("Subject: x\r\n\r\n", &c(false, Some("Joe Public")));
        assert!(
            msg.contains("From: Joe Public <joe@host.example>\r\n"),
            "{msg}"
        );
        let (msg, _) = text("Subject: x\r\n\r\n", &c(false, Some("Jösé")));
        assert!(
            msg.contains("From: =?UTF-8?B?SsO2c8Op?= <joe@host.example>\r\n"),
            "{msg}"
        );
    }

    #[test]
    fn a_message_without_headers_gets_a_separator() {
        let (msg, _) = text("just a line\r\nand: more\r\n", &c(false, None));
        assert!(msg.starts_with("From: joe@host.example\r\nDate: "), "{msg}");
        assert!(
            msg.ends_with(">\r\n\r\njust a line\r\nand: more\r\n"),
            "{msg}"
        );
        let (msg, _) = text("", &c(false, None));
        assert!(
            msg.ends_with("Message-ID: <1.abc@host.example>\r\n\r\n"),
            "{msg}"
        );
    }

    #[test]
    fn an_mbox_from_line_is_dropped() {
        let (msg, _) = text(
            "From joe Thu Nov 26 2026\r\nSubject: x\r\n\r\nb\r\n",
            &c(false, None),
        );
        assert!(
            msg.starts_with("Subject: x\r\nFrom: joe@host.example\r\n"),
            "{msg}"
        );
    }

    #[test]
    fn a_full_name_cannot_inject_headers() {
        assert_eq!(display_name("Evil\r\nBcc: x@y"), "\"EvilBcc: x@y\"");
    }

    #[test]
    fn command_line_lists() {
        assert_eq!(
            list_addresses("Joe <joe@example.org>, ann, \"a, b\" <ab@example.org>"),
            ["joe@example.org", "ann", "ab@example.org"]
        );
    }
}
