//! What an attempt tells: each recipient's reply as the scheduler's
//! outcome, and OpenSMTPD's `relay: Ok for …` line per recipient.

use std::net::IpAddr;

use tracing::info;

use crate::envelope::Envelope;
use crate::mailaddr::{display_sender, MailAddr};
use crate::mda::Outcome;
use crate::mta::client::Reply;

/// The connection an attempt used, for its log lines.
#[derive(Default)]
pub(super) struct Via {
    pub session: Option<String>,
    pub source: Option<IpAddr>,
    pub relay: Option<(IpAddr, String)>,
}

pub(super) fn log(env: &Envelope, sender: Option<&MailAddr>, via: &Via, outcome: &Outcome) {
    let (result, stat) = match outcome {
        Outcome::Ok(s) => ("Ok", s),
        Outcome::TempFail(s) => ("TempFail", s),
        Outcome::PermFail(s) => ("PermFail", s),
    };
    let rcpt = if env.rcpt == env.dest {
        "<->".to_string()
    } else {
        format!("<{}>", env.rcpt)
    };
    let relay = match &via.relay {
        Some((addr, name)) => format!("{addr} ({name})"),
        None => "-".into(),
    };
    info!(
        "relay: {result} for {}: session={}, from=<{}>, to=<{}>, rcpt={rcpt}, source={}, relay={relay}, delay={}, stat={stat}",
        env.id,
        via.session.as_deref().unwrap_or("-"),
        display_sender(sender),
        env.dest,
        via.source.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        crate::scheduler::human_delay(chrono::Utc::now().timestamp() - env.created),
    );
}

/// A recipient's reply as the scheduler's outcome.
pub(super) fn outcome_of(reply: &Reply) -> Outcome {
    let text = reply.to_string();
    if reply.is_positive() {
        Outcome::Ok(text)
    } else if reply.is_permanent() {
        Outcome::PermFail(text)
    } else {
        Outcome::TempFail(text)
    }
}
