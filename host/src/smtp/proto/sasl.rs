//! SASL for SMTP AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN
//! mechanisms' base64 messages, and a password type that never prints
//! and is wiped from memory when dropped.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

/// The mechanisms offered, in the order EHLO lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// Mechanism names are case-insensitive (RFC 4422 §3.1).
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// The EHLO keyword line.
pub const ADVERTISED: &str = "AUTH PLAIN LOGIN";

/// A password from the client. Debug prints `***`; the memory is zeroed
/// on drop. [`expose`](Password::expose) is the only way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(p: impl Into<String>) -> Password {
        Password(Zeroizing::new(p.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a client's SASL message was refused (before any credential check).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("Invalid base64 data")]
    Base64,
    #[error("Invalid authentication data")]
    Malformed,
}

/// Decodes one base64 client message. `=` is the empty message (an
/// empty initial response, RFC 4954 §4).
pub fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, SaslError> {
    if text == "=" {
        return Ok(Zeroizing::new(Vec::new()));
    }
    STANDARD
        .decode(text.trim_end())
        .map(Zeroizing::new)
        .map_err(|_| SaslError::Base64)
}

/// Decodes a UTF-8 text field (LOGIN's user name or password).
pub fn decode_text(text: &str) -> Result<Zeroizing<String>, SaslError> {
    let raw = decode(text)?;
    let s = std::str::from_utf8(&raw).map_err(|_| SaslError::Malformed)?;
    Ok(Zeroizing::new(s.to_string()))
}

/// PLAIN's `authzid NUL authcid NUL passwd`. An authorization identity
/// other than the user's own is refused: acting as someone else is not
/// supported.
pub fn parse_plain(text: &str) -> Result<(String, Password), SaslError> {
    let raw = decode(text)?;
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let (authz, user, pass) = (utf8(authz)?, utf8(user)?, utf8(pass)?);
    if user.is_empty() || (!authz.is_empty() && authz != user) {
        return Err(SaslError::Malformed);
    }
    Ok((user.to_string(), Password::new(pass)))
}

fn utf8(b: &[u8]) -> Result<&str, SaslError> {
    std::str::from_utf8(b).map_err(|_| SaslError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn plain_with_and_without_authzid() {
        let (u, p) = parse_plain(&b64(b"\0joe\0s3cret")).unwrap();
        assert_eq!((u.as_str(), p.expose()), ("joe", "s3cret"));
        let (u, _) = parse_plain(&b64(b"joe\0joe\0s3cret")).unwrap();
        assert_eq!(u, "joe");
        assert_eq!(
            parse_plain(&b64(b"root\0joe\0s3cret")),
            Err(SaslError::Malformed)
        );
    }

    #[test]
    fn plain_refuses_garbage() {
        assert_eq!(parse_plain("!!!"), Err(SaslError::Base64));
        assert_eq!(parse_plain(&b64(b"joe")), Err(SaslError::Malformed));
        assert_eq!(parse_plain(&b64(b"\0\0pw")), Err(SaslError::Malformed));
        assert_eq!(parse_plain(&b64(b"\0a\0b\0c")), Err(SaslError::Malformed));
        assert_eq!(parse_plain("="), Err(SaslError::Malformed));
        assert_eq!(
            parse_plain(&b64(b"\0j\xffoe\0pw")),
            Err(SaslError::Malformed)
        );
    }

    #[test]
    fn password_never_prints() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "***");
        assert_eq!(format!("{:?}", Some(p)), "Some(***)");
    }

    #[test]
    fn mechanisms_case_insensitive() {
        assert_eq!(Mechanism::parse("plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::parse("LoGiN"), Some(Mechanism::Login));
        assert_eq!(Mechanism::parse("CRAM-MD5"), None);
        assert_eq!(decode_text("am9l").unwrap().as_str(), "joe");
    }
}
