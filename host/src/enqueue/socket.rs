//! Reaching the daemon: the control socket's path and the `enqueue`
//! handshake that turns the control connection into an SMTP session
//! (as OpenSMTPD's `smtpctl enqueue` asks its control socket).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::enqueue::error::EnqueueError;

/// How long the daemon may stay silent before sendmail gives up: DATA's
/// end may take long (filters, fsync), RFC 5321 allows 10 minutes.
const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Where `wasmtpctl` looks too: see [`crate::control::socket::client_default`].
pub(crate) fn default_socket() -> PathBuf {
    crate::control::socket::client_default()
}

/// The daemon's answer to the handshake.
#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

/// Connects to the control socket at `path` and asks for an SMTP
/// session; on success the reader is positioned at the 220 greeting.
pub(crate) fn open(path: &Path) -> Result<(BufReader<UnixStream>, UnixStream), EnqueueError> {
    let unreachable = |source| EnqueueError::Unreachable {
        path: path.to_path_buf(),
        source,
    };
    let stream = UnixStream::connect(path).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(unreachable)?;
    let mut writer = stream.try_clone().map_err(unreachable)?;
    writer
        .write_all(b"{\"verb\":\"enqueue\"}\n")
        .map_err(unreachable)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(unreachable)?;
    if line.is_empty() {
        return Err(unreachable(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the control socket closed the connection",
        )));
    }
    match serde_json::from_str::<Answer>(line.trim_end()) {
        Ok(Answer { ok: true, .. }) => Ok((reader, writer)),
        Ok(Answer { ok: false, error }) => Err(EnqueueError::Refused {
            path: path.to_path_buf(),
            reason: error.unwrap_or_else(|| "no reason given".into()),
        }),
        Err(err) => Err(EnqueueError::Refused {
            path: path.to_path_buf(),
            reason: format!("unexpected answer {:?}: {err}", line.trim_end()),
        }),
    }
}
