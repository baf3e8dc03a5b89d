//! The client side of the control socket, blocking: `wasmtpctl` makes a
//! request or a few and exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::protocol::{Request, Response, MAX_RESPONSE};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach wasmtpd at {}: {source} (is it running? -s names another socket)", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lost the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon closed the connection")]
    Closed,
    #[error("unreadable answer from the daemon: {0}")]
    BadAnswer(String),
    /// The daemon refused or failed the request; its words.
    #[error("{0}")]
    Refused(String),
}

/// One connection to the daemon.
pub struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `req` and returns the answer's data (`null` for none).
    pub fn request(&mut self, req: &Request) -> Result<serde_json::Value, ClientError> {
        let mut line =
            serde_json::to_string(req).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        line.push('\n');
        self.reader.get_mut().write_all(line.as_bytes())?;
        let mut answer = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_RESPONSE as u64)
            .read_until(b'\n', &mut answer)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        match serde_json::from_slice::<Response>(&answer) {
            Ok(Response::Ok { data, .. }) => Ok(data),
            Ok(Response::Err { error, .. }) => Err(ClientError::Refused(error)),
            Err(e) => Err(ClientError::BadAnswer(e.to_string())),
        }
    }

    /// How long a read may wait for the daemon (none: for ever).
    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// Asks for an SMTP session (`enqueue`): on success, a reader on it
    /// (keeping whatever came in with the answer: the greeting may have)
    /// and a writer on the same stream.
    pub fn into_session(mut self) -> Result<(BufReader<UnixStream>, UnixStream), ClientError> {
        self.request(&Request::Enqueue)?;
        let writer = self.reader.get_ref().try_clone()?;
        Ok((self.reader, writer))
    }
}
