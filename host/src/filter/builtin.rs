//! OpenSMTPD's builtin filters (`filter NAME phase P match [!]COND…
//! DECISION`), run by the host: the conditions are those of `match`
//! rules, evaluated against the session as the filter sees it.

use std::net::SocketAddr;
use std::sync::Arc;

use super::bindings::{Decision, Phase, Reply, Session};
use super::chain::{phase_name, ALL_PHASES};
use super::stats::FilterStats;
use crate::config::model::{BuiltinDecision, BuiltinFilter, Condition};
use crate::lka::rules::{conditions_hold, MatchContext};
use crate::mailaddr::MailAddr;
use crate::table::Tables;

pub struct Builtin {
    pub name: String,
    phase: Phase,
    conditions: Vec<Condition>,
    decision: BuiltinDecision,
    tables: Arc<Tables>,
    /// `filter.<name>.calls` and `.rejects`.
    stats: FilterStats,
}

impl Builtin {
    pub fn new(name: &str, def: &BuiltinFilter, tables: Arc<Tables>) -> Option<Builtin> {
        Some(Builtin {
            name: name.to_string(),
            phase: phase_named(&def.phase)?,
            conditions: def.conditions.clone(),
            decision: def.decision.clone(),
            tables,
            stats: FilterStats::default(),
        })
    }

    pub fn stats(&self) -> &FilterStats {
        &self.stats
    }

    /// Counts this filter's evaluations and rejections in `stats`.
    pub fn with_stats(mut self, stats: FilterStats) -> Builtin {
        self.stats = stats;
        self
    }

    /// The decision when this is its phase and every condition holds.
    pub fn decide(&self, phase: Phase, param: &str, session: &Session) -> Option<Decision> {
        let same_phase = phase == self.phase || (self.phase == Phase::Helo && phase == Phase::Ehlo);
        if !same_phase {
            return None;
        }
        self.stats.calls.inc();
        let src = session
            .remote_address
            .parse::<SocketAddr>()
            .ok()
            .map(|a| a.ip());
        let addr = match phase {
            Phase::MailFrom | Phase::RcptTo => MailAddr::parse(param).ok(),
            _ => None,
        };
        let ctx = MatchContext {
            src,
            // The enqueue socket's sessions show `local` as their address.
            socket: session.remote_address == "local",
            rdns: session.rdns.as_deref(),
            fcrdns: session.fcrdns,
            helo: session.helo.as_deref().or(match phase {
                Phase::Helo | Phase::Ehlo => Some(param),
                _ => None,
            }),
            auth_user: session.auth_user.as_deref(),
            tls: session.tls.is_some(),
            tag: session.tag.as_deref(),
            sender: if phase == Phase::MailFrom {
                addr.as_ref()
            } else {
                None
            },
            rcpt: if phase == Phase::RcptTo {
                addr.as_ref()
            } else {
                None
            },
            ..MatchContext::default()
        };
        if !conditions_hold(&self.conditions, &ctx, &self.tables) {
            return None;
        }
        Some(match &self.decision {
            BuiltinDecision::Bypass => Decision::Bypass,
            BuiltinDecision::Junk => Decision::Junk,
            BuiltinDecision::Reject(text) => Decision::Reject(reply(text, 550)),
            BuiltinDecision::Disconnect(text) => Decision::Disconnect(reply(text, 421)),
            BuiltinDecision::Rewrite(v) => Decision::Rewrite(v.clone()),
            // Reports go to the log; nothing downstream consumes them yet.
            BuiltinDecision::Report(v) => {
                tracing::info!("filter {}: report: {v}", self.name);
                Decision::Proceed
            }
        })
    }
}

/// "550 5.7.1 go away", "550 go away" or just "go away".
fn reply(text: &str, default_code: u16) -> Reply {
    let mut words = text.splitn(2, ' ');
    let first = words.next().unwrap_or("");
    let (code, rest) = match first.parse::<u16>() {
        Ok(c) if (400..600).contains(&c) => (c, words.next().unwrap_or("").to_string()),
        _ => (default_code, text.to_string()),
    };
    let (enhanced, text) = match rest.split_once(' ') {
        Some((e, t))
            if e.split('.').count() == 3 && e.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            (Some(e.to_string()), t.to_string())
        }
        _ => (None, rest),
    };
    Reply {
        code,
        enhanced,
        text,
    }
}

fn phase_named(name: &str) -> Option<Phase> {
    ALL_PHASES.into_iter().find(|p| phase_name(*p) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_keep_their_code_and_enhanced_status() {
        let r = reply("550 5.7.1 go away", 550);
        assert_eq!(
            (r.code, r.enhanced.as_deref(), r.text.as_str()),
            (550, Some("5.7.1"), "go away")
        );
        let r = reply("no rDNS", 421);
        assert_eq!(
            (r.code, r.enhanced, r.text.as_str()),
            (421, None, "no rDNS")
        );
    }
}
