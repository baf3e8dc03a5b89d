//! The filter engine: every mail filter is a WebAssembly component (the
//! `mail-filter` world of `wit/filter.wit`, OpenSMTPD's smtpd-filters(7)
//! phases and reports) run by wasmtime with no ambient authority.
//!
//! - [`engine`]: the wasmtime engine (fuel, epochs, pooling, stack cap)
//!   and compilation with an on-disk cache.
//! - [`registry`]: the configured filters, compiled; swapped whole on
//!   reload so sessions in flight finish on the version they started
//!   with.
//! - [`chain`]: one session's instances, run in order for each phase,
//!   batch of message lines and report; failure policies.
//! - [`instance`]: one instance, its budgets, and what a failure was.
//! - [`interest`]: what a filter asked to see, and the guards the host
//!   matches before calling it.
//! - [`recycle`]: finished instances kept for the tenant's next session.
//! - [`host`]: the imports (log, dns, kv, config), each checked against
//!   the operator's grants and the instance's budget.
//! - [`regex`]: pattern sets compiled once per filter (`host-regex`).
//! - [`bundled`]: dnsbl, regex and spamscore, built from `filters/`.
//! - [`stats`]: calls, fuel, traps, quarantines per filter and tenant.
//!
//! A filter gets only what the `mail-filter` world imports; anything
//! else it imports (WASI files, sockets, clocks, environment) is linked
//! as a function that traps, so trying it stops the filter.

pub mod bindings;
pub mod builtin;
pub mod bundled;
pub mod chain;
pub mod engine;
pub mod host;
pub mod instance;
pub mod interest;
pub mod limits;
pub mod quarantine;
pub mod recycle;
pub mod regex;
pub mod registry;
mod reply;
pub mod stats;

pub use bindings::{Outcome, Phase, Report, Session as FilterSession, TxAddress};
pub use chain::{ChainMember, SessionFilters, Verdict};
pub use engine::{EngineOptions, FilterEngine};
pub use registry::{read_sources, Registry, Source};
pub use stats::{FilterStats, TenantStats};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("filter engine: {0}")]
    Engine(String),
    #[error("compile: {0}")]
    Compile(String),
    #[error("link: {0}")]
    Link(String),
    #[error("filter {name}: {why}")]
    Load { name: String, why: String },
    #[error("{origin}: filter {name}: \"{what}\" filters are not supported; wasmtpd runs wasm components (filter NAME wasm \"/path/filter.wasm\")")]
    Unsupported {
        name: String,
        origin: String,
        what: String,
    },
}

#[cfg(test)]
mod tests;
