//! What the relay counts (`mta.*`): connections opened and failed, idle
//! connections reused, messages carried. Handles looked up once, when the
//! service starts.

use crate::stats::{Counter, Stats};

/// Counters of the relay; the default counts nowhere (tests, tools).
#[derive(Debug, Clone, Default)]
pub struct RelayStats {
    /// `mta.connect`: new connections that reached a greeting.
    pub connect: Counter,
    /// `mta.connect.fail`: new connections that did not.
    pub connect_fail: Counter,
    /// `mta.session.reused`: attempts that took an idle connection.
    pub reused: Counter,
    /// `mta.message.sent`: transactions with at least one recipient
    /// accepted.
    pub sent: Counter,
}

impl RelayStats {
    pub fn new(stats: &Stats) -> RelayStats {
        RelayStats {
            connect: stats.counter("mta.connect"),
            connect_fail: stats.counter("mta.connect.fail"),
            reused: stats.counter("mta.session.reused"),
            sent: stats.counter("mta.message.sent"),
        }
    }
}
