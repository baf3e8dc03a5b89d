//! The filters the configuration defines, compiled and ready to
//! instantiate, swapped as a whole on reload: a session takes the set
//! current when it connects and keeps it to the end, so a reload never
//! disturbs a session in flight.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use tracing::{error, info};

use super::bindings::MailFilterPre;
use super::builtin::Builtin;
use super::bundled;
use super::chain::ChainMember;
use super::engine::FilterEngine;
use super::host::{FilterHost, FilterShared, Kv};
use super::interest::Interest;
use super::limits::Limits;
use super::quarantine::Quarantine;
use super::recycle::IdleInstances;
use super::stats::{FilterStats, TenantStats};
use super::FilterError;
use crate::config::model::{Config, FilterKind, OnError, WasmFilter, WasmSource};
use crate::dns::Dns;
use crate::stats::Stats;
use crate::table::Tables;

/// One filter, compiled and linked.
pub struct LoadedFilter {
    pub name: String,
    pub pre: MailFilterPre<FilterHost>,
    pub limits: Limits,
    pub on_error: OnError,
    pub shared: Arc<FilterShared>,
    pub quarantine: Quarantine,
    /// `filter.<name>.*`: the same handles across reloads.
    pub stats: Arc<FilterStats>,
    /// Finished instances of this version, for the next sessions.
    pub idle: IdleInstances,
    /// What the first instance's `init` asked for. A session starts an
    /// instance only at the first event it subscribed to (`init`
    /// answers for the filter: it runs before any session).
    pub interest: OnceLock<Arc<Interest>>,
}

impl LoadedFilter {
    pub fn engine(&self) -> &wasmtime::Engine {
        self.pre.engine()
    }
}

/// A filter's definition and the component's bytes, read before the
/// daemon drops privileges (files under /etc may be root's).
pub struct Source {
    pub name: String,
    pub def: WasmFilter,
    pub bytes: Result<Vec<u8>, String>,
}

/// Reads every wasm filter's component. Unreadable files are kept as
/// errors for [`Registry::new`] to report.
pub fn read_sources(config: &Config) -> Vec<Source> {
    config
        .filters
        .values()
        .filter_map(|f| match &f.kind {
            FilterKind::Wasm(def) => Some(Source {
                name: f.name.clone(),
                bytes: read(&def.source),
                def: (**def).clone(),
            }),
            _ => None,
        })
        .collect()
}

fn read(source: &WasmSource) -> Result<Vec<u8>, String> {
    match source {
        WasmSource::Path(p) => {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        }
        WasmSource::Bundled(name) => bundled::bytes(name)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("no bundled filter named {name}")),
    }
}

/// The current filters by name.
#[derive(Default)]
pub struct FilterSet {
    pub filters: BTreeMap<String, Arc<LoadedFilter>>,
}

pub struct Registry {
    engine: FilterEngine,
    dns: Option<Arc<Dns>>,
    /// Chain name → member names; a plain filter is a chain of itself.
    chains: BTreeMap<String, Vec<String>>,
    defs: Vec<(String, WasmFilter)>,
    current: ArcSwap<FilterSet>,
    /// Builtin filters: host rules, not reloaded.
    builtins: BTreeMap<String, Arc<Builtin>>,
    /// Each filter's shared state (kv store, compiled patterns) by name:
    /// it outlives reloads, it is the filter's memory.
    shared: Mutex<BTreeMap<String, Arc<FilterShared>>>,
    stats: Stats,
}

