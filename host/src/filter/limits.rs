//! What one filter may spend, with the defaults an operator gets when
//! smtpd.conf does not say.

use std::time::Duration;

use crate::config::model::WasmFilter;

/// Fuel for one call: about 10 ms of guest CPU on this class of machine.
pub const DEFAULT_CALL_FUEL: u64 = 100_000_000;
/// Fuel for a whole session: a filter cannot burn more than ~0.2 s of
/// CPU on one client, whatever the client sends.
pub const DEFAULT_SESSION_FUEL: u64 = 2_000_000_000;
pub const DEFAULT_MEMORY: u64 = 32 << 20;
/// The engine's ceiling for any filter's `memory` (the pooling
/// allocator sizes its slots for it).
pub const MAX_MEMORY: u64 = 256 << 20;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_DNS_QUERIES: u32 = 32;
/// Sessions one instance of a `reusable` filter serves before it is
/// replaced by a fresh one (Postfix's `max_use` default).
pub const DEFAULT_MAX_USE: u32 = 100;
/// Bytes one instance may scan through `host-regex` in a session: room
/// for a few dozen passes over a maximum-size message.
pub const REGEX_BYTES_PER_SESSION: u64 = 2 << 30;
/// Log lines one instance may write; the rest are dropped.
pub const LOG_LINES_PER_SESSION: u32 = 100;
/// Guest stack: deep recursion traps here instead of growing the host's.
pub const MAX_WASM_STACK: usize = 512 * 1024;
/// How often the guest yields back to tokio while it computes, in fuel:
/// a filter spinning on one worker thread does not starve the sessions
/// sharing it.
pub const YIELD_INTERVAL: u64 = 1_000_000;

/// One filter's limits, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub call_fuel: u64,
    pub session_fuel: u64,
    pub memory: u64,
    pub timeout: Duration,
    pub dns_queries: u32,
    pub max_use: u32,
}

impl Limits {
    pub fn of(def: &WasmFilter) -> Limits {
        Limits {
            call_fuel: def.fuel.unwrap_or(DEFAULT_CALL_FUEL),
            session_fuel: def.session_fuel.unwrap_or(DEFAULT_SESSION_FUEL),
            memory: def.memory.unwrap_or(DEFAULT_MEMORY).min(MAX_MEMORY),
            timeout: def.timeout.unwrap_or(DEFAULT_TIMEOUT),
            dns_queries: def.dns_queries.unwrap_or(DEFAULT_DNS_QUERIES),
            max_use: def.max_use.unwrap_or(DEFAULT_MAX_USE),
        }
    }
}
