//! What the caller gives the client: how to behave on this connection
//! (`ClientConfig`) and what to send on it (`Transaction`).

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::mailaddr::MailAddr;

/// Whether to use STARTTLS (RFC 3207) on a plain-text connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// Never send STARTTLS.
    Never,
    /// STARTTLS when advertised; plain text when absent or refused.
    #[default]
    Opportunistic,
    /// No mail in plain text: fail the session when STARTTLS is absent
    /// or refused.
    Required,
}

/// AUTH credentials. The password is wiped from memory when dropped and
/// never shown by `Debug`.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Zeroizing<String>,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: Zeroizing::new(password.into()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How the client behaves on one connection.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The name sent in EHLO/LHLO/HELO.
    pub helo: String,
    /// LMTP (RFC 2033): LHLO, one final reply per accepted recipient, no
    /// HELO fallback.
    pub lmtp: bool,
    pub tls: TlsPolicy,
    /// The connection is already TLS (smtps, or LMTP over a trusted
    /// socket the caller deems secure): no STARTTLS, AUTH allowed.
    pub tls_active: bool,
    /// AUTH after EHLO (only over TLS).
    pub auth: Option<Credentials>,
}

impl ClientConfig {
    /// Plain SMTP with opportunistic STARTTLS and no AUTH.
    pub fn new(helo: impl Into<String>) -> Self {
        ClientConfig {
            helo: helo.into(),
            lmtp: false,
            tls: TlsPolicy::Opportunistic,
            tls_active: false,
            auth: None,
        }
    }
}

/// One recipient with its DSN parameters (RFC 3461), already in their
/// wire form (`NOTIFY=SUCCESS,FAILURE`, `ORCPT=rfc822;a+2Bb@x` values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub addr: MailAddr,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

impl Recipient {
    pub fn new(addr: MailAddr) -> Self {
        Recipient {
            addr,
            notify: None,
            orcpt: None,
        }
    }
}

/// One message for one or more recipients on this connection.
#[derive(Clone)]
pub struct Transaction {
    /// `None` is the null sender `<>` (bounces).
    pub sender: Option<MailAddr>,
    pub rcpts: Vec<Recipient>,
    /// DSN `RET=` value (`FULL`/`HDRS`).
    pub ret: Option<String>,
    /// DSN `ENVID=` value (xtext).
    pub envid: Option<String>,
    /// The message: CRLF lines, not dot-stuffed, without the final dot.
    pub content: Arc<Vec<u8>>,
}

impl fmt::Debug for Transaction {
    // The content may be megabytes: show its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("sender", &self.sender)
            .field("rcpts", &self.rcpts)
            .field("ret", &self.ret)
            .field("envid", &self.envid)
            .field("content_len", &self.content.len())
            .finish()
    }
}
