//! The spool belongs to the unprivileged user: only the daemon reads and
//! writes the queue, and it does so without root.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{self, User};

use super::PrivsepError;

/// Creates `spool` if needed and hands it, mode 0700, with its queue
/// folders and their files, to `user`: a spool left by a run that kept
/// root (older versions) becomes usable. Symbolic links are never
/// followed, so nothing outside the spool changes owner.
pub fn prepare_spool(spool: &Path, user: &User) -> Result<(), PrivsepError> {
    let io = |what: &'static str| {
        move |source: std::io::Error| PrivsepError::Spool {
            what,
            path: spool.to_path_buf(),
            source,
        }
    };
    // Parents get the usual mode, only the spool itself is private.
    if let Some(parent) = spool.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("create"))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(spool) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io("create")(e)),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(spool).map_err(io("inspect"))?;
    if !meta.is_dir() {
        return Err(io("use")(std::io::Error::other("not a directory")));
    }
    unistd::chown(spool, Some(user.uid), Some(user.gid))
        .map_err(|e| io("chown")(std::io::Error::from(e)))?;
    std::fs::set_permissions(spool, std::fs::Permissions::from_mode(0o700)).map_err(io("chmod"))?;
    let give = |path: &Path| {
        std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
    };
    for sub in ["queue", "corrupt"] {
        let dir = spool.join(sub);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            _ => continue,
        }
        give(&dir).map_err(io("chown"))?;
        for entry in std::fs::read_dir(&dir).map_err(io("read"))? {
            let entry = entry.map_err(io("read"))?;
            give(&entry.path()).map_err(io("chown"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn spool_is_private_to_the_user() {
        if !unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to change owners");
            return;
        }
        let user = super::super::unprivileged_user().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path().join("var/spool");
        std::fs::create_dir_all(spool.join("queue")).unwrap();
        std::fs::write(spool.join("queue/0000beef"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", spool.join("queue/link")).unwrap();
        prepare_spool(&spool, &user).unwrap();
        let m = std::fs::metadata(&spool).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (user.uid.as_raw(), 0o700));
        let f = std::fs::metadata(spool.join("queue/0000beef")).unwrap();
        assert_eq!(f.uid(), user.uid.as_raw());
        // The link changed hands, never what it points to.
        assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), 0);
        let parent = std::fs::metadata(tmp.path().join("var")).unwrap();
        assert_eq!(parent.uid(), 0);
    }
}
