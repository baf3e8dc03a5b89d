//! Write wasmtpd mail filters in a few lines.
//!
//! A wasmtpd filter is a WebAssembly component of the `mail-filter` world
//! (`wit/filter.wit`): the daemon calls it in the SMTP phases it subscribed
//! to (OpenSMTPD's smtpd-filters(7) model) and it answers with a
//! [`Decision`]. This crate hides the generated bindings: implement
//! [`Filter`], overriding only what you need, and hand the type to
//! [`export_filter!`].
//!
//! # Instances and state
//!
//! An instance serves one SMTP session at a time, so whatever a filter
//! keeps lives exactly as long as the session (which may carry several
//! messages: reset per-message state yourself, at `mail-from` or after
//! `commit`). [`export_filter!`] keeps one value of your type in a static
//! and calls the trait's `&mut self` methods on it.
//!
//! The host may hand a finished instance the next session of the same
//! tenant instead of starting a new one (much cheaper). So the value's
//! life goes: built (with `Default`, or the expression you give), then
//! [`Filter::init`] once, for the instance: read the configuration and
//! prepare what every session needs there. The SDK keeps that value as
//! init left it, and every session, the first included, starts from a
//! clone of it (hence `Clone`): nothing of the last session remains, and
//! no session pays for parsing the configuration again (the host numbers
//! an instance's sessions, [`session::serial`], and the SDK starts the
//! value afresh at the first call of each). Keep state in the value, not
//! in other statics, or set [`Filter::REUSABLE`] to `false`.
//!
//! A filter that keeps nothing from one message to the next (a content
//! scanner) can say so with [`Filter::PER_MESSAGE`]: the host then hands
//! its instance back as soon as a message is decided, and the next
//! message, of this session or another, may run on any free instance,
//! starting from the post-init value as a new session does. Fewer
//! instances serve a busy server that way, and they stay hot.
//!
//! A filter that reads message lines and subscribes to
//! [`Phase::Commit`] has its `on_phase(Commit)` called right after the
//! last batch's `on_data_lines`, in the same call from the host (which
//! then applies the answer at commit): one call less per message.
//! Nothing happens to the filter in between either way.
//!
//! # Subscriptions
//!
//! Rust cannot see which methods you overrode, so declare what you want:
//! the constants [`Filter::PHASES`], [`Filter::DATA_LINES`] and
//! [`Filter::REPORTS`] feed the default [`Filter::init`]; override `init`
//! when the answer depends on the configuration. The host never calls a
//! filter for anything it did not subscribe to.
//!
//! # Guards
//!
//! A filter whose answer depends only on whether some pattern matches (a
//! blocklist of senders, words in the body) can let the host match
//! first: add a [`Guard`] to the subscriptions
//! ([`patterns::Patterns::guard`]) and the host calls the filter for a
//! phase only when a pattern matches its parameter, and for a message
//! (its lines and commit) only when a pattern matches one of its
//! unfolded header fields or body lines. On clean mail such a filter is
//! not even started: no call, no instance, which is most of what a
//! filter costs a busy server. The host may still call it for a near
//! miss, so the filter checks the match itself as usual.
//!
//! # The sandbox
//!
//! There is no file system, network, clock or environment. Build for
//! `wasm32-unknown-unknown` (as the bundled filters are): the component
//! then imports the `mail-filter` world and nothing else, and
//! instantiates fastest. `println!` goes nowhere, `std::fs`/`std::net`
//! answer "unsupported", `std::time::SystemTime::now` panics, and
//! `std::collections::HashMap` with its default `RandomState` panics (no
//! random keys) — use `BTreeMap`. A filter built for `wasm32-wasip2` also
//! runs: the host gives it an empty WASI (no preopened directories, no
//! sockets, no environment, frozen clocks), at the cost of a slower
//! start. What the filter may reach goes through [`config`], [`dns`]
//! (`allow dns`), [`kv`] (`allow kv`) and [`log`]. A panic aborts the
//! instance (a trap): the host treats it as a filter failure.
//!
//! # Example
//!
//! A filter rejecting senders from the domains given as `domain` in its
//! configuration, and tagging each message with a header:
//!
//! ```no_run
//! use wasmtpd_filter::{config, log, Decision, Filter, Lines, LinesOut, Phase, Session};
//!
//! #[derive(Default, Clone)]
//! struct NoSpammers {
//!     domains: Vec<String>,
//!     header_added: bool,
//! }
//!
//! impl Filter for NoSpammers {
//!     const PHASES: &'static [Phase] = &[Phase::MailFrom];
//!     const DATA_LINES: bool = true;
//!
//!     fn init(&mut self) -> wasmtpd_filter::Subscriptions {
//!         self.domains = config::get_all("domain");
//!         log::info(&format!("{} domains blocked", self.domains.len()));
//!         Self::default_subscriptions()
//!     }
//!
//!     fn on_phase(&mut self, _: &Session, _: Phase, sender: &str) -> Decision {
//!         self.header_added = false; // a new message begins
//!         let domain = sender.rsplit('@').next().unwrap_or("");
//!         if self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
//!             return Decision::reject(550, "5.7.1", "Sender domain blocked");
//!         }
//!         Decision::Proceed
//!     }
//!
//!     fn on_data_lines(&mut self, _: &Session, lines: Lines, _last: bool) -> LinesOut {
//!         if self.header_added {
//!             return LinesOut::Pass; // the batch goes on untouched, uncopied
//!         }
//!         self.header_added = true;
//!         let mut out = Lines::new();
//!         out.push(b"X-Checked-By: no-spammers");
//!         out.push_lines(lines.as_bytes());
//!         out.into()
//!     }
//! }
//!
//! wasmtpd_filter::export_filter!(NoSpammers);
//! ```
//!
//! Build it as a `cdylib` (`crate-type = ["cdylib"]`) with
//! `cargo build --release --target wasm32-unknown-unknown`, then make the
//! core module a component: `wasm-tools component new target/…/f.wasm -o
//! f.wasm` (wasmtpd's own build does the same with the wit-component
//! crate, see host/build.rs). Or build with `--target wasm32-wasip2`,
//! whose output is a component already. Then in smtpd.conf:
//! `filter "nospam" wasm "/etc/mail/f.wasm" domain spam.example`.

