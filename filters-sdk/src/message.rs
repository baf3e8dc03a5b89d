//! Reading a message as it streams through `on-data-lines`: header fields
//! unfolded (RFC 5322 section 2.2.3) and body lines, whatever the batch
//! boundaries.

/// One piece of the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// A whole header field, unfolded: "Subject: hello world".
    Header(&'a [u8]),
    /// One body line.
    Body(&'a [u8]),
}

/// Splits a message into unfolded header fields and body lines. A header
/// field is only complete when the next line does not continue it, so
/// feed every line, then call [`MessageReader::finish`] after the last.
#[derive(Debug, Default, Clone)]
pub struct MessageReader {
    in_body: bool,
    /// The field under way, when `has_pending`; its buffer is reused from
    /// field to field instead of allocated for each.
    pending: Vec<u8>,
    has_pending: bool,
}

impl MessageReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the empty line ending the header was seen.
    pub fn in_body(&self) -> bool {
        self.in_body
    }

    /// Feeds the next line; `f` sees the parts it completes.
    pub fn feed(&mut self, line: &[u8], mut f: impl FnMut(Part<'_>)) {
        if self.in_body {
            f(Part::Body(line));
            return;
        }
        if line.is_empty() {
            self.flush(&mut f);
            self.in_body = true;
            return;
        }
        let continues = matches!(line[0], b' ' | b'\t');
        if !(continues && self.has_pending) {
            self.flush(&mut f);
            self.pending.clear();
            self.has_pending = true;
        }
        self.pending.extend_from_slice(line);
    }

    /// Feeds the lines of a batch (CRLF-terminated, see [`crate::lines`])
    /// up to the end of the header; returns the rest, which are all body
    /// lines, for the caller to look at as one buffer (see
    /// `Patterns::each_match_any_line`).
    pub fn feed_header<'l>(&mut self, lines: &'l [u8], mut f: impl FnMut(Part<'_>)) -> &'l [u8] {
        let mut it = crate::lines::iter(lines);
        while !self.in_body {
            let Some(line) = it.next() else { break };
            self.feed(line, &mut f);
        }
        it.rest()
    }

    /// The message ended: emits a header field still waiting for its
    /// continuation lines.
    pub fn finish(&mut self, mut f: impl FnMut(Part<'_>)) {
        self.flush(&mut f);
    }

    fn flush(&mut self, f: &mut impl FnMut(Part<'_>)) {
        if std::mem::take(&mut self.has_pending) {
            f(Part::Header(&self.pending));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(lines: &[&str]) -> Vec<String> {
        let mut reader = MessageReader::new();
        let mut out = Vec::new();
        let mut push = |p: Part<'_>| {
            out.push(match p {
                Part::Header(h) => format!("H:{}", String::from_utf8_lossy(h)),
                Part::Body(b) => format!("B:{}", String::from_utf8_lossy(b)),
            })
        };
        for l in lines {
            reader.feed(l.as_bytes(), &mut push);
        }
        reader.finish(&mut push);
        out
    }

    #[test]
    fn folded_headers_are_joined_and_body_lines_follow() {
        assert_eq!(
            parts(&[
                "Subject: a",
                "\tlong one",
                "From: x",
                "",
                "body 1",
                "",
                "Subject: no"
            ]),
            [
                "H:Subject: a\tlong one",
                "H:From: x",
                "B:body 1",
                "B:",
                "B:Subject: no"
            ]
        );
    }

    #[test]
    fn feed_header_stops_where_the_body_starts_whatever_the_batches() {
        let batch = |v: &[&str]| v.iter().map(|l| format!("{l}\r\n")).collect::<String>();
        let mut reader = MessageReader::new();
        let mut heads = Vec::new();
        let mut push = |p: Part<'_>| heads.push(format!("{p:?}"));
        let first = batch(&["Subject: a", " b"]);
        assert!(reader.feed_header(first.as_bytes(), &mut push).is_empty());
        let second = batch(&["To: c", "", "body", "Subject: no"]);
        let rest = reader.feed_header(second.as_bytes(), &mut push);
        assert_eq!(rest, b"body\r\nSubject: no\r\n");
        assert!(reader.in_body());
        let third = batch(&["more body"]);
        assert_eq!(
            reader.feed_header(third.as_bytes(), &mut push),
            third.as_bytes()
        );
        assert_eq!(heads.len(), 2, "{heads:?}");
    }

    #[test]
    fn a_message_without_body_still_yields_its_last_header() {
        assert_eq!(parts(&["To: y", " z"]), ["H:To: y z"]);
    }
}
