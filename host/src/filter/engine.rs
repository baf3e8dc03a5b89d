//! The wasmtime engine every filter runs in: component model, fuel,
//! epoch interruption, a bounded guest stack and a pooling allocator;
//! plus compilation with an on-disk cache of compiled code.
//!
//! The engine starts threads (parallel compilation, the epoch ticker), so
//! it is built after the daemon forks and drops privileges.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{MailFilter, MailFilterPre};
use super::host::FilterHost;
use super::limits::{MAX_MEMORY, MAX_WASM_STACK};
use super::FilterError;

/// One epoch tick: the granularity of call deadlines.
pub const TICK: Duration = Duration::from_millis(10);

pub struct EngineOptions {
    /// Filter instances alive at once (sessions × filters), the pool's
    /// size.
    pub max_instances: u32,
    /// Where compiled code is cached; None: compile every time.
    pub cache_dir: Option<PathBuf>,
}

pub struct FilterEngine {
    engine: Engine,
    /// The `mail-filter` world's imports only.
    linker: Linker<FilterHost>,
    /// The same plus an empty WASI, for components built against WASI.
    wasi_linker: Linker<FilterHost>,
    cache_dir: Option<PathBuf>,
    ticker_stop: Arc<AtomicBool>,
}

/// With `PAGEMAP_SCAN` (Linux 6.7+) a freed slot's dirty pages up to
/// this much are rewritten in place and stay resident; the clean ones
/// are not touched. A Rust guest dirties its stack top, data and a little
/// heap: ~100 KiB a session, well under this.
const KEEP_RESIDENT_SCANNED: usize = 1 << 20;
/// Without it the whole first part of the slot is rewritten, dirty or
/// not, so it is kept small.
const KEEP_RESIDENT_BLIND: usize = 64 * 1024;

/// The engine's settings for `n` instances alive at once.
///
/// Measured per filter session in the daemon (a VM, 2 cores, 20
/// concurrent sessions): page faults on pages handed back to the kernel
/// cost ~12 µs each (5 a session), and growing then re-protecting linear
/// memory cost two `mprotect` calls a session, each a TLB shootdown
/// across cores (~26 µs). The settings below avoid both: dirty pages are
/// found with `PAGEMAP_SCAN` and rewritten in place, and memories have no
/// guard region, so a slot's memory is never re-protected; bounds are
/// checked by explicit compare-and-trap in the compiled code instead of
/// by a fault.
fn engine_config(n: u32, page_map: bool) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .memory_init_cow(true)
        .signals_based_traps(false)
        .memory_guard_size(0)
        .guard_before_linear_memory(false)
        // The whole of a slot is reserved up front: memories never move.
        .memory_reservation(MAX_MEMORY);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        // A Rust or C component is a few core instances (the module,
        // shims, an adapter).
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memory_size(MAX_MEMORY as usize)
        .async_stack_keep_resident(64 * 1024)
        .table_keep_resident(4096)
        // One madvise (and one TLB shootdown across cores) per batch
        // of finished instances instead of one per instance.
        .decommit_batch_size(64);
    if page_map {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_SCANNED);
    } else {
        pool.pagemap_scan(Enabled::No)
            .linear_memory_keep_resident(KEEP_RESIDENT_BLIND);
    }
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

/// Opens wasmtime's handle on `/proc/self/pagemap` while the process may
/// still read it. After the privilege drop the process is no longer
/// dumpable and cannot open its own pagemap; a handle opened before
/// survives it (wasmtime reopens it in a forked child, which is still
/// root then). Without it the pool falls back on resetting whole slots.
pub fn open_page_map_early() {
    if let Err(e) = Engine::new(&probe_config(Enabled::Auto)) {
        debug!("filter engine: no early pagemap handle: {e}");
    }
}

/// Whether this process can reset instance memory with `PAGEMAP_SCAN`.
pub fn page_map_available() -> bool {
    Engine::new(&probe_config(Enabled::Yes)).is_ok()
}

