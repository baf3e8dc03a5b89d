//! The durable on-disk mail queue.
//!
//! The promise: `commit` returns Ok — and the session answers 250 — only
//! after the message content and all its envelopes are written and
//! fsynced and their directory entry is durable (its shard fsynced). A
//! `kill -9` or power loss at any moment never loses a committed message,
//! and a message cut short while being written is removed at the next
//! start.
//!
//! # Layout (all access goes through `cap_std::fs::Dir` capabilities)
//! ```text
//! spool/queue/<hh>/                 16 shards, 00 to 0f: hh = the top 4 bits of the msgid
//! spool/queue/<hh>/<msgid>          bundle: envelopes as at commit + content
//! spool/queue/<hh>/<msgid>.env      current envelope set, once it differs from the bundle's
//! spool/queue/<hh>/<msgid>.env.XXXXXXXX.tmp   an envelope-set update in progress
//! spool/corrupt/                    files that failed to load, kept for inspection
//! ```
//! The shard of message `a1b2c3d4` is `queue/0a/` (its first hex digit).
//! Every shard is opened once, at `Queue::open`. `queue/` itself only
//! holds the shards; it is marked `chattr +T` (ext4's "top directory")
//! before they are made, so they, and the inodes of their files, are
//! spread over the disk's block groups. Messages found at start directly
//! in `queue/` (the layout before shards) or in a shard that is not
//! theirs (another shard count) are moved into their shard first.
//! A bundle (see `bundle`) holds the envelope set and the content as two
//! separately encoded parts behind a prefix giving both lengths; each
//! part, like a `.env` file, starts with a header saying whether it is
//! gzip-compressed and/or AES-256-GCM encrypted (see `codec`). An
//! envelope set is the JSON array of the message's [`Envelope`]s.
//!
//! # Why one self-validating file per message, written in place
//! A message and its envelopes must appear together or not at all, and
//! everything must be durable before the 250, at the lowest fsync latency
//! since each session waits for it. Options measured with 20 writers and
//! the same group commit on the development machine (a simulation of
//! each protocol, messages/s): a directory per message with two files and
//! a directory fsync, renamed from `incoming/` ~3 300; one file renamed
//! from `incoming/` ~5 700–8 400 (cross-directory renames serialise in
//! the kernel and add a journal commit to every message's latency); one
//! file created in place ~9 100–9 600. So a bundle is created directly
//! under its final name with `O_EXCL`, fsynced, and `queue/` is fsynced
//! once per batch. Atomicity comes from the length prefix instead of a
//! rename: a bundle whose size disagrees with its prefix was cut short by
//! a crash before it was acknowledged, and is deleted at start.
//! Envelope updates pay for this by rewriting the message's whole envelope
//! set: one small file for the usual one or few recipients, O(n) per
//! update for a message with very many.
//!
//! # Why shards, one committer per shard, and `+T`
//! With one `queue/`, every commit creates a file in it and every
//! delivered message unlinks one, all under that directory's lock: a
//! system-wide profile under load showed the kernel spinning on it
//! (`rwsem_spin_on_owner` from `do_unlinkat`/`path_openat`, ~12% of the
//! CPU), and ext4 scanning for a free inode in the one block group where
//! all the queue's (and, created beside it, the maildirs') recently
//! deleted inodes are (`find_inode_bit`/`recently_deleted`, ~10–20%).
//! Shards as in Postfix (`hash_queue_names`) or OpenSMTPD (`queue/XX/`)
//! spread the lock; but each shard's name must be made durable by its own
//! directory fsync, and on the development disk (ext4 without a journal)
//! a directory fsync is a real write and cache flush: one committer
//! fsyncing the shards of a batch one after the other was slower than
//! the single directory. So each shard has its own committer thread and
//! their fsyncs reach the disk together. Measured on the development
//! machine (2 cores, virtio disk mounted with `discard`; medians of 5
//! alternated runs, messages/s):
//!
//! | layout                                  | queue, 20 | queue, 100 | e2e, 20 | e2e, 100 |
//! |-----------------------------------------|-----------|------------|---------|----------|
//! | one `queue/` (before)                   | 7 560     | 6 700      | 1 110   | 1 120    |
//! | one `queue/`, spool marked `+T`         | 8 380     | 8 340      | 1 530   | 1 490    |
//! | 16 shards, 16 committers                | 8 820     |            | 1 220   | 1 190    |
//! | 16 shards, 16 committers, `queue/` `+T` | 9 790     | 9 790      | 1 560   | 1 490    |
//!
//! (queue: `queue::tests::bench_group_commit`, 10 000 messages of 1 KiB
//! from 20 or 100 tasks, committed and meanwhile read and removed; e2e:
//! smtp-source, 3 000 messages of 1 KiB from 20 or 100 clients, to
//! maildir delivery, until the queue is empty; the third row's e2e
//! figures from 4 runs on a fresh spool.) 64 shards measured the
//! same as 16 or slightly worse, with one committer per 4 shards. End to
//! end, almost all the gain is the inode placement (`+T`); the sharding
//! itself shows in the queue's own throughput, which is not what limits
//! the whole daemon on two cores.
//!
//! # Why this is crash-safe
//! * Commit: write the bundle, then fsync it and its shard directory
//!   (group commit, see `committer`) at the same time — the file was
//!   created before either fsync starts, so both together make it
//!   durable — and answer once both are done. A crash before the
//!   end leaves no bundle, an incomplete one (deleted by `load_all`), or
//!   a complete one that was never acknowledged (kept: the client
//!   retries, a duplicate as in every MTA when the connection drops after
//!   the data).
//! * Group commit: each shard's committer thread fsyncs the shard once
//!   for every bundle ready in it; the bundle fsyncs run on tokio's
//!   blocking pool, so concurrent sessions' fsyncs reach the disk
//!   together and share journal commits or cache flushes.
//! * Update: the new envelope set goes to a temporary file, fsynced, then
//!   renamed over `<msgid>.env`; a crash leaves the old or the new set.
//!   Leftover `.tmp` files are deleted by `load_all`.
//! * Removal: the set is rewritten (as an update) without the envelope;
//!   with the last one, the bundle is unlinked, then `<msgid>.env`. A
//!   `.env` without a bundle, or an empty set, is deleted at start, so a
//!   crash in between never delivers the message again. Updates and
//!   removals are not followed by a directory fsync: losing one in a
//!   crash means retry state goes back or a delivered envelope is
//!   delivered again (at-least-once, as OpenSMTPD and Postfix).
//! * Anything unreadable — bad magic, failed authentication (tampered,
//!   wrong key), bad gzip, bad JSON, an envelope of another message — is
//!   moved to `corrupt/` with its message and reported, never returned.
//! * Moving a message into its shard (upgrade) is a rename within the
//!   spool; the shards and `queue/` are fsynced before `load_all`
//!   returns, so no delivery starts from a place a crash could undo. A
//!   file whose shard already holds one of the same name is moved to
//!   `corrupt/`, never over it.
//! * `load_all` is meant for startup, before sessions commit; messages
//!   being committed at that moment are skipped, never deleted.

