//! Inbound SMTP: the sans-IO protocol (`proto`), the daemon's answers to
//! its events (`inbound`), the tokio driver (`server`) and the sessions
//! of the local enqueue socket (`local`).

pub mod inbound;
pub mod limits;
pub mod local;
pub mod proto;
pub mod server;

use std::time::Duration;

use crate::config::model::Config;
use crate::queue::Queue;
use crate::scheduler::SchedulerHandle;
use crate::table::Tables;

/// What sessions need from the rest of the daemon.
pub struct Services {
    pub config: std::sync::Arc<Config>,
    pub tables: std::sync::Arc<Tables>,
    pub queue: Queue,
    pub scheduler: SchedulerHandle,
    /// Domains `for local` matches, lowercase.
    pub local_domains: Vec<String>,
    /// How long an envelope is retried before it bounces.
    pub expire: Duration,
    /// The compiled filters, when the configuration defines any.
    pub filters: Option<std::sync::Arc<crate::filter::Registry>>,
    /// The daemon's statistics (`wasmtpctl show stats`, Prometheus).
    pub stats: crate::stats::Stats,
}
