//! The SMTP server protocol without I/O: bytes in, replies and decisions
//! out, in the style of rustls and quinn-proto. The tokio driver feeds a
//! [`Session`] what it reads and acts on what [`Session::poll`] returns.
//!
//! The driver loop, in outline:
//!
//! ```ignore
//! let mut s = Session::new(cfg, smtps);
//! loop {
//!     while let Some(out) = s.poll() {
//!         match out {
//!             Output::Write(bytes) => wbuf.extend(bytes),
//!             Output::Event(ev) => { flush(&mut wbuf).await; let d = policy(ev).await; s.decide(d); }
//!             Output::StartTls => { flush(&mut wbuf).await; stream = tls(stream).await?; s.tls_established(); }
//!             Output::Close => { flush(&mut wbuf).await; return Ok(()); }
//!         }
//!     }
//!     flush(&mut wbuf).await;
//!     match timeout(s.idle_timeout(), stream.read(&mut rbuf)).await {
//!         Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),   // client went away
//!         Ok(Ok(n)) => s.feed(&rbuf[..n]),
//!         Err(_) => s.timed_out(),
//!     }
//! }
//! ```
//!
//! Module map: [`line`](mod@line) frames command lines, [`command`] parses them
//! (with [`path`] and [`params`]), [`data`] reads DATA and BDAT bodies,
//! [`session`] is the state machine, [`sasl`] decodes AUTH exchanges,
//! [`reply`] the reply type.

pub mod command;
pub mod data;
pub mod line;
pub mod params;
pub mod path;
pub mod reply;
pub mod sasl;
pub mod session;

pub use command::{Command, ParseError, RcptPath, Verb};
pub use params::{BodyType, MailParams, RcptParams};
pub use reply::Reply;
pub use sasl::{Mechanism, Password};
pub use session::{
    Decision, Event, Output, Session, SessionConfig, Transaction, COMMAND_TIMEOUT, DATA_TIMEOUT,
};
