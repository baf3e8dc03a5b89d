//! From a recipient to the envelopes it becomes: match rules, then alias /
//! virtual / userbase expansion, re-matching addresses an alias forwards
//! elsewhere (OpenSMTPD's lka does the same walk).

use std::collections::HashSet;

use crate::config::model::{Config, Method, Verdict};
use crate::envelope::{EnvelopeKind, LocalTarget};
use crate::lka::expand::{self, ExpandError, Expanded};
use crate::lka::rules::{self, MatchContext};
use crate::mailaddr::MailAddr;
use crate::table::Tables;

/// Forwarded addresses are followed at most this deep.
const MAX_FORWARD_DEPTH: usize = 10;

/// One delivery a recipient turned into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub action: String,
    pub kind: EnvelopeKind,
    pub dest: MailAddr,
    pub target: Option<LocalTarget>,
}

/// Why a recipient is refused, with the SMTP reply it earns.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Delivery not authorized, message rejected")]
    NotAuthorized,
    #[error("Invalid recipient: {0}")]
    UnknownUser(String),
    #[error("Expansion loop detected for {0}")]
    Loop(String),
    #[error("Temporary failure in recipient lookup: {0}")]
    Temporary(String),
}

impl Refusal {
    /// (code, enhanced status) for the RCPT reply.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refusal::NotAuthorized => (550, "5.7.1"),
            Refusal::UnknownUser(_) => (550, "5.1.1"),
            Refusal::Loop(_) => (550, "5.4.6"),
            Refusal::Temporary(_) => (451, "4.3.0"),
        }
    }
}

/// Rule matching and expansion over one configuration.
pub struct Resolver<'a> {
    pub config: &'a Config,
    pub tables: &'a Tables,
}

impl Resolver<'_> {
    /// Resolves `ctx.rcpt` into deliveries, or the reason it is refused.
    pub fn resolve(&self, ctx: &MatchContext<'_>) -> Result<Vec<Resolved>, Refusal> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        self.resolve_into(ctx, 0, &mut seen, &mut out)?;
        Ok(out)
    }

    fn resolve_into(
        &self,
        ctx: &MatchContext<'_>,
        depth: usize,
        seen: &mut HashSet<String>,
        out: &mut Vec<Resolved>,
    ) -> Result<(), Refusal> {
        let Some(rcpt) = ctx.rcpt else {
            return Err(Refusal::NotAuthorized);
        };
        let action_name = match rules::verdict(&self.config.matches, ctx, self.tables) {
            Verdict::Action(name) => name,
            Verdict::Reject => return Err(Refusal::NotAuthorized),
        };
        let Some(action) = self.config.actions.get(&action_name) else {
            return Err(Refusal::NotAuthorized);
        };
        if let Method::Relay(_) = action.method {
            out.push(Resolved {
                action: action_name,
                kind: EnvelopeKind::Mta,
                dest: rcpt.clone(),
                target: None,
            });
            return Ok(());
        }
        let expanded = expand::expand(rcpt, action, self.tables, self.config.smtp.sub_addr_delim)
            .map_err(|e| match e {
            ExpandError::UnknownUser(u) => Refusal::UnknownUser(u),
            ExpandError::Loop(a) => Refusal::Loop(a),
            ExpandError::TooDeep => Refusal::Loop(rcpt.to_string()),
            other => Refusal::Temporary(other.to_string()),
        })?;
        for item in expanded {
            match item {
                Expanded::Local { dest, target } => out.push(Resolved {
                    action: action_name.clone(),
                    kind: EnvelopeKind::Mda,
                    dest,
                    target: Some(target),
                }),
                Expanded::Relay(dest) => out.push(Resolved {
                    action: action_name.clone(),
                    kind: EnvelopeKind::Mta,
                    dest,
                    target: None,
                }),
                Expanded::Forward(addr) => {
                    if depth >= MAX_FORWARD_DEPTH || !seen.insert(addr.to_string().to_lowercase()) {
                        return Err(Refusal::Loop(addr.to_string()));
                    }
                    // An alias forwarding elsewhere is mail this host sends on
                    // its own behalf: match it as local mail.
                    let fwd_ctx = MatchContext {
                        src: None,
                        socket: true,
                        rcpt: Some(&addr),
                        ..ctx.clone()
                    };
                    self.resolve_into(&fwd_ctx, depth + 1, seen, out)?;
                }
            }
        }
        Ok(())
    }
}
