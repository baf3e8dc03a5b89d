//! Group commit: one thread moves every message whose bundle is already
//! written and fsynced from `incoming/` into `queue/`, then fsyncs `queue/`
//! once for the whole batch and answers all the waiting sessions.
//!
//! While it fsyncs, new commits pile up in the channel and form the next
//! batch, so under load the cost of the directory fsync is shared by many
//! messages and never by just one (the 250 still waits for it).

use std::io;
use std::sync::mpsc;
use std::thread;

use cap_std::fs::Dir;
use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use super::disk::{env_name, fsync_dir, remove_if_present};
use super::error::QueueError;
use crate::envelope::MsgId;

/// A message written to `incoming/<msgid>` waiting to be made visible.
pub(crate) struct Pending {
    pub msgid: MsgId,
    pub reply: oneshot::Sender<Result<(), QueueError>>,
}

/// Starts the committer thread. It stops when every sender is dropped.
pub(crate) fn spawn(incoming: Dir, queue: Dir) -> io::Result<mpsc::Sender<Pending>> {
    let (tx, rx) = mpsc::channel::<Pending>();
    thread::Builder::new()
        .name("queue-committer".into())
        .spawn(move || run(rx, incoming, queue))?;
    Ok(tx)
}

fn run(rx: mpsc::Receiver<Pending>, incoming: Dir, queue: Dir) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        commit_batch(batch, &incoming, &queue);
    }
    debug!("queue: committer stopped");
}

fn commit_batch(batch: Vec<Pending>, incoming: &Dir, queue: &Dir) {
    let mut moved = Vec::with_capacity(batch.len());
    for p in batch {
        let name = p.msgid.to_string();
        // rename(2) would silently replace a queued message: check first.
        // Only this thread adds to queue/, so the check cannot race.
        if queue.exists(&name) {
            let _ = incoming.remove_file(&name);
            let _ = p.reply.send(Err(QueueError::Exists(p.msgid)));
            continue;
        }
        // An envelope set left by a crash while an earlier message with
        // this id was removed must not override the new message's.
        if let Err(e) = remove_if_present(queue, &env_name(p.msgid)) {
            let _ = incoming.remove_file(&name);
            let _ = p.reply.send(Err(QueueError::io(
                "unlink",
                format!("queue/{}", env_name(p.msgid)),
                e,
            )));
            continue;
        }
        match incoming.rename(&name, queue, &name) {
            Ok(()) => moved.push(p),
            Err(e) => {
                let _ = incoming.remove_file(&name);
                let _ = p
                    .reply
                    .send(Err(QueueError::io("rename", format!("incoming/{name}"), e)));
            }
        }
    }
    if moved.is_empty() {
        return;
    }
    let n = moved.len();
    match fsync_dir(queue) {
        Ok(()) => {
            debug!("queue: committed {n} message(s) with one fsync");
            for p in moved {
                let _ = p.reply.send(Ok(()));
            }
        }
        Err(e) => {
            // Nothing is acknowledged; take the messages back out so a
            // client retry does not deliver them twice.
            error!("queue: fsync of queue/ failed, {n} message(s) rejected: {e}");
            for p in moved {
                let name = p.msgid.to_string();
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
