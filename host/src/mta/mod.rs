//! Relay out (OpenSMTPD's mta): where a relayed envelope goes (a
//! smarthost URL or the recipient domain's MX hosts), the SMTP client
//! that carries it there (sans-IO protocol plus a thin tokio driver), the
//! client side of TLS and AUTH, and connection reuse per destination.

pub mod client;
pub mod relay;
pub mod route;
pub mod session;
pub mod tls;
pub mod url;
