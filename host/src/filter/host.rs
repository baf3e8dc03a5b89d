//! The host side of a filter instance: what its store holds and the
//! imports it may call. Each import checks the operator's grant and the
//! instance's budget; going past a budget is a trap, which ends the
//! filter's part in the session.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::{debug, error, info, warn};
use wasmtime::component::{Linker, ResourceTable, WasmList};
use wasmtime::StoreLimits;
use wasmtime::{AsContext, StoreContextMut};
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::bindings::wasmtpd::filter::{
    host_config, host_dns, host_kv, host_log, host_regex, host_session, types,
};
use super::bindings::{Level, RecordType};
use super::limits::{LOG_LINES_PER_SESSION, REGEX_BYTES_PER_SESSION};
use super::regex::{CompiledSet, RegexCache};
use crate::dns::{Dns, Kind};

/// Bounds of the per-filter key/value store.
const KV_MAX_KEY: usize = 256;
const KV_MAX_VALUE: usize = 64 * 1024;
const KV_MAX_TOTAL: usize = 1 << 20;
/// A log line longer than this is cut.
const LOG_MAX_LINE: usize = 1000;

/// What every instance of one filter shares: its identity, settings and
/// grants.
pub struct FilterShared {
    pub name: String,
    pub params: Vec<(String, String)>,
    /// Some when the operator wrote `allow dns`.
    pub dns: Option<Arc<Dns>>,
    /// Some when the operator wrote `allow kv`.
    pub kv: Option<Mutex<Kv>>,
    /// Pattern sets the filter compiled (`host-regex`).
    pub regex: RegexCache,
}

/// The in-memory store behind `host-kv`.
#[derive(Default)]
pub struct Kv {
    map: BTreeMap<String, Vec<u8>>,
    bytes: usize,
}

impl Kv {
    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if key.len() > KV_MAX_KEY || value.len() > KV_MAX_VALUE {
            return Err("key or value too large".into());
        }
        let old = self.map.get(&key).map_or(0, |v| key.len() + v.len());
        let new_total = self.bytes - old + key.len() + value.len();
        if new_total > KV_MAX_TOTAL {
            return Err("store full".into());
        }
        self.bytes = new_total;
        self.map.insert(key, value);
        Ok(())
    }
}

/// The operator's caps on an instance (`wasmtime::StoreLimits`), and
/// the most linear memory it has asked for, which decides whether it is
/// worth keeping for another session.
pub struct InstanceLimits {
    caps: StoreLimits,
    pub memory_peak: usize,
}

impl wasmtime::ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.caps.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_peak = self.memory_peak.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.caps.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.caps.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.caps.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.caps.instances()
    }

    fn tables(&self) -> usize {
        self.caps.tables()
    }

    fn memories(&self) -> usize {
        self.caps.memories()
    }
}

/// A store's data: one filter instance serving one session at a time.
pub struct FilterHost {
    pub limits: InstanceLimits,
    pub shared: Arc<FilterShared>,
    pub session_id: String,
    pub dns_left: u32,
    pub log_left: u32,
    /// Bytes `host-regex` may still scan in this session.
    pub regex_bytes_left: u64,
    /// When the export call under way must have answered: an import
    /// that waits (DNS) gives up then.
    pub call_deadline: Option<Instant>,
    /// The session the call under way is about (`host-session`).
    pub session: types::Session,
    /// Which of the instance's sessions this is (`host-session.serial`):
    /// how a reused instance, whose `init` is not called again, learns
    /// that a new session began.
    pub serial: u64,
    /// The filter's pattern sets this instance used, by handle, and the
    /// handles of the pattern lists it compiled: after the first session
    /// of a reused instance, `host-regex` takes no lock and hashes no
    /// pattern list.
    regex_sets: Vec<Option<Arc<CompiledSet>>>,
    regex_compiled: Vec<(Vec<String>, u32)>,
    /// The empty WASI of a component built against WASI, made on its
    /// first WASI call.
    wasi: Option<Box<EmptyWasi>>,
}

