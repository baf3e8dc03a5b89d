//! Errors from loading and querying tables. Every variant names where the
//! problem is (`file:line` for file contents, the smtpd.conf origin for
//! definitions) so an operator can go straight to it.

use std::path::PathBuf;

use crate::config::model::Origin;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A malformed line in a table file.
    #[error("{}:{line}: {msg}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// The table file could not be read.
    #[error("{origin}: table {name}: cannot read {}: {source}", path.display())]
    Io {
        origin: Origin,
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `db:` tables are Berkeley DB files, which wasmtpd does not read.
    #[error(
        "{origin}: table {name}: db tables are not supported and no text source {} was found next to {}; use file:{} with the text version",
        text.display(),
        path.display(),
        text.display()
    )]
    DbUnsupported {
        origin: Origin,
        name: String,
        path: PathBuf,
        text: PathBuf,
    },
    #[error("{origin}: table {name}: backend {backend:?} is not supported (supported: file, db, getpwnam, inline)")]
    UnsupportedBackend {
        origin: Origin,
        name: String,
        backend: String,
    },
    #[error("table {0} is not defined")]
    Unknown(String),
    #[error("table {0} was not loaded from the configuration and cannot be reloaded")]
    NotReloadable(String),
    /// A value that does not have the shape the lookup service needs
    /// (e.g. a userbase entry that is not `uid:gid:/home`).
    #[error("table {table}: entry {key:?}: {msg}")]
    BadValue {
        table: String,
        key: String,
        msg: String,
    },
    /// The system user database could not be queried.
    #[error("user database lookup for {user:?} failed: {msg}")]
    System { user: String, msg: String },
}
