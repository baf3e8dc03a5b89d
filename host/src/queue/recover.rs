//! Startup: clearing what a crash left half-done and reading back every
//! committed envelope, moving anything unreadable aside to `corrupt/`.

use std::io;

use cap_std::fs::Dir;
use tracing::{info, warn};

use super::disk::{parse_envelope_name, MESSAGE, TMP_SUFFIX};
use super::error::QueueError;
use super::store::{decode_envelope, remove_message_dir, Inner};
use crate::envelope::{Envelope, MsgId};

/// What `Queue::load_all` found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Every committed, readable envelope, sorted by id.
    pub envelopes: Vec<Envelope>,
    /// Files moved to `corrupt/`: (path relative to the spool, reason).
    pub corrupt: Vec<(String, String)>,
}

/// Removes every message still in `incoming/`: none of them was
/// acknowledged, the client will send it again.
pub(crate) fn clean_incoming(incoming: &Dir) -> Result<usize, QueueError> {
    let mut n = 0;
    let entries = incoming
        .entries()
        .map_err(|e| QueueError::io("list", "incoming", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| QueueError::io("list", "incoming", e))?;
        let name = entry.file_name();
        let shown = name.to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let r = if is_dir {
            incoming.remove_dir_all(&name)
        } else {
            incoming.remove_file(&name)
        };
        r.map_err(|e| QueueError::io("remove", format!("incoming/{shown}"), e))?;
        info!("queue: removed uncommitted incoming/{shown}");
        n += 1;
    }
    Ok(n)
}

pub(crate) fn load_all(inner: &Inner) -> Result<LoadReport, QueueError> {
    let mut report = LoadReport::default();
    let entries = inner
        .queue
        .entries()
        .map_err(|e| QueueError::io("list", "queue", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| QueueError::io("list", "queue", e))?;
        let name = entry.file_name();
        let shown = name.to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        match name.to_str().and_then(MsgId::parse) {
            Some(msgid) if is_dir => load_message(inner, msgid, &mut report)?,
            _ => {
                let path = format!("queue/{shown}");
                move_aside(
                    inner,
                    &inner.queue,
                    &shown,
                    &shown,
                    &path,
                    "unexpected entry in queue/",
                    &mut report,
                );
            }
        }
    }
    report.envelopes.sort_by_key(|e| e.id);
    Ok(report)
}

fn load_message(inner: &Inner, msgid: MsgId, report: &mut LoadReport) -> Result<(), QueueError> {
    let name = msgid.to_string();
    let dpath = format!("queue/{name}");
    let dir = inner
        .queue
        .open_dir(&name)
        .map_err(|e| QueueError::io("open", &dpath, e))?;
    let mut has_message = false;
    let mut ids = Vec::new();
    let listing = list(&dir).map_err(|e| QueueError::io("list", &dpath, e))?;
    for (fname, is_file) in listing {
        let path = format!("{dpath}/{fname}");
        if fname == MESSAGE && is_file {
            has_message = true;
        } else if fname.ends_with(TMP_SUFFIX) && is_file {
            // An envelope update interrupted before its rename.
            dir.remove_file(&fname)
                .map_err(|e| QueueError::io("unlink", &path, e))?;
        } else {
            match parse_envelope_name(&fname) {
                Some(id) if is_file && id.msgid() == msgid => ids.push(id),
                _ => {
                    let to = format!("{name}.{fname}");
                    move_aside(
                        inner,
                        &dir,
                        &fname,
                        &to,
                        &path,
                        "unexpected entry in message directory",
                        report,
                    );
                }
            }
        }
    }
    if ids.is_empty() {
        // Interrupted between removing the last envelope and the message:
        // it was fully delivered, never deliver it again.
        info!("queue: removing message {msgid} with no envelope left");
        return remove_message_dir(inner, &name, dir)
            .map_err(|e| QueueError::io("remove", &dpath, e));
    }
    if !has_message {
        for id in &ids {
            let path = format!("{dpath}/{id}");
            warn!("queue: corrupt envelope {path}: envelope without message content");
            report
                .corrupt
                .push((path, "envelope without message content".into()));
        }
        rename_to_corrupt(inner, &inner.queue, &name, &name, &dpath);
        return Ok(());
    }
    let before = report.envelopes.len();
    for id in ids {
        let fname = id.to_string();
        let path = format!("{dpath}/{fname}");
        let decoded = dir
            .read(&fname)
            .map_err(|e| format!("unreadable: {e}"))
            .and_then(|data| decode_envelope(&inner.codec, id, &data));
        match decoded {
            Ok(env) => report.envelopes.push(env),
            Err(reason) => move_aside(
                inner,
                &dir,
                &fname,
                &format!("{name}.{fname}"),
                &path,
                &reason,
                report,
            ),
        }
    }
    if report.envelopes.len() == before {
        // Keep the content next to its broken envelopes for inspection.
        move_aside(
            inner,
            &dir,
            MESSAGE,
            &format!("{name}.{MESSAGE}"),
            &format!("{dpath}/{MESSAGE}"),
            "no readable envelope left",
            report,
        );
        drop(dir);
        let _ = inner.queue.remove_dir(&name);
    }
    Ok(())
}

/// (name, is a regular file) for every entry of `dir`.
fn list(dir: &Dir) -> io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in dir.entries()? {
        let entry = entry?;
        let is_file = entry.file_type()?.is_file();
        out.push((entry.file_name().to_string_lossy().into_owned(), is_file));
    }
    Ok(out)
}

/// Renames `from_dir/name` to `corrupt/<to>` (made unique) and reports it.
/// If even that fails the file stays where it is; it is still never
/// returned as an envelope, and is reported again at the next start.
fn move_aside(
    inner: &Inner,
    from_dir: &Dir,
    name: &str,
    to: &str,
    path: &str,
    reason: &str,
    report: &mut LoadReport,
) {
    warn!("queue: corrupt envelope {path}: {reason}");
    rename_to_corrupt(inner, from_dir, name, to, path);
    report.corrupt.push((path.to_string(), reason.to_string()));
}

fn rename_to_corrupt(inner: &Inner, from_dir: &Dir, name: &str, to: &str, path: &str) {
    let mut target = to.to_string();
    let mut n = 1;
    while inner.corrupt.exists(&target) {
        target = format!("{to}.{n}");
        n += 1;
    }
    if let Err(e) = from_dir.rename(name, &inner.corrupt, &target) {
        warn!("queue: cannot move {path} to corrupt/{target}: {e}");
    }
}