/// WASI with nothing in it: no preopened directories, no sockets or
/// name lookups, no environment or arguments, stdin empty, stdout and
/// stderr discarded, both clocks frozen. A component built
/// against WASI (C's wasi-libc, Go's wasip1 runtime, Rust's wasip2 std)
/// starts and runs, and every attempt to reach outside fails with an
/// error.
struct EmptyWasi {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl EmptyWasi {
    fn new() -> EmptyWasi {
        let ctx = WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .build();
        EmptyWasi {
            ctx,
            table: ResourceTable::new(),
        }
    }
}

/// A clock that never moves: no time source for timing attacks or for
/// learning the host's time. The wall clock reads the Unix epoch; the
/// monotonic one reads one second, not zero, because Go's runtime
/// refuses to start on a zero clock ("nanotime returning zero").
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        1_000_000_000
    }
}

impl WasiView for FilterHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(|| Box::new(EmptyWasi::new()));
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}

impl FilterHost {
    pub fn new(
        shared: Arc<FilterShared>,
        session_id: String,
        memory: u64,
        dns_queries: u32,
    ) -> FilterHost {
        let caps = wasmtime::StoreLimitsBuilder::new()
            .memory_size(usize::try_from(memory).unwrap_or(usize::MAX))
            .instances(16)
            .tables(16)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        FilterHost {
            limits: InstanceLimits {
                caps,
                memory_peak: 0,
            },
            shared,
            session_id,
            dns_left: dns_queries,
            log_left: LOG_LINES_PER_SESSION,
            regex_bytes_left: REGEX_BYTES_PER_SESSION,
            call_deadline: None,
            session: empty_session(),
            serial: 1,
            regex_sets: Vec::new(),
            regex_compiled: Vec::new(),
            wasi: None,
        }
    }

    /// Gives a reused instance's next session its own id, serial and
    /// budgets. The session record is left as it is: every call
    /// overwrites it first (reusing its strings' buffers), and nothing
    /// reads it between calls.
    pub fn begin_session(&mut self, session_id: &str, dns_queries: u32) {
        self.session_id.clear();
        self.session_id.push_str(session_id);
        self.serial += 1;
        self.dns_left = dns_queries;
        self.log_left = LOG_LINES_PER_SESSION;
        self.regex_bytes_left = REGEX_BYTES_PER_SESSION;
    }
}

/// An import that waits ran out of the call's time: the call failed on
/// its deadline, as a guest that computes too long does.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded while waiting on the host")]
pub struct CallDeadline;

/// The host's answer when a budget is spent: it becomes the trap's
/// message, which the failure log shows.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BudgetExceeded(pub &'static str);

impl types::Host for FilterHost {}

impl host_session::Host for FilterHost {
    fn current(&mut self) -> wasmtime::Result<types::Session> {
        Ok(self.session.clone())
    }

    fn serial(&mut self) -> wasmtime::Result<u64> {
        Ok(self.serial)
    }
}

/// The record before any session event (what `init` sees).
fn empty_session() -> types::Session {
    types::Session {
        id: String::new(),
        tenant: None,
        local_address: String::new(),
        remote_address: String::new(),
        rdns: None,
        fcrdns: false,
        helo: None,
        tls: None,
        auth_user: None,
        tag: None,
    }
}

/// Copies `src` over `dst` field by field, reusing `dst`'s buffers: done
/// before every call, so it should not allocate once the strings have
/// their size.
pub fn refresh_session(dst: &mut types::Session, src: &types::Session) {
    dst.id.clone_from(&src.id);
    dst.tenant.clone_from(&src.tenant);
    dst.local_address.clone_from(&src.local_address);
    dst.remote_address.clone_from(&src.remote_address);
    dst.rdns.clone_from(&src.rdns);
    dst.fcrdns = src.fcrdns;
    dst.helo.clone_from(&src.helo);
    dst.tls.clone_from(&src.tls);
    dst.auth_user.clone_from(&src.auth_user);
    dst.tag.clone_from(&src.tag);
}

