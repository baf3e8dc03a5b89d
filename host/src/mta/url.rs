//! Relay URLs: `smtp+tls://label@host:port`.
