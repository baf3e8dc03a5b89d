//! SMTP AUTH credentials: checking a password against the crypt(3)
//! hashes OpenSMTPD's credentials tables hold, making such hashes
//! (`wasmtpd encrypt`, like `smtpctl encrypt`), and the per-listener
//! checks around authenticated users (credentials and `senders` tables,
//! `masquerade`).

mod credentials;
mod hash;
mod masquerade;

pub use credentials::{check_credentials, sender_allowed, AuthError};
pub use hash::{encrypt, encrypt_command, verify, EncryptError, HashError};
pub use masquerade::rewrite_from;
