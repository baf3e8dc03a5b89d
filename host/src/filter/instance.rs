//! One filter instance serving one session at a time: its store, the
//! fuel and deadline set before each call, the restart of a reused
//! instance for its next session, and the translation of whatever went
//! wrong into a [`Failure`] the chain can act on.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::Store;

use super::bindings::{Decision, LinesAnswer, MailFilter, Phase, Report, Session};
use super::engine::TICK;
use super::host::{refresh_session, BudgetExceeded, CallDeadline, FilterHost};
use super::interest::Interest;
use super::limits::{Limits, YIELD_INTERVAL};
use super::registry::LoadedFilter;
use super::stats::{FilterStats, TenantStats};

/// Why a filter's call did not give an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("could not instantiate: {0}")]
    Instantiate(String),
    #[error("fuel exhausted")]
    Fuel,
    #[error("session fuel exhausted")]
    SessionFuel,
    #[error("deadline exceeded")]
    Deadline,
    #[error("memory limit reached")]
    Memory,
    #[error("stack overflow")]
    Stack,
    #[error("{0}")]
    Budget(&'static str),
    #[error("trap: {0}")]
    Trap(String),
    #[error("bad answer: {0}")]
    BadAnswer(String),
    #[error("quarantined")]
    Quarantined,
}

pub struct Instance {
    store: Store<FilterHost>,
    bindings: MailFilter,
    limits: Limits,
    session_fuel_left: u64,
    /// Its `init` answer.
    pub interest: Arc<Interest>,
    stats: Arc<FilterStats>,
    tenant: Option<Arc<TenantStats>>,
    /// Sessions served so far, this one included.
    uses: u32,
    /// A call began and did not end: its future was dropped half way
    /// (the session went away), so the guest stopped mid-call.
    in_call: bool,
}

/// Calls one of the filter's exports the way every call goes: fresh
/// fuel and deadline first, the fuel burnt counted after. The parameter
/// and lines are borrowed, not copied (a batch of lines is up to
/// 256 KiB, copied once more per filter otherwise); a closure could not
/// borrow them for a future that also borrows the store.
///
/// The deadline needs no timer of its own: the epoch stops a guest that
/// computes, and the only import that waits (DNS) is bounded by what is
/// left of the call's time (see `host-dns` in [`super::host`]).
macro_rules! export_call {
    ($instance:expr, $export:ident($($arg:expr),*)) => {{
        let given = $instance.begin_call()?;
        $instance.in_call = true;
        let outcome = $instance
            .bindings
            .wasmtpd_filter_filter()
            .$export(&mut $instance.store $(, $arg)*)
            .await;
        $instance.in_call = false;
        $instance.end_call(given, outcome)
    }};
}

impl Instance {
    /// Instantiates the filter for a session and asks what it wants to
    /// see (`init`).
    pub async fn start(filter: &Arc<LoadedFilter>, session_id: &str) -> Result<Instance, Failure> {
        Instance::start_for(filter, session_id, None).await
    }

    /// [`Instance::start`], with the calls and fuel also counted for the
    /// session's tenant.
    pub async fn start_for(
        filter: &Arc<LoadedFilter>,
        session_id: &str,
        tenant: Option<Arc<TenantStats>>,
    ) -> Result<Instance, Failure> {
        let mut instance = Instance::instantiate(filter, session_id, tenant).await?;
        let subscriptions = export_call!(instance, call_init())?;
        let interest =
            Interest::resolve(subscriptions, &filter.shared.regex).map_err(Failure::BadAnswer)?;
        instance.interest = Arc::new(interest);
        Ok(instance)
    }

    /// Makes a finished instance ready for another session: fresh
    /// budgets and the next session serial, which tells the filter to
    /// start afresh. No call: `init` answered for the instance.
    pub fn restart(&mut self, session_id: &str, tenant: Option<Arc<TenantStats>>) {
        self.store
            .data_mut()
            .begin_session(session_id, self.limits.dns_queries);
        self.session_fuel_left = self.limits.session_fuel;
        self.tenant = tenant;
        self.uses += 1;
        self.stats.reuses.inc();
    }

    /// Whether the instance may serve another session after this one:
    /// it said so at `init`, no call was cut off half way, it has
    /// sessions left and did not grow much. Failed instances are not
    /// asked: the chain drops them.
    pub fn reusable(&self) -> bool {
        self.interest.subscriptions.reusable
            && !self.in_call
            && self.uses < self.limits.max_use
            && self.store.data().limits.memory_peak <= super::recycle::MAX_RECYCLED_MEMORY
    }

