//! What the daemon answers, as data: the server fills these in, the
//! client prints them as smtpctl's text or as JSON (`--json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::mta::relay::{DestinationReport, IdleReport};

/// `show status`: what runs and what is paused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub mda: bool,
    pub mta: bool,
    pub smtp: bool,
    /// `log verbose` is on.
    pub verbose: bool,
    /// Subsystems traced.
    pub traces: Vec<String>,
}

impl Status {
    /// smtpctl's lines: `MDA running`, `MTA paused`, …
    pub fn text(&self) -> String {
        let word = |running: bool| if running { "running" } else { "paused" };
        let mut out = format!(
            "MDA {}\nMTA {}\nSMTP {}\n",
            word(self.mda),
            word(self.mta),
            word(self.smtp)
        );
        out += &format!("log {}\n", if self.verbose { "verbose" } else { "brief" });
        if !self.traces.is_empty() {
            out += &format!("tracing {}\n", self.traces.join(" "));
        }
        out
    }
}

/// `show filters`: one wasm filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterView {
    pub name: String,
    /// Failing repeatedly: its tenant's sessions get its `on-error`
    /// answer without the filter being run.
    pub quarantined: bool,
    /// Its statistics (`calls`, `traps`, `fuel`, …), by the last part of
    /// the `filter.NAME.*` key.
    pub stats: BTreeMap<String, serde_json::Value>,
}

impl FilterView {
    /// `NAME active|quarantined key=value …`
    pub fn line(&self) -> String {
        let mut out = format!(
            "{} {}",
            self.name,
            if self.quarantined {
                "quarantined"
            } else {
                "active"
            }
        );
        for (k, v) in &self.stats {
            out += &format!(" {k}={v}");
        }
        out
    }
}

/// `show message ID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub msgid: String,
    /// The message as queued, in base64 (it need not be UTF-8).
    pub content_b64: String,
}

/// What a steering verb did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// smtpctl's confirmation line.
    pub message: String,
    /// How many envelopes it touched, when it is about envelopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

impl Done {
    pub fn new(message: impl Into<String>) -> Done {
        Done {
            message: message.into(),
            count: None,
        }
    }

    pub fn counted(count: usize, message: impl Into<String>) -> Done {
        Done {
            message: message.into(),
            count: Some(count),
        }
    }
}

/// `show relays`: a destination's line.
pub fn destination_line(d: &DestinationReport) -> String {
    let mut out = format!(
        "{} connections={}/{}",
        d.destination, d.connections, d.limit
    );
    if let Some(secs) = d.held_for {
        out += &format!(
            " held={} failures={} error=\"{}\"",
            crate::scheduler::human_delay(secs as i64),
            d.failures,
            super::format::escape_field(d.error.as_deref().unwrap_or(""))
        );
    }
    out
}

/// `show routes`: idle connections kept for one host and settings.
pub fn route_line(r: &IdleReport) -> String {
    format!(
        "{}://{}:{} ({}) helo={} action={} idle={}",
        r.scheme, r.addr, r.port, r.name, r.helo, r.action, r.idle
    )
}

/// `show hosts`: idle connections per host address.
pub fn host_lines(routes: &[IdleReport]) -> String {
    let mut hosts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in routes {
        *hosts.entry((&r.addr, &r.name)).or_default() += r.idle;
    }
    hosts
        .iter()
        .map(|((addr, name), idle)| format!("{addr} {name} idle={idle}\n"))
        .collect()
}