impl host_log::Host for FilterHost {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.log_left == 0 {
            return Ok(());
        }
        self.log_left -= 1;
        let mut line = String::with_capacity(message.len().min(LOG_MAX_LINE));
        for c in message.chars().take(LOG_MAX_LINE) {
            if c.is_control() {
                line.extend(c.escape_default());
            } else {
                line.push(c);
            }
        }
        if self.log_left == 0 {
            line.push_str(" (further lines from this filter dropped for this session)");
        }
        let (name, sid) = (&self.shared.name, &self.session_id);
        match level {
            Level::Debug => debug!("filter {name}: session {sid}: {line}"),
            Level::Info => info!("filter {name}: session {sid}: {line}"),
            Level::Warn => warn!("filter {name}: session {sid}: {line}"),
            Level::Error => error!("filter {name}: session {sid}: {line}"),
        }
        Ok(())
    }
}

impl host_dns::Host for FilterHost {
    async fn lookup(
        &mut self,
        name: String,
        kind: RecordType,
    ) -> wasmtime::Result<Result<Vec<String>, String>> {
        // Borrowed, not cloned: an Arc's count is a cache line both
        // worker threads would write on every lookup.
        let Some(dns) = self.shared.dns.as_deref() else {
            return Ok(Err("dns not granted to this filter (allow dns)".into()));
        };
        if self.dns_left == 0 {
            return Err(BudgetExceeded("DNS query budget exhausted").into());
        }
        self.dns_left -= 1;
        let kind = match kind {
            RecordType::A => Kind::A,
            RecordType::Aaaa => Kind::Aaaa,
            RecordType::Txt => Kind::Txt,
            RecordType::Mx => Kind::Mx,
            RecordType::Ptr => Kind::Ptr,
        };
        if let Some(records) = dns.kept(&name, kind) {
            return Ok(Ok(records));
        }
        let left = self.call_deadline.map_or(crate::dns::QUERY_TIMEOUT, |d| {
            d.saturating_duration_since(Instant::now())
        });
        match tokio::time::timeout(left, dns.lookup(&name, kind)).await {
            Ok(answer) => Ok(answer.map_err(|e| e.to_string())),
            Err(_) => Err(CallDeadline.into()),
        }
    }
}

impl host_kv::Host for FilterHost {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.shared.kv.as_ref().and_then(|kv| {
            kv.lock()
                .unwrap_or_else(|p| p.into_inner())
                .map
                .get(&key)
                .cloned()
        }))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let Some(kv) = self.shared.kv.as_ref() else {
            return Ok(Err("kv not granted to this filter (allow kv)".into()));
        };
        Ok(kv.lock().unwrap_or_else(|p| p.into_inner()).set(key, value))
    }
}

impl host_regex::Host for FilterHost {
    fn compile(&mut self, patterns: Vec<String>) -> wasmtime::Result<host_regex::Compiled> {
        let known = self.regex_compiled.iter().find(|(p, _)| *p == patterns);
        let handle = match known {
            Some((_, handle)) => *handle,
            None => {
                let (handle, _) = self.shared.regex.compile(patterns.clone())?;
                self.regex_compiled.push((patterns, handle));
                handle
            }
        };
        let errors = self
            .regex_set(handle)
            .map(|set| set.errors.clone())
            .unwrap_or_default();
        Ok(host_regex::Compiled { handle, errors })
    }

    fn matches(&mut self, handle: u32, text: Vec<u8>) -> wasmtime::Result<Vec<u32>> {
        self.charge_regex(text.len())?;
        Ok(self
            .regex_set(handle)
            .map(|set| set.matches(&text))
            .unwrap_or_default())
    }

    fn is_match(&mut self, handle: u32, text: Vec<u8>) -> wasmtime::Result<bool> {
        self.charge_regex(text.len())?;
        Ok(self
            .regex_set(handle)
            .is_some_and(|set| set.is_match(&text)))
    }