pub mod lines;
pub mod message;
pub mod net;
pub mod patterns;
pub mod session;

/// The bindings wit-bindgen generates for the `mail-filter` world. Filter
/// authors rarely need them: the useful types are re-exported at the
/// crate root.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "mail-filter",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "wasmtpd_filter::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::wasmtpd::filter::types::{
    AuthReport, Decision, Guard, Guarded, LinesAnswer, Outcome, Phase, Reply, Report,
    Subscriptions, TxAddress,
};
pub use lines::{Lines, LinesOut};
pub use session::{Session, SessionInfo};

/// A mail filter. Every method has a harmless default: override the ones
/// you need and list what you subscribe to. `Clone` copies the value as
/// [`Filter::init`] left it into each session.
pub trait Filter: Clone + 'static {
    /// Phases the default [`Filter::init`] subscribes to.
    const PHASES: &'static [Phase] = &[];
    /// Whether the default [`Filter::init`] asks for message lines.
    const DATA_LINES: bool = false;
    /// Whether the default [`Filter::init`] asks for report events.
    const REPORTS: bool = false;
    /// Whether the instance may serve further sessions (see "Instances
    /// and state" above): true unless the filter keeps state outside its
    /// value, which `init` would not reset.
    const REUSABLE: bool = true;
    /// Whether each message may run on a different instance (see
    /// "Instances and state" above): true only when the filter keeps
    /// nothing from one message to the next, nor from before the
    /// message's MAIL FROM.
    const PER_MESSAGE: bool = false;

    /// The subscriptions the constants declare.
    fn default_subscriptions() -> Subscriptions
    where
        Self: Sized,
    {
        Subscriptions {
            phases: Self::PHASES.to_vec(),
            data_lines: Self::DATA_LINES,
            reports: Self::REPORTS,
            reusable: Self::REUSABLE,
            per_message: Self::PER_MESSAGE,
            guards: Vec::new(),
        }
    }

    /// Called once per instance, on a value just built, before its first
    /// session. Read the configuration and prepare (compile patterns)
    /// here: sessions start from a clone of the value as this leaves it.
    /// The answer says what the host will call the filter for, in every
    /// session of the instance (start from
    /// [`Filter::default_subscriptions`] so [`Filter::REUSABLE`] is
    /// kept).
    fn init(&mut self) -> Subscriptions
    where
        Self: Sized,
    {
        Self::default_subscriptions()
    }

    /// A subscribed phase. `session` reads like the session's record;
    /// the host is asked for it only when a field is read (see
    /// [`session`]). `param` is the client address (connect), the
    /// HELO/EHLO name, the address without brackets (mail-from, rcpt-to),
    /// the user (auth), empty otherwise.
    fn on_phase(&mut self, session: &Session, phase: Phase, param: &str) -> Decision {
        let _ = (session, phase, param);
        Decision::Proceed
    }

    /// A batch of message lines (bytes, each ending with CRLF, no
    /// dot-stuffing; header, empty line, body). Answer
    /// [`LinesOut::Pass`] to pass the batch on as it came (nothing is
    /// copied back), or replace it with other [`Lines`]; lines held back
    /// may be returned with a later batch, at the latest with the one
    /// where `last` is set.
    fn on_data_lines(&mut self, session: &Session, lines: Lines, last: bool) -> LinesOut {
        let _ = (session, lines, last);
        LinesOut::Pass
    }

    /// Called right after the last batch's [`Filter::on_data_lines`]:
    /// lines to put at the top of the message (header fields that depend
    /// on the whole message, a score say), so the filter can pass every
    /// batch on as it comes instead of holding the message back to emit
    /// them first. The next filter in the chain sees them. None by
    /// default.
    fn prepend(&mut self, session: &Session) -> Lines {
        let _ = session;
        Lines::new()
    }

    /// An informational event (only with `REPORTS` or a matching `init`).
    fn on_report(&mut self, session: &Session, report: &Report) {
        let _ = (session, report);
    }
}

