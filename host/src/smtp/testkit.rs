//! Test support: SMTP services over a real on-disk queue whose
//! scheduler delivers nothing, for tests that stop at the queue.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Services;
use crate::config;
use crate::envelope::Envelope;
use crate::queue::{Queue, QueueOptions};
use crate::scheduler::{self, Deliver, Notice, Outcome, SchedulerOptions};
use crate::table::Tables;

/// Delivers nothing: these tests stop at the queue.
struct NoDelivery;

impl Deliver for NoDelivery {
    async fn deliver(&self, _env: &Envelope) -> Outcome {
        Outcome::TempFail("test".into())
    }
    async fn bounce(&self, _failed: &[Envelope], _notice: Notice) -> Result<Vec<Envelope>, String> {
        Ok(Vec::new())
    }
    fn method_name(&self, _env: &Envelope) -> String {
        "none".into()
    }
}

/// Services for the configuration `text`, with the queue in `spool`.
pub(crate) fn services(text: &str, spool: &Path) -> Arc<Services> {
    let cfg = Arc::new(config::parse_str(text, Path::new("test")).unwrap());
    let tables = Arc::new(Tables::load_all(&cfg).unwrap());
    let queue = Queue::open(
        spool,
        QueueOptions {
            compress: false,
            key: None,
        },
    )
    .unwrap();
    let scheduler = scheduler::start(
        queue.clone(),
        Arc::new(NoDelivery),
        SchedulerOptions::default(),
        Vec::new(),
    );
    Arc::new(Services {
        config: cfg,
        tables,
        queue,
        scheduler,
        local_domains: vec!["localhost".into()],
        expire: Duration::from_secs(3600),
        filters: None,
        stats: crate::stats::Stats::new(std::time::Instant::now()),
        intake: Default::default(),
    })
}
