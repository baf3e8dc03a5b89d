//! mbox delivery (mboxrd flavour): append a `From ` separator line and the
//! message, quoting body lines that could be mistaken for a separator.
//!
//! A failed write is rolled back by truncating to the original length, so
//! a full disk never leaves half a message in someone's mailbox.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Local};

use super::{lock, MdaError};
use crate::mailaddr::MailAddr;

/// How long to wait for another program to release the mailbox.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Appends `content` to the mbox at `path` (created 0600 if missing).
pub fn deliver_mbox(
    path: &Path,
    sender: Option<&MailAddr>,
    content: &[u8],
    now: SystemTime,
) -> Result<(), MdaError> {
    deliver_mbox_with(path, sender, content, now, LOCK_WAIT)
}

pub(crate) fn deliver_mbox_with(
    path: &Path,
    sender: Option<&MailAddr>,
    content: &[u8],
    now: SystemTime,
    lock_wait: Duration,
) -> Result<(), MdaError> {
    // Refuse before open(2): opening a FIFO for writing would block.
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(MdaError::NotAFile(path.to_path_buf())),
        _ => {}
    }
    let mut data = from_line(sender, now).into_bytes();
    data.extend_from_slice(&mboxrd_body(content));

    let deadline = Instant::now() + lock_wait;
    let _dotlock = lock::dotlock(path, deadline)?;
    // Never through a symlink, never into a file with other names or
    // another owner (mail.local's rules): whoever can write the spool
    // directory must not be able to aim a delivery at another file.
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| MdaError::io(format!("open {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| MdaError::io(format!("stat {}", path.display()), e))?;
    if !meta.is_file() || meta.nlink() != 1 || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(MdaError::NotAFile(path.to_path_buf()));
    }
    lock::write_lock(&file, path, deadline)?;
    let original_len = meta.len();

    let written = file.write_all(&data).and_then(|()| file.sync_data());
    if let Err(e) = written {
        if let Err(te) = file.set_len(original_len).and_then(|()| file.sync_data()) {
            tracing::error!(path = %path.display(), error = %te, "could not roll back partial mbox delivery");
        }
        return Err(MdaError::io(format!("write {}", path.display()), e));
    }
    tracing::debug!(path = %path.display(), bytes = data.len(), "mbox delivery");
    Ok(())
}

/// `From sender Wed Nov 25 15:01:09 2026` in local time, like ctime(3).
fn from_line(sender: Option<&MailAddr>, now: SystemTime) -> String {
    let who = match sender {
        // A space inside a quoted local part would end the field early
        // for every mbox parser.
        Some(a) => a
            .to_string()
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect(),
        None => "MAILER-DAEMON".to_string(),
    };
    let date: DateTime<Local> = now.into();
    format!("From {} {}\n", who, date.format("%a %b %e %H:%M:%S %Y"))
}