impl Decision {
    /// Refuse the command: `Decision::reject(550, "5.7.1", "Go away")`.
    /// An empty `enhanced` sends no enhanced status code.
    pub fn reject(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Decision::Reject(Reply::new(code, enhanced, text))
    }

    /// Refuse the command and end the session.
    pub fn disconnect(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Decision::Disconnect(Reply::new(code, enhanced, text))
    }

    /// Replace the phase's parameter (address or HELO name) and go on.
    pub fn rewrite(value: impl Into<String>) -> Self {
        Decision::Rewrite(value.into())
    }
}

impl Reply {
    /// A reply; an empty `enhanced` means none.
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced: (!enhanced.is_empty()).then(|| enhanced.to_string()),
            text: text.into(),
        }
    }
}

impl Phase {
    /// Every phase, in SMTP order.
    pub const ALL: [Phase; 9] = [
        Phase::Connect,
        Phase::Helo,
        Phase::Ehlo,
        Phase::Starttls,
        Phase::Auth,
        Phase::MailFrom,
        Phase::RcptTo,
        Phase::Data,
        Phase::Commit,
    ];

    /// The phase's name as smtpd-filters(7) and the WIT spell it
    /// ("mail-from").
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Helo => "helo",
            Phase::Ehlo => "ehlo",
            Phase::Starttls => "starttls",
            Phase::Auth => "auth",
            Phase::MailFrom => "mail-from",
            Phase::RcptTo => "rcpt-to",
            Phase::Data => "data",
            Phase::Commit => "commit",
        }
    }

    /// The phase named `name` ("mail-from"; "mail_from" is accepted too).
    pub fn from_name(name: &str) -> Option<Phase> {
        let name = name.trim().to_ascii_lowercase().replace('_', "-");
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The filter's `key value` configuration from smtpd.conf.
pub mod config {
    use crate::bindings::wasmtpd::filter::host_config;

    /// The value of `key` (for a repeated key, the one the host picks;
    /// use [`get_all`] for those).
    pub fn get(key: &str) -> Option<String> {
        host_config::get(key)
    }

    /// Every `(key, value)` pair, in configuration order.
    pub fn all() -> Vec<(String, String)> {
        host_config::all()
    }

    /// Every value of a repeatable `key`, in order.
    pub fn get_all(key: &str) -> Vec<String> {
        values_of(all(), key)
    }

    /// The values of `key` among `pairs` (the pure half of [`get_all`]).
    pub fn values_of(pairs: Vec<(String, String)>, key: &str) -> Vec<String> {
        pairs
            .into_iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect()
    }
}

/// DNS through the host's resolver; needs `allow dns` (otherwise every
/// lookup is an `Err`). A name that does not exist is `Ok(vec![])`. The
/// host enforces a per-session query budget: going past it stops the
/// filter.
pub mod dns {
    use crate::bindings::wasmtpd::filter::host_dns;
    pub use crate::bindings::wasmtpd::filter::host_dns::RecordType;

    /// Records of `kind` for `name`, as text (addresses, TXT strings
    /// joined, "10 mx.example.org", names).
    pub fn lookup(name: &str, kind: RecordType) -> Result<Vec<String>, String> {
        host_dns::lookup(name, kind)
    }

    /// The IPv4 addresses of `name`.
    pub fn a(name: &str) -> Result<Vec<String>, String> {
        lookup(name, RecordType::A)
    }

    /// The TXT records of `name`.
    pub fn txt(name: &str) -> Result<Vec<String>, String> {
        lookup(name, RecordType::Txt)
    }
}

/// A key/value store shared by all instances of the filter, in memory and
/// bounded (`allow kv`).
pub mod kv {
    use crate::bindings::wasmtpd::filter::host_kv;

    pub fn get(key: &str) -> Option<Vec<u8>> {
        host_kv::get(key)
    }

    /// Fails when kv is not granted or the store is full.
    pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
        host_kv::set(key, value)
    }
}

