//! Mailbox locking the way other mbox readers and writers expect it: a
//! `NAME.lock` dot-lock file plus a POSIX write lock on the mailbox.
//!
//! Waits are bounded (polling rather than blocking in `F_SETLKW`) so a
//! stuck mail reader turns into a temporary failure, not a stuck worker.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::MdaError;

/// Dot-locks older than this are considered left behind by a crash.
const STALE_AFTER: Duration = Duration::from_secs(5 * 60);
const POLL: Duration = Duration::from_millis(100);

/// A held dot-lock; removed when dropped.
pub(crate) struct DotLock {
    path: PathBuf,
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Takes `mbox.lock`. Returns `Ok(None)` when the directory does not let
/// us create files: then only the fcntl lock protects the mailbox, as
/// with mail.local on a non-writable spool.
pub(crate) fn dotlock(mbox: &Path, deadline: Instant) -> Result<Option<DotLock>, MdaError> {
    let mut name = mbox.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = writeln!(f, "{}", std::process::id());
                return Ok(Some(DotLock { path }));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if is_stale(&path) {
                    tracing::warn!(lock = %path.display(), "removing stale mailbox lock");
                    let _ = fs::remove_file(&path);
                    continue;
                }
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::EROFS)
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(MdaError::io(format!("create {}", path.display()), e)),
        }
        if Instant::now() >= deadline {
            return Err(MdaError::LockTimeout(mbox.to_path_buf()));
        }
        std::thread::sleep(POLL);
    }
}

fn is_stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_AFTER)
}

/// Takes a write lock on the whole file. Open-file-description locks are
/// used on Linux: they conflict with classic POSIX locks taken by other
/// processes (mutt, dovecot, mail.local) and, unlike those, also between
/// threads of this process. The lock goes away when `file` is closed.
pub(crate) fn write_lock(file: &File, path: &Path, deadline: Instant) -> Result<(), MdaError> {
    loop {
        match try_write_lock(file) {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN | libc::EACCES | libc::EINTR)
                ) => {}
            Err(e) => return Err(MdaError::io(format!("lock {}", path.display()), e)),
        }
        if Instant::now() >= deadline {
            return Err(MdaError::LockTimeout(path.to_path_buf()));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(target_os = "linux")]
const SETLK: libc::c_int = libc::F_OFD_SETLK;
#[cfg(not(target_os = "linux"))]
const SETLK: libc::c_int = libc::F_SETLK;

fn try_write_lock(file: &File) -> io::Result<()> {
    // SAFETY: flock is plain data; zeroed is a valid value (pid must be 0
    // for OFD locks) and the whole-file range is start 0, len 0.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: valid fd owned by `file`, pointer to a live flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), SETLK, &fl) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) fn test_write_lock(file: &File) -> io::Result<()> {
    try_write_lock(file)
}
