//! Wiring: from a loaded configuration to a running daemon — tables,
//! queue recovery, scheduler, listeners — and the signals that stop it.

pub mod deliver;
pub mod listen;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::config::model::{Config, ListenTarget, TlsMode};
use crate::queue::{self, Queue, QueueOptions};
use crate::scheduler::{self, SchedulerOptions};
use crate::smtp::inbound::ListenerInfo;
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
    #[error("no listener could be started")]
    NoListener,
}

pub struct DaemonOptions {
    pub spool: PathBuf,
    pub scheduler: SchedulerOptions,
}

/// The system's hostname, lowercase, as announced when a listener has none.
pub fn system_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.to_ascii_lowercase())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(config: Config, opts: DaemonOptions) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let hostname = config.hostname.clone().unwrap_or_else(system_hostname);
    let tables = Tables::load_all(&config).map_err(|errs| {
        DaemonError::Tables(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let tables = Arc::new(tables);

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
        opts.spool.display()
    );

    let mut local_domains = vec!["localhost".to_string(), hostname.clone()];
    for l in &config.listeners {
        if let Some(h) = &l.hostname {
            local_domains.push(h.to_ascii_lowercase());
        }
    }
    local_domains.dedup();

    let delivery = Arc::new(deliver::Delivery {
        config: config.clone(),
        tables: tables.clone(),
        queue: queue.clone(),
        hostname: hostname.clone(),
        local_domains: local_domains.clone(),
        runner: crate::mda::LocalRunner::new(),
    });
    let scheduler = scheduler::start(queue.clone(), delivery, opts.scheduler, report.envelopes);
    let services = Arc::new(Services {
        expire: config.queue.ttl.unwrap_or(DEFAULT_EXPIRE),
        config: config.clone(),
        tables,
        queue,
        scheduler,
        local_domains,
    });

    let sessions = Arc::new(Semaphore::new(config.smtp.max_sessions));
    let mut started = 0;
    for l in &config.listeners {
        if l.target == ListenTarget::Socket {
            continue;
        }
        if matches!(l.tls, TlsMode::Smtps | TlsMode::StartTlsRequire) {
            warn!("{}: TLS listeners are not supported yet; skipped", l.origin);
            continue;
        }
        let session_cfg = Arc::new(SessionConfig {
            hostname: l.hostname.clone().unwrap_or_else(|| hostname.clone()),
            max_message_size: config.smtp.max_message_size,
            max_rcpt: config.smtp.max_rcpt,
            max_mails: config.smtp.max_mails,
            max_commands: config.smtp.max_commands,
            max_errors: 10,
            starttls: false,
            tls_required: false,
            dsn: !l.no_dsn,
            auth: false,
        });
        let info = Arc::new(ListenerInfo {
            hostname: session_cfg.hostname.clone(),
            tag: l.tag.clone(),
            mask_src: l.mask_src,
        });
        for addr in listen::addresses(l)? {
            let socket = listen::bind(addr).map_err(|source| listen::ListenError::Bind {
                origin: l.origin.to_string(),
                addr,
                source,
            })?;
            info!("smtp-in: listening on {addr}");
            let listener = server::Listener {
                socket,
                session: session_cfg.clone(),
                info: info.clone(),
            };
            tokio::spawn(server::serve(listener, services.clone(), sessions.clone()));
            started += 1;
        }
    }
    if started == 0 {
        return Err(DaemonError::NoListener);
    }
    info!("wasmtpd: ready");
    wait_for_shutdown().await;
    info!("wasmtpd: shutting down");
    Ok(())
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
