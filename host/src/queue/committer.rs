//! Group commit: a committer thread per shard (shards share 16 threads if
//! there are more) fsyncs the shard once per batch of messages whose
//! bundles are already written and fsynced in it, then answers all the
//! waiting sessions.
//!
//! While it fsyncs, new commits pile up in its channel and form the next
//! batch, so under load the cost of a directory fsync is shared by many
//! messages (the 250 still waits for it). The threads work in parallel so
//! the fsyncs of different shards reach the disk together: one thread
//! fsyncing the shards of a batch in turn was slower than a single
//! `queue/` (see the module doc). On ext4 with a journal the bundle's own
//! fsync has usually committed the transaction holding its directory
//! entry already, so this fsync is little more than a cache flush;
//! without a journal, or on other filesystems, it is what makes the
//! names durable.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use cap_std::fs::Dir;
use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use super::disk::{bundle_name, fsync_dir, shard_name, shard_of, shown_path, SHARDS};
use super::error::QueueError;
use crate::envelope::MsgId;

/// A message whose bundle is written and fsynced in its shard, waiting
/// for its name to be durable.
pub(crate) struct Pending {
    pub msgid: MsgId,
    pub reply: oneshot::Sender<Result<(), QueueError>>,
}

/// How many committer threads share the shards: shard `s` is committed by
/// thread `s % COMMITTERS`, so the directory fsyncs of different shards
/// are in flight together instead of one after the other.
const COMMITTERS: usize = if SHARDS < 16 { SHARDS } else { 16 };

/// The senders to the committer threads; cheap to share.
pub(crate) struct Committers {
    threads: Vec<mpsc::Sender<Pending>>,
}

impl Committers {
    /// Starts the committer threads over the shard directories (indexed
    /// by `shard_of`). They stop when the `Committers` is dropped.
    pub(crate) fn spawn(shards: Arc<Vec<Dir>>) -> io::Result<Committers> {
        let mut threads = Vec::with_capacity(COMMITTERS);
        for t in 0..COMMITTERS {
            let (tx, rx) = mpsc::channel::<Pending>();
            let shards = shards.clone();
            thread::Builder::new()
                .name(format!("queue-commit-{t}"))
                .spawn(move || run(rx, &shards))?;
            threads.push(tx);
        }
        Ok(Committers { threads })
    }

    /// Hands a written message to the committer of its shard.
    pub(crate) fn submit(&self, p: Pending) -> Result<(), QueueError> {
        self.threads[shard_of(p.msgid) % COMMITTERS]
            .send(p)
            .map_err(|_| QueueError::Closed)
    }
}

fn run(rx: mpsc::Receiver<Pending>, shards: &[Dir]) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        commit_batch(batch, shards);
    }
    debug!("queue: committer stopped");
}

fn commit_batch(batch: Vec<Pending>, shards: &[Dir]) {
    let touched: BTreeSet<usize> = batch.iter().map(|p| shard_of(p.msgid)).collect();
    let failed: BTreeMap<usize, io::Error> = touched
        .iter()
        .filter_map(|&s| fsync_dir(&shards[s]).err().map(|e| (s, e)))
        .collect();
    for (s, e) in &failed {
        error!(
            "queue: fsync of queue/{}/ failed, its message(s) rejected: {e}",
            shard_name(*s)
        );
    }
    debug!(
        "queue: committed {} message(s) with {} directory fsync(s)",
        batch.len(),
        touched.len()
    );
    for p in batch {
        let shard = shard_of(p.msgid);
        let answer = match failed.get(&shard) {
            None => Ok(()),
            Some(e) => {
                // Not acknowledged; take the message back out so a client
                // retry does not deliver it twice.
                let name = bundle_name(p.msgid);
                if let Err(e) = shards[shard].remove_file(&name) {
                    warn!("queue: cannot withdraw {}: {e}", shown_path(p.msgid, &name));
                }
                Err(QueueError::io(
                    "fsync",
                    format!("queue/{}", shard_name(shard)),
                    io::Error::new(e.kind(), e.to_string()),
                ))
            }
        };
        let _ = p.reply.send(answer);
    }
}
