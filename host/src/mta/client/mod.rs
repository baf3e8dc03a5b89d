//! The SMTP/LMTP client protocol, sans-IO.
