//! Startup: moving messages of an older layout into their shard, clearing
//! what a crash left half-done (bundles cut short, interrupted updates and
//! removals) and reading back every committed envelope, moving anything
//! unreadable aside to `corrupt/`.

use std::collections::BTreeSet;
use std::io::Read;

use tracing::{info, warn};

use super::bundle;
use cap_std::fs::{Dir, DirEntry};

use super::disk::{
    bundle_name, env_name, fsync_dir, parse_shard_name, shard_name, shard_of, shown_path,
    ENV_SUFFIX, SHARDS, TMP_SUFFIX,
};
use super::error::QueueError;
use super::lock;
use super::store::{read_set, remove_message, Inner};
use crate::envelope::{Envelope, MsgId};

/// What `Queue::load_all` found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Every committed, readable envelope, sorted by id.
    pub envelopes: Vec<Envelope>,
    /// Files moved to `corrupt/`: (path relative to the spool, reason).
    pub corrupt: Vec<(String, String)>,
}

pub(crate) fn load_all(inner: &Inner) -> Result<LoadReport, QueueError> {
    let mut scan = Scan::default();
    let entries = inner
        .queue
        .entries()
        .map_err(|e| QueueError::io("list", "queue", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| QueueError::io("list", "queue", e))?;
        let name = entry.file_name();
        let shown = name.to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        match parse_shard_name(&shown) {
            Some(shard) if is_dir && shard < SHARDS => {} // scanned below
            Some(_) if is_dir => {
                // A shard of a larger shard count: rehome its messages.
                let path = format!("queue/{shown}");
                let dir = entry
                    .open_dir()
                    .map_err(|e| QueueError::io("open", &path, e))?;
                scan.dir(inner, &dir, &path, None)?;
                if let Err(e) = inner.queue.remove_dir(&name) {
                    warn!("queue: cannot remove old shard {path}/: {e}");
                }
            }
            _ => scan.entry(inner, &inner.queue, "queue", &entry, None)?,
        }
    }
    for (shard, dir) in inner.shards.iter().enumerate() {
        scan.dir(
            inner,
            dir,
            &format!("queue/{}", shard_name(shard)),
            Some(shard),
        )?;
    }
    if scan.moved {
        // Make the new places durable before anything is delivered from
        // them: a move undone by a crash would bring a message back.
        for (i, dir) in inner.shards.iter().enumerate() {
            fsync_dir(dir)
                .map_err(|e| QueueError::io("fsync", format!("queue/{}", shard_name(i)), e))?;
        }
        fsync_dir(&inner.queue).map_err(|e| QueueError::io("fsync", "queue", e))?;
    }
    let Scan {
        mut report,
        bundles,
        env_sets,
        ..
    } = scan;
    for msgid in env_sets.difference(&bundles) {
        // The last envelope was removed, then the bundle, and the crash
        // came before this file went too.
        info!("queue: removing envelope set of already removed message {msgid}");
        let env = env_name(*msgid);
        inner
            .shard(*msgid)
            .remove_file(&env)
            .map_err(|e| QueueError::io("unlink", shown_path(*msgid, &env), e))?;
    }
    for msgid in bundles {
        if lock(&inner.inflight).contains(&msgid) {
            // Being committed right now (load_all called at run time):
            // neither returned nor cleaned.
            continue;
        }
        match is_incomplete(inner, msgid) {
            Ok(true) => {
                // Cut short by a crash while written: never acknowledged.
                info!("queue: removing incomplete message {msgid} (interrupted commit)");
                remove_message(inner, msgid)?;
                continue;
            }
            Ok(false) => {}
            Err(reason) => {
                let path = shown_path(msgid, &bundle_name(msgid));
                quarantine(inner, msgid, path, reason, &mut report);
                continue;
            }
        }
        match read_set(inner, msgid) {
            Ok(set) if set.is_empty() => {
                info!("queue: removing message {msgid} with no envelope left");
                remove_message(inner, msgid)?;
            }
            Ok(set) => report.envelopes.extend(set),
            Err(QueueError::Corrupt { path, reason }) => {
                quarantine(inner, msgid, path, reason, &mut report)
            }
            Err(e) => return Err(e),
        }
    }
    report.envelopes.sort_by_key(|e| e.id);
    Ok(report)
}

/// What the walk of `queue/` found, before it is checked.
#[derive(Default)]
struct Scan {
    report: LoadReport,
    bundles: BTreeSet<MsgId>,
    env_sets: BTreeSet<MsgId>,
    /// Whether a file was moved into its shard (from `queue/` itself: the
    /// flat layout before sharding, or from another shard count).
    moved: bool,
}

