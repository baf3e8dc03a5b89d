//! Logging setup: stderr in the foreground (`-d`), syslog (facility mail,
//! tag `wasmtpd`) otherwise, one line per event in OpenSMTPD's wording.
//! `-v` adds debug lines and the session/message spans to every line.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing::Level;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

pub fn init(foreground: bool, verbose: bool) {
    let state = LevelState {
        verbose,
        traces: BTreeSet::new(),
        env: std::env::var("WASMTPD_LOG").ok(),
    };
    let (filter, handle) = reload::Layer::new(state.filter());
    let ansi = foreground && std::io::stderr().is_terminal();
    let format: Box<dyn Layer<_> + Send + Sync> = match (foreground, verbose) {
        (true, true) => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        (true, false) => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .event_format(Brief)
            .with_writer(std::io::stderr)
            .boxed(),
        (false, _) => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .event_format(Brief)
            .with_writer(Syslog::open())
            .boxed(),
    };
    // A second init (tests, the mda child) keeps the first subscriber.
    if Registry::default()
        .with(filter)
        .with(format)
        .try_init()
        .is_ok()
    {
        let _ = CONTROL.set(LogControl {
            handle,
            state: Mutex::new(state),
        });
    }
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// The running daemon's log levels, for `wasmtpctl log verbose|brief`
/// and `trace|untrace`; `None` before [`init`] (or when another
/// subscriber was installed first).
pub fn control() -> Option<&'static LogControl> {
    CONTROL.get()
}

/// Changes what is logged while the daemon runs.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    state: Mutex<LevelState>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("unknown subsystem \"{0}\" (known: {known})", known = SUBSYSTEMS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    UnknownSubsystem(String),
    #[error("cannot change the log filter: {0}")]
    Reload(String),
}

/// smtpctl's trace subsystems and the modules whose trace lines each
/// turns on. (OpenSMTPD's `imsg` and `mproc` have no counterpart: one
/// process, no imsg layer.)
pub const SUBSYSTEMS: &[(&str, &[&str])] = &[
    ("all", &["wasmtpd"]),
    ("bounce", &["wasmtpd::scheduler::bounce"]),
    ("control", &["wasmtpd::control"]),
    ("expand", &["wasmtpd::lka::expand"]),
    (
        "filters",
        &["wasmtpd::filter", "wasmtpd::smtp::inbound_filters"],
    ),
    ("io", &["wasmtpd::smtp::server", "wasmtpd::mta::session"]),
    ("lookup", &["wasmtpd::table", "wasmtpd::lka::resolve"]),
    ("mda", &["wasmtpd::mda", "wasmtpd::privsep"]),
    ("mta", &["wasmtpd::mta"]),
    ("queue", &["wasmtpd::queue"]),
    ("rules", &["wasmtpd::lka::rules"]),
    ("scheduler", &["wasmtpd::scheduler"]),
    ("smtp", &["wasmtpd::smtp"]),
    ("stat", &["wasmtpd::stats"]),
    ("tls", &["wasmtpd::tls", "wasmtpd::mta::tls"]),
    ("transfer", &["wasmtpd::mta"]),
];

impl LogControl {
    /// `log verbose` (debug lines) or `log brief`.
    pub fn set_verbose(&self, on: bool) -> Result<(), LogError> {
        self.change(|s| {
            s.verbose = on;
            Ok(())
        })
    }

    /// `trace SUBSYSTEM` (on) or `untrace SUBSYSTEM`.
    pub fn trace(&self, subsystem: &str, on: bool) -> Result<(), LogError> {
        let name = subsystem.to_ascii_lowercase();
        if !SUBSYSTEMS.iter().any(|(n, _)| *n == name) {
            return Err(LogError::UnknownSubsystem(subsystem.to_string()));
        }
        self.change(|s| {
            if on {
                s.traces.insert(name);
            } else if name == "all" {
                s.traces.clear();
            } else {
                s.traces.remove(&name);
            }
            Ok(())
        })
    }

    /// Whether debug lines are on, and the traced subsystems.
    pub fn status(&self) -> (bool, Vec<String>) {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (s.verbose, s.traces.iter().cloned().collect())
    }

    fn change(
        &self,
        edit: impl FnOnce(&mut LevelState) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        edit(&mut s)?;
        self.handle
            .reload(s.filter())
            .map_err(|e| LogError::Reload(e.to_string()))
    }
}

/// What decides the log filter.
struct LevelState {
    verbose: bool,
    traces: BTreeSet<String>,
    /// `WASMTPD_LOG`, when set: it replaces the base level.
    env: Option<String>,
}

impl LevelState {
    fn directives(&self) -> String {
        // Verbose is wasmtpd's debug lines, not every library's.
        let mut out = self.env.clone().unwrap_or_else(|| "info".to_string());
        if self.verbose {
            out.push_str(",wasmtpd=debug");
        }
        for name in &self.traces {
            let targets = SUBSYSTEMS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .unwrap_or_default();
            for t in targets {
                out.push_str(&format!(",{t}=trace"));
            }
        }
        out
    }

    fn filter(&self) -> EnvFilter {
        EnvFilter::try_new(self.directives()).unwrap_or_else(|_| EnvFilter::new("info"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_add_trace_directives_to_the_base_level() {
        let mut s = LevelState {
            verbose: false,
            traces: BTreeSet::new(),
            env: None,
        };
        assert_eq!(s.directives(), "info");
        s.traces.insert("smtp".into());
        s.traces.insert("lookup".into());
        assert_eq!(
            s.directives(),
            "info,wasmtpd::table=trace,wasmtpd::lka::resolve=trace,wasmtpd::smtp=trace"
        );
        s.verbose = true;
        s.env = Some("warn".into());
        assert!(s.directives().starts_with("warn,wasmtpd=debug,"));
        s.verbose = false;
        assert!(s.directives().starts_with("warn,wasmtpd::"));
        // Every directive parses.
        for (name, _) in SUBSYSTEMS {
            s.traces.insert(name.to_string());
        }
        assert!(EnvFilter::try_new(s.directives()).is_ok());
    }
}
