//! The SMTP/LMTP client protocol (RFC 5321, ESMTP, RFC 2033), sans-IO.
//!
//! [`Client`] holds no socket, timer or TLS state: a driver moves bytes
//! and reacts to events, as with quinn-proto or rustls.
//!
//! ```text
//! let mut c = Client::new(cfg)?;             // waits for the 220 greeting
//! loop {
//!     while let Some(bytes) = c.poll_transmit() { write_all(bytes) }
//!     while let Some(ev) = c.poll_event() { match ev {
//!         Event::StartTls => { handshake(); c.tls_established() }
//!         Event::Ready | Event::Done(_) => /* record results */ match next_tx() {
//!             Some(tx) => c.send(tx)?, None => c.quit() },
//!         Event::Failed(_) | Event::Closed => /* flush, close */ return,
//!     }}
//!     match read_with_timeout(c.stage()) { Ok(b) => c.receive(&b), Err(e) => c.abort(&e) }
//! }
//! ```
//!
//! Every transaction accepted by [`Client::send`] ends in exactly one
//! [`Event::Done`], with one [`Reply`] per recipient in the given order —
//! synthesised and temporary when the session fails first.

mod command;
mod config;
mod event;
mod ext;
mod parser;
mod proto;
mod reply;

#[cfg(test)]
mod tests;

pub use config::{ClientConfig, Credentials, Recipient, TlsPolicy, Transaction};
pub use event::{ClientError, Event, FailureReason, RcptResult, SessionFailure, Stage, TxResult};
pub use ext::Extensions;
pub use parser::{ProtocolError, MAX_LINE, MAX_LINES, MAX_REPLY};
pub use proto::Client;
pub use reply::{EnhancedCode, Reply};