    /// A new instance, not yet asked anything (no `init`): what the
    /// engine itself costs per instance, for the benchmarks.
    pub async fn instantiate(
        filter: &Arc<LoadedFilter>,
        session_id: &str,
        tenant: Option<Arc<TenantStats>>,
    ) -> Result<Instance, Failure> {
        let limits = filter.limits.clone();
        let host = FilterHost::new(
            filter.shared.clone(),
            session_id.to_string(),
            limits.memory,
            limits.dns_queries,
        );
        let mut store = Store::new(filter.engine(), host);
        store.limiter(|h| &mut h.limits);
        store.epoch_deadline_trap();
        store
            .fuel_async_yield_interval(Some(YIELD_INTERVAL))
            .map_err(|e| Failure::Instantiate(e.to_string()))?;
        let session_fuel_left = limits.session_fuel;
        arm(&mut store, &limits, session_fuel_left)?;
        let bindings = match tokio::time::timeout(
            limits.timeout + TICK * 2,
            filter.pre.instantiate_async(&mut store),
        )
        .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(classify(e, false)),
            Err(_) => return Err(Failure::Deadline),
        };
        Ok(Instance {
            store,
            bindings,
            limits,
            session_fuel_left,
            interest: Arc::new(Interest::nothing()),
            stats: filter.stats.clone(),
            tenant,
            uses: 1,
            in_call: false,
        })
    }

    pub async fn on_phase(
        &mut self,
        session: &Session,
        phase: Phase,
        param: &str,
    ) -> Result<Decision, Failure> {
        refresh_session(&mut self.store.data_mut().session, session);
        export_call!(self, call_on_phase(phase, param))
    }

    pub async fn on_data_lines(
        &mut self,
        session: &Session,
        lines: &[u8],
        last: bool,
    ) -> Result<LinesAnswer, Failure> {
        refresh_session(&mut self.store.data_mut().session, session);
        export_call!(self, call_on_data_lines(lines, last))
    }

    pub async fn on_report(&mut self, session: &Session, report: &Report) -> Result<(), Failure> {
        refresh_session(&mut self.store.data_mut().session, session);
        export_call!(self, call_on_report(report))
    }

    /// Gives the next export call fresh per-call fuel (bounded by what is
    /// left of the session's) and its deadline; returns the fuel given.
    fn begin_call(&mut self) -> Result<u64, Failure> {
        if self.session_fuel_left == 0 {
            return Err(Failure::SessionFuel);
        }
        self.store.data_mut().call_deadline = Some(Instant::now() + self.limits.timeout);
        arm(&mut self.store, &self.limits, self.session_fuel_left)
    }

    /// Counts what the call burnt and turns its outcome into a result.
    fn end_call<T>(&mut self, given: u64, outcome: wasmtime::Result<T>) -> Result<T, Failure> {
        let left = self.store.get_fuel().unwrap_or(0);
        let burnt = given.saturating_sub(left);
        self.session_fuel_left = self.session_fuel_left.saturating_sub(burnt);
        self.stats.calls.inc();
        self.stats.fuel.add(burnt);
        if let Some(t) = &self.tenant {
            t.calls.inc();
            t.fuel.add(burnt);
        }
        outcome.map_err(|e| classify(e, self.session_fuel_left == 0))
    }
}

/// Sets the fuel and deadline for the next call; returns the fuel given.
fn arm(store: &mut Store<FilterHost>, limits: &Limits, session_left: u64) -> Result<u64, Failure> {
    let fuel = limits.call_fuel.min(session_left);
    store
        .set_fuel(fuel)
        .map_err(|e| Failure::Instantiate(e.to_string()))?;
    let ticks = limits.timeout.as_millis().div_ceil(TICK.as_millis()) as u64 + 1;
    store.set_epoch_deadline(ticks);
    Ok(fuel)
}

fn classify(e: wasmtime::Error, session_spent: bool) -> Failure {
    if let Some(b) = e.downcast_ref::<BudgetExceeded>() {
        return Failure::Budget(b.0);
    }
    if e.downcast_ref::<CallDeadline>().is_some() {
        return Failure::Deadline;
    }
    if let Some(b) = e.downcast_ref::<super::regex::RegexLimit>() {
        return Failure::Budget(b.0);
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel if session_spent => Failure::SessionFuel,
            wasmtime::Trap::OutOfFuel => Failure::Fuel,
            wasmtime::Trap::Interrupt => Failure::Deadline,
            wasmtime::Trap::StackOverflow => Failure::Stack,
            other => Failure::Trap(
                other
                    .to_string()
                    .trim_start_matches("wasm trap: ")
                    .to_string(),
            ),
        };
    }
    // The error's outer layers are a wasm backtrace; the cause says what.
    let text = e.root_cause().to_string();
    // With trap_on_grow_failure the limiter's refusal is the error itself.
    if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
        return Failure::Memory;
    }
    Failure::Trap(text.chars().take(300).collect())
}
