//! The control side (OpenSMTPD's control process, smtpctl(8)).

pub mod format;
