//! Maildir delivery (https://cr.yp.to/proto/maildir.html), with the
//! Maildir++ `.Junk` sub-folder for messages a filter marked as junk.
//!
//! The message is written to `tmp/`, fsynced, then linked into `new/` and
//! `new/` itself fsynced (shared with concurrent deliveries, see
//! `dirsync`): a crash at any point leaves either no message or a complete
//! one, never a partial file a mail reader could see.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::dirsync::DirSyncer;
use super::MdaError;

/// Per-process delivery counter: together with the time and pid it makes
/// names unique even for concurrent deliveries within one microsecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Delivers `content` into `maildir` (or its `.Junk` folder when `junk`)
/// and returns the path of the new file in `new/`.
pub fn deliver_maildir(maildir: &Path, junk: bool, content: &[u8]) -> Result<PathBuf, MdaError> {
    deliver_maildir_with(maildir, junk, content, &DirSyncer::new())
}

/// [`deliver_maildir`] sharing the fsync of `new/` with concurrent
/// deliveries through the same `syncer`.
pub fn deliver_maildir_with(
    maildir: &Path,
    junk: bool,
    content: &[u8],
    syncer: &DirSyncer,
) -> Result<PathBuf, MdaError> {
    ensure_maildir(maildir)?;
    let folder = if junk {
        let folder = maildir.join(".Junk");
        ensure_maildir(&folder)?;
        mark_subfolder(&folder)?;
        folder
    } else {
        maildir.to_path_buf()
    };

    let name = unique_name();
    let new_dir = folder.join("new");
    let new = new_dir.join(&name);
    // `tmp/` and `new/` are opened through the folder as a capability
    // (cap-std refuses any symlink that leads out of it) and the file is
    // made inside them by name: a delivery (possibly as root, for root's
    // own maildir) can never be steered into another directory by whoever
    // can write the maildir.
    let open_sub = |sub: &str| {
        let folder_dir = cap_std::fs::Dir::open_ambient_dir(&folder, cap_std::ambient_authority())
            .map_err(|e| MdaError::io(format!("{}", folder.display()), e))?;
        folder_dir
            .open_dir(sub)
            .map_err(|e| MdaError::io(format!("{}/{sub}", folder.display()), e))
    };
    let (tmp_dir, new_fd) = (open_sub("tmp")?, open_sub("new")?);
    if let Err(e) = write_synced(&tmp_dir, &name, content) {
        let _ = tmp_dir.remove_file(&name);
        return Err(e);
    }
    if let Err(e) = publish(&tmp_dir, &new_fd, &name) {
        let _ = tmp_dir.remove_file(&name);
        return Err(MdaError::io(format!("link to {}", new.display()), e));
    }
    syncer
        .sync(&new_dir)
        .map_err(|e| MdaError::io(format!("fsync {}", new_dir.display()), e))?;
    tracing::debug!(path = %new.display(), "maildir delivery");
    Ok(new)
}

/// Creates `dir` and its `tmp`, `new`, `cur` sub-directories (mode 0700)
/// if missing; a regular file in the way is a permanent error.
fn ensure_maildir(dir: &Path) -> Result<(), MdaError> {
    let mut builder = DirBuilder::new();
    builder.recursive(true).mode(0o700);
    // The deepest folder that already exists: everything below it that we
    // create must be made durable too, or a first delivery could vanish
    // with its new folders in a crash after the queue forgot it.
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    let mut created = false;
    for sub in ["", "tmp", "new", "cur"] {
        let path = if sub.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(sub)
        };
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => return Err(MdaError::NotADirectory(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(MdaError::io(format!("{}", path.display()), e)),
        }
        builder.create(&path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTDIR) | Some(libc::EEXIST) => MdaError::NotADirectory(path.clone()),
            _ => MdaError::io(format!("mkdir {}", path.display()), e),
        })?;
        created = true;
    }
    if created {
        let mut d = dir;
        loop {
            fs::File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(|e| MdaError::io(format!("fsync {}", d.display()), e))?;
            if d == existing {
                break;
            }
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
    }
    Ok(())
}

/// Maildir++ readers (Courier, Dovecot) recognise a sub-folder by an
/// empty `maildirfolder` file.
fn mark_subfolder(folder: &Path) -> Result<(), MdaError> {
    let marker = folder.join("maildirfolder");
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&marker)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(MdaError::io(format!("create {}", marker.display()), e)),
    }
}

