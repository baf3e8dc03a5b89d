//! `sendmail -bs`: the caller speaks SMTP itself on stdin/stdout, and
//! sendmail only carries the bytes to and from the daemon's session.

use std::io::{self, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use crate::enqueue::error::{EX_IOERR, EX_OK};

/// Copies stdin to the session and the session to stdout until the
/// daemon closes (after QUIT, or when stdin ended and the session with
/// it). Returns the exit code.
pub fn relay(mut from_daemon: BufReader<UnixStream>, mut to_daemon: UnixStream) -> u8 {
    // Detached: a caller that never closes stdin must not keep sendmail
    // alive once the daemon has ended the session.
    std::thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut to_daemon);
        let _ = to_daemon.shutdown(Shutdown::Write);
    });
    match copy_flushing(&mut from_daemon, &mut io::stdout().lock()) {
        Ok(()) => EX_OK,
        Err(_) => EX_IOERR,
    }
}

/// Like `io::copy`, but each chunk reaches the caller at once: it waits
/// for the reply before sending its next command.
pub fn copy_flushing(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}
