//! The blocking file operations behind the `Queue` methods: writing a new
//! message into `incoming/`, reading content and envelopes, replacing and
//! removing envelopes.

use std::collections::HashSet;
use std::io;
use std::sync::{mpsc, Mutex};

use cap_std::fs::Dir;

use super::codec::Codec;
use super::committer::Pending;
use super::disk::{
    create_private_dir, envelope_aad_name, fsync_dir, message_aad_name, parse_envelope_name,
    tmp_name, write_new, MESSAGE, TMP_SUFFIX,
};
use super::error::QueueError;
use crate::envelope::{Envelope, EvpId, MsgId};

/// Everything a `Queue` handle shares.
pub(crate) struct Inner {
    pub incoming: Dir,
    pub queue: Dir,
    pub corrupt: Dir,
    pub codec: Codec,
    /// Message ids handed out by `new_msgid` and not yet committed.
    pub inflight: Mutex<HashSet<MsgId>>,
    pub committer: Mutex<mpsc::Sender<Pending>>,
}

/// Writes content and envelopes to `incoming/<msgid>/` and makes them
/// durable: every file fsynced, then the directory itself so its entries
/// survive a crash once the directory is renamed into `queue/`.
pub(crate) fn write_incoming(
    inner: &Inner,
    msgid: MsgId,
    content: &[u8],
    envelopes: &[Envelope],
) -> Result<(), QueueError> {
    let name = msgid.to_string();
    let path = format!("incoming/{name}");
    if inner.incoming.exists(&name) {
        // Left by an earlier failed attempt with this reserved id.
        inner
            .incoming
            .remove_dir_all(&name)
            .map_err(|e| QueueError::io("remove", path.clone(), e))?;
    }
    create_private_dir(&inner.incoming, &name).map_err(|e| QueueError::io("mkdir", &path, e))?;
    let result = write_message_dir(inner, msgid, &path, content, envelopes);
    if result.is_err() {
        let _ = inner.incoming.remove_dir_all(&name);
    }
    result
}

fn write_message_dir(
    inner: &Inner,
    msgid: MsgId,
    path: &str,
    content: &[u8],
    envelopes: &[Envelope],
) -> Result<(), QueueError> {
    let dir = inner
        .incoming
        .open_dir(msgid.to_string())
        .map_err(|e| QueueError::io("open", path, e))?;
    // Write everything first, fsync afterwards: writeback of all files
    // starts together and the fsyncs mostly share one journal commit.
    let mut files = Vec::with_capacity(envelopes.len() + 1);
    let data = inner.codec.encode(&message_aad_name(msgid), content)?;
    let f = write_new(&dir, MESSAGE, &data)
        .map_err(|e| QueueError::io("write", format!("{path}/{MESSAGE}"), e))?;
    files.push((MESSAGE.to_string(), f));
    for env in envelopes {
        let fname = env.id.to_string();
        let data = encode_envelope(&inner.codec, env)?;
        let f = write_new(&dir, &fname, &data)
            .map_err(|e| QueueError::io("write", format!("{path}/{fname}"), e))?;
        files.push((fname, f));
    }
    for (fname, f) in files {
        f.sync_all()
            .map_err(|e| QueueError::io("fsync", format!("{path}/{fname}"), e))?;
    }
    fsync_dir(&dir).map_err(|e| QueueError::io("fsync", path, e))
}

pub(crate) fn encode_envelope(codec: &Codec, env: &Envelope) -> Result<Vec<u8>, QueueError> {
    let json = serde_json::to_vec(env)
        .map_err(|e| QueueError::Invalid(format!("envelope {}: {e}", env.id)))?;
    codec.encode(&envelope_aad_name(env.id), &json)
}

/// Decodes an envelope file named `id`; the error is a reason for Corrupt.
pub(crate) fn decode_envelope(codec: &Codec, id: EvpId, data: &[u8]) -> Result<Envelope, String> {
    let json = codec.decode(&envelope_aad_name(id), data)?;
    let env: Envelope = serde_json::from_slice(&json).map_err(|e| format!("bad JSON: {e}"))?;
    if env.id != id {
        return Err(format!("holds envelope {} under the name {id}", env.id));
    }
    Ok(env)
}

