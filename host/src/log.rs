//! Logging setup: stderr in the foreground (`-d`), syslog (facility mail,
//! tag `wasmtpd`) otherwise, one line per event in OpenSMTPD's wording.
//! `-v` adds debug lines and the session/message spans to every line.

use std::ffi::CString;
use std::io::{IsTerminal, Write};

use tracing::Level;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

pub fn init(foreground: bool, verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("WASMTPD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = foreground && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    // A second init (tests, the mda child) keeps the first subscriber.
    let _ = match (foreground, verbose) {
        (true, true) => builder.with_writer(std::io::stderr).try_init(),
        (true, false) => builder
            .event_format(Brief)
            .with_writer(std::io::stderr)
            .try_init(),
        (false, _) => builder
            .event_format(Brief)
            .with_writer(Syslog::open())
            .try_init(),
    };
}

/// The message alone, as OpenSMTPD logs it: operators' greps keep working.
/// (`-v` switches to the full format with time, level and the session
/// and message spans.)
struct Brief;

impl<S, N> FormatEvent<S, N> for Brief
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
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
