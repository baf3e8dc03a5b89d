//! What the client tells its driver: events, per-recipient results,
//! session failures, and the errors of misuse.

use std::fmt;

use super::reply::Reply;

/// Where in the session something happened (for logs, per-stage
/// timeouts, and to tell the caller which command a reply answered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Greeting,
    /// EHLO, LHLO or the HELO fallback.
    Hello,
    StartTls,
    /// The driver is doing the TLS handshake.
    TlsHandshake,
    Auth,
    Idle,
    /// Checks before anything is sent (SIZE, SMTPUTF8).
    Precheck,
    Mail,
    Rcpt,
    Data,
    /// The message was sent; the final reply is awaited.
    Content,
    Rset,
    Quit,
    Closed,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "greeting",
            Stage::Hello => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Auth => "AUTH",
            Stage::Idle => "idle",
            Stage::Precheck => "precheck",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Content => "end of DATA",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
            Stage::Closed => "closed",
        })
    }
}

/// One recipient's outcome: the reply that settled it and to which
/// command (a recipient refused at RCPT vs. a message refused at DATA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptResult {
    pub reply: Reply,
    pub stage: Stage,
}

/// A finished transaction: one result per recipient, in the order of
/// `Transaction::rcpts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxResult {
    pub rcpts: Vec<RcptResult>,
}

/// Why a session failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The server's reply (a 4xx/5xx greeting, a refused EHLO, 421...).
    Reply(Reply),
    /// The client's own reason (protocol error, TLS policy, lost connection).
    Local(String),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Reply(r) => r.fmt(f),
            FailureReason::Local(s) => f.write_str(s),
        }
    }
}

/// The connection is unusable. `permanent` is true only when the server
/// refused with a 5xx at the greeting or HELO: mail for this destination
/// would bounce rather than wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFailure {
    pub reason: FailureReason,
    pub permanent: bool,
    pub stage: Stage,
}

impl fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.reason, self.stage)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// STARTTLS was accepted: flush `poll_transmit`, do the TLS
    /// handshake, then call `tls_established`.
    StartTls,
    /// The session is set up: `send` a transaction or `quit`.
    Ready,
    /// A transaction is over; `send` the next one or `quit`.
    Done(TxResult),
    /// The connection is unusable: flush `poll_transmit` (maybe a QUIT)
    /// and close it. Sent after the `Done` of a transaction it cut short.
    Failed(SessionFailure),
    /// QUIT was answered (or the connection ended after QUIT).
    Closed,
}

/// Misuse of the client by its caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("the client is busy ({0})")]
    Busy(Stage),
    #[error("the connection is closed or closing")]
    Closed,
    #[error("a transaction needs at least one recipient")]
    NoRecipients,
    #[error("invalid {0}: it contains spaces or control characters")]
    BadParameter(&'static str),
}
