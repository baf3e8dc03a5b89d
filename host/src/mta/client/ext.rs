//! What the server advertised in its EHLO/LHLO reply (RFC 5321 §4.1.1.1
//! and the ESMTP extensions the client uses).

use super::reply::Reply;

/// The server's extensions. All false/empty after HELO (no ESMTP), and
/// forgotten after STARTTLS (RFC 3207 §4.2: the client must discard what
/// it learnt in plain text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// The server answered EHLO/LHLO (not the HELO fallback).
    pub esmtp: bool,
    pub pipelining: bool,
    /// `SIZE [n]`: `Some(0)` when advertised without a (positive) limit.
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub starttls: bool,
    pub enhancedstatuscodes: bool,
    /// SASL mechanisms, upper-cased, in the server's order.
    pub auth: Vec<String>,
}

impl Extensions {
    /// Reads the keywords from an EHLO reply; the first line is the
    /// server's name and greeting, not a keyword. Unknown keywords are
    /// ignored, as RFC 5321 asks.
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions {
            esmtp: true,
            ..Extensions::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            // Old servers advertise `AUTH=LOGIN PLAIN`.
            let (keyword, first_param) = match keyword.split_once('=') {
                Some((k, p)) => (k.to_string(), Some(p.to_string())),
                None => (keyword, None),
            };
            match keyword.as_str() {
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => ext.eightbitmime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "DSN" => ext.dsn = true,
                "STARTTLS" => ext.starttls = true,
                "ENHANCEDSTATUSCODES" => ext.enhancedstatuscodes = true,
                "AUTH" => {
                    for m in first_param.into_iter().chain(words.map(str::to_string)) {
                        let m = m.to_ascii_uppercase();
                        if !m.is_empty() && !ext.auth.contains(&m) {
                            ext.auth.push(m);
                        }
                    }
                }
                _ => {}
            }
        }
        ext
    }

    /// The size limit to honour before sending, if the server set one.
    pub fn size_limit(&self) -> Option<u64> {
        self.size.filter(|&n| n > 0)
    }

    /// Whether the server offers this SASL mechanism (case-insensitive).
    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ehlo(lines: &[&str]) -> Reply {
        Reply {
            code: 250,
            enhanced: None,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reads_keywords_case_insensitively() {
        let e = Extensions::from_ehlo(&ehlo(&[
            "mx.test Hello",
            "pipelining",
            "SIZE 35882577",
            "8BITMIME",
            "SMTPUTF8",
            "DSN",
            "STARTTLS",
            "ENHANCEDSTATUSCODES",
            "AUTH login PLAIN",
            "AUTH=LOGIN CRAM-MD5",
            "X-UNKNOWN foo",
        ]));
        assert!(e.esmtp && e.pipelining && e.eightbitmime && e.smtputf8);
        assert!(e.dsn && e.starttls && e.enhancedstatuscodes);
        assert_eq!(e.size_limit(), Some(35882577));
        assert_eq!(e.auth, ["LOGIN", "PLAIN", "CRAM-MD5"]);
        assert!(e.offers_auth("plain"));
    }

    #[test]
    fn greeting_line_is_not_a_keyword_and_size_may_be_unlimited() {
        let e = Extensions::from_ehlo(&ehlo(&["PIPELINING", "SIZE"]));
        assert!(!e.pipelining);
        assert_eq!(e.size, Some(0));
        assert_eq!(e.size_limit(), None);
    }
}
