//! Group commit: one thread fsyncs `queue/` once for every message whose
//! bundle is already written and fsynced, then answers all the waiting
//! sessions.
//!
//! While it fsyncs, new commits pile up in the channel and form the next
//! batch, so under load the cost of the directory fsync is shared by many
//! messages and never by just one (the 250 still waits for it). On ext4
//! the bundle's own fsync has usually committed the journal transaction
//! holding its directory entry already, so this fsync is often little
//! more than a cache flush; on other filesystems it is what makes the
//! names durable.

use std::io;
use std::sync::mpsc;
use std::thread;

use cap_std::fs::Dir;
use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use super::disk::{bundle_name, fsync_dir};
use super::error::QueueError;
use crate::envelope::MsgId;

/// A message whose bundle is written and fsynced in `queue/`, waiting for
/// its name to be durable.
pub(crate) struct Pending {
    pub msgid: MsgId,
    pub reply: oneshot::Sender<Result<(), QueueError>>,
}

/// Starts the committer thread. It stops when every sender is dropped.
pub(crate) fn spawn(queue: Dir) -> io::Result<mpsc::Sender<Pending>> {
    let (tx, rx) = mpsc::channel::<Pending>();
    thread::Builder::new()
        .name("queue-committer".into())
        .spawn(move || run(rx, queue))?;
    Ok(tx)
}

fn run(rx: mpsc::Receiver<Pending>, queue: Dir) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        commit_batch(batch, &queue);
    }
    debug!("queue: committer stopped");
}

fn commit_batch(batch: Vec<Pending>, queue: &Dir) {
    let n = batch.len();
    match fsync_dir(queue) {
        Ok(()) => {
            debug!("queue: committed {n} message(s) with one directory fsync");
            for p in batch {
                let _ = p.reply.send(Ok(()));
            }
        }
        Err(e) => {
            // Nothing is acknowledged; take the messages back out so a
            // client retry does not deliver them twice.
            error!("queue: fsync of queue/ failed, {n} message(s) rejected: {e}");
            for p in batch {
                let name = bundle_name(p.msgid);
                if let Err(e) = queue.remove_file(&name) {
                    warn!("queue: cannot withdraw queue/{name}: {e}");
                }
                let _ = p.reply.send(Err(QueueError::io(
                    "fsync",
                    "queue",
                    io::Error::new(e.kind(), e.to_string()),
                )));
            }
        }
    }
}
