//! The durable on-disk mail queue.
//!
//! The promise: `commit` returns Ok — and the session answers 250 — only
//! after the message content and all its envelopes are written, fsynced,
//! renamed into `queue/` and `queue/` itself fsynced. A `kill -9` or power
//! loss at any moment never loses a committed message, and a message that
//! was still being written is removed at the next start.
//!
//! # Layout (all access goes through one `cap_std::fs::Dir` capability)
//! ```text
//! spool/incoming/<msgid>/           message being written (never acknowledged)
//! spool/queue/<msgid>/message       committed content
//! spool/queue/<msgid>/<evpid>       one file per envelope (16 hex digits)
//! spool/queue/<msgid>/<evpid>.XXXXXXXX.tmp   an envelope update in progress
//! spool/corrupt/                    files that failed to load, kept for inspection
//! ```
//! Every file starts with a header saying whether it is gzip-compressed
//! and/or AES-256-GCM encrypted (see `codec`). An envelope file is the JSON
//! of [`Envelope`].
//!
//! # Why this is crash-safe
//! * Commit: files are written in `incoming/<msgid>/`, each fsynced, then
//!   the message directory is fsynced (its entries must be durable before
//!   it becomes visible: fsyncing the files alone does not persist the
//!   names pointing at them). The one atomic step is the rename of the
//!   whole directory into `queue/`, made durable by fsyncing `queue/`.
//!   Before that rename nothing is visible; after the fsync everything is.
//!   Envelopes sit directly in the message directory rather than in an
//!   `envelopes/` sub-directory, which would cost one more directory
//!   fsync per message.
//! * Group commit: a committer thread renames every message that is ready
//!   and fsyncs `queue/` once per batch (see `committer`). The per-message
//!   file fsyncs run on tokio's blocking pool, so concurrent sessions'
//!   fsyncs reach the disk together and share journal commits.
//! * Update: write a temporary file, fsync it, rename it over the old one;
//!   a crash leaves the old or the new envelope. Leftover `.tmp` files are
//!   deleted by `load_all`.
//! * Removal: unlink the envelope; when none is left, unlink the message
//!   and the directory. A message directory found without envelopes at
//!   start is deleted, so a crash in between never delivers it again.
//!   Updates and removals are not followed by a directory fsync: losing
//!   one in a crash means a retry counter goes back or a delivered
//!   envelope is delivered again (at-least-once, as OpenSMTPD and Postfix).
//! * Anything unreadable — bad header, failed authentication (tampered,
//!   wrong key), bad gzip, bad JSON, an envelope whose id differs from its
//!   file name — is moved to `corrupt/` and reported, never returned.

mod codec;
mod committer;
mod disk;
mod error;
mod recover;
mod store;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use tokio::sync::oneshot;
use tracing::info;

pub use codec::key_from_passphrase;
pub use error::QueueError;
pub use recover::LoadReport;

use crate::envelope::{Envelope, EvpId, MsgId};
use committer::Pending;
use disk::{create_private_dir, fsync_dir};
use store::Inner;

/// How the queue stores files (`queue compression`, `queue encryption`).
#[derive(Clone, Debug, Default)]
pub struct QueueOptions {
    pub compress: bool,
    pub key: Option<[u8; 32]>,
}

