//! SMTP AUTH credentials: checking a password against the crypt(3)
//! hashes OpenSMTPD's credentials tables hold, making such hashes
//! (`wasmtpd encrypt`, like `smtpctl encrypt`), and the per-listener
//! checks around authenticated users (credentials and `senders` tables).

mod credentials;
mod hash;

pub use credentials::{check_credentials, sender_allowed, AuthError};
pub use hash::{encrypt, verify, HashError};
