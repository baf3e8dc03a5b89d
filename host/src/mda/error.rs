//! The error type shared by the delivery methods, and the one decision
//! that matters about it: is retrying later worth it?

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MdaError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}: exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0}: exists and is not a regular file")]
    NotAFile(PathBuf),
    #[error("{0}: timed out waiting for the mailbox lock")]
    LockTimeout(PathBuf),
    #[error("cannot connect to LMTP server {dest}: {source}")]
    Connect {
        dest: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid LMTP destination {0:?}")]
    BadDestination(String),
    #[error("LMTP server refused the session: {0}")]
    Refused(String),
    #[error("LMTP protocol error: {0}")]
    Protocol(String),
    #[error("timed out {0}")]
    Timeout(String),
    #[error("invalid mda command: {0}")]
    BadCommand(String),
    #[error("invalid envelope address {0:?}")]
    BadAddress(String),
}

impl MdaError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> MdaError {
        MdaError::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether the scheduler should retry. Like OpenSMTPD's mda, I/O
    /// errors default to temporary (a full disk, a quota, a permission
    /// the admin can fix) so that mail is not bounced for a transient
    /// local problem; only errors that no retry can cure are permanent.
    pub fn is_temporary(&self) -> bool {
        match self {
            MdaError::Io { source, .. } => io_is_temporary(source),
            MdaError::LockTimeout(_)
            | MdaError::Connect { .. }
            | MdaError::Refused(_)
            | MdaError::Protocol(_)
            | MdaError::Timeout(_) => true,
            MdaError::NotADirectory(_)
            | MdaError::NotAFile(_)
            | MdaError::BadDestination(_)
            | MdaError::BadCommand(_)
            | MdaError::BadAddress(_) => false,
        }
    }
}

fn io_is_temporary(e: &io::Error) -> bool {
    !matches!(
        e.raw_os_error(),
        Some(libc::ENOTDIR | libc::EISDIR | libc::ENAMETOOLONG | libc::ELOOP | libc::EINVAL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors() {
        let full = MdaError::io("write", io::Error::from_raw_os_error(libc::ENOSPC));
        let quota = MdaError::io("write", io::Error::from_raw_os_error(libc::EDQUOT));
        let notdir = MdaError::io("mkdir", io::Error::from_raw_os_error(libc::ENOTDIR));
        assert!(full.is_temporary());
        assert!(quota.is_temporary());
        assert!(!notdir.is_temporary());
        assert!(!MdaError::NotADirectory("/x".into()).is_temporary());
        assert!(MdaError::LockTimeout("/x".into()).is_temporary());
    }
}