pub(crate) fn read_message(inner: &Inner, msgid: MsgId) -> Result<Vec<u8>, QueueError> {
    let path = format!("queue/{msgid}/{MESSAGE}");
    let data = inner
        .queue
        .read(format!("{msgid}/{MESSAGE}"))
        .map_err(|e| QueueError::io_or_missing("read", &path, e))?;
    inner
        .codec
        .decode(&message_aad_name(msgid), &data)
        .map_err(|reason| QueueError::Corrupt { path, reason })
}

pub(crate) fn read_envelope(inner: &Inner, id: EvpId) -> Result<Envelope, QueueError> {
    let path = format!("queue/{}/{id}", id.msgid());
    let data = inner
        .queue
        .read(format!("{}/{id}", id.msgid()))
        .map_err(|e| QueueError::io_or_missing("read", &path, e))?;
    decode_envelope(&inner.codec, id, &data).map_err(|reason| QueueError::Corrupt { path, reason })
}

/// Replaces an existing envelope atomically: a crash leaves the old or the
/// new version, never a mix. The directory is not fsynced: losing the
/// update in a crash only brings back the previous retry state.
pub(crate) fn update_envelope(inner: &Inner, env: &Envelope) -> Result<(), QueueError> {
    let msgid = env.msgid();
    let path = format!("queue/{msgid}/{}", env.id);
    let dir = inner
        .queue
        .open_dir(msgid.to_string())
        .map_err(|e| QueueError::io_or_missing("open", format!("queue/{msgid}"), e))?;
    let fname = env.id.to_string();
    // Never resurrect an envelope that was removed.
    if !dir.exists(&fname) {
        return Err(QueueError::NotFound(path));
    }
    let data = encode_envelope(&inner.codec, env)?;
    let tmp = tmp_name(env.id);
    let written = write_new(&dir, &tmp, &data)
        .and_then(|f| f.sync_all())
        .and_then(|()| dir.rename(&tmp, &dir, &fname));
    if let Err(e) = written {
        let _ = dir.remove_file(&tmp);
        return Err(QueueError::io("replace", path, e));
    }
    Ok(())
}

/// Unlinks an envelope, and the whole message once no envelope is left.
/// Not fsynced: after a crash a removed envelope may come back and be
/// delivered again (at-least-once, like OpenSMTPD and Postfix); a message
/// left without envelopes is deleted at the next start.
pub(crate) fn remove_envelope(inner: &Inner, id: EvpId) -> Result<(), QueueError> {
    let msgid = id.msgid();
    let name = msgid.to_string();
    let dir = inner
        .queue
        .open_dir(&name)
        .map_err(|e| QueueError::io_or_missing("open", format!("queue/{name}"), e))?;
    dir.remove_file(id.to_string())
        .map_err(|e| QueueError::io_or_missing("unlink", format!("queue/{name}/{id}"), e))?;
    if has_envelopes(&dir).map_err(|e| QueueError::io("list", format!("queue/{name}"), e))? {
        return Ok(());
    }
    remove_message_dir(inner, &name, dir)
        .map_err(|e| QueueError::io("remove", format!("queue/{name}"), e))
}

pub(crate) fn has_envelopes(dir: &Dir) -> io::Result<bool> {
    for entry in dir.entries()? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .and_then(parse_envelope_name)
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes a message directory that has no envelope left. Tolerates a
/// concurrent remover of a sibling envelope doing the same.
pub(crate) fn remove_message_dir(inner: &Inner, name: &str, dir: Dir) -> io::Result<()> {
    ignore_missing(dir.remove_file(MESSAGE))?;
    for entry in dir.entries()? {
        let entry = entry?;
        let fname = entry.file_name();
        if fname.to_str().is_some_and(|n| n.ends_with(TMP_SUFFIX)) {
            ignore_missing(dir.remove_file(&fname))?;
        }
    }
    drop(dir);
    match inner.queue.remove_dir(name) {
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
        r => ignore_missing(r),
    }
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
