//! Wiring: from a loaded configuration to a running daemon — tables,
//! queue recovery, scheduler, listeners — and the signals that stop it.
//!
//! Two steps: [`prepare`] (blocking, before any runtime or thread: reads
//! tables and binds ports, the parts that may need root) and [`run`]
//! (async, possibly after privileges were dropped).

pub mod deliver;
pub mod listen;
pub mod metrics;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::config::model::{AuthMode, Config, Listener, TlsMode};
use crate::mta::relay::RelayService;
use crate::mta::tls::{ClientTls, VerifyMode};
use crate::privsep::JobRunner;
use crate::queue::{self, Queue, QueueOptions};
use crate::scheduler::{self, SchedulerOptions};
use crate::smtp::inbound::{ListenerInfo, AUTH_FAILURE_DELAY};
use crate::smtp::proto::SessionConfig;
use crate::smtp::{server, Services};
use crate::table::Tables;

/// How long envelopes are retried when the config does not say.
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(4 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Tables(String),
    #[error("queue: {0}")]
    Queue(#[from] queue::QueueError),
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    #[error("queue encryption needs a key: give it in smtpd.conf (`queue encryption KEY`)")]
    NoQueueKey,
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("no listener could be started")]
    NoListener,
    #[error(transparent)]
    Filter(#[from] crate::filter::FilterError),
    #[error("action \"{0}\": {1}")]
    RelayTls(String, Box<crate::mta::tls::MtaTlsError>),
    #[error(transparent)]
    Control(#[from] crate::control::socket::SocketError),
    #[error("metrics: cannot listen on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub struct DaemonOptions {
    /// The spool; `.` when the process was started in it (privsep).
    pub spool: PathBuf,
    pub scheduler: SchedulerOptions,
    /// How local deliveries run: here, or through the root broker.
    pub runner: JobRunner,
    /// The one name server to ask instead of /etc/resolv.conf's.
    pub nameserver: Option<std::net::SocketAddr>,
    /// The port of MX hosts (25; tests run theirs elsewhere).
    pub mx_port: u16,
    /// `--metrics ADDR`: where Prometheus scrapes the statistics.
    pub metrics: Option<std::net::SocketAddr>,
}

/// What [`prepare`] readies before the runtime starts.
pub struct Prepared {
    pub config: Arc<Config>,
    pub tables: Arc<Tables>,
    pub listeners: Vec<listen::Bound>,
    /// TLS settings per `config.listeners` entry (None: plain).
    pub tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// The wasm filters' components, read while we may still be root.
    pub filters: Vec<crate::filter::Source>,
    /// Client TLS (trust anchors, client certificate) per relay action,
    /// built while the key files can still be read.
    pub relay_tls: HashMap<String, Arc<ClientTls>>,
    /// The control socket (`wasmtpctl`, `sendmail`), bound where only
    /// root may create it.
    pub control: Option<std::os::unix::net::UnixListener>,
}

/// The system's hostname, lowercase, as announced when a listener has none.
pub fn system_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.to_ascii_lowercase())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Loads the tables and the listeners' certificates and keys, and binds
/// the listening sockets. Blocking; starts no thread, so it can run
/// before a fork — and as root, which key files usually need.
pub fn prepare(config: Config, control: Option<&std::path::Path>) -> Result<Prepared, DaemonError> {
    let tables = Tables::load_all(&config).map_err(|errs| {
        DaemonError::Tables(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let default_hostname = config.hostname.clone().unwrap_or_else(system_hostname);
    let tls = crate::tls::build_listeners(&config, &default_hostname)?;
    let filters = crate::filter::read_sources(&config);
    if !config.filters.is_empty() {
        crate::filter::engine::open_page_map_early();
    }
    let relay_tls = relay_tls(&config)?;
    let listeners = listen::bind_all(&config)?;
    if listeners.is_empty() {
        return Err(DaemonError::NoListener);
    }
    let control = control.map(crate::control::socket::bind).transpose()?;
    Ok(Prepared {
        config: Arc::new(config),
        tables: Arc::new(tables),
        listeners,
        tls,
        filters,
        relay_tls,
        control,
    })
}

fn relay_tls(config: &Config) -> Result<HashMap<String, Arc<ClientTls>>, DaemonError> {
    let mut out = HashMap::new();
    for action in config.actions.values() {
        if let crate::config::model::Method::Relay(opts) = &action.method {
            let tls = ClientTls::new(opts, config, VerifyMode::for_relay(opts))
                .map_err(|e| DaemonError::RelayTls(action.name.clone(), Box::new(e)))?;
            out.insert(action.name.clone(), Arc::new(tls));
        }
    }
    Ok(out)
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(prepared: Prepared, opts: DaemonOptions) -> Result<(), DaemonError> {
    let Prepared {
        config,
        tables,
        listeners,
        tls,
        filters,
        relay_tls,
        control,
    } = prepared;
    let hostname = config.hostname.clone().unwrap_or_else(system_hostname);

    let key = match &config.queue.encryption {
        None => None,
        Some(Some(k)) => Some(queue::key_from_passphrase(k)),
        Some(None) => return Err(DaemonError::NoQueueKey),
    };
    let queue = Queue::open(
        &opts.spool,
        QueueOptions {
            compress: config.queue.compression,
            key,
        },
    )?;
    let report = queue.load_all()?;
    for (path, why) in &report.corrupt {
        warn!("queue: corrupt file {path} moved aside: {why}");
    }
    info!(
        "queue: {} envelope(s) recovered from {}",
        report.envelopes.len(),
        std::path::absolute(&opts.spool)
            .unwrap_or_else(|_| opts.spool.clone())
            .display()
    );

    let mut local_domains = vec!["localhost".to_string(), hostname.clone()];
    for l in &config.listeners {
        if let Some(h) = &l.hostname {
            local_domains.push(h.to_ascii_lowercase());
        }
    }
    local_domains.dedup();

    let filters = start_filters(&config, filters, &opts, tables.clone())?;
    let relay = start_relay(&config, &tables, relay_tls, &hostname, &opts);
    // Dropped from root to a system account: its group are operators.
    let dropped = matches!(opts.runner, JobRunner::Broker(_));
    let delivery = Arc::new(deliver::Delivery {
        config: config.clone(),
        tables: tables.clone(),
        queue: queue.clone(),
        hostname: hostname.clone(),
        local_domains: local_domains.clone(),
        runner: opts.runner,
        relay: relay.clone(),
    });
    let mut sched = opts.scheduler;
    if !config.bounce_warn_interval.is_empty() {
        sched.warn_after = config.bounce_warn_interval.clone();
    }
    let stats = sched.stats.clone();
    let scheduler = scheduler::start(queue.clone(), delivery, sched, report.envelopes);
    let services = Arc::new(Services {
        expire: config.queue.ttl.unwrap_or(DEFAULT_EXPIRE),
        config: config.clone(),
        tables,
        queue,
        scheduler,
        local_domains,
        filters: filters.clone(),
        stats,
        intake: Default::default(),
    });

    if let Some(addr) = opts.metrics {
        // Bound here, after privileges are dropped: a metrics port is a
        // high one, and nothing of it needs root.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Metrics { addr, source })?;
        info!("metrics: listening on {addr}");
        tokio::spawn(metrics::serve(listener, services.stats.clone()));
    }

    let sessions = Arc::new(Semaphore::new(config.smtp.max_sessions));

    let per_client = crate::smtp::limits::PerClient::new(crate::smtp::limits::DEFAULT_PER_CLIENT);
    for bound in listeners {
        let Some(l) = config.listeners.get(bound.index) else {
            continue;
        };
        let session_cfg = Arc::new(session_config(&config, l, &hostname));
        let info = Arc::new(listener_info(l, &session_cfg.hostname));
        let addr = bound.addr;
        let adopt = bound
            .socket
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(bound.socket));
        let socket = adopt.map_err(|source| listen::ListenError::Bind {
            origin: l.origin.to_string(),
            addr,
            source,
        })?;
        info!("smtp-in: listening on {addr}");
        let listener = server::Listener {
            socket,
            session: session_cfg,
            info,
            tls: tls
                .get(bound.index)
                .cloned()
                .flatten()
                .map(tokio_rustls::TlsAcceptor::from),
            smtps: l.tls == TlsMode::Smtps,
        };
        tokio::spawn(server::serve(
            listener,
            services.clone(),
            sessions.clone(),
            per_client.clone(),
        ));
    }
    if let Some(socket) = control {
        let local = local_enqueue(&config, &hostname, services.clone());
        let controller = crate::control::Controller {
            owner: crate::control::peer::Owner::current(dropped),
            services: services.clone(),
            relay,
            enqueue: Some(local),
            sessions: sessions.clone(),
        };
        start_control(socket, controller)?;
    }
    info!("wasmtpd: ready");
    if let Some(registry) = filters {
        tokio::spawn(reload_on_sighup(registry));
    }
    wait_for_shutdown().await;
    info!("wasmtpd: shutting down");
    Ok(())
}

/// Compiles the configured filters, if any listener uses one. Compiled
/// code is cached under the spool, so a restart does not recompile.
fn start_filters(
    config: &Config,
    sources: Vec<crate::filter::Source>,
    opts: &DaemonOptions,
    tables: Arc<Tables>,
) -> Result<Option<Arc<crate::filter::Registry>>, DaemonError> {
    use crate::filter::{EngineOptions, FilterEngine, Registry};
    if config.filters.is_empty() {
        return Ok(None);
    }
    // One instance per session and filter, plus the idle ones each
    // filter keeps for the next sessions.
    let chain_len = config.filters.len().max(1);
    let max_instances = config
        .smtp
        .max_sessions
        .saturating_add(crate::filter::recycle::IDLE_PER_FILTER)
        .saturating_mul(chain_len)
        .clamp(16, 10_000) as u32;
    let engine = FilterEngine::new(EngineOptions {
        max_instances,
        cache_dir: Some(opts.spool.join("filter-cache")),
    })?;
    let wants_dns = sources.iter().any(|s| s.def.allow_dns);
    // Without a usable resolver the filters that asked for DNS get
    // errors from their lookups (and fail open or closed as they were
    // written to); the daemon still runs.
    let dns = match wants_dns.then(|| crate::dns::Dns::new(opts.nameserver)) {
        None => None,
        Some(Ok(dns)) => Some(Arc::new(dns)),
        Some(Err(e)) => {
            warn!("filter: no DNS for filters: {e}");
            None
        }
    };
    let stats = opts.scheduler.stats.clone();
    let registry = Registry::new(config, sources, engine, dns, tables, stats)?;
    for name in registry.current().filters.keys() {
        info!("filter {name}: loaded");
    }
    Ok(Some(Arc::new(registry)))
}

/// The relay service, when some action relays. Without a resolver the
/// daemon still runs; relayed mail waits in the queue.
fn start_relay(
    config: &Arc<Config>,
    tables: &Arc<Tables>,
    tls: HashMap<String, Arc<ClientTls>>,
    hostname: &str,
    opts: &DaemonOptions,
) -> Option<Arc<RelayService>> {
    if tls.is_empty() {
        return None;
    }
    let dns = match crate::dns::Dns::new(opts.nameserver) {
        Ok(dns) => dns,
        Err(e) => {
            warn!("relay: no DNS resolver, relayed mail waits in the queue: {e}");
            return None;
        }
    };
    let relay = Arc::new(
        RelayService::new(
            config.clone(),
            tables.clone(),
            dns,
            tls,
            hostname.to_string(),
            opts.mx_port,
            opts.scheduler.backoff.min,
        )
        .with_stats(&opts.scheduler.stats),
    );
    let reaper = Arc::downgrade(&relay);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            match reaper.upgrade() {
                Some(relay) => relay.reap_idle().await,
                None => return,
            }
        }
    });
    Some(relay)
}

/// The SMTP settings of a listener's sessions. Error and AUTH-failure
/// limits keep the protocol's defaults.
fn session_config(config: &Config, l: &Listener, hostname: &str) -> SessionConfig {
    let hostname = l.hostname.as_deref().unwrap_or(hostname);
    SessionConfig {
        starttls: matches!(l.tls, TlsMode::StartTls | TlsMode::StartTlsRequire),
        tls_required: l.tls == TlsMode::StartTlsRequire,
        dsn: !l.no_dsn,
        auth: !matches!(l.auth, AuthMode::None),
        auth_required: matches!(l.auth, AuthMode::Required(_)),
        ..limited_session(config, hostname)
    }
}

/// The protocol's defaults with the configuration's `smtp` limits.
fn limited_session(config: &Config, hostname: &str) -> SessionConfig {
    SessionConfig {
        max_message_size: config.smtp.max_message_size,
        max_rcpt: config.smtp.max_rcpt,
        max_mails: config.smtp.max_mails,
        max_commands: config.smtp.max_commands,
        ..SessionConfig::new(hostname.to_string())
    }
}

/// What the inbound side needs of a listener's options.
fn listener_info(l: &Listener, hostname: &str) -> ListenerInfo {
    ListenerInfo {
        hostname: hostname.to_string(),
        tag: l.tag.clone(),
        mask_src: l.mask_src,
        auth_table: match &l.auth {
            AuthMode::Required(t) | AuthMode::Optional(t) => t.clone(),
            AuthMode::None => None,
        },
        senders: l.senders.clone(),
        masquerade: l.masquerade,
        auth_failure_delay: AUTH_FAILURE_DELAY,
        filter: l.filter.clone(),
    }
}

/// Runs the SMTP sessions `sendmail` opens through the control socket,
/// with the options of `listen on socket` (tag, filter, hostname…) when
/// the configuration has one, as OpenSMTPD's enqueue socket does.
fn local_enqueue(
    config: &Arc<Config>,
    hostname: &str,
    services: Arc<Services>,
) -> crate::control::EnqueueHook {
    use crate::config::model::ListenTarget;
    let socket = config
        .listeners
        .iter()
        .find(|l| l.target == ListenTarget::Socket);
    let (session_cfg, info) = match socket {
        Some(l) => {
            let cfg = session_config(config, l, hostname);
            let info = listener_info(l, &cfg.hostname);
            (cfg, info)
        }
        None => (
            limited_session(config, hostname),
            ListenerInfo::new(hostname),
        ),
    };
    let (session_cfg, info) = (Arc::new(session_cfg), Arc::new(info));
    Arc::new(move |stream, peer: crate::control::peer::Peer, permit| {
        let (services, session_cfg, info) = (services.clone(), session_cfg.clone(), info.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let uid = peer.uid;
            let user = tokio::task::spawn_blocking(move || crate::control::peer::user_name(uid))
                .await
                .unwrap_or_else(|_| uid.to_string());
            let peer = crate::smtp::local::LocalPeer {
                uid: peer.uid,
                gid: peer.gid,
                pid: peer.pid,
                user,
            };
            crate::smtp::local::serve_local(stream, peer, services, session_cfg, info).await;
        });
    })
}

