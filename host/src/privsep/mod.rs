//! Privilege separation, after OpenSMTPD's.
//!
//! Started as root, `wasmtpd` keeps root only where it needs it:
//!
//! 1. `main`, before any thread or runtime exists, loads the config and
//!    the tables, binds every listening socket, prepares the spool
//!    ([`prepare_spool`]: owned by the unprivileged user, mode 0700) and
//!    calls [`split`], which forks, the two processes joined by a
//!    `socketpair(2)`.
//! 2. The child enters the spool, drops to the unprivileged user for good
//!    ([`unprivileged_user`]: `_wasmtpd`, else `wasmtpd`, else `nobody`
//!    with a warning; `setgroups`, `setresgid`, `setresuid`, then a check
//!    that root cannot be regained) and runs the daemon as always: SMTP
//!    sessions, queue, scheduler, LMTP, bounces. It opens the spool as
//!    `.`, so the spool's parent folders need not be searchable by that
//!    user. It dies with the broker (`PR_SET_PDEATHSIG`), so a killed
//!    broker never leaves a daemon behind holding the ports.
//! 3. The parent stays root as the delivery broker: it reads local
//!    delivery jobs ([`crate::mda::LocalJob`] plus the message; format in
//!    `wire`) from the socket, runs each with a [`crate::mda::LocalRunner`]
//!    — which hands it to a pooled `wasmtpd mda-worker` running as the
//!    job's uid/gid, so mailboxes are written, and commands run, with the
//!    recipient's rights — and answers with the
//!    [`crate::mda::Outcome`]. Jobs run concurrently (at most 64 at once),
//!    replies carry the request's id. SIGTERM and SIGINT are passed on to
//!    the daemon; when the daemon exits, the broker exits with its status.
//!
//! The daemon talks to the network, so the broker trusts nothing it
//! sends: lengths are checked before anything is allocated, bad JSON is
//! a failed job, and [`broker::admit`] decides what may run as root.
//! Delivering for a non-root uid needs no check beyond refusing group
//! root with it: the job runs with that user's rights only. For uid 0, a command is refused (as OpenSMTPD
//! refuses it: alias root's mail to a person); a maildir is allowed at an
//! absolute path without `..` (the embedded default delivers to whoever
//! runs it, root included), an mbox only directly in `/var/mail`. What a
//! compromised daemon can still do as root is create maildir folders and
//! new, uniquely named message files where it likes.
//!
//! Not started as root, none of this happens: no fork, deliveries in
//! process with our own rights ([`JobRunner::InProcess`]).

mod broker;
mod client;
mod split;
mod spool;
mod user;
mod wire;

use std::path::PathBuf;

pub use broker::admit;
pub use client::{BrokerClient, JobRunner};
pub use split::{split, Broker, Role};
pub use spool::prepare_spool;
pub use user::{drop_to, unprivileged_user};

#[derive(Debug, thiserror::Error)]
pub enum PrivsepError {
    #[error("no unprivileged user to run as: create _wasmtpd (or wasmtpd)")]
    NoUser,
    #[error("user {0} has uid or gid 0: it cannot be the unprivileged user")]
    RootUser(String),
    #[error("cannot drop privileges: {0}: {1}")]
    Drop(&'static str, nix::Error),
    #[error("privileges were not dropped: root can still be regained")]
    StillPrivileged,
    #[error("cannot {what} the spool {}: {source}", path.display())]
    Spool {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot fork with {0} threads running (internal error)")]
    Threads(usize),
    #[error("cannot create the broker socket: {0}")]
    Socket(std::io::Error),
    #[error("cannot fork: {0}")]
    Fork(nix::Error),
    #[error("cannot tie the daemon to its broker: {0}")]
    Pdeathsig(nix::Error),
    #[error("the delivery broker exited during startup")]
    Orphaned,
}
