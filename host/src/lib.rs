//! wasmtpd: a mail transfer agent in the spirit of OpenSMTPD.
//!
//! One module per subsystem, mirroring OpenSMTPD's process split:
//! `config` (smtpd.conf), `smtp` (inbound sessions), `lka` (rule matching
//! and recipient expansion), `table` (lookup tables), `queue` (durable
//! storage), `scheduler` (when to try what), `mda` (local delivery),
//! `control` (wasmtpctl), `privsep` (root only where needed). Subsystems
//! talk through typed messages and narrow traits.

pub mod auth;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dns;
pub mod enqueue;
pub mod envelope;
pub mod filter;
pub mod lka;
pub mod log;
pub mod loops;
pub mod mailaddr;
pub mod mda;
pub mod mta;
pub mod privsep;
pub mod queue;
pub mod scheduler;
pub mod smtp;
pub mod stats;
pub mod table;
pub mod tls;