/// A handle on the spool; cheap to clone, shared by every session.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl Queue {
    /// Opens (creating if needed) the spool at `spool`, removes messages
    /// left half-written in `incoming/` and starts the committer.
    pub fn open(spool: &Path, opts: QueueOptions) -> Result<Queue, QueueError> {
        let shown = spool.display().to_string();
        Dir::create_ambient_dir_all(spool, ambient_authority())
            .map_err(|e| QueueError::io("mkdir", &shown, e))?;
        let root = Dir::open_ambient_dir(spool, ambient_authority())
            .map_err(|e| QueueError::io("open", &shown, e))?;
        let mut created = false;
        for sub in ["incoming", "queue", "corrupt"] {
            if !root.is_dir(sub) {
                create_private_dir(&root, sub).map_err(|e| QueueError::io("mkdir", sub, e))?;
                created = true;
            }
        }
        if created {
            fsync_dir(&root).map_err(|e| QueueError::io("fsync", &shown, e))?;
        }
        let open = |sub: &str| {
            root.open_dir(sub)
                .map_err(|e| QueueError::io("open", sub, e))
        };
        let incoming = open("incoming")?;
        let queue = open("queue")?;
        let corrupt = open("corrupt")?;
        let cleaned = recover::clean_incoming(&incoming)?;
        if cleaned > 0 {
            info!("queue: removed {cleaned} uncommitted message(s) from incoming/");
        }
        let dup = |d: &Dir, sub: &str| d.try_clone().map_err(|e| QueueError::io("dup", sub, e));
        let committer = committer::spawn(dup(&incoming, "incoming")?, dup(&queue, "queue")?)
            .map_err(|e| QueueError::io("spawn committer", &shown, e))?;
        Ok(Queue {
            inner: Arc::new(Inner {
                incoming,
                queue,
                corrupt,
                codec: codec::Codec::new(opts.compress, opts.key),
                inflight: Mutex::new(HashSet::new()),
                committer: Mutex::new(committer),
            }),
        })
    }

    /// A random message id used by no queued message and no message in
    /// flight. It stays reserved until `commit` finishes or `release_msgid`.
    pub fn new_msgid(&self) -> MsgId {
        loop {
            let id = MsgId::random();
            let mut inflight = lock(&self.inner.inflight);
            if inflight.contains(&id) || self.inner.queue.exists(id.to_string()) {
                continue;
            }
            inflight.insert(id);
            return id;
        }
    }

    /// Gives back an id from `new_msgid` whose transaction was abandoned
    /// (RSET, disconnect, rejected DATA). `commit` releases it by itself.
    pub fn release_msgid(&self, msgid: MsgId) {
        lock(&self.inner.inflight).remove(&msgid);
    }

    /// Stores a message with its envelopes; returns Ok only once both are
    /// durable. Every envelope must belong to `msgid`, and there must be
    /// at least one.
    pub async fn commit(
        &self,
        msgid: MsgId,
        content: Vec<u8>,
        envelopes: Vec<Envelope>,
    ) -> Result<(), QueueError> {
        let _reservation = Reservation {
            inner: &self.inner,
            msgid,
        };
        if envelopes.is_empty() {
            return Err(QueueError::Invalid(format!(
                "message {msgid} has no envelope"
            )));
        }
        if let Some(e) = envelopes.iter().find(|e| e.msgid() != msgid) {
            return Err(QueueError::Invalid(format!(
                "envelope {} does not belong to message {msgid}",
                e.id
            )));
        }
        let inner = self.inner.clone();
        blocking(move || store::write_incoming(&inner, msgid, &content, &envelopes)).await?;
        let (reply, answer) = oneshot::channel();
        lock(&self.inner.committer)
            .send(Pending { msgid, reply })
            .map_err(|_| QueueError::Closed)?;
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// Every envelope in the queue, for the scheduler at startup. Removes
    /// interrupted updates and envelope-less messages; moves unreadable
    /// files to `corrupt/` and lists them in the report.
    pub fn load_all(&self) -> Result<LoadReport, QueueError> {
        recover::load_all(&self.inner)
    }

    /// The message content, decompressed and decrypted. A file that fails
    /// authentication or decoding gives `QueueError::Corrupt`, never bytes.
    pub async fn read_message(&self, msgid: MsgId) -> Result<Vec<u8>, QueueError> {
        let inner = self.inner.clone();
        blocking(move || store::read_message(&inner, msgid)).await
    }

    /// One envelope as stored (for `show envelope`).
    pub async fn read_envelope(&self, id: EvpId) -> Result<Envelope, QueueError> {
        let inner = self.inner.clone();
        blocking(move || store::read_envelope(&inner, id)).await
    }

    /// Atomically replaces a queued envelope (retry counters, errors).
    /// `NotFound` if it was removed meanwhile.
    pub async fn update_envelope(&self, env: &Envelope) -> Result<(), QueueError> {
        let inner = self.inner.clone();
        let env = env.clone();
        blocking(move || store::update_envelope(&inner, &env)).await
    }

    /// Removes an envelope, and its message when it was the last one.
    pub async fn remove_envelope(&self, id: EvpId) -> Result<(), QueueError> {
        let inner = self.inner.clone();
        blocking(move || store::remove_envelope(&inner, id)).await
    }
}

/// Releases a reserved message id when `commit` ends, whatever the
/// outcome, even if the session's future is dropped half-way.
struct Reservation<'a> {
    inner: &'a Inner,
    msgid: MsgId,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock(&self.inner.inflight).remove(&self.msgid);
    }
}

/// A poisoned lock only means another thread panicked while holding it;
/// the data (a set of ids, a channel sender) is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn blocking<T, F>(f: F) -> Result<T, QueueError>
where
    F: FnOnce() -> Result<T, QueueError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QueueError::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests;
