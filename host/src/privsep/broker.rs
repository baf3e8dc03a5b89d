//! The privileged side: reads delivery requests from the unprivileged
//! daemon, checks them against the root policy, runs them with
//! a [`mda::LocalRunner`] (pooled workers running as the job's user) and
//! answers.

use std::path::{Component, Path};
use std::sync::Arc;

use tokio::io::AsyncWrite;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Semaphore};
use tracing::warn;

use super::wire;
use crate::mda::{self, JobMethod, LocalJob, Outcome};

/// Deliveries in progress at once; bounds the memory a misbehaving peer
/// can make root hold (each request carries its whole message).
const MAX_CONCURRENT: usize = 64;

/// What a request may ask of root. The peer is our own child, but it
/// talks to the network: treat it as able to ask anything, and make
/// sure the answer is never "run this as root".
///
/// - A command (`mda`, `|cmd` aliases) for uid 0 is refused, as
///   OpenSMTPD refuses it ("MDA not allowed to deliver to root"): any
///   other uid runs only with that user's rights.
/// - A maildir or mbox for uid 0 is allowed (the embedded default maps
///   every recipient to the user running it, root included), but only at
///   an absolute path without `..`, and an mbox only as a system mailbox
///   directly in `/var/mail`: root never appends to a file of the peer's
///   choosing (`/root/.ssh/authorized_keys` would be one).
/// - Group root (gid 0) or another group that amounts to root (disk,
///   shadow, sudo, docker, …) is refused for every uid: it would hand a
///   user (perhaps the daemon's own) what those groups may do.
pub fn admit(job: &LocalJob) -> Result<(), Outcome> {
    let refuse = |why: &str| Err(Outcome::PermFail(format!("not delivering as root: {why}")));
    if job.uid != 0 {
        if job.gid == 0 || privileged_group(job.gid) {
            return Err(Outcome::PermFail(format!(
                "not delivering as uid {} with the privileged group {}",
                job.uid, job.gid
            )));
        }
        return Ok(());
    }
    match &job.method {
        JobMethod::Command { .. } => refuse("MDA commands never run as root"),
        JobMethod::Maildir { path, .. } if !plain_absolute(path) => {
            refuse("maildir path must be absolute, without \"..\"")
        }
        JobMethod::Mbox { path }
            if !plain_absolute(path) || path.parent() != Some(Path::new("/var/mail")) =>
        {
            refuse("an mbox for root must be in /var/mail")
        }
        JobMethod::Maildir { .. } | JobMethod::Mbox { .. } => Ok(()),
    }
}

/// Groups that amount to root on most systems (raw disks, password
/// hashes, sudo, container daemons): no delivery ever runs with them,
/// whatever a userbase table says.
fn privileged_group(gid: u32) -> bool {
    const NAMES: &[&str] = &[
        "shadow",
        "disk",
        "sudo",
        "wheel",
        "adm",
        "docker",
        "kmem",
        "lxd",
        "systemd-journal",
    ];
    // Looked up once: the group file is read per name, and this runs for
    // every delivery.
    static GIDS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    GIDS.get_or_init(|| {
        NAMES
            .iter()
            .filter_map(|name| nix::unistd::Group::from_name(name).ok().flatten())
            .map(|g| g.gid.as_raw())
            .collect()
    })
    .contains(&gid)
}

fn plain_absolute(path: &Path) -> bool {
    path.is_absolute() && !path.components().any(|c| c == Component::ParentDir)
}

/// Serves requests until the peer closes the socket (`true`) or sends
/// something that is not a request (`false`).
pub async fn serve(stream: UnixStream, max_message: u64) -> bool {
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel::<(u64, Outcome)>(MAX_CONCURRENT);
    let writing = tokio::spawn(write_replies(writer, rx));
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    // Workers per user stay alive between jobs: no process per delivery.
    let runner = Arc::new(mda::LocalRunner::new());
    let clean = loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break false;
        };
        let request = match wire::read_request(&mut reader, max_message).await {
            Ok(Some(r)) => r,
            Ok(None) => break true,
            Err(e) => {
                warn!("privsep: broken request from the daemon: {e}");
                break false;
            }
        };
        let tx = tx.clone();
        let runner = runner.clone();
        tokio::spawn(async move {
            let outcome = match request.job {
                Err(why) => Outcome::PermFail(why),
                Ok((job, content)) => match admit(&job) {
                    Err(refused) => {
                        warn!(
                            "privsep: refused a job for uid {}: {}",
                            job.uid,
                            refused.detail()
                        );
                        refused
                    }
                    Ok(()) => runner.run(job, Arc::new(content)).await,
                },
            };
            let _ = tx.send((request.id, outcome)).await;
            drop(permit);
        });
    };
    drop(tx);
    let _ = writing.await;
    clean
}

async fn write_replies<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<(u64, Outcome)>) {
    while let Some((id, outcome)) = rx.recv().await {
        if let Err(e) = wire::write_reply(&mut w, id, &outcome).await {
            warn!("privsep: cannot answer the daemon: {e}");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(uid: u32, method: JobMethod) -> LocalJob {
        LocalJob {
            method,
            uid,
            gid: uid,
            sender: None,
        }
    }

    fn maildir(p: &str) -> JobMethod {
        JobMethod::Maildir {
            path: p.into(),
            junk: false,
        }
    }

    fn mbox(p: &str) -> JobMethod {
        JobMethod::Mbox { path: p.into() }
    }

    #[test]
    fn privileged_groups_are_refused_for_everyone() {
        let Ok(Some(disk)) = nix::unistd::Group::from_name("disk") else {
            return;
        };
        let mut j = job(65534, maildir("/var/mail/x"));
        assert!(admit(&j).is_ok());
        j.gid = disk.gid.as_raw();
        assert!(admit(&j).is_err());
    }

    #[test]
    fn root_policy() {
        let cmd = JobMethod::Command {
            argv: vec!["/bin/sh".into()],
            env: vec![],
            cwd: None,
        };
        assert!(admit(&job(1000, cmd.clone())).is_ok());
        assert!(matches!(admit(&job(0, cmd)), Err(Outcome::PermFail(_))));
        assert!(admit(&job(0, maildir("/srv/mail/root/Maildir"))).is_ok());
        assert!(admit(&job(0, maildir("rel/Maildir"))).is_err());
        assert!(admit(&job(0, maildir("/srv/../etc/Maildir"))).is_err());
        assert!(admit(&job(0, mbox("/var/mail/root"))).is_ok());
        assert!(admit(&job(0, mbox("/root/.ssh/authorized_keys"))).is_err());
        assert!(admit(&job(0, mbox("/var/mail/../../etc/passwd"))).is_err());
        assert!(admit(&job(1000, mbox("/home/u/mbox"))).is_ok());
        let mut sneaky = job(1000, mbox("/home/u/mbox"));
        sneaky.gid = 0;
        assert!(admit(&sneaky).is_err());
    }
}
