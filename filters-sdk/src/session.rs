//! The session a call is about, asked of the host only when read.
//!
//! The host does not hand every call the session's record: most calls
//! never look at it, and copying its dozen strings into the guest cost
//! more than many calls themselves. A [`Session`] fetches the record
//! (`host-session`) the first time a field is read, once per call, and
//! reads like the record itself: `session.remote_address`.

use std::cell::OnceCell;
use std::ops::Deref;

pub use crate::bindings::wasmtpd::filter::types::Session as SessionInfo;

/// The current session's record, fetched on first use.
#[derive(Debug, Default)]
pub struct Session {
    info: OnceCell<SessionInfo>,
}

impl Session {
    /// The session of the call under way; nothing is asked yet.
    pub fn current() -> Session {
        Session::default()
    }

    /// A session with a known record (for a filter's unit tests, which
    /// run without a host).
    pub fn from_info(info: SessionInfo) -> Session {
        Session {
            info: OnceCell::from(info),
        }
    }

    /// The record, fetched now if not yet.
    pub fn info(&self) -> &SessionInfo {
        self.info.get_or_init(fetch)
    }
}

impl Deref for Session {
    type Target = SessionInfo;

    fn deref(&self) -> &SessionInfo {
        self.info()
    }
}

#[cfg(target_family = "wasm")]
fn fetch() -> SessionInfo {
    crate::bindings::wasmtpd::filter::host_session::current()
}

/// Off wasm there is no host to ask: tests build their sessions with
/// [`Session::from_info`].
#[cfg(not(target_family = "wasm"))]
fn fetch() -> SessionInfo {
    panic!("no host here: build the session with Session::from_info")
}

/// Which of the instance's sessions the call under way belongs to
/// (`host-session.serial`): [`crate::export_filter!`] starts the filter's
/// value afresh when it changes.
#[cfg(target_family = "wasm")]
pub fn serial() -> u64 {
    crate::bindings::wasmtpd::filter::host_session::serial()
}

/// Off wasm, one session.
#[cfg(not(target_family = "wasm"))]
pub fn serial() -> u64 {
    1
}
