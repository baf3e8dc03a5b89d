//! Reassembles replies from whatever chunks the socket gives: partial
//! lines, several replies at once (pipelining), multi-line replies.
//!
//! The server is untrusted: every line and reply is bounded (OpenSMTPD's
//! CVE-2020-8794 lived in this kind of code), and anything that is not a
//! well-formed reply is an error, never a guess.

use super::reply::{EnhancedCode, Reply};

/// Longest reply line (RFC 5321 asks for 512; servers send more).
pub const MAX_LINE: usize = 4096;
/// Most bytes in one (multi-line) reply.
pub const MAX_REPLY: usize = 64 * 1024;
/// Most lines in one reply.
pub const MAX_LINES: usize = 1000;

/// Why the server's bytes are not a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("reply longer than {MAX_REPLY} bytes")]
    ReplyTooLong,
    #[error("reply of more than {MAX_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply code {got} in a multi-line reply started with {first}")]
    MixedCodes { first: u16, got: u16 },
}

/// Incremental reply reader: `push` bytes, then take replies with `next_reply`.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    /// Where the next unread line starts in `buf`.
    pos: usize,
    code: Option<u16>,
    enhanced: Option<EnhancedCode>,
    lines: Vec<String>,
    size: usize,
}

impl ReplyParser {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// True when no byte of a reply is waiting (neither a partial line
    /// nor lines of an unfinished multi-line reply).
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len() && self.code.is_none()
    }

    /// Forgets everything buffered: after STARTTLS, plaintext that came
    /// before the handshake must not be read as if it came over TLS.
    pub fn clear(&mut self) {
        *self = ReplyParser::default();
    }

    /// The next complete reply, `None` until one is complete. After an
    /// error the stream is out of step: the caller drops the connection.
    pub fn next_reply(&mut self) -> Option<Result<Reply, ProtocolError>> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                return (rest.len() > MAX_LINE).then_some(Err(ProtocolError::LineTooLong));
            };
            let raw = &rest[..nl];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.len() > MAX_LINE {
                return Some(Err(ProtocolError::LineTooLong));
            }
            let line = sanitise(raw);
            self.pos += nl + 1;
            match self.add_line(line) {
                Ok(Some(reply)) => return Some(Ok(reply)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn add_line(&mut self, line: String) -> Result<Option<Reply>, ProtocolError> {
        let b = line.as_bytes();
        let digits = b.get(..3).unwrap_or(b"");
        if digits.len() != 3
            || !digits.iter().all(u8::is_ascii_digit)
            || !(b'2'..=b'5').contains(&digits[0])
        {
            return Err(ProtocolError::Malformed(line));
        }
        let code = digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        let (more, text) = match b.get(3) {
            None => (false, ""),
            Some(b' ') => (false, line.get(4..).unwrap_or("")),
            Some(b'-') => (true, line.get(4..).unwrap_or("")),
            Some(_) => return Err(ProtocolError::Malformed(line)),
        };
        match self.code {
            Some(first) if first != code => {
                return Err(ProtocolError::MixedCodes { first, got: code })
            }
            _ => self.code = Some(code),
        }
        self.size += line.len() + 2;
        if self.size > MAX_REPLY {
            return Err(ProtocolError::ReplyTooLong);
        }
        if self.lines.len() >= MAX_LINES {
            return Err(ProtocolError::TooManyLines);
        }
        // RFC 3463 repeats the enhanced code on every line; keep it once.
        let class = (code / 100) as u8;
        let text = match EnhancedCode::strip(text, class) {
            Some((e, rest)) => {
                if self.lines.is_empty() {
                    self.enhanced = Some(e);
                }
                rest
            }
            None => text,
        };
        self.lines.push(text.to_string());
        if more {
            return Ok(None);
        }
        let reply = Reply {
            code,
            enhanced: self.enhanced.take(),
            lines: std::mem::take(&mut self.lines),
        };
        self.code = None;
        self.size = 0;
        Ok(Some(reply))
    }
}

/// Text fit for logs: invalid UTF-8 and control characters (a server
/// could otherwise forge log lines) become replacement characters.
fn sanitise(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut ReplyParser) -> Vec<Result<Reply, ProtocolError>> {
        std::iter::from_fn(|| p.next_reply()).collect()
    }

    #[test]
    fn multi_line_replies_byte_by_byte() {
        let mut p = ReplyParser::default();
        let input = b"250-mx.test hello\r\n250-PIPELINING\r\n250 SIZE 100\r\n";
        let mut got = Vec::new();
        for b in input {
            p.push(std::slice::from_ref(b));
            got.extend(all(&mut p));
        }
        assert_eq!(got.len(), 1);
        let r = got.remove(0).unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, ["mx.test hello", "PIPELINING", "SIZE 100"]);
        assert!(p.is_empty());
    }

    #[test]
    fn several_replies_in_one_chunk_and_bare_codes() {
        let mut p = ReplyParser::default();
        p.push(b"250 2.1.0 Ok\r\n550-5.1.1 No\n550 5.1.1 such user\r\n354\r\n221 by");
        let got: Vec<Reply> = all(&mut p).into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].to_string(), "250 2.1.0 Ok");
        assert_eq!(got[1].to_string(), "550 5.1.1 No such user");
        assert_eq!(got[2].code, 354);
        assert!(!p.is_empty());
        p.push(b"e\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().to_string(), "221 bye");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"2x0 ok\r\n",
            b"150 ok\r\n",
            b"250_ok\r\n",
            b"250-a\r\n251 b\r\n",
        ] {
            let mut p = ReplyParser::default();
            p.push(bad);
            assert!(matches!(p.next_reply(), Some(Err(_))), "{bad:?}");
        }
    }

    #[test]
    fn bounds_lines_and_replies() {
        let mut p = ReplyParser::default();
        p.push(&vec![b'2'; MAX_LINE + 1]);
        assert_eq!(p.next_reply(), Some(Err(ProtocolError::LineTooLong)));

        let mut p = ReplyParser::default();
        p.push(&b"250-x\r\n".repeat(MAX_LINES));
        p.push(b"250 x\r\n");
        assert_eq!(p.next_reply(), Some(Err(ProtocolError::TooManyLines)));

        let mut p = ReplyParser::default();
        let line = format!("250-{}\r\n", "x".repeat(4000));
        p.push(line.repeat(17).as_bytes());
        assert_eq!(p.next_reply(), Some(Err(ProtocolError::ReplyTooLong)));
    }

    #[test]
    fn control_characters_do_not_reach_logs() {
        let mut p = ReplyParser::default();
        p.push(b"550 bad\x1b[2J\xff\r\n");
        let r = p.next_reply().unwrap().unwrap();
        assert_eq!(r.lines[0], "bad\u{fffd}[2J\u{fffd}");
    }
}
