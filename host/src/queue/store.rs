//! The blocking file operations behind the `Queue` methods: writing a new
//! message into its shard of `queue/`, reading content and envelopes,
//! replacing and removing envelopes.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use std::io::Write;

use cap_std::fs::{Dir, File};

use super::bundle;
use super::codec::Codec;
use super::committer::Committers;
use super::disk::{
    bundle_name, create_new, env_name, remove_if_present, shard_of, shown_path, tmp_name,
    write_new_synced,
};
use super::error::QueueError;
use super::lock;
use crate::envelope::{Envelope, EvpId, MsgId};

/// Envelope-set updates of one message are read-modify-write; they are
/// serialised by one of these locks, picked by message id.
const LOCK_STRIPES: usize = 64;

/// Everything a `Queue` handle shares.
pub(crate) struct Inner {
    /// `queue/` itself: only its shard directories (and, from an older
    /// layout, messages to move into them) live there.
    pub queue: Dir,
    /// `queue/00/` … : every message's files are in `shards[shard_of(id)]`.
    pub shards: Arc<Vec<Dir>>,
    pub corrupt: Dir,
    pub codec: Codec,
    /// Message ids handed out by `new_msgid` or being committed; their
    /// bundles may be incomplete and are left alone by `load_all`.
    pub inflight: Mutex<HashSet<MsgId>>,
    pub committers: Committers,
    pub stripes: Vec<Mutex<()>>,
}

impl Inner {
    pub(crate) fn new(
        queue: Dir,
        shards: Arc<Vec<Dir>>,
        corrupt: Dir,
        codec: Codec,
        committers: Committers,
    ) -> Inner {
        Inner {
            queue,
            shards,
            corrupt,
            codec,
            inflight: Mutex::new(HashSet::new()),
            committers,
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The shard directory holding a message's files.
    pub(crate) fn shard(&self, msgid: MsgId) -> &Dir {
        &self.shards[shard_of(msgid)]
    }

    fn lock_message(&self, msgid: MsgId) -> MutexGuard<'_, ()> {
        lock(&self.stripes[msgid.0 as usize % LOCK_STRIPES])
    }
}

/// Writes the bundle straight to `queue/<shard>/<msgid>`, not yet
/// fsynced: the caller fsyncs the file while the committer fsyncs the
/// shard directory (one per batch), and answers only when both are done.
/// `create_new` never replaces a queued message.
pub(crate) fn write_bundle(
    inner: &Inner,
    msgid: MsgId,
    content: &[u8],
    envelopes: &[Envelope],
) -> Result<File, QueueError> {
    let name = bundle_name(msgid);
    let path = shown_path(msgid, &name);
    let shard = inner.shard(msgid);
    let data = bundle::encode(&inner.codec, msgid, content, envelopes)?;
    // O_EXCL: the id is ours from here on, a queued message is never touched.
    let mut f = create_new(shard, &name).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            QueueError::Exists(msgid)
        } else {
            QueueError::io("create", &path, e)
        }
    })?;
    // An envelope set left by a crash while an earlier message with this
    // id was removed must not override the new message's. (Checked before
    // unlinking: a lookup does not take the directory's write lock.)
    let env = env_name(msgid);
    let stale = shard.exists(&env);
    let written = if stale {
        remove_if_present(shard, &env)
    } else {
        Ok(())
    }
    .and_then(|()| f.write_all(&data));
    if let Err(e) = written {
        let _ = shard.remove_file(&name);
        return Err(QueueError::io("write", path, e));
    }
    Ok(f)
}

/// Fsyncs a bundle written by [`write_bundle`]; on failure the bundle is
/// taken back out, since it will not be acknowledged.
pub(crate) fn sync_bundle(inner: &Inner, msgid: MsgId, f: File) -> Result<(), QueueError> {
    f.sync_all().map_err(|e| {
        let name = bundle_name(msgid);
        let _ = inner.shard(msgid).remove_file(&name);
        QueueError::io("fsync", shown_path(msgid, &name), e)
    })
}

