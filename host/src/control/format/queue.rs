//! `show queue`: one line per envelope, fields separated by `|`, in
//! smtpctl's order:
//!
//! ```text
//! evpid|af|type|flags|sender|rcpt|dest|ctime|expire|last-try|tries|runstate|delay|error
//! ```
//!
//! `af` is `inet4`, `inet6` or `local` (no peer address: local
//! enqueue); `type` is `mda`, `mta` or `bounce`; `flags` is a
//! comma-separated subset of `bounce,auth,suspend,hold` in that order;
//! times are unix seconds; `delay` is seconds until the next try for a
//! pending envelope and seconds since the attempt began for one in flight.
//! The null sender prints as `@`, as smtpctl prints its empty address.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::sanitize::escape_field;
use crate::envelope::{Envelope, EnvelopeKind};
use crate::mailaddr::MailAddr;

/// What the scheduler is doing with an envelope, as `show queue` reports it.
///
/// Mapping to OpenSMTPD (its scheduler flags `EF_PENDING`, `EF_INFLIGHT`,
/// `EF_SUSPEND`, `EF_HOLD` and smtpctl's runstate words):
///
/// | variant     | flags column | runstate | delay                 |
/// |-------------|--------------|----------|-----------------------|
/// | `Pending`   |              | pending  | next try − now        |
/// | `Inflight`  |              | inflight | now − last try        |
/// | `Suspended` | `suspend`    | pending  | next try − now        |
/// | `Held`      | `hold`       | pending  | next try − now        |
/// | `Offline`   |              | offline  | (empty)               |
///
/// `Suspended` is `pause envelope` by the operator; `Held` is waiting out
/// a destination hold or limit. OpenSMTPD prints a held envelope's
/// runstate as `invalid`; we print `pending` with its wait, which is what
/// it is. `Offline` is for listing the queue directory without a daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Pending,
    Inflight,
    Suspended,
    Held,
    Offline,
}

impl RunState {
    /// smtpctl's runstate word.
    pub fn word(self) -> &'static str {
        match self {
            RunState::Pending | RunState::Suspended | RunState::Held => "pending",
            RunState::Inflight => "inflight",
            RunState::Offline => "offline",
        }
    }

    /// The word this state adds to the flags column, if any.
    fn flag(self) -> Option<&'static str> {
        match self {
            RunState::Suspended => Some("suspend"),
            RunState::Held => Some("hold"),
            _ => None,
        }
    }
}

/// One `show queue` line as data; `--json` prints this. Strings are the
/// envelope's own text, unescaped (JSON escapes what it must); the text
/// line escapes them with [`escape_field`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// 16 hex digits.
    pub evpid: String,
    /// `inet4`, `inet6` or `local`.
    pub af: String,
    /// `mda`, `mta` or `bounce`.
    #[serde(rename = "type")]
    pub kind: String,
    pub flags: Vec<String>,
    /// Empty for the null sender.
    pub sender: String,
    /// The recipient as given in RCPT TO.
    pub rcpt: String,
    /// The address delivery targets, after expansion.
    pub dest: String,
    pub ctime: i64,
    pub expire: i64,
    pub last_try: i64,
    pub tries: u32,
    /// The precise state (`suspended`, `held` too), where the text line
    /// has `pending` plus a flag.
    pub runstate: RunState,
    /// `None` when offline.
    pub delay: Option<i64>,
    /// Empty when there was no error.
    pub error: String,
}

/// Builds the data behind one `show queue` line.
pub fn queue_entry(env: &Envelope, state: RunState, now: i64) -> QueueEntry {
    let mut flags = Vec::new();
    if env.kind == EnvelopeKind::Bounce {
        flags.push("bounce".to_string());
    }
    if env.auth_user.is_some() {
        flags.push("auth".to_string());
    }
    if let Some(f) = state.flag() {
        flags.push(f.to_string());
    }
    let delay = match state {
        RunState::Pending | RunState::Suspended | RunState::Held => {
            Some(env.next_try.saturating_sub(now))
        }
        RunState::Inflight => Some(now.saturating_sub(env.last_try)),
        RunState::Offline => None,
    };
    QueueEntry {
        evpid: env.id.to_string(),
        af: address_family(env.peer).to_string(),
        kind: kind_word(env.kind).to_string(),
        flags,
        sender: env
            .sender
            .as_ref()
            .map(MailAddr::to_string)
            .unwrap_or_default(),
        rcpt: env.rcpt.to_string(),
        dest: env.dest.to_string(),
        ctime: env.created,
        expire: env.expire,
        last_try: env.last_try,
        tries: env.tries,
        runstate: state,
        delay,
        error: env.last_error.clone().unwrap_or_default(),
    }
}

