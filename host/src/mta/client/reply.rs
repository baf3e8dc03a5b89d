//! A server's reply (RFC 5321 §4.2) with its enhanced status code
//! (RFC 3463), as the client hands it to the caller for each recipient.

use std::fmt;

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Splits `D.DDD.DDD` off the start of a reply line's text, if there
    /// and of the reply's class (a `250 5.0.0` is not an enhanced code).
    pub(crate) fn strip(text: &str, reply_class: u8) -> Option<(EnhancedCode, &str)> {
        let (word, rest) = match text.find(' ') {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => (text, ""),
        };
        let mut parts = word.split('.');
        let (c, s, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || c.len() != 1 || !(1..=3).contains(&s.len()) {
            return None;
        }
        if !(1..=3).contains(&d.len()) {
            return None;
        }
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(c) || !all_digits(s) || !all_digits(d) {
            return None;
        }
        let class = c.parse::<u8>().ok()?;
        if class != reply_class || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        let code = EnhancedCode::new(class, s.parse().ok()?, d.parse().ok()?);
        Some((code, rest))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete reply. `lines` hold each line's text without the code
/// and without the enhanced code (kept once in `enhanced`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply the client makes up itself (a check before sending, a
    /// lost connection), shaped like a server's.
    pub fn synthesised(code: u16, enhanced: EnhancedCode, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// The first digit: 2 positive, 3 intermediate, 4 transient, 5 permanent.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// 2xx: the command (or the mail, for the final reply) was accepted.
    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// 3xx: the server waits for more (354 after DATA, 334 in AUTH).
    pub fn is_intermediate(&self) -> bool {
        self.class() == 3
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        self.class() == 4
    }

    /// 5xx: do not try again; the mail bounces.
    pub fn is_permanent(&self) -> bool {
        self.class() == 5
    }

    /// The lines' text joined by spaces, for logs and bounces.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for l in self.lines.iter().filter(|l| !l.is_empty()) {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(l);
        }
        s
    }
}

/// `550 5.1.1 User unknown`: code, enhanced code, lines joined by a space.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_code_must_match_the_class() {
        assert_eq!(
            EnhancedCode::strip("5.1.1 User unknown", 5),
            Some((EnhancedCode::new(5, 1, 1), "User unknown"))
        );
        assert_eq!(EnhancedCode::strip("5.1.1 User unknown", 2), None);
        assert_eq!(
            EnhancedCode::strip("2.0.0", 2),
            Some((EnhancedCode::new(2, 0, 0), ""))
        );
        assert_eq!(EnhancedCode::strip("1.2.3.4 is an IP", 2), None);
        assert_eq!(EnhancedCode::strip("2.0.1234 Ok", 2), None);
        assert_eq!(EnhancedCode::strip("2.x.0 Ok", 2), None);
        assert_eq!(EnhancedCode::strip("Ok", 2), None);
    }

    #[test]
    fn displays_and_classifies() {
        let r = Reply {
            code: 550,
            enhanced: Some(EnhancedCode::new(5, 1, 1)),
            lines: vec!["User".into(), "".into(), "unknown".into()],
        };
        assert_eq!(r.to_string(), "550 5.1.1 User unknown");
        assert!(r.is_permanent() && !r.is_positive() && !r.is_transient());
        let ok = Reply {
            code: 250,
            enhanced: None,
            lines: vec![],
        };
        assert_eq!(ok.to_string(), "250");
        assert!(ok.is_positive());
    }
}