/// The smallest pooling engine: enough to make wasmtime look for
/// `PAGEMAP_SCAN`.
fn probe_config(page_map: Enabled) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(1)
        .total_core_instances(1)
        .total_memories(1)
        .total_tables(1)
        .total_stacks(1)
        .max_memory_size(1 << 16)
        .pagemap_scan(page_map);
    let mut cfg = Config::new();
    cfg.memory_reservation(1 << 16)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

impl FilterEngine {
    pub fn new(opts: EngineOptions) -> Result<FilterEngine, FilterError> {
        let n = opts.max_instances.max(1);
        let engine = match Engine::new(&engine_config(n, true)) {
            Ok(engine) => engine,
            Err(e) => {
                info!(
                    "filter engine: no PAGEMAP_SCAN ({e}); instance memory is reset \
                     by rewriting its first {} KiB",
                    KEEP_RESIDENT_BLIND / 1024
                );
                Engine::new(&engine_config(n, false))
                    .map_err(|e| FilterError::Engine(e.to_string()))?
            }
        };
        let mut linker = Linker::new(&engine);
        MailFilter::add_to_linker::<FilterHost, HasSelf<FilterHost>>(&mut linker, |h| h)
            .map_err(|e| FilterError::Engine(e.to_string()))?;
        super::host::link_regex_in_place(&mut linker)
            .map_err(|e| FilterError::Engine(e.to_string()))?;
        let mut wasi_linker = linker.clone();
        wasmtime_wasi::p2::add_to_linker_async(&mut wasi_linker)
            .map_err(|e| FilterError::Engine(e.to_string()))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, ticking) = (ticker_stop.clone(), engine.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| FilterError::Engine(e.to_string()))?;
        Ok(FilterEngine {
            engine,
            linker,
            wasi_linker,
            cache_dir: opts.cache_dir,
            ticker_stop,
        })
    }

    /// Compiles a component (or takes it from the cache) and links it.
    /// A component that imports WASI gets the empty WASI (see
    /// `host::EmptyWasi`); one that imports anything else outside the
    /// `mail-filter` world does not load, and the error names the import.
    pub fn prepare(&self, bytes: &[u8]) -> Result<MailFilterPre<FilterHost>, FilterError> {
        let component = self.compile(bytes)?;
        let wants_wasi = component
            .component_type()
            .imports(&self.engine)
            .any(|(name, _)| name.starts_with("wasi:"));
        let linker = if wants_wasi {
            &self.wasi_linker
        } else {
            &self.linker
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| FilterError::Link(format!("{e:#}")))?;
        MailFilterPre::new(pre).map_err(|e| FilterError::Link(format!("{e:#}")))
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, FilterError> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(compile_error);
        };
        let path = self.cache_path(dir, bytes);
        if path.exists() {
            // SAFETY: the cache lives in the daemon's own spool and holds
            // only what `precompile_component` wrote; the file name binds
            // it to these exact bytes and this engine's settings.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => {
                    debug!("filter: compiled code from cache {}", path.display());
                    return Ok(c);
                }
                Err(e) => warn!("filter: ignoring cache file {}: {e}", path.display()),
            }
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(compile_error)?;
        if let Err(e) = write_atomically(dir, &path, &compiled) {
            warn!(
                "filter: cannot cache compiled code in {}: {e}",
                dir.display()
            );
        }
        // SAFETY: these bytes were produced by this engine just now.
        unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(compile_error)
    }

    fn cache_path(&self, dir: &Path, bytes: &[u8]) -> PathBuf {
        let mut h = Sha256::new();
        h.update(bytes);
        let mut settings = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut settings);
        h.update(std::hash::Hasher::finish(&settings).to_le_bytes());
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        dir.join(format!("{hex}.cwasm"))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for FilterEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn compile_error(e: wasmtime::Error) -> FilterError {
    FilterError::Compile(format!("{e:#}"))
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp.{}.{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
