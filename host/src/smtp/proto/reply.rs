//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463).
//!
//! A reply is built once and encoded on the wire as one or more
//! CRLF-terminated lines; a `\n` in the text makes a multi-line reply,
//! every line carrying the code and the enhanced code.

use std::fmt;

/// One server reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.7.1`, repeated on every line.
    pub enhanced: Option<String>,
    pub text: String,
}

impl Reply {
    /// A reply with an enhanced status code.
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced.to_string()),
            text: text.into(),
        }
    }

    /// A reply without an enhanced status code (greeting, HELO/EHLO, 354).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            text: text.into(),
        }
    }

    /// 421 tells the client the server is closing the connection.
    pub fn is_closing(&self) -> bool {
        self.code == 421
    }

    /// Positive completion or intermediate (2xx/3xx).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The wire form: every line `CODE[-| ][ENH ]text\r\n`.
    pub fn encode(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Codes outside 100..=999 would break the 3-digit framing the
        // client relies on; such a reply can only come from a caller bug.
        let code = if (100..1000).contains(&self.code) {
            self.code
        } else {
            451
        };
        let lines: Vec<&str> = self.text.split('\n').collect();
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // A stray CR (or any control char) inside reply text could
            // forge extra reply lines: drop them.
            let line: String = line.chars().filter(|c| !c.is_control()).collect();
            let mut parts: Vec<&str> = Vec::with_capacity(2);
            if let Some(enh) = &self.enhanced {
                parts.push(enh);
            }
            if !line.is_empty() {
                parts.push(&line);
            }
            if parts.is_empty() {
                write!(f, "{code}{sep}\r\n")?;
            } else {
                write!(f, "{code}{sep}{}\r\n", parts.join(" "))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_with_enhanced_code() {
        let r = Reply::new(550, "5.7.1", "Relaying denied");
        assert_eq!(r.to_string(), "550 5.7.1 Relaying denied\r\n");
    }

    #[test]
    fn multi_line_repeats_codes() {
        let r = Reply::new(214, "2.0.0", "one\ntwo\nthree");
        assert_eq!(
            r.to_string(),
            "214-2.0.0 one\r\n214-2.0.0 two\r\n214 2.0.0 three\r\n"
        );
    }

    #[test]
    fn plain_reply_and_cr_stripped() {
        let r = Reply::plain(220, "mx.example.org ESMTP\r");
        assert_eq!(r.encode(), b"220 mx.example.org ESMTP\r\n");
        let r = Reply::new(250, "2.0.0", "");
        assert_eq!(r.to_string(), "250 2.0.0\r\n");
    }

    #[test]
    fn bogus_code_is_not_sent_verbatim() {
        let r = Reply::new(42, "4.0.0", "x");
        assert_eq!(r.to_string(), "451 4.0.0 x\r\n");
    }
}