/// Serves `wasmtpctl` on the socket bound by [`prepare`].
fn start_control(
    socket: std::os::unix::net::UnixListener,
    controller: crate::control::Controller,
) -> Result<(), DaemonError> {
    use crate::control::socket::SocketError;
    let adopt = socket
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(socket));
    let listener = adopt.map_err(|source| SocketError::Io {
        what: "listen",
        path: "control socket".into(),
        source,
    })?;
    tokio::spawn(crate::control::server::serve(
        listener,
        Arc::new(controller),
    ));
    Ok(())
}

/// SIGHUP re-reads and recompiles the filters' components: sessions that
/// connect afterwards use the new code, sessions in flight finish on the
/// old one, and a component that fails to load leaves the old running.
async fn reload_on_sighup(registry: Arc<crate::filter::Registry>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("filter: cannot handle SIGHUP; filters will not reload");
        return;
    };
    while hup.recv().await.is_some() {
        info!("filter: SIGHUP: reloading filters");
        let r = registry.clone();
        match tokio::task::spawn_blocking(move || r.reload()).await {
            Ok((replaced, failures)) => info!(
                "filter: reload done: {replaced} replaced, {} failed",
                failures.len()
            ),
            Err(e) => warn!("filter: reload crashed: {e}"),
        }
    }
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
