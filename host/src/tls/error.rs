//! What can go wrong loading certificates and keys, each error naming the
//! `file:line` of the directive at fault so startup stops with a pointer
//! into smtpd.conf.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{origin}: pki \"{name}\": {problem}")]
    Pki {
        origin: String,
        name: String,
        problem: FileProblem,
    },
    #[error("{origin}: ca \"{name}\": {problem}")]
    Ca {
        origin: String,
        name: String,
        problem: FileProblem,
    },
    #[error("{origin}: listener uses TLS but names no pki, and there is no pki \"{hostname}\"")]
    NoPki { origin: String, hostname: String },
    #[error("{origin}: `verify` needs a ca (add `ca NAME` to the listener)")]
    NoCa { origin: String },
    #[error("{origin}: cannot set up TLS: {why}")]
    Setup { origin: String, why: String },
}

/// Why one certificate or key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    #[error("no {0} file given")]
    Missing(&'static str),
    #[error("cannot read {what} {path}: {source}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no {what} found in it (PEM expected)")]
    Empty { what: &'static str, path: PathBuf },
    #[error("{path}: bad {what}: {why}")]
    Bad {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("the certificate {cert} does not match the key {key}")]
    Mismatch { cert: PathBuf, key: PathBuf },
}
