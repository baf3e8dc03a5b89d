//! smtpctl(8) output formats for `wasmtpctl`: pure functions from the
//! crate's types to the text (and `--json`) an operator reads. Nothing
//! here talks to a socket; the control side calls these.
//!
//! - [`queue`]: `show queue`, one `|`-separated line per envelope.
//! - [`envelope`]: `show envelope ID`, `key: value` lines.
//! - [`monitor`]: `monitor`, per-second deltas of the daemon's counters.
//! - [`sanitize`]: the escaping every client-supplied field goes through.

pub mod envelope;
pub mod monitor;
pub mod queue;
pub mod sanitize;

pub use envelope::{envelope_fields, envelope_text, EnvelopeDoc};
pub use monitor::{monitor_header, monitor_line, MonitorPrinter, MonitorRow};
pub use queue::{queue_entry, queue_line, QueueEntry, RunState};
pub use sanitize::escape_field;

#[cfg(test)]
pub(crate) mod testutil;