/// CRLF → LF, `>`-quoting of `>*From ` lines, a final newline and the
/// blank line that separates messages.
fn mboxrd_body(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 50 + 2);
    let mut rest = content;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let unquoted = &line[line.iter().take_while(|&&b| b == b'>').count()..];
        if unquoted.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn addr() -> MailAddr {
        MailAddr::new("joe", "example.org")
    }

    #[test]
    fn from_line_format() {
        let l = from_line(Some(&addr()), SystemTime::now());
        assert!(l.starts_with("From joe@example.org "), "{l}");
        assert!(l.ends_with('\n'));
        // "Www Mmm dd hh:mm:ss yyyy": 24 characters like asctime(3)
        assert_eq!(
            l.trim_end().len(),
            "From joe@example.org ".len() + 24,
            "{l}"
        );
        assert!(from_line(None, SystemTime::now()).starts_with("From MAILER-DAEMON "));
    }

    #[test]
    fn quoting_and_line_endings() {
        let body = mboxrd_body(b"Subject: x\r\n\r\nFrom here\r\n>From there\r\nFromage\r\nlast");
        assert_eq!(
            body,
            b"Subject: x\n\n>From here\n>>From there\nFromage\nlast\n\n".to_vec()
        );
    }

    #[test]
    fn two_deliveries_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("joe");
        deliver_mbox(
            &path,
            Some(&addr()),
            b"Subject: 1\r\n\r\none\r\n",
            SystemTime::now(),
        )
        .unwrap();
        deliver_mbox(
            &path,
            None,
            b"Subject: 2\r\n\r\nFrom two\r\n",
            SystemTime::now(),
        )
        .unwrap();
        let text = String::from_utf8(fs::read(&path).unwrap()).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert!(lines[0].starts_with("From joe@example.org "));
        assert_eq!(&lines[1..5], ["Subject: 1", "", "one", ""]);
        assert!(lines[5].starts_with("From MAILER-DAEMON "));
        assert_eq!(&lines[6..], ["Subject: 2", "", ">From two", "", ""]);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!dir.path().join("joe.lock").exists());
    }

    #[test]
    fn waits_for_dotlock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("joe");
        let lockfile = dir.path().join("joe.lock");
        fs::write(&lockfile, b"other").unwrap();
        let l2 = lockfile.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            fs::remove_file(l2).unwrap();
        });
        let start = Instant::now();
        deliver_mbox(&path, None, b"x\n", SystemTime::now()).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(350));
        t.join().unwrap();
        assert!(fs::read_to_string(&path).unwrap().ends_with("x\n\n"));
    }

    #[test]
    fn waits_for_fcntl_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("joe");
        fs::write(&path, b"").unwrap();
        // Another open file description behaves like another process.
        let holder = fs::OpenOptions::new().write(true).open(&path).unwrap();
        lock::test_write_lock(&holder).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            drop(holder);
        });
        let start = Instant::now();
        deliver_mbox(&path, None, b"x\n", SystemTime::now()).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(350));
        t.join().unwrap();
    }

    #[test]
    fn lock_timeout_is_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("joe");
        fs::write(dir.path().join("joe.lock"), b"").unwrap();
        let err = deliver_mbox_with(
            &path,
            None,
            b"x",
            SystemTime::now(),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, MdaError::LockTimeout(_)));
        assert!(err.is_temporary());
    }

    #[test]
    fn stale_dotlock_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("joe");
        let lockfile = dir.path().join("joe.lock");
        let f = fs::File::create(&lockfile).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(600))
            .unwrap();
        deliver_mbox_with(
            &path,
            None,
            b"x",
            SystemTime::now(),
            Duration::from_millis(200),
        )
        .unwrap();
    }

    const ROLLBACK_ENV: &str = "WASMTPD_MBOX_ROLLBACK_CHILD";

    /// Not a real test: runs in a child process (see below) with a file
    /// size limit, so the delivery fails half-way with EFBIG.
    #[test]
    fn rollback_child() {
        let Some(path) = std::env::var_os(ROLLBACK_ENV) else {
            return;
        };
        let len = fs::metadata(&path).unwrap().len();
        let limit = libc::rlimit {
            rlim_cur: len + 1000,
            rlim_max: len + 1000,
        };
        // SAFETY: plain syscalls in a process that exits right after.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        }
        let big = vec![b'x'; 100_000];
        let r = deliver_mbox(Path::new(&path), None, &big, SystemTime::now());
        std::process::exit(match r {
            Err(e) if e.is_temporary() => 0,
            _ => 1,
        });
    }

    #[test]
    fn failed_write_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("joe");
        deliver_mbox(&path, None, b"Subject: first\n\nkept\n", SystemTime::now()).unwrap();
        let before = fs::read(&path).unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "mda::mbox::tests::rollback_child",
                "--test-threads=1",
            ])
            .env(ROLLBACK_ENV, &path)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "delivery should fail temporarily");
        assert_eq!(fs::read(&path).unwrap(), before);
        assert!(!dir.path().join("joe.lock").exists());
    }

    #[test]
    fn directory_is_not_a_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        let err = deliver_mbox(dir.path(), None, b"x", SystemTime::now()).unwrap_err();
        assert!(!err.is_temporary());
    }
}