impl Registry {
    /// Compiles every filter. Any failure here is fatal: the daemon does
    /// not start with a filter missing.
    pub fn new(
        config: &Config,
        sources: Vec<Source>,
        engine: FilterEngine,
        dns: Option<Arc<Dns>>,
        tables: Arc<Tables>,
        stats: Stats,
    ) -> Result<Registry, FilterError> {
        let mut chains = BTreeMap::new();
        let mut builtins = BTreeMap::new();
        for f in config.filters.values() {
            match &f.kind {
                FilterKind::Chain(members) => {
                    chains.insert(f.name.clone(), members.clone());
                }
                FilterKind::Wasm(_) => {
                    chains.insert(f.name.clone(), vec![f.name.clone()]);
                }
                FilterKind::Builtin(def) => {
                    chains.insert(f.name.clone(), vec![f.name.clone()]);
                    if let Some(b) = Builtin::new(&f.name, def, tables.clone()) {
                        let b = b.with_stats(FilterStats::new(&stats, &f.name));
                        builtins.insert(f.name.clone(), Arc::new(b));
                    }
                }
                FilterKind::Other(words) => {
                    return Err(FilterError::Unsupported {
                        name: f.name.clone(),
                        origin: f.origin.to_string(),
                        what: words.first().cloned().unwrap_or_default(),
                    })
                }
            }
        }
        let registry = Registry {
            engine,
            dns,
            chains,
            defs: sources
                .iter()
                .map(|s| (s.name.clone(), s.def.clone()))
                .collect(),
            current: ArcSwap::from_pointee(FilterSet::default()),
            builtins,
            shared: Mutex::new(BTreeMap::new()),
            stats,
        };
        let mut set = FilterSet::default();
        for s in sources {
            let bytes = s.bytes.map_err(|why| FilterError::Load {
                name: s.name.clone(),
                why,
            })?;
            let loaded = registry.load(&s.name, &s.def, &bytes)?;
            set.filters.insert(s.name, Arc::new(loaded));
        }
        registry.current.store(Arc::new(set));
        Ok(registry)
    }

    fn load(
        &self,
        name: &str,
        def: &WasmFilter,
        bytes: &[u8],
    ) -> Result<LoadedFilter, FilterError> {
        let pre = self.engine.prepare(bytes).map_err(|e| FilterError::Load {
            name: name.to_string(),
            why: e.to_string(),
        })?;
        let shared = {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = Arc::new(FilterShared {
                name: name.to_string(),
                params: def.params.clone(),
                dns: if def.allow_dns {
                    self.dns.clone()
                } else {
                    None
                },
                kv: def.allow_kv.then(|| Mutex::new(Kv::default())),
                regex: Default::default(),
            });
            shared.entry(name.to_string()).or_insert(fresh).clone()
        };
        Ok(LoadedFilter {
            name: name.to_string(),
            pre,
            limits: Limits::of(def),
            on_error: def.on_error,
            shared,
            quarantine: Quarantine::default(),
            stats: Arc::new(FilterStats::new(&self.stats, name)),
            idle: IdleInstances::default(),
            interest: OnceLock::new(),
        })
    }

    /// The filters a listener's `filter NAME` runs, in order, from the
    /// current set.
    pub fn chain(&self, name: &str) -> Vec<ChainMember> {
        let set = self.current.load();
        self.chains
            .get(name)
            .map(|members| {
                members
                    .iter()
                    .filter_map(|m| match self.builtins.get(m) {
                        Some(b) => Some(ChainMember::Builtin(b.clone())),
                        None => set.filters.get(m).cloned().map(ChainMember::Wasm),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A wasm filter of the current set, by name.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedFilter>> {
        self.current.load().filters.get(name).cloned()
    }

    /// Re-reads and recompiles every filter whose component is a file.
    /// A filter that fails to read, compile or link keeps its running
    /// version, and the reason is logged. Returns how many were
    /// replaced and the failures.
    pub fn reload(&self) -> (usize, Vec<FilterError>) {
        self.reload_only(None)
    }

    /// [`Registry::reload`] for one filter (`Some(name)`) or all.
    pub fn reload_only(&self, only: Option<&str>) -> (usize, Vec<FilterError>) {
        let old = self.current.load_full();
        let mut set = FilterSet {
            filters: old.filters.clone(),
        };
        let (mut replaced, mut failures) = (0, Vec::new());
        for (name, def) in &self.defs {
            if matches!(def.source, WasmSource::Bundled(_)) || only.is_some_and(|o| o != name) {
                continue;
            }
            let outcome = read(&def.source)
                .map_err(|why| FilterError::Load {
                    name: name.clone(),
                    why,
                })
                .and_then(|bytes| self.load(name, def, &bytes));
            match outcome {
                Ok(loaded) => {
                    set.filters.insert(name.clone(), Arc::new(loaded));
                    replaced += 1;
                    info!("filter {name}: reloaded");
                }
                Err(e) => {
                    error!("filter {name}: reload failed, keeping the running version: {e}");
                    failures.push(e);
                }
            }
        }
        self.current.store(Arc::new(set));
        (replaced, failures)
    }

    /// `tenant.<tag>.filter.*` for a session of a listener tagged `tag`:
    /// looked up once per session, then atomics only.
    pub fn tenant_stats(&self, tag: &str) -> TenantStats {
        TenantStats::new(&self.stats, tag)
    }

    pub fn current(&self) -> Arc<FilterSet> {
        self.current.load_full()
    }
}
