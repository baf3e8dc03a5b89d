//! Rust types and call glue generated from `wit/filter.wit`.
//!
//! Only DNS lookups are async on the host side (they wait on the
//! network); every import may trap, which is how the host stops a filter
//! that goes past a budget.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "mail-filter",
    imports: {
        "wasmtpd:filter/host-dns.lookup": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub use self::exports::wasmtpd::filter::filter::Guest;
pub use self::wasmtpd::filter::host_dns::RecordType;
pub use self::wasmtpd::filter::host_log::Level;
pub use self::wasmtpd::filter::types::{
    AuthReport, Decision, Guard, Guarded, LinesAnswer, LinesOut, Outcome, Phase, Reply, Report,
    Session, Subscriptions, TxAddress,
};
