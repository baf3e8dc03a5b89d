//! The queue's error type: what can go wrong storing or reading mail.

use std::io;

use crate::envelope::MsgId;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A filesystem operation failed; `path` is relative to the spool.
    #[error("queue: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// A stored file cannot be trusted: bad header, failed authentication
    /// (tampered or wrong key), bad compression, bad JSON, wrong id.
    #[error("queue: corrupt {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// Encryption itself failed (not expected with a valid key).
    #[error("queue: crypto: {0}")]
    Crypto(String),
    /// No such message or envelope in the queue.
    #[error("queue: not found: {0}")]
    NotFound(String),
    /// The caller asked for something the queue refuses to store.
    #[error("queue: invalid request: {0}")]
    Invalid(String),
    /// A message with this id is already committed.
    #[error("queue: message {0} already exists")]
    Exists(MsgId),
    /// The committer thread is gone (the queue is shutting down or crashed).
    #[error("queue: committer stopped")]
    Closed,
    /// A blocking queue task panicked or was cancelled.
    #[error("queue: internal error: {0}")]
    Internal(String),
}

impl QueueError {
    pub(crate) fn io(op: &'static str, path: impl Into<String>, source: io::Error) -> QueueError {
        QueueError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Maps a NotFound io error to [`QueueError::NotFound`], others to `Io`.
    pub(crate) fn io_or_missing(
        op: &'static str,
        path: impl Into<String>,
        source: io::Error,
    ) -> QueueError {
        let path = path.into();
        if source.kind() == io::ErrorKind::NotFound {
            QueueError::NotFound(path)
        } else {
            QueueError::io(op, path, source)
        }
    }
}
