//! What the filters count, per filter (`filter.<name>.*`) and per tenant
//! (`tenant.<tag>.filter.*`, the listener's tag). The handles are looked
//! up once — per loaded filter, per session for the tenant — so a filter
//! call pays a few relaxed atomic adds and no lock.
//!
//! Names go through [`Stats::counter_with`], so a filter or tag with a
//! dot in it (`example.org`) stays one label value.

use crate::stats::{Counter, Stats};

/// One filter's figures; shared by every instance of the filter and kept
/// across reloads (the registry hands out the same handles by name).
#[derive(Debug, Clone, Default)]
pub struct FilterStats {
    /// Export calls into a wasm filter (init, phases, line batches,
    /// reports); evaluations of a builtin one at its phase.
    pub calls: Counter,
    /// Fuel the filter burnt, over all its calls.
    pub fuel: Counter,
    /// Calls stopped by a trap or a budget (fuel, deadline, memory,
    /// stack, host budgets).
    pub traps: Counter,
    /// The deadline part of `traps`.
    pub timeouts: Counter,
    /// Every failure that set the filter's on-error policy going: traps,
    /// failed instantiations and answers the host refused.
    pub errors: Counter,
    /// Times the filter was put in quarantine.
    pub quarantines: Counter,
    /// Reject or disconnect decisions the filter took itself.
    pub rejects: Counter,
    /// Sessions served by an instance a previous session had finished
    /// with, instead of a new one.
    pub reuses: Counter,
}

impl FilterStats {
    pub fn new(stats: &Stats, name: &str) -> FilterStats {
        let c = |what: &str| stats.counter_with(&format!("filter.{what}"), &[("filter", name)]);
        FilterStats {
            calls: c("calls"),
            fuel: c("fuel"),
            traps: c("traps"),
            timeouts: c("timeouts"),
            errors: c("errors"),
            quarantines: c("quarantines"),
            rejects: c("rejects"),
            reuses: c("reuses"),
        }
    }
}

/// One tenant's share of the wasm filters' work.
#[derive(Debug, Clone, Default)]
pub struct TenantStats {
    pub calls: Counter,
    pub fuel: Counter,
    pub traps: Counter,
}

impl TenantStats {
    pub fn new(stats: &Stats, tenant: &str) -> TenantStats {
        let c = |what: &str| {
            stats.counter_with(&format!("tenant.filter.{what}"), &[("tenant", tenant)])
        };
        TenantStats {
            calls: c("calls"),
            fuel: c("fuel"),
            traps: c("traps"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_filter_and_the_tenant() {
        let stats = Stats::new(std::time::Instant::now());
        FilterStats::new(&stats, "dnsbl").calls.add(3);
        TenantStats::new(&stats, "example.org").fuel.add(7);
        use crate::stats::Value;
        let snap = stats.snapshot();
        assert_eq!(snap.get("filter.dnsbl.calls"), Some(&Value::Counter(3)));
        assert_eq!(
            snap.get("tenant.example.org.filter.fuel"),
            Some(&Value::Counter(7))
        );
        let prom = stats.render_prometheus();
        assert!(
            prom.contains("wasmtpd_filter_calls_total{filter=\"dnsbl\"} 3"),
            "{prom}"
        );
        assert!(
            prom.contains("wasmtpd_tenant_filter_fuel_total{tenant=\"example.org\"} 7"),
            "{prom}"
        );
        // The same name gives the same value.
        assert_eq!(FilterStats::new(&stats, "dnsbl").calls.get(), 3);
    }
}