impl QueueEntry {
    /// The text line, without a trailing newline.
    pub fn line(&self) -> String {
        let sender = if self.sender.is_empty() {
            "@"
        } else {
            &self.sender
        };
        let delay = self.delay.map(|d| d.to_string()).unwrap_or_default();
        let flags: Vec<_> = self.flags.iter().map(|f| escape_field(f)).collect();
        [
            escape_field(&self.evpid).as_ref(),
            &escape_field(&self.af),
            &escape_field(&self.kind),
            &flags.join(","),
            &escape_field(sender),
            &escape_field(&self.rcpt),
            &escape_field(&self.dest),
            &self.ctime.to_string(),
            &self.expire.to_string(),
            &self.last_try.to_string(),
            &self.tries.to_string(),
            self.runstate.word(),
            &delay,
            &escape_field(&self.error),
        ]
        .join("|")
    }
}

/// smtpctl's `show queue` line for `env` in `state` at unix time `now`.
pub fn queue_line(env: &Envelope, state: RunState, now: i64) -> String {
    queue_entry(env, state, now).line()
}

/// smtpctl's address family word for where the message came from.
pub(super) fn address_family(peer: Option<SocketAddr>) -> &'static str {
    match peer {
        None => "local",
        Some(SocketAddr::V4(_)) => "inet4",
        Some(SocketAddr::V6(a)) if a.ip().to_ipv4_mapped().is_some() => "inet4",
        Some(SocketAddr::V6(_)) => "inet6",
    }
}

pub(super) fn kind_word(kind: EnvelopeKind) -> &'static str {
    match kind {
        EnvelopeKind::Mda => "mda",
        EnvelopeKind::Mta => "mta",
        EnvelopeKind::Bounce => "bounce",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::format::testutil::sample;

    const NOW: i64 = 1_700_001_000;

    #[test]
    fn pending_line_matches_smtpctl_layout() {
        assert_eq!(
            queue_line(&sample(), RunState::Pending, NOW),
            "1a2b3c4d00000001|inet4|mta||alice@example.org|bob@example.net|\
             robert@example.net|1700000000|1700345600|1700000600|2|pending|500|\
             421 4.7.0 Try again later"
        );
    }

    #[test]
    fn inflight_counts_time_since_the_attempt_began() {
        let line = queue_line(&sample(), RunState::Inflight, NOW);
        assert!(
            line.ends_with("|2|inflight|400|421 4.7.0 Try again later"),
            "{line}"
        );
    }

    #[test]
    fn flags_for_bounce_auth_and_operator_states() {
        let mut env = sample();
        env.kind = EnvelopeKind::Bounce;
        env.sender = None;
        env.auth_user = Some("alice".into());
        env.peer = None;
        env.last_error = None;
        assert_eq!(
            queue_line(&env, RunState::Suspended, NOW),
            "1a2b3c4d00000001|local|bounce|bounce,auth,suspend|@|bob@example.net|\
             robert@example.net|1700000000|1700345600|1700000600|2|pending|500|"
        );
        let held = queue_entry(&sample(), RunState::Held, NOW);
        assert_eq!(held.flags, ["hold"]);
        assert!(held.line().contains("|hold|"));
    }

    #[test]
    fn offline_has_no_delay() {
        let line = queue_line(&sample(), RunState::Offline, NOW);
        assert!(
            line.ends_with("|2|offline||421 4.7.0 Try again later"),
            "{line}"
        );
    }

    #[test]
    fn address_families() {
        assert_eq!(address_family(None), "local");
        assert_eq!(
            address_family(Some("[2001:db8::1]:25".parse().unwrap())),
            "inet6"
        );
        assert_eq!(
            address_family(Some("[::ffff:192.0.2.1]:25".parse().unwrap())),
            "inet4"
        );
    }

    #[test]
    fn hostile_text_cannot_add_fields_or_lines() {
        let mut env = sample();
        env.sender = Some(MailAddr::new("a|b\r\nX|Y", "evil.example"));
        env.last_error = Some("550 no|\r\n1a2b3c4d00000002|inet4".into());
        let line = queue_line(&env, RunState::Pending, NOW);
        assert!(!line.contains(['\r', '\n']), "{line}");
        assert_eq!(line.split('|').count(), 14, "{line}");
        let fields: Vec<_> = line.split('|').collect();
        assert_eq!(fields[4], "a\\x7cb\\r\\nX\\x7cY@evil.example");
        assert_eq!(fields[13], "550 no\\x7c\\r\\n1a2b3c4d00000002\\x7cinet4");
    }

    #[test]
    fn json_keys_and_round_trip() {
        let entry = queue_entry(&sample(), RunState::Pending, NOW);
        let json = serde_json::to_value(&entry).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        for k in [
            "evpid", "af", "type", "flags", "sender", "rcpt", "dest", "ctime", "expire",
            "last_try", "tries", "runstate", "delay", "error",
        ] {
            assert!(keys.iter().any(|x| x == k), "missing {k} in {keys:?}");
        }
        assert_eq!(json["runstate"], "pending");
        assert_eq!(json["delay"], 500);
        let back: QueueEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }
}
