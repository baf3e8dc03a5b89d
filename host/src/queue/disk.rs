//! Small filesystem helpers over cap-std directories: the file names used
//! in the spool and which shard of `queue/` they live in, durable writes
//! and directory fsync.

use std::io::{self, Write};
use std::os::fd::AsRawFd;

use cap_std::fs::{Dir, DirBuilder, File, OpenOptions};

use crate::envelope::MsgId;

/// Suffix of a message's current envelope set (`<msgid>.env`).
pub(crate) const ENV_SUFFIX: &str = ".env";
/// Suffix of a file being written before its rename into place.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// How many shard directories `queue/` is split into (a power of two
/// between 2 and 256; see the module doc for why).
pub(crate) const SHARDS: usize = 16;
const SHARD_SHIFT: u32 = 32 - SHARDS.trailing_zeros();
const _: () = assert!(SHARDS.is_power_of_two() && SHARDS >= 2 && SHARDS <= 256);

/// The shard holding a message's files: the top bits of its (random) id,
/// so shard `0a` holds the messages whose id starts with `a` (16 shards).
pub(crate) fn shard_of(msgid: MsgId) -> usize {
    (msgid.0 >> SHARD_SHIFT) as usize
}

/// A shard's directory name under `queue/`: two hex digits.
pub(crate) fn shard_name(shard: usize) -> String {
    format!("{shard:02x}")
}

/// The shard a directory name under `queue/` stands for, if any, even for
/// another shard count (two lowercase hex digits); `None` otherwise.
pub(crate) fn parse_shard_name(name: &str) -> Option<usize> {
    if name.len() != 2 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    usize::from_str_radix(name, 16).ok()
}

/// A file of a message as shown in errors and reports (relative to the
/// spool): `queue/<shard>/<name>`.
pub(crate) fn shown_path(msgid: MsgId, name: &str) -> String {
    format!("queue/{}/{name}", shard_name(shard_of(msgid)))
}

/// The committed bundle of a message: `<msgid>` in its shard.
pub(crate) fn bundle_name(msgid: MsgId) -> String {
    msgid.to_string()
}

/// The envelope set that overrides the bundle's: `<msgid>.env`.
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

/// Marks `dir` as the top of a directory hierarchy (`chattr +T`,
/// `FS_TOPDIR_FL`) so ext4's Orlov allocator spreads the directories made
/// in it over the block groups, and with them the inodes of their files.
/// Filesystems without the flag refuse it; that only costs speed.
pub(crate) fn spread_subdirs(dir: &Dir) -> io::Result<()> {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    let mut opts = OpenOptions::new();
    opts.read(true);
    let f = dir.open_with(".", &opts)?;
    let flags = ioctl_getflags(&f)?;
    if !flags.contains(IFlags::TOPDIR) {
        ioctl_setflags(&f, flags | IFlags::TOPDIR)?;
    }
    Ok(())
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
