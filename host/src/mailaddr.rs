//! Mail addresses as they travel in SMTP envelopes (RFC 5321 §4.1.2).
//!
//! Only the envelope form is handled here (`local@domain`, the null
//! sender `<>`); header addresses are the MIME parser's business.

use std::fmt;

/// Longest local part / domain / whole path RFC 5321 §4.5.3.1 allows.
pub const MAX_LOCAL_PART: usize = 64;
pub const MAX_DOMAIN: usize = 255;
pub const MAX_PATH: usize = 256;

/// An envelope address. The domain is kept as given (case preserved);
/// comparisons that need it lowercase it themselves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MailAddr {
    pub local: String,
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("address is too long")]
    TooLong,
    #[error("local part is too long")]
    LocalTooLong,
    #[error("missing domain")]
    NoDomain,
    #[error("invalid character in address")]
    BadChar,
    #[error("empty local part")]
    EmptyLocal,
    #[error("invalid domain")]
    BadDomain,
}

impl MailAddr {
    pub fn new(local: impl Into<String>, domain: impl Into<String>) -> Self {
        MailAddr {
            local: local.into(),
            domain: domain.into(),
        }
    }

    /// Parses `local@domain` (no angle brackets). Quoted local parts are
    /// accepted; source routes must already have been stripped.
    pub fn parse(s: &str) -> Result<MailAddr, AddrError> {
        if s.len() > MAX_PATH {
            return Err(AddrError::TooLong);
        }
        let at = s.rfind('@').ok_or(AddrError::NoDomain)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.is_empty() {
            return Err(AddrError::EmptyLocal);
        }
        if local.len() > MAX_LOCAL_PART {
            return Err(AddrError::LocalTooLong);
        }
        if domain.is_empty() {
            return Err(AddrError::NoDomain);
        }
        if domain.len() > MAX_DOMAIN || !valid_domain(domain) {
            return Err(AddrError::BadDomain);
        }
        if !valid_local(local) {
            return Err(AddrError::BadChar);
        }
        Ok(MailAddr::new(local, domain))
    }

    /// The domain in lowercase, for lookups and comparisons.
    pub fn domain_lc(&self) -> String {
        self.domain.to_ascii_lowercase()
    }

    /// The local part without a `+tag` sub-address extension.
    pub fn local_base(&self, delim: char) -> &str {
        match self.local.find(delim) {
            Some(i) if i > 0 => &self.local[..i],
            _ => &self.local,
        }
    }
}

impl fmt::Display for MailAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Displays an optional sender the way logs and Return-Path show it.
pub fn display_sender(sender: Option<&MailAddr>) -> String {
    match sender {
        Some(a) => a.to_string(),
        None => String::new(),
    }
}

fn valid_local(local: &str) -> bool {
    if local.starts_with('"') {
        return local.len() >= 2 && local.ends_with('"') && !local.chars().any(|c| c.is_control());
    }
    local
        .chars()
        .all(|c| c.is_alphanumeric() || !c.is_ascii() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
}

fn valid_domain(domain: &str) -> bool {
    if let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        // Address literal, [1.2.3.4] or [IPv6:...]: RFC 5321's dcontent
        // (printable ASCII but `[`, `\`, `]`), so nothing odd reaches logs.
        return !inner.is_empty() && inner.bytes().all(|b| matches!(b, 33..=90 | 94..=126));
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || !c.is_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_quoted() {
        assert_eq!(
            MailAddr::parse("a@b.org").unwrap(),
            MailAddr::new("a", "b.org")
        );
        assert!(MailAddr::parse("\"a b\"@b.org").is_ok());
        assert!(MailAddr::parse("a@[127.0.0.1]").is_ok());
        assert!(MailAddr::parse("jösé@exämple.org").is_ok());
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(MailAddr::parse("ab.org"), Err(AddrError::NoDomain));
        assert_eq!(MailAddr::parse("@b.org"), Err(AddrError::EmptyLocal));
        assert_eq!(MailAddr::parse("a@b..org"), Err(AddrError::BadDomain));
        assert_eq!(MailAddr::parse("a b@b.org"), Err(AddrError::BadChar));
        assert_eq!(MailAddr::parse("a;id@b.org"), Err(AddrError::BadChar));
        assert_eq!(MailAddr::parse("a@[\x1b[2Jx]"), Err(AddrError::BadDomain));
        assert_eq!(MailAddr::parse("a@[1.2.3.4 ]"), Err(AddrError::BadDomain));
    }

    #[test]
    fn strips_subaddress() {
        assert_eq!(MailAddr::new("joe+list", "x").local_base('+'), "joe");
        assert_eq!(MailAddr::new("+x", "x").local_base('+'), "+x");
    }
}
