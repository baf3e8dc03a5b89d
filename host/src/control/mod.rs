//! The control side (OpenSMTPD's control process and smtpctl(8)): a unix
//! socket the daemon serves, the requests it takes, who may make them,
//! and the client `wasmtpctl` (and `sendmail`) use.

pub mod client;
pub mod format;
pub mod peer;
pub mod protocol;
pub mod render;
pub mod server;
pub mod socket;
mod verbs;
pub mod views;

pub use protocol::{Request, Response, Subject};
pub use server::{Controller, EnqueueHook};
