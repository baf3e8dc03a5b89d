//! The fork: one process stays root as the delivery broker, the other
//! becomes the unprivileged daemon.

use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{self, ForkResult, Pid, User};
use tracing::{error, info};

use super::{broker, user, PrivsepError};

/// Which side of the fork we are on.
pub enum Role {
    /// The parent, still root: run [`Broker::run`] and exit with its code.
    Broker(Broker),
    /// The child, now unprivileged, working directory the spool: give the
    /// socket to [`super::BrokerClient::start`] once a runtime runs.
    Daemon(UnixStream),
}

pub struct Broker {
    child: Pid,
    socket: UnixStream,
}

/// Forks into broker and daemon. Must run before any other thread
/// exists: after `fork` only the calling thread survives, and a lock held
/// by a vanished thread would stay held forever in the child.
pub fn split(user: &User, spool: &Path) -> Result<Role, PrivsepError> {
    if let Some(n) = thread_count().filter(|&n| n > 1) {
        return Err(PrivsepError::Threads(n));
    }
    // Both ends close on exec: the broker's mda children never see them.
    let (to_child, to_parent) = UnixStream::pair().map_err(PrivsepError::Socket)?;
    let parent = unistd::getpid();
    // SAFETY: the process is single-threaded (checked above), so the
    // child may do anything the parent could.
    match unsafe { unistd::fork() }.map_err(PrivsepError::Fork)? {
        ForkResult::Parent { child } => {
            drop(to_parent);
            info!(
                "privsep: delivery broker {parent} runs as root, daemon {child} as {}",
                user.name
            );
            Ok(Role::Broker(Broker {
                child,
                socket: to_child,
            }))
        }
        ForkResult::Child => {
            drop(to_child);
            // Entered while root: the spool's parents need not be
            // searchable by the unprivileged user (a spool under /root).
            std::env::set_current_dir(spool).map_err(|source| PrivsepError::Spool {
                what: "enter",
                path: spool.to_path_buf(),
                source,
            })?;
            user::drop_to(user)?;
            // Set after the uid change, which clears it. The daemon must
            // not outlive its broker: a `kill -9` of the broker would
            // otherwise leave it holding the ports with no way to deliver.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(PrivsepError::Pdeathsig)?;
            if unistd::getppid() != parent {
                return Err(PrivsepError::Orphaned);
            }
            Ok(Role::Daemon(to_parent))
        }
    }
}

fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

impl Broker {
    /// Serves deliveries until the daemon exits, forwarding SIGTERM and
    /// SIGINT to it; returns the exit code to leave with (the daemon's).
    pub fn run(self, max_message: u64) -> i32 {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                error!("privsep: cannot start the broker's runtime: {e}");
                let _ = signal::kill(self.child, Signal::SIGTERM);
                return 1;
            }
        };
        runtime.block_on(self.supervise(max_message))
    }

    async fn supervise(self, max_message: u64) -> i32 {
        use tokio::signal::unix::{signal as on, SignalKind};
        let child = self.child;
        let served = self
            .socket
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(self.socket));
        match served {
            // A daemon that cannot deliver must not go on accepting mail
            // for delivery: stop it (and so ourselves) when the
            // connection breaks. A clean end is the daemon exiting.
            Ok(s) => {
                tokio::spawn(async move {
                    if !broker::serve(s, max_message).await {
                        error!("privsep: stopping the daemon");
                        let _ = signal::kill(child, Signal::SIGTERM);
                    }
                });
            }
            Err(e) => {
                error!("privsep: cannot serve the daemon: {e}");
                let _ = signal::kill(child, Signal::SIGTERM);
            }
        }
        let mut exited = tokio::task::spawn_blocking(move || loop {
            match waitpid(child, None) {
                Err(nix::Error::EINTR) => continue,
                other => return other,
            }
        });
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            on(SignalKind::terminate()),
            on(SignalKind::interrupt()),
            on(SignalKind::hangup()),
        ) else {
            error!("privsep: cannot handle signals; stopping the daemon");
            let _ = signal::kill(child, Signal::SIGTERM);
            return status_code(exited.await);
        };
        loop {
            tokio::select! {
                status = &mut exited => return status_code(status),
                _ = term.recv() => { let _ = signal::kill(child, Signal::SIGTERM); }
                _ = int.recv() => { let _ = signal::kill(child, Signal::SIGINT); }
                // Reloading filters is the daemon's business.
                _ = hup.recv() => { let _ = signal::kill(child, Signal::SIGHUP); }
            }
        }
    }
}

fn status_code(status: Result<nix::Result<WaitStatus>, tokio::task::JoinError>) -> i32 {
    match status {
        Ok(Ok(WaitStatus::Exited(_, code))) => code,
        Ok(Ok(WaitStatus::Signaled(_, sig, _))) => {
            error!("privsep: the daemon was killed by {sig}");
            128 + sig as i32
        }
        Ok(Ok(other)) => {
            error!("privsep: unexpected daemon status {other:?}");
            1
        }
        Ok(Err(e)) => {
            error!("privsep: cannot wait for the daemon: {e}");
            1
        }
        Err(e) => {
            error!("privsep: waiting for the daemon failed: {e}");
            1
        }
    }
}
