//! Logging setup: stderr in the foreground (`-d`), syslog (facility mail,
//! tag `wasmtpd`) otherwise, one line per event in OpenSMTPD's wording.
//! `-v` adds debug lines and the session/message spans to every line.

use std::ffi::CString;
use std::io::Write;

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub fn init(foreground: bool, verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("WASMTPD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_level(verbose);
    let result = if foreground {
        let b = builder.with_writer(std::io::stderr);
        if verbose {
            b.try_init()
        } else {
            b.without_time().event_format(brief()).try_init()
        }
    } else {
        builder
            .without_time()
            .with_ansi(false)
            .event_format(brief())
            .with_writer(Syslog::open())
            .try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// Message text only: what OpenSMTPD prints.
fn brief() -> tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Compact, ()>
{
    tracing_subscriber::fmt::format()
        .compact()
        .with_target(false)
        .with_level(false)
        .without_time()
}

/// Writes each formatted event as one syslog(3) record.
struct Syslog;

impl Syslog {
    fn open() -> Syslog {
        // openlog keeps the pointer: the identity must live forever.
        static IDENT: &[u8] = b"wasmtpd\0";
        // SAFETY: IDENT is a NUL-terminated static string.
        unsafe {
            libc::openlog(
                IDENT.as_ptr().cast(),
                libc::LOG_PID | libc::LOG_NDELAY,
                libc::LOG_MAIL,
            )
        };
        Syslog
    }
}

struct SyslogLine {
    priority: libc::c_int,
    buf: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let line: Vec<u8> = self
            .buf
            .iter()
            .copied()
            .filter(|&b| b != 0 && b != b'\n')
            .collect();
        if let Ok(msg) = CString::new(line) {
            // SAFETY: both strings are NUL-terminated; "%s" takes one.
            unsafe { libc::syslog(self.priority, c"%s".as_ptr(), msg.as_ptr()) };
        }
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;
    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine {
            priority: libc::LOG_INFO,
            buf: Vec::new(),
        }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine {
        let priority = match *meta.level() {
            Level::ERROR => libc::LOG_ERR,
            Level::WARN => libc::LOG_WARNING,
            Level::INFO => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        };
        SyslogLine {
            priority,
            buf: Vec::new(),
        }
    }
}