impl Scan {
    /// Walks one directory: shard `home`, or (`None`) one whose messages
    /// all belong elsewhere.
    fn dir(
        &mut self,
        inner: &Inner,
        dir: &Dir,
        path: &str,
        home: Option<usize>,
    ) -> Result<(), QueueError> {
        let entries = dir.entries().map_err(|e| QueueError::io("list", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| QueueError::io("list", path, e))?;
            self.entry(inner, dir, path, &entry, home)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        inner: &Inner,
        dir: &Dir,
        path: &str,
        entry: &DirEntry,
        home: Option<usize>,
    ) -> Result<(), QueueError> {
        let name = entry.file_name();
        let shown = name.to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        let file_path = format!("{path}/{shown}");
        let unexpected = format!("unexpected entry in {path}/");
        let (msgid, is_bundle) = if !is_file {
            (None, false)
        } else if shown.ends_with(TMP_SUFFIX) {
            // An envelope-set update interrupted before its rename.
            return dir
                .remove_file(&name)
                .map_err(|e| QueueError::io("unlink", &file_path, e));
        } else if let Some(id) = MsgId::parse(&shown) {
            (Some(id), true)
        } else {
            (shown.strip_suffix(ENV_SUFFIX).and_then(MsgId::parse), false)
        };
        let Some(msgid) = msgid else {
            move_aside(
                inner,
                dir,
                &shown,
                &file_path,
                &unexpected,
                &mut self.report,
            );
            return Ok(());
        };
        if home != Some(shard_of(msgid)) {
            let target = inner.shard(msgid);
            if target.exists(&shown) {
                let reason = format!("duplicate of {}", shown_path(msgid, &shown));
                move_aside(inner, dir, &shown, &file_path, &reason, &mut self.report);
                return Ok(());
            }
            info!("queue: moving {file_path} to {}", shown_path(msgid, &shown));
            dir.rename(&name, target, &name)
                .map_err(|e| QueueError::io("rename", &file_path, e))?;
            self.moved = true;
        }
        if is_bundle {
            self.bundles.insert(msgid);
        } else {
            self.env_sets.insert(msgid);
        }
        Ok(())
    }
}

/// Whether a bundle was cut short while written (see `bundle::shape`).
fn is_incomplete(inner: &Inner, msgid: MsgId) -> Result<bool, String> {
    let mut f = inner
        .shard(msgid)
        .open(bundle_name(msgid))
        .map_err(|e| format!("unreadable: {e}"))?;
    let len = f.metadata().map_err(|e| format!("unreadable: {e}"))?.len();
    let mut head = Vec::with_capacity(bundle::PREFIX_LEN);
    (&mut f)
        .take(bundle::PREFIX_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("unreadable: {e}"))?;
    Ok(matches!(
        bundle::shape(&head, len)?,
        bundle::Shape::Incomplete
    ))
}

/// Moves a whole message aside: its content without its envelopes (or
/// the reverse) is of no use to the queue.
fn quarantine(inner: &Inner, msgid: MsgId, path: String, reason: String, report: &mut LoadReport) {
    warn!("queue: corrupt envelope {path}: {reason}");
    let shard = inner.shard(msgid);
    for name in [bundle_name(msgid), env_name(msgid)] {
        if shard.exists(&name) {
            rename_to_corrupt(inner, shard, &shown_path(msgid, &name), &name);
        }
    }
    report.corrupt.push((path, reason));
}

fn move_aside(
    inner: &Inner,
    dir: &Dir,
    name: &str,
    path: &str,
    reason: &str,
    report: &mut LoadReport,
) {
    warn!("queue: corrupt envelope {path}: {reason}");
    rename_to_corrupt(inner, dir, path, name);
    report.corrupt.push((path.to_string(), reason.to_string()));
}

/// Renames `name` in `dir` (shown as `path`) to `corrupt/<name>` (made
/// unique). If even that fails the file stays; it is still never returned
/// as an envelope, and is reported again at the next start.
fn rename_to_corrupt(inner: &Inner, dir: &Dir, path: &str, name: &str) {
    let mut target = name.to_string();
    let mut n = 1;
    while inner.corrupt.exists(&target) {
        target = format!("{name}.{n}");
        n += 1;
    }
    if let Err(e) = dir.rename(name, &inner.corrupt, &target) {
        warn!("queue: cannot move {path} to corrupt/{target}: {e}");
    }
}
