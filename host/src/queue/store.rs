//! The blocking file operations behind the `Queue` methods: writing a new
//! message into `queue/`, reading content and envelopes, replacing and
//! removing envelopes.

use std::collections::HashSet;
use std::io;
use std::sync::{mpsc, Mutex, MutexGuard};

use cap_std::fs::Dir;

use super::bundle;
use super::codec::Codec;
use super::committer::Pending;
use super::disk::{
    bundle_name, create_new, env_name, remove_if_present, tmp_name, write_new_synced, write_synced,
};
use super::error::QueueError;
use super::lock;
use crate::envelope::{Envelope, EvpId, MsgId};

/// Envelope-set updates of one message are read-modify-write; they are
/// serialised by one of these locks, picked by message id.
const LOCK_STRIPES: usize = 64;

/// Everything a `Queue` handle shares.
pub(crate) struct Inner {
    pub queue: Dir,
    pub corrupt: Dir,
    pub codec: Codec,
    /// Message ids handed out by `new_msgid` or being committed; their
    /// bundles may be incomplete and are left alone by `load_all`.
    pub inflight: Mutex<HashSet<MsgId>>,
    pub committer: Mutex<mpsc::Sender<Pending>>,
    pub stripes: Vec<Mutex<()>>,
}

impl Inner {
    pub(crate) fn new(
        queue: Dir,
        corrupt: Dir,
        codec: Codec,
        committer: mpsc::Sender<Pending>,
    ) -> Inner {
        Inner {
            queue,
            corrupt,
            codec,
            inflight: Mutex::new(HashSet::new()),
            committer: Mutex::new(committer),
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn lock_message(&self, msgid: MsgId) -> MutexGuard<'_, ()> {
        lock(&self.stripes[msgid.0 as usize % LOCK_STRIPES])
    }
}

/// Writes the bundle straight to `queue/<msgid>` and fsyncs it. Making
/// its name durable is the committer's job (one fsync of `queue/` per
/// batch). `create_new` never replaces a queued message.
pub(crate) fn write_bundle(
    inner: &Inner,
    msgid: MsgId,
    content: &[u8],
    envelopes: &[Envelope],
) -> Result<(), QueueError> {
    let name = bundle_name(msgid);
    let path = format!("queue/{name}");
    let data = bundle::encode(&inner.codec, msgid, content, envelopes)?;
    // O_EXCL: the id is ours from here on, a queued message is never touched.
    let f = create_new(&inner.queue, &name).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            QueueError::Exists(msgid)
        } else {
            QueueError::io("create", &path, e)
        }
    })?;
    // An envelope set left by a crash while an earlier message with this
    // id was removed must not override the new message's.
    let env = env_name(msgid);
    let written = remove_if_present(&inner.queue, &env).and_then(|()| write_synced(f, &data));
    if let Err(e) = written {
        let _ = inner.queue.remove_file(&name);
        return Err(QueueError::io("write", path, e));
    }
    Ok(())
}

/// The current envelope set of a message: `<msgid>.env` if present, else
/// the one in the bundle. `NotFound` if the message is not queued.
pub(crate) fn read_set(inner: &Inner, msgid: MsgId) -> Result<Vec<Envelope>, QueueError> {
    let env = env_name(msgid);
    match inner.queue.read(&env) {
        Ok(data) => {
            return bundle::decode_set(&inner.codec, msgid, &data).map_err(|reason| {
                QueueError::Corrupt {
                    path: format!("queue/{env}"),
                    reason,
                }
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(QueueError::io("read", format!("queue/{env}"), e)),
    }
    let name = bundle_name(msgid);
    let path = format!("queue/{name}");
    let mut f = inner
        .queue
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
    let written = write_new_synced(&inner.queue, &tmp, &data)
        .and_then(|_| inner.queue.rename(&tmp, &inner.queue, &env));
    if let Err(e) = written {
        let _ = inner.queue.remove_file(&tmp);
        return Err(QueueError::io("replace", format!("queue/{env}"), e));
    }
    Ok(())
}

pub(crate) fn read_message(inner: &Inner, msgid: MsgId) -> Result<Vec<u8>, QueueError> {
    let name = bundle_name(msgid);
    let path = format!("queue/{name}");
    let data = inner
        .queue
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
    let name = bundle_name(msgid);
    remove_if_present(&inner.queue, &name)
        .map_err(|e| QueueError::io("unlink", format!("queue/{name}"), e))?;
    let env = env_name(msgid);
    remove_if_present(&inner.queue, &env)
        .map_err(|e| QueueError::io("unlink", format!("queue/{env}"), e))
}
