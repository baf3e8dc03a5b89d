//! The envelope: one recipient of one message, as the queue stores it and
//! the scheduler, mda and mta act on it (OpenSMTPD's `struct envelope`).
//!
//! Every recipient is its own envelope so each is delivered, retried,
//! bounced and removed independently.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::mailaddr::MailAddr;

/// A random 32-bit message id, shown as 8 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MsgId(pub u32);

/// A 64-bit envelope id whose high 32 bits are the message id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EvpId(pub u64);

impl MsgId {
    pub fn random() -> MsgId {
        loop {
            let v: u32 = rand::random();
            if v != 0 {
                return MsgId(v);
            }
        }
    }
    pub fn parse(s: &str) -> Option<MsgId> {
        if s.len() != 8 {
            return None;
        }
        u32::from_str_radix(s, 16).ok().map(MsgId)
    }
}

impl EvpId {
    /// A fresh envelope id inside `msg`.
    pub fn new_in(msg: MsgId) -> EvpId {
        let low: u32 = loop {
            let v: u32 = rand::random();
            if v != 0 {
                break v;
            }
        };
        EvpId(((msg.0 as u64) << 32) | low as u64)
    }
    pub fn msgid(self) -> MsgId {
        MsgId((self.0 >> 32) as u32)
    }
    pub fn parse(s: &str) -> Option<EvpId> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(EvpId)
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Display for EvpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What kind of work an envelope waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvelopeKind {
    /// Local delivery by an mda action (maildir, mbox, lmtp, mda command).
    Mda,
    /// Relay to another host.
    Mta,
    /// A bounce (DSN) still to be generated for this failed envelope.
    Bounce,
}

/// DSN parameters from MAIL FROM / RCPT TO (RFC 3461), stored as given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsnParams {
    /// RET=FULL|HDRS
    pub ret: Option<String>,
    /// ENVID=xtext
    pub envid: Option<String>,
    /// NOTIFY=NEVER|SUCCESS,FAILURE,DELAY
    pub notify: Option<String>,
    /// ORCPT=addr-type;xtext
    pub orcpt: Option<String>,
}

/// Where a local recipient's mail ends up, once aliases, virtual tables
/// and the userbase are expanded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalTarget {
    /// A system or virtual user: deliver with the action's method.
    User {
        username: String,
        uid: u32,
        gid: u32,
        home: String,
    },
    /// An alias `/path`: append to that mbox file.
    File {
        path: String,
        user: String,
        uid: u32,
        gid: u32,
        home: String,
    },
    /// An alias `|command`: pipe the message to it.
    Command {
        command: String,
        user: String,
        uid: u32,
        gid: u32,
        home: String,
    },
}

/// One recipient of one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: EvpId,
    pub kind: EnvelopeKind,
    /// Name of the `action` this recipient matched.
    pub action: String,
    /// Envelope sender; `None` is the null sender `<>` (a bounce).
    pub sender: Option<MailAddr>,
    /// The recipient as given in RCPT TO.
    pub rcpt: MailAddr,
    /// The address after expansion (alias/virtual), what delivery targets.
    pub dest: MailAddr,
    /// For local delivery: who/what receives the message.
    pub target: Option<LocalTarget>,
    pub dsn: DsnParams,
    /// Tag of the listener or match that accepted the message.
    pub tag: Option<String>,
    pub helo: String,
    /// Client address and resolved name, for Received: and logs.
    pub peer: Option<SocketAddr>,
    pub peer_name: String,
    /// Hostname of the listener that received the message.
    pub hostname: String,
    /// Authenticated user, if any.
    pub auth_user: Option<String>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds after which a temporary failure becomes permanent.
    pub expire: i64,
    pub tries: u32,
    pub last_try: i64,
    pub next_try: i64,
    pub last_error: Option<String>,
    /// For bounces: the failure that caused it.
    pub bounce_reason: Option<String>,
    /// Marked as junk by a filter (maildir `junk` delivers to `.Junk`).
    pub junk: bool,
    /// Delay warnings already sent to the sender (`bounce warn-interval`).
    #[serde(default)]
    pub warnings: u32,
}

impl Envelope {
    pub fn msgid(&self) -> MsgId {
        self.id.msgid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_nest() {
        let m = MsgId::random();
        let e = EvpId::new_in(m);
        assert_eq!(e.msgid(), m);
        assert_eq!(MsgId::parse(&m.to_string()), Some(m));
        assert_eq!(EvpId::parse(&e.to_string()), Some(e));
        assert_eq!(m.to_string().len(), 8);
        assert_eq!(e.to_string().len(), 16);
    }
}
