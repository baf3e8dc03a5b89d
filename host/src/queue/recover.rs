//! Startup: clearing what a crash left half-done (bundles cut short,
//! interrupted updates and removals) and reading back every committed
//! envelope, moving anything unreadable aside to `corrupt/`.

use std::collections::BTreeSet;
use std::io::Read;

use tracing::{info, warn};

use super::bundle;
use super::disk::{bundle_name, env_name, ENV_SUFFIX, TMP_SUFFIX};
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
    let mut report = LoadReport::default();
    let mut bundles = BTreeSet::new();
    let mut env_sets = BTreeSet::new();
    let entries = inner
        .queue
        .entries()
        .map_err(|e| QueueError::io("list", "queue", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| QueueError::io("list", "queue", e))?;
        let name = entry.file_name();
        let shown = name.to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        let path = format!("queue/{shown}");
        if !is_file {
            move_aside(
                inner,
                &shown,
                &path,
                "unexpected entry in queue/",
                &mut report,
            );
        } else if shown.ends_with(TMP_SUFFIX) {
            // An envelope-set update interrupted before its rename.
            inner
                .queue
                .remove_file(&name)
                .map_err(|e| QueueError::io("unlink", &path, e))?;
        } else if let Some(id) = MsgId::parse(&shown) {
            bundles.insert(id);
        } else if let Some(id) = shown.strip_suffix(ENV_SUFFIX).and_then(MsgId::parse) {
            env_sets.insert(id);
        } else {
            move_aside(
                inner,
                &shown,
                &path,
                "unexpected entry in queue/",
                &mut report,
            );
        }
    }
    for msgid in env_sets.difference(&bundles) {
        // The last envelope was removed, then the bundle, and the crash
        // came before this file went too.
        info!("queue: removing envelope set of already removed message {msgid}");
        let env = env_name(*msgid);
        inner
            .queue
            .remove_file(&env)
            .map_err(|e| QueueError::io("unlink", format!("queue/{env}"), e))?;
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
                let path = format!("queue/{}", bundle_name(msgid));
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

/// Whether a bundle was cut short while written (see `bundle::shape`).
fn is_incomplete(inner: &Inner, msgid: MsgId) -> Result<bool, String> {
    let mut f = inner
        .queue
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
    for name in [bundle_name(msgid), env_name(msgid)] {
        if inner.queue.exists(&name) {
            rename_to_corrupt(inner, &name);
        }
    }
    report.corrupt.push((path, reason));
}

fn move_aside(inner: &Inner, name: &str, path: &str, reason: &str, report: &mut LoadReport) {
    warn!("queue: corrupt envelope {path}: {reason}");
    rename_to_corrupt(inner, name);
    report.corrupt.push((path.to_string(), reason.to_string()));
}

/// Renames `queue/<name>` to `corrupt/<name>` (made unique). If even that
/// fails the file stays; it is still never returned as an envelope, and
/// is reported again at the next start.
fn rename_to_corrupt(inner: &Inner, name: &str) {
    let mut target = name.to_string();
    let mut n = 1;
    while inner.corrupt.exists(&target) {
        target = format!("{name}.{n}");
        n += 1;
    }
    if let Err(e) = inner.queue.rename(name, &inner.corrupt, &target) {
        warn!("queue: cannot move queue/{name} to corrupt/{target}: {e}");
    }
}
