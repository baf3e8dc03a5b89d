//! The SMTP server protocol without I/O: bytes in, replies and decisions
//! out, in the style of rustls and quinn-proto. The tokio driver feeds a
//! [`Session`] what it reads and acts on what [`Session::poll`] returns.

pub mod command;
pub mod data;
pub mod line;
pub mod params;
pub mod path;
pub mod reply;
pub mod session;

pub use command::{Command, ParseError, RcptPath, Verb};
pub use params::{BodyType, MailParams, RcptParams};
pub use reply::Reply;
pub use session::{
    Decision, Event, Output, Session, SessionConfig, Transaction, COMMAND_TIMEOUT, DATA_TIMEOUT,
};