fn write_synced(dir: &cap_std::fs::Dir, name: &str, content: &[u8]) -> Result<(), MdaError> {
    use cap_std::fs::OpenOptionsExt as _;
    let ctx = || format!("tmp/{name}");
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.write(true).create_new(true).mode(0o600);
    let mut f = dir
        .open_with(name, &opts)
        .map_err(|e| MdaError::io(format!("create {}", ctx()), e))?;
    f.write_all(content)
        .map_err(|e| MdaError::io(format!("write {}", ctx()), e))?;
    f.sync_all()
        .map_err(|e| MdaError::io(format!("fsync {}", ctx()), e))
}

/// Moves the finished file from `tmp/` into `new/`. A hard link never
/// replaces an existing file; file systems without hard links get a
/// rename instead.
fn publish(tmp: &cap_std::fs::Dir, new: &cap_std::fs::Dir, name: &str) -> io::Result<()> {
    match tmp.hard_link(name, new, name) {
        Ok(()) => {
            let _ = tmp.remove_file(name);
            Ok(())
        }
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::ENOTSUP | libc::EXDEV)
            ) =>
        {
            tmp.rename(name, new, name)
        }
        Err(e) => Err(e),
    }
}

/// `{secs}.M{usecs}P{pid}Q{counter}.{hostname}` as the maildir spec
/// recommends.
fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        escaped_hostname()
    )
}

/// The spec escapes `/` and `:` (the latter separates flags in `cur/`).
fn escaped_hostname() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string());
    escape_host(&host)
}

fn escape_host(host: &str) -> String {
    host.replace('/', "\\057").replace(':', "\\072")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_folders_and_delivers_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        let msg = b"Subject: hi\r\n\r\nbody\r\n.\r\nFrom x\r\n";
        let path = deliver_maildir(&md, false, msg).unwrap();
        for sub in ["tmp", "new", "cur"] {
            let m = fs::metadata(md.join(sub)).unwrap();
            assert!(m.is_dir());
            assert_eq!(m.permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(path.parent().unwrap(), md.join("new"));
        assert_eq!(fs::read(&path).unwrap(), msg);
        assert_eq!(fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn junk_goes_to_junk_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = deliver_maildir(dir.path(), true, b"spam").unwrap();
        assert_eq!(path.parent().unwrap(), dir.path().join(".Junk/new"));
        assert!(dir.path().join("new").is_dir());
        assert!(dir.path().join(".Junk/maildirfolder").is_file());
        assert_eq!(fs::read(path).unwrap(), b"spam");
    }

    #[test]
    fn unique_names_under_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().to_path_buf();
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let md = md.clone();
                std::thread::spawn(move || {
                    deliver_maildir(&md, false, format!("m{i}").as_bytes()).unwrap()
                })
            })
            .collect();
        let mut names: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 100);
        assert_eq!(fs::read_dir(md.join("new")).unwrap().count(), 100);
    }

    #[test]
    fn name_format_and_escaping() {
        let name = unique_name();
        let (time, rest) = name.split_once('.').unwrap();
        assert!(time.bytes().all(|b| b.is_ascii_digit()));
        assert!(rest.starts_with('M') && rest.contains('P') && rest.contains('Q'));
        assert_eq!(escape_host("a/b:c"), "a\\057b\\072c");
    }

    #[test]
    fn symlinked_tmp_or_new_cannot_redirect_the_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let md = dir.path().join("Maildir");
        fs::create_dir(&md).unwrap();
        fs::create_dir(md.join("cur")).unwrap();
        std::os::unix::fs::symlink(&outside, md.join("tmp")).unwrap();
        std::os::unix::fs::symlink(&outside, md.join("new")).unwrap();
        assert!(deliver_maildir(&md, false, b"* * * * * root evil").is_err());
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "wrote through a symlink"
        );
    }

    #[test]
    fn regular_file_in_the_way_is_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        fs::write(&md, b"oops").unwrap();
        let err = deliver_maildir(&md, false, b"x").unwrap_err();
        assert!(matches!(err, MdaError::NotADirectory(_)), "{err:?}");
        assert!(!err.is_temporary());
    }
}