mod bundle;
mod codec;
mod committer;
mod disk;
mod error;
mod recover;
mod store;

use std::path::Path;
use std::sync::{Arc, Mutex};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use tokio::sync::oneshot;
use tracing::debug;

pub use codec::key_from_passphrase;
pub use error::QueueError;
pub use recover::LoadReport;

use crate::envelope::{Envelope, EvpId, MsgId};
use committer::{Committers, Pending};
use disk::{bundle_name, create_private_dir, fsync_dir, shard_name, spread_subdirs, SHARDS};
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
    /// Opens (creating if needed) the spool at `spool` and starts the
    /// committer. Debris of a crash is cleared by `load_all`.
    pub fn open(spool: &Path, opts: QueueOptions) -> Result<Queue, QueueError> {
        let shown = spool.display().to_string();
        Dir::create_ambient_dir_all(spool, ambient_authority())
            .map_err(|e| QueueError::io("mkdir", &shown, e))?;
        let root = Dir::open_ambient_dir(spool, ambient_authority())
            .map_err(|e| QueueError::io("open", &shown, e))?;
        let mut created = false;
        for sub in ["queue", "corrupt"] {
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
        let queue = open("queue")?;
        let corrupt = open("corrupt")?;
        let shards = Arc::new(open_shards(&queue)?);
        let committers = Committers::spawn(shards.clone())
            .map_err(|e| QueueError::io("spawn committer", &shown, e))?;
        Ok(Queue {
            inner: Arc::new(Inner::new(
                queue,
                shards,
                corrupt,
                codec::Codec::new(opts.compress, opts.key),
                committers,
            )),
        })
    }

    /// A random message id used by no queued message and no message in
    /// flight. It stays reserved until `commit` finishes or `release_msgid`.
    pub fn new_msgid(&self) -> MsgId {
        loop {
            let id = MsgId::random();
            let mut inflight = lock(&self.inner.inflight);
            if inflight.contains(&id) || self.inner.shard(id).exists(bundle_name(id)) {
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
        // Also covers ids not obtained from new_msgid: load_all must not
        // take this message's bundle for a crash leftover while written.
        lock(&self.inner.inflight).insert(msgid);
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
        let file =
            blocking(move || store::write_bundle(&inner, msgid, &content, &envelopes)).await?;
        // The file's fsync and the batch's directory fsync run at the same
        // time: the 250 waits for the slower of the two, not their sum. A
        // name made durable before its file is complete is harmless: the
        // bundle's length prefix shows it cut short and `load_all`
        // removes it, and it was never acknowledged.
        let (reply, answer) = oneshot::channel();
        self.inner.committers.submit(Pending { msgid, reply })?;
        let inner = self.inner.clone();
        let synced = blocking(move || store::sync_bundle(&inner, msgid, file)).await;
        let named = answer.await.map_err(|_| QueueError::Closed)?;
        synced.and(named)
    }

    /// Every envelope in the queue, for the scheduler at startup (call it
    /// before accepting mail). Removes bundles cut short by a crash,
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

    /// A message's envelopes as stored (`wasmtpctl discover`). A message
    /// still being committed is not there yet: `NotFound`.
    pub async fn read_envelopes(&self, msgid: MsgId) -> Result<Vec<Envelope>, QueueError> {
        let inner = self.inner.clone();
        blocking(move || {
            let committing = inner
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&msgid);
            if committing {
                return Err(QueueError::NotFound(msgid.to_string()));
            }
            store::read_set(&inner, msgid)
        })
        .await
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

/// Opens `queue/00/` … (creating the missing ones, durably), indexed by
/// `disk::shard_of`.
fn open_shards(queue: &Dir) -> Result<Vec<Dir>, QueueError> {
    let missing = (0..SHARDS).any(|s| !queue.is_dir(shard_name(s)));
    if missing {
        // Before the shards exist: where they go decides where their
        // files' inodes are allocated (see the module doc).
        if let Err(e) = spread_subdirs(queue) {
            debug!("queue: cannot mark queue/ as a top directory: {e}");
        }
    }
    let mut created = false;
    let mut shards = Vec::with_capacity(SHARDS);
    for shard in 0..SHARDS {
        let name = shard_name(shard);
        let shown = format!("queue/{name}");
        if !queue.is_dir(&name) {
            create_private_dir(queue, &name).map_err(|e| QueueError::io("mkdir", &shown, e))?;
            created = true;
        }
        shards.push(
            queue
                .open_dir(&name)
                .map_err(|e| QueueError::io("open", &shown, e))?,
        );
    }
    if created {
        fsync_dir(queue).map_err(|e| QueueError::io("fsync", "queue", e))?;
    }
    Ok(shards)
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
