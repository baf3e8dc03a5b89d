//! Where the control socket lives, and binding it safely.
//!
//! A daemon on the system spool (`/var/spool/wasmtpd`) uses
//! `/run/wasmtpd.sock`, as OpenSMTPD uses `/var/run/smtpd.sock`; any
//! other spool gets `run/wasmtpd.sock` beside it, so the embedded
//! default (spool `./var/spool`) answers on `./var/run/wasmtpd.sock` and
//! two daemons on two spools never share a socket. Clients look for
//! `$WASMTPD_CONTROL`, then `./var/run/wasmtpd.sock`, then the system one.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The system daemon's socket.
pub const SYSTEM_PATH: &str = "/run/wasmtpd.sock";

/// The socket of a daemon run from the working directory.
pub const LOCAL_PATH: &str = "var/run/wasmtpd.sock";

/// Overrides the clients' search.
pub const ENV: &str = "WASMTPD_CONTROL";

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("control socket {}: another wasmtpd is running there", .0.display())]
    InUse(PathBuf),
    #[error("control socket {}: cannot {what}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// The system daemon's spool.
pub const SYSTEM_SPOOL: &str = "/var/spool/wasmtpd";

/// The daemon's default socket for `spool`.
pub fn daemon_default(spool: &Path) -> PathBuf {
    if spool == Path::new(SYSTEM_SPOOL) {
        return PathBuf::from(SYSTEM_PATH);
    }
    spool
        .parent()
        .unwrap_or(Path::new("."))
        .join("run/wasmtpd.sock")
}

/// The path a client uses when not told: `$WASMTPD_CONTROL`, else the
/// local daemon's socket if there is a trustworthy one here, else the
/// system's.
pub fn client_default() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if trusted(Path::new("."), Path::new(LOCAL_PATH)) {
        return PathBuf::from(LOCAL_PATH);
    }
    PathBuf::from(SYSTEM_PATH)
}

/// Whether the socket at `base/rel` may be ours: it and the folders of
/// `rel` above it belong to root or to us and nobody else may write
/// those folders. Otherwise `cd /tmp && sendmail` could hand the mail to
/// whoever made `/tmp/var/run/wasmtpd.sock`.
fn trusted(base: &Path, rel: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::Uid::effective().as_raw();
    let owned = |m: &std::fs::Metadata| m.uid() == 0 || m.uid() == me;
    let Ok(meta) = std::fs::symlink_metadata(base.join(rel)) else {
        return false;
    };
    if !owned(&meta) {
        return false;
    }
    rel.ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
        .all(|d| match std::fs::symlink_metadata(base.join(d)) {
            Ok(m) => m.is_dir() && owned(&m) && m.mode() & 0o022 == 0,
            Err(_) => false,
        })
}

/// Binds the socket, open to every local user (mode 0666: the verbs
/// decide, see [`super::peer`]). A socket left by a daemon that died is
/// replaced; one a live daemon answers on is not.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let err = |what, source| SocketError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err("create its folder", e))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(err(
                    "replace it",
                    io::Error::new(io::ErrorKind::AlreadyExists, "not a socket"),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(|e| err("remove the stale one", e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("inspect it", e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| err("bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| err("set its mode", e))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_spool_has_its_socket() {
        assert_eq!(
            daemon_default(Path::new("/var/spool/wasmtpd")),
            Path::new("/run/wasmtpd.sock")
        );
        assert_eq!(
            daemon_default(Path::new("/home/me/var/spool")),
            Path::new("/home/me/var/run/wasmtpd.sock")
        );
    }

    #[test]
    fn a_socket_in_a_folder_others_may_write_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let rel = Path::new(LOCAL_PATH);
        let _l = bind(&dir.path().join(rel)).unwrap();
        assert!(trusted(dir.path(), rel));
        std::fs::set_permissions(
            dir.path().join("var"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        assert!(!trusted(dir.path(), rel));
        assert!(!trusted(dir.path(), Path::new("var/run/none.sock")));
    }

    #[test]
    fn a_stale_socket_is_replaced_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/ctl.sock");
        let first = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        assert!(matches!(bind(&path), Err(SocketError::InUse(_))));
        drop(first);
        let _second = bind(&path).unwrap();

        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(bind(&file), Err(SocketError::Io { .. })));
    }
}