/// Log lines; the host tags them with the filter's name and rate limits
/// them.
pub mod log {
    use crate::bindings::wasmtpd::filter::host_log;
    pub use crate::bindings::wasmtpd::filter::host_log::Level;

    pub fn log(level: Level, message: &str) {
        host_log::log(level, message)
    }
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// Exports a [`Filter`] as the component's `filter` interface.
///
/// `export_filter!(MyFilter)` builds the value with `Default`;
/// `export_filter!(MyFilter = MyFilter::new(42))` with the expression. Use
/// it once, in the crate that becomes the `.wasm`.
#[macro_export]
macro_rules! export_filter {
    ($ty:ty) => {
        $crate::export_filter!($ty = <$ty as ::core::default::Default>::default());
    };
    ($ty:ty = $init:expr) => {
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
                static PRISTINE: ::core::cell::RefCell<
                    ::core::option::Option<($ty, $crate::Subscriptions)>,
                > = const { ::core::cell::RefCell::new(::core::option::Option::None) };
                /// The host's serial of the session INSTANCE belongs to.
                static SERIAL: ::core::cell::Cell<u64> = const { ::core::cell::Cell::new(0) };
            }

            /// The value as `Filter::init` left it, and its answer; built
            /// and initialised on first use.
            fn pristine<R>(f: impl FnOnce(&($ty, $crate::Subscriptions)) -> R) -> R {
                PRISTINE.with(|cell| {
                    let mut pristine = cell.borrow_mut();
                    f(pristine.get_or_insert_with(|| {
                        let mut value: $ty = $init;
                        let subscriptions = <$ty as $crate::Filter>::init(&mut value);
                        (value, subscriptions)
                    }))
                })
            }

            /// Runs `f` on the session's value. When the host's session
            /// serial moved on, a new session began on this (reused)
            /// instance: the last session's value goes, and the new one
            /// starts from a clone of the value `Filter::init` left.
            fn with<R>(f: impl FnOnce(&mut $ty) -> R) -> R {
                INSTANCE.with(|cell| {
                    let mut slot = cell.borrow_mut();
                    let serial = $crate::session::serial();
                    if serial != SERIAL.get() {
                        // The last session's value goes before the copy
                        // is made.
                        *slot = ::core::option::Option::None;
                        SERIAL.set(serial);
                    }
                    f(slot.get_or_insert_with(|| pristine(|(value, _)| value.clone())))
                })
            }

            struct WasmtpdFilterExport;

            impl $crate::bindings::exports::wasmtpd::filter::filter::Guest for WasmtpdFilterExport {
                fn init() -> $crate::Subscriptions {
                    pristine(|(_, subscriptions)| subscriptions.clone())
                }
                fn on_phase(
                    phase: $crate::Phase,
                    param: ::std::string::String,
                ) -> $crate::Decision {
                    let session = $crate::Session::current();
                    with(|f| <$ty as $crate::Filter>::on_phase(f, &session, phase, &param))
                }
                fn on_data_lines(lines: ::std::vec::Vec<u8>, last: bool) -> $crate::LinesAnswer {
                    let session = $crate::Session::current();
                    let lines = $crate::Lines::from_bytes(lines);
                    // The commit phase comes next for this filter: its
                    // answer goes back with the last lines, saving the
                    // host a call.
                    let early =
                        last && pristine(|(_, s)| s.phases.contains(&$crate::Phase::Commit));
                    with(|f| {
                        let lines =
                            <$ty as $crate::Filter>::on_data_lines(f, &session, lines, last);
                        let prepend = match last {
                            true => <$ty as $crate::Filter>::prepend(f, &session).into_bytes(),
                            false => ::std::vec::Vec::new(),
                        };
                        let commit = early.then(|| {
                            <$ty as $crate::Filter>::on_phase(
                                f,
                                &session,
                                $crate::Phase::Commit,
                                "",
                            )
                        });
                        $crate::LinesAnswer {
                            lines,
                            commit,
                            prepend,
                        }
                    })
                }
                fn on_report(event: $crate::Report) {
                    let session = $crate::Session::current();
                    with(|f| <$ty as $crate::Filter>::on_report(f, &session, &event))
                }
            }

    $crate::bindings::export!(WasmtpdFilterExport with_types_in $crate::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_builds_a_reply_with_an_enhanced_code() {
        assert_eq!(
            Decision::reject(550, "5.7.1", "no"),
            Decision::Reject(Reply {
                code: 550,
                enhanced: Some("5.7.1".into()),
                text: "no".into()
            })
        );
        assert_eq!(Reply::new(421, "", "bye").enhanced, None);
    }

    #[test]
    fn phase_names_round_trip() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_name(p.name()), Some(p));
        }
        assert_eq!(Phase::from_name("MAIL_FROM"), Some(Phase::MailFrom));
        assert_eq!(Phase::from_name("data-line"), None);
    }

    #[test]
    fn repeated_keys_keep_their_order() {
        let pairs = vec![
            ("zone".to_string(), "a.example".to_string()),
            ("action".to_string(), "junk".to_string()),
            ("zone".to_string(), "b.example".to_string()),
        ];
        assert_eq!(config::values_of(pairs, "zone"), ["a.example", "b.example"]);
    }

    #[derive(Default, Clone)]
    struct Nothing;
    impl Filter for Nothing {
        const PHASES: &'static [Phase] = &[Phase::Connect];
    }

    #[test]
    fn default_methods_proceed_and_pass_lines_through() {
        let mut f = Nothing;
        let subs = f.init();
        assert_eq!(subs.phases, [Phase::Connect]);
        assert!(!subs.data_lines && !subs.reports && subs.reusable);
        let s = net::tests::session("192.0.2.1:25");
        assert_eq!(f.on_phase(&s, Phase::Connect, ""), Decision::Proceed);
        assert_eq!(
            f.on_data_lines(&s, Lines::from_bytes(b"a\r\n".to_vec()), true),
            LinesOut::Pass
        );
    }
}
