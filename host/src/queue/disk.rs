//! Small filesystem helpers over cap-std directories: the file names used
//! in the spool, durable writes and directory fsync.

use std::io::{self, Write};
use std::os::fd::AsRawFd;

use cap_std::fs::{Dir, DirBuilder, File, OpenOptions};

use crate::envelope::MsgId;

/// Suffix of a message's current envelope set (`<msgid>.env`).
pub(crate) const ENV_SUFFIX: &str = ".env";
/// Suffix of a file being written before its rename into place.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// The committed bundle of a message: `queue/<msgid>`.
pub(crate) fn bundle_name(msgid: MsgId) -> String {
    msgid.to_string()
}

/// The envelope set that overrides the bundle's: `queue/<msgid>.env`.
pub(crate) fn env_name(msgid: MsgId) -> String {
    format!("{msgid}{ENV_SUFFIX}")
}

/// A fresh temporary name for an update of `<msgid>.env`; random so a
/// leftover from a crash never collides with a new update.
pub(crate) fn tmp_name(msgid: MsgId) -> String {
    format!(
        "{msgid}{ENV_SUFFIX}.{:08x}{TMP_SUFFIX}",
        rand::random::<u32>()
    )
}

/// Logical name bound into the encrypted content blob.
pub(crate) fn content_aad_name(msgid: MsgId) -> String {
    format!("message:{msgid}")
}

/// Logical name bound into an encrypted envelope set (bundle or `.env`).
pub(crate) fn envelopes_aad_name(msgid: MsgId) -> String {
    format!("envelopes:{msgid}")
}

/// fsync a directory so the entries created, renamed or removed in it are
/// durable. cap-std holds directories as `O_PATH` descriptors, which
/// fsync(2) rejects (EBADF), so open the directory itself for reading.
pub(crate) fn fsync_dir(dir: &Dir) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    let f = dir.open_with(".", &opts)?;
    nix::unistd::fsync(f.as_raw_fd()).map_err(io::Error::from)
}

/// Creates a directory only the daemon's user can enter (mail is private).
pub(crate) fn create_private_dir(parent: &Dir, name: &str) -> io::Result<()> {
    use cap_std::fs::DirBuilderExt;
    let mut b = DirBuilder::new();
    b.mode(0o700);
    parent.create_dir_with(name, &b)
}

/// Creates `name`, which must not exist (`AlreadyExists` otherwise).
pub(crate) fn create_new(dir: &Dir, name: &str) -> io::Result<File> {
    use cap_std::fs::OpenOptionsExt;
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true).mode(0o600);
    dir.open_with(name, &opts)
}

/// Writes all of `data` to a new file and fsyncs it.
pub(crate) fn write_synced(mut f: File, data: &[u8]) -> io::Result<()> {
    f.write_all(data)?;
    f.sync_all()
}

/// Creates `name` (which must not exist), writes `data` and fsyncs it.
pub(crate) fn write_new_synced(dir: &Dir, name: &str, data: &[u8]) -> io::Result<()> {
    write_synced(create_new(dir, name)?, data)
}

/// Deletes a file; a file already gone is not an error.
pub(crate) fn remove_if_present(dir: &Dir, name: &str) -> io::Result<()> {
    match dir.remove_file(name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
