//! Reaching the daemon: the control socket's path and the `enqueue`
//! handshake that turns the control connection into an SMTP session
//! (as OpenSMTPD's `smtpctl enqueue` asks its control socket).

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::client::{Client, ClientError};
use crate::enqueue::error::EnqueueError;

/// How long the daemon may stay silent before sendmail gives up: DATA's
/// end may take long (filters, fsync), RFC 5321 allows 10 minutes.
const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Where `wasmtpctl` looks too: see [`crate::control::socket::client_default`].
pub(crate) fn default_socket() -> PathBuf {
    crate::control::socket::client_default()
}

/// Connects to the control socket at `path` and asks for an SMTP
/// session; on success the reader is positioned at the 220 greeting.
pub(crate) fn open(path: &Path) -> Result<(BufReader<UnixStream>, UnixStream), EnqueueError> {
    let unreachable = |source| EnqueueError::Unreachable {
        path: path.to_path_buf(),
        source,
    };
    let refused = |reason| EnqueueError::Refused {
        path: path.to_path_buf(),
        reason,
    };
    let client = Client::connect(path).map_err(|e| match e {
        ClientError::Connect { source, .. } => unreachable(source),
        other => unreachable(std::io::Error::other(other.to_string())),
    })?;
    client
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(unreachable)?;
    client.into_session().map_err(|e| match e {
        ClientError::Connect { source, .. } | ClientError::Io(source) => unreachable(source),
        ClientError::Closed => unreachable(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the control socket closed the connection",
        )),
        ClientError::Refused(reason) => refused(reason),
        ClientError::BadAnswer(why) => refused(format!("unexpected answer: {why}")),
    })
}
