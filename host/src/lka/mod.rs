//! lka: rule matching and recipient expansion (OpenSMTPD's lookup agent).
pub mod expand;
pub mod resolve;
pub mod rules;