/// The current envelope set of a message: `<msgid>.env` if present, else
/// the one in the bundle. `NotFound` if the message is not queued.
pub(crate) fn read_set(inner: &Inner, msgid: MsgId) -> Result<Vec<Envelope>, QueueError> {
    let env = env_name(msgid);
    let shard = inner.shard(msgid);
    match shard.read(&env) {
        Ok(data) => {
            return bundle::decode_set(&inner.codec, msgid, &data).map_err(|reason| {
                QueueError::Corrupt {
                    path: shown_path(msgid, &env),
                    reason,
                }
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(QueueError::io("read", shown_path(msgid, &env), e)),
    }
    let name = bundle_name(msgid);
    let path = shown_path(msgid, &name);
    let mut f = shard
        .open(&name)
        .map_err(|e| QueueError::io_or_missing("open", &path, e))?;
    let len = f
        .metadata()
        .map_err(|e| QueueError::io("stat", &path, e))?
        .len();
    bundle::read_set_part(&mut f, len)
        .and_then(|part| part.ok_or_else(|| "incomplete bundle".to_string()))
        .and_then(|data| bundle::decode_set(&inner.codec, msgid, &data))
        .map_err(|reason| QueueError::Corrupt { path, reason })
}

/// Replaces `<msgid>.env` atomically (temporary file, fsync, rename). The
/// directory is not fsynced: a crash may bring back the previous set.
fn write_set(inner: &Inner, msgid: MsgId, set: &[Envelope]) -> Result<(), QueueError> {
    let data = bundle::encode_set(&inner.codec, msgid, set)?;
    let tmp = tmp_name(msgid);
    let env = env_name(msgid);
    let shard = inner.shard(msgid);
    let written =
        write_new_synced(shard, &tmp, &data).and_then(|_| shard.rename(&tmp, shard, &env));
    if let Err(e) = written {
        let _ = shard.remove_file(&tmp);
        return Err(QueueError::io("replace", shown_path(msgid, &env), e));
    }
    Ok(())
}

pub(crate) fn read_message(inner: &Inner, msgid: MsgId) -> Result<Vec<u8>, QueueError> {
    let name = bundle_name(msgid);
    let path = shown_path(msgid, &name);
    let data = inner
        .shard(msgid)
        .read(&name)
        .map_err(|e| QueueError::io_or_missing("read", &path, e))?;
    bundle::content_part(&data)
        .and_then(|part| {
            inner
                .codec
                .decode(&super::disk::content_aad_name(msgid), part)
        })
        .map_err(|reason| QueueError::Corrupt { path, reason })
}

pub(crate) fn read_envelope(inner: &Inner, id: EvpId) -> Result<Envelope, QueueError> {
    read_set(inner, id.msgid())?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| QueueError::NotFound(format!("envelope {id}")))
}

/// Replaces one envelope of a queued message.
pub(crate) fn update_envelope(inner: &Inner, env: &Envelope) -> Result<(), QueueError> {
    let msgid = env.msgid();
    let _guard = inner.lock_message(msgid);
    let mut set = read_set(inner, msgid)?;
    let slot = set
        .iter_mut()
        .find(|e| e.id == env.id)
        .ok_or_else(|| QueueError::NotFound(format!("envelope {}", env.id)))?;
    *slot = env.clone();
    write_set(inner, msgid, &set)
}

/// Removes an envelope; with the last one, the whole message. The bundle
/// goes first: a crash in between leaves a `.env` without bundle, which
/// the next start deletes, never a bundle whose recipients come back.
/// Deletions are not fsynced (at-least-once, as OpenSMTPD and Postfix).
pub(crate) fn remove_envelope(inner: &Inner, id: EvpId) -> Result<(), QueueError> {
    let msgid = id.msgid();
    let _guard = inner.lock_message(msgid);
    let mut set = read_set(inner, msgid)?;
    let before = set.len();
    set.retain(|e| e.id != id);
    if set.len() == before {
        return Err(QueueError::NotFound(format!("envelope {id}")));
    }
    if !set.is_empty() {
        return write_set(inner, msgid, &set);
    }
    remove_message(inner, msgid)
}

/// Deletes a message's bundle, then its envelope set.
pub(crate) fn remove_message(inner: &Inner, msgid: MsgId) -> Result<(), QueueError> {
    let shard = inner.shard(msgid);
    let env = env_name(msgid);
    // Most messages never had their set rewritten: a lookup first spares
    // an unlink of nothing, which takes the directory's write lock.
    let names = if shard.exists(&env) {
        vec![bundle_name(msgid), env]
    } else {
        vec![bundle_name(msgid)]
    };
    for name in names {
        remove_if_present(shard, &name)
            .map_err(|e| QueueError::io("unlink", shown_path(msgid, &name), e))?;
    }
    Ok(())
}
