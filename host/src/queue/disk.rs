//! Small filesystem helpers over cap-std directories: file names used in
//! the spool, durable writes and directory fsync.

use std::io::{self, Write};
use std::os::fd::AsRawFd;

use cap_std::fs::{Dir, DirBuilder, File, OpenOptions};

use crate::envelope::{EvpId, MsgId};

/// Name of the content file inside a message directory.
pub(crate) const MESSAGE: &str = "message";
/// Suffix of a file being written before its rename into place.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Logical name bound into an encrypted message file.
pub(crate) fn message_aad_name(msgid: MsgId) -> String {
    format!("message:{msgid}")
}

/// Logical name bound into an encrypted envelope file.
pub(crate) fn envelope_aad_name(id: EvpId) -> String {
    format!("envelope:{id}")
}

/// A fresh temporary name for an update of envelope `id`; random so two
/// concurrent updates never write the same temporary file.
pub(crate) fn tmp_name(id: EvpId) -> String {
    format!("{id}.{:08x}{TMP_SUFFIX}", rand::random::<u32>())
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

/// Creates `name` (which must not exist) and writes `data` to it, without
/// syncing: the caller fsyncs, possibly after writing other files, so the
/// kernel can start writeback of all of them together.
pub(crate) fn write_new(dir: &Dir, name: &str, data: &[u8]) -> io::Result<File> {
    use cap_std::fs::OpenOptionsExt;
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true).mode(0o600);
    let mut f = dir.open_with(name, &opts)?;
    f.write_all(data)?;
    Ok(f)
}

/// Whether a directory entry name is an envelope file (16 hex digits).
pub(crate) fn parse_envelope_name(name: &str) -> Option<EvpId> {
    EvpId::parse(name)
}
