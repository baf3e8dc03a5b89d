//! The control socket's protocol: one JSON object per line each way.
//!
//! A client writes a [`Request`] line and reads one [`Response`] line,
//! and may go on with another request on the same connection (`monitor`
//! asks for the statistics each second). `enqueue` is the exception:
//! after its `{"ok":true}` the connection carries an SMTP session, as
//! OpenSMTPD's `smtpctl enqueue` gets one from its control process.
//!
//! JSON keeps the protocol readable with `socat` and stable for scripts;
//! the verbs are smtpctl(8)'s.

use serde::{Deserialize, Serialize};

/// Longest request line the daemon reads.
pub const MAX_REQUEST: usize = 8 * 1024;

/// Longest response line a client reads (a big queue listing).
pub const MAX_RESPONSE: usize = 1 << 30;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Request {
    ShowQueue,
    ShowEnvelope { id: String },
    ShowMessage { id: String },
    ShowStats,
    ShowStatus,
    ShowFilters,
    ShowHosts,
    ShowRoutes,
    ShowRelays,
    Trace { subsystem: String },
    Untrace { subsystem: String },
    LogVerbose,
    LogBrief,
    Pause { what: Subject },
    Resume { what: Subject },
    Schedule { id: String },
    Remove { id: String },
    Discover { id: String },
    UpdateTable { name: String },
    ReloadFilter { name: String },
    Enqueue,
}

/// What `pause` and `resume` act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subject {
    Mda,
    Mta,
    Smtp,
    Envelope(String),
}

impl Request {
    /// Whether the verb only reads, and so is open to every local user
    /// (as OpenSMTPD lets anyone run `smtpctl show stats` and enqueue
    /// mail). Anything that shows envelopes or messages, or changes what
    /// the daemon does, needs root or the daemon's user or group.
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            Request::ShowStats | Request::ShowStatus | Request::ShowFilters | Request::Enqueue
        )
    }

    /// Whether the verb changes what the daemon does (logged, as an
    /// operator's action) rather than only showing something.
    pub fn steers(&self) -> bool {
        !matches!(
            self,
            Request::ShowQueue
                | Request::ShowEnvelope { .. }
                | Request::ShowMessage { .. }
                | Request::ShowStats
                | Request::ShowStatus
                | Request::ShowFilters
                | Request::ShowHosts
                | Request::ShowRoutes
                | Request::ShowRelays
        )
    }

    /// The verb as smtpctl spells it, for logs.
    pub fn verb(&self) -> String {
        let tag = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("verb").and_then(|v| v.as_str()).map(str::to_string))
            .unwrap_or_default();
        tag.replace('-', " ")
    }
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Ok {
        ok: Yes,
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        data: serde_json::Value,
    },
    Err {
        ok: No,
        error: String,
    },
}

/// `true` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Yes;
/// `false` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct No;

macro_rules! bool_marker {
    ($t:ident, $v:expr) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bool($v)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if bool::deserialize(d)? == $v {
                    Ok($t)
                } else {
                    Err(serde::de::Error::custom("wrong ok value"))
                }
            }
        }
    };
}
bool_marker!(Yes, true);
bool_marker!(No, false);

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        Response::Ok {
            ok: Yes,
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }

    pub fn done() -> Response {
        Response::Ok {
            ok: Yes,
            data: serde_json::Value::Null,
        }
    }

    pub fn error(why: impl Into<String>) -> Response {
        Response::Err {
            ok: No,
            error: why.into(),
        }
    }

    /// The line to write, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"ok":false,"error":"the answer could not be encoded"}"#.to_string()
        });
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_smtpctl_verbs_in_json() {
        let r: Request = serde_json::from_str(r#"{"verb":"show-queue"}"#).unwrap();
        assert_eq!(r, Request::ShowQueue);
        let r: Request =
            serde_json::from_str(r#"{"verb":"pause","what":{"envelope":"0badcafe"}}"#).unwrap();
        assert_eq!(
            r,
            Request::Pause {
                what: Subject::Envelope("0badcafe".into())
            }
        );
        let r: Request = serde_json::from_str(r#"{"verb":"resume","what":"mta"}"#).unwrap();
        assert_eq!(r.verb(), "resume");
        assert!(serde_json::from_str::<Request>(r#"{"verb":"rm -rf"}"#).is_err());
    }

    #[test]
    fn only_reading_verbs_are_public() {
        assert!(Request::ShowStats.is_public());
        assert!(Request::Enqueue.is_public());
        assert!(!Request::ShowQueue.is_public());
        assert!(!Request::Remove { id: "all".into() }.is_public());
    }

    #[test]
    fn responses_round_trip() {
        let line = Response::ok(vec![1, 2]).to_line();
        assert_eq!(line, "{\"ok\":true,\"data\":[1,2]}\n");
        assert_eq!(
            serde_json::from_str::<Response>(&line).unwrap(),
            Response::ok(vec![1, 2])
        );
        let line = Response::error("no such envelope").to_line();
        assert_eq!(line, "{\"ok\":false,\"error\":\"no such envelope\"}\n");
        assert_eq!(
            serde_json::from_str::<Response>("{\"ok\":true}").unwrap(),
            Response::done()
        );
    }
}