    /// Shadowed by [`link_regex_in_place`], which matches the lines
    /// without copying them; kept for the trait, and as its reference.
    fn matches_any_line(&mut self, handle: u32, lines: Vec<u8>) -> wasmtime::Result<Vec<u32>> {
        self.charge_regex(lines.len())?;
        Ok(self
            .regex_set(handle)
            .map(|set| set.matches_any_line(&lines))
            .unwrap_or_default())
    }
}

/// The `host-regex` interface's name in the linker.
const HOST_REGEX: &str = "wasmtpd:filter/host-regex@0.4.0";

/// Redefines `host-regex.matches-any-line` to match the lines where they
/// lie in the guest's memory. A content filter hands it whole batches
/// (up to 256 KiB a call); the generated binding would first copy each
/// into a fresh host buffer. The guest waits in the call, so its memory
/// cannot change under the match.
pub fn link_regex_in_place(linker: &mut Linker<FilterHost>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(HOST_REGEX)?.func_wrap(
        "matches-any-line",
        |mut store: StoreContextMut<'_, FilterHost>, (handle, lines): (u32, WasmList<u8>)| {
            let host = store.data_mut();
            host.charge_regex(lines.len())?;
            host.load_regex_set(handle);
            let store = store.as_context();
            let found = store
                .data()
                .cached_regex_set(handle)
                .map(|set| set.matches_any_line(lines.as_le_slice(store)))
                .unwrap_or_default();
            Ok((found,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

impl FilterHost {
    /// The filter's set `handle`, asked of the shared cache once per
    /// instance. Handles are below the cache's set limit, so the list
    /// stays small; an unknown handle is not remembered.
    fn regex_set(&mut self, handle: u32) -> Option<&CompiledSet> {
        self.load_regex_set(handle);
        self.cached_regex_set(handle)
    }

    /// Brings set `handle` into the instance's list, if the filter has it.
    fn load_regex_set(&mut self, handle: u32) {
        let i = handle as usize;
        if self.regex_sets.get(i).is_none_or(Option::is_none) {
            let Some(set) = self.shared.regex.get(handle) else {
                return;
            };
            if self.regex_sets.len() <= i {
                self.regex_sets.resize(i + 1, None);
            }
            self.regex_sets[i] = Some(set);
        }
    }

    /// Set `handle` if [`FilterHost::load_regex_set`] found it.
    fn cached_regex_set(&self, handle: u32) -> Option<&CompiledSet> {
        self.regex_sets.get(handle as usize)?.as_deref()
    }

    fn charge_regex(&mut self, bytes: usize) -> Result<(), BudgetExceeded> {
        // A call costs at least a line's worth, so tiny calls in a loop
        // are budgeted too.
        let cost = (bytes as u64).max(80);
        if cost > self.regex_bytes_left {
            return Err(BudgetExceeded("regex scan budget exhausted"));
        }
        self.regex_bytes_left -= cost;
        Ok(())
    }
}

impl host_config::Host for FilterHost {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .shared
            .params
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.shared.params.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place `matches-any-line` is linked under this name: a WIT
    /// version bump must move it too, or the copying binding comes back.
    #[test]
    fn the_shadowed_regex_interface_is_the_wits() {
        let wit = include_str!("../../../wit/filter.wit");
        let version = HOST_REGEX.rsplit('@').next().unwrap();
        assert!(wit.contains(&format!("package wasmtpd:filter@{version};")));
    }

    #[test]
    fn kv_store_is_bounded() {
        let mut kv = Kv::default();
        assert!(kv.set("a".into(), vec![1; 10]).is_ok());
        assert!(kv.set("a".into(), vec![1; KV_MAX_VALUE + 1]).is_err());
        let mut filled = 0;
        for i in 0.. {
            if kv.set(format!("k{i}"), vec![0; KV_MAX_VALUE]).is_err() {
                break;
            }
            filled += 1;
        }
        assert!(filled >= 10 && kv.bytes <= KV_MAX_TOTAL);
        // Replacing a value frees the old one's room.
        assert!(kv.set("k0".into(), vec![0; 1]).is_ok());
        assert!(kv.set("k0".into(), vec![0; KV_MAX_VALUE]).is_ok());
    }
}
