//! Inbound SMTP: the sans-IO protocol (`proto`), the daemon's answers to
//! its events (`inbound`), the tokio driver (`server`) and the sessions
//! of the local enqueue socket (`local`).

pub mod inbound;
pub mod limits;
pub mod local;
pub mod proto;
pub mod server;
#[cfg(test)]
pub(crate) mod testkit;

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
    /// Whether listeners take new sessions (`wasmtpctl pause smtp`).
    pub intake: Intake,
}

/// Whether the listeners accept new sessions. Paused, they stop calling
/// accept(2), as OpenSMTPD's `pause smtp` does: clients wait in the
/// kernel's backlog, sessions already open go on.
#[derive(Clone, Debug)]
pub struct Intake(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Intake {
    fn default() -> Self {
        Intake(std::sync::Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Intake {
    pub fn pause(&self, paused: bool) {
        self.0.send_replace(paused);
    }

    pub fn is_paused(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once new sessions may be accepted.
    pub async fn open(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|paused| !*paused).await;
    }

    /// Returns once the operator pauses new sessions.
    pub async fn closed(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|paused| *paused).await;
    }
}
