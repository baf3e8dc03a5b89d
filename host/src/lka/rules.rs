//! `match` rule evaluation: which action (or reject) a recipient gets.
//!
//! Rules are tried in file order and the first whose every condition
//! holds wins; no match means the recipient is refused. As in OpenSMTPD,
//! a rule without a `from` condition means `from local` and one without a
//! `for` condition means `for local` (the parser writes those defaults
//! into the rule), so an open relay needs an explicit `from any for any`
//! — it can never happen by omission.

use std::net::IpAddr;

use regex::Regex;

use crate::config::model::{Cond, Condition, ForCond, FromCond, MatchRule, Pattern, Verdict};
use crate::mailaddr::MailAddr;
use crate::table::Tables;

/// What is known about a transaction when one of its recipients is matched.
#[derive(Clone, Debug, Default)]
pub struct MatchContext<'a> {
    /// Client IP; `None` for the local enqueue socket.
    pub src: Option<IpAddr>,
    /// Came through the local enqueue socket (sendmail).
    pub socket: bool,
    pub rdns: Option<&'a str>,
    pub helo: Option<&'a str>,
    pub auth_user: Option<&'a str>,
    pub tls: bool,
    pub tag: Option<&'a str>,
    pub sender: Option<&'a MailAddr>,
    pub rcpt: Option<&'a MailAddr>,
    /// Domains this host considers local (`for local`): localhost, the
    /// hostname and each listener's hostname, lowercase.
    pub local_domains: &'a [String],
}

impl MatchContext<'_> {
    /// `from local`: loopback clients and the enqueue socket.
    fn is_from_local(&self) -> bool {
        self.socket || self.src.is_some_and(is_loopback)
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The first rule that matches, or `None` (the recipient is refused).
pub fn first_match<'r>(
    rules: &'r [MatchRule],
    ctx: &MatchContext<'_>,
    tables: &Tables,
) -> Option<&'r MatchRule> {
    rules.iter().find(|rule| rule_matches(rule, ctx, tables))
}

/// The verdict for a recipient: `Reject` when no rule matches.
pub fn verdict(rules: &[MatchRule], ctx: &MatchContext<'_>, tables: &Tables) -> Verdict {
    first_match(rules, ctx, tables)
        .map(|r| r.verdict.clone())
        .unwrap_or(Verdict::Reject)
}

fn rule_matches(rule: &MatchRule, ctx: &MatchContext<'_>, tables: &Tables) -> bool {
    let has_from = rule
        .conditions
        .iter()
        .any(|c| matches!(c.cond, Cond::From(_)));
    let has_for = rule
        .conditions
        .iter()
        .any(|c| matches!(c.cond, Cond::For(_)));
    if !has_from && !ctx.is_from_local() {
        return false;
    }
    if !has_for && !for_local(ctx) {
        return false;
    }
    rule.conditions
        .iter()
        .all(|c| condition_holds(c, ctx, tables))
}

fn condition_holds(c: &Condition, ctx: &MatchContext<'_>, tables: &Tables) -> bool {
    cond_holds(&c.cond, ctx, tables) != c.negated
}

fn cond_holds(cond: &Cond, ctx: &MatchContext<'_>, tables: &Tables) -> bool {
    match cond {
        Cond::From(f) => from_holds(f, ctx, tables),
        Cond::For(f) => for_holds(f, ctx, tables),
        Cond::Auth(p) => auth_holds(p.as_ref(), ctx, tables),
        Cond::Helo(p) => ctx
            .helo
            .is_some_and(|h| string_matches(p, h, tables, Kind::Domain)),
        Cond::MailFrom(p) => sender_matches(p, ctx, tables),
        Cond::RcptTo(p) => ctx.rcpt.is_some_and(|r| addr_matches(p, r, tables)),
        Cond::Tag(p) => ctx
            .tag
            .is_some_and(|t| string_matches(p, t, tables, Kind::Plain)),
        Cond::Tls => ctx.tls,
    }
}

fn from_holds(f: &FromCond, ctx: &MatchContext<'_>, tables: &Tables) -> bool {
    match f {
        FromCond::Any => true,
        FromCond::Local => ctx.is_from_local(),
        FromCond::Socket => ctx.socket,
        FromCond::Auth(p) => auth_holds(p.as_ref(), ctx, tables),
        FromCond::MailFrom(p) => sender_matches(p, ctx, tables),
        FromCond::Rdns(None) => ctx.rdns.is_some(),
        FromCond::Rdns(Some(p)) => ctx
            .rdns
            .is_some_and(|n| string_matches(p, n, tables, Kind::Domain)),
        FromCond::Src(p) => ctx.src.is_some_and(|ip| src_matches(p, ip, tables)),
    }
}

fn for_holds(f: &ForCond, ctx: &MatchContext<'_>, tables: &Tables) -> bool {
    let Some(rcpt) = ctx.rcpt else { return false };
    match f {
        ForCond::Any => true,
        ForCond::Local => for_local(ctx),
        ForCond::Domain(p) => string_matches(p, &rcpt.domain, tables, Kind::Domain),
        ForCond::RcptTo(p) => addr_matches(p, rcpt, tables),
    }
}

fn for_local(ctx: &MatchContext<'_>) -> bool {
    ctx.rcpt.is_some_and(|r| {
        let d = r.domain_lc();
        ctx.local_domains.contains(&d)
    })
}

fn auth_holds(p: Option<&Pattern>, ctx: &MatchContext<'_>, tables: &Tables) -> bool {
    match (ctx.auth_user, p) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(user), Some(p)) => string_matches(p, user, tables, Kind::Plain),
    }
}

fn sender_matches(p: &Pattern, ctx: &MatchContext<'_>, tables: &Tables) -> bool {
    match ctx.sender {
        Some(s) => addr_matches(p, s, tables),
        // The null sender only matches an explicit empty literal.
        None => matches!(p, Pattern::Literal(l) if l.is_empty() || l == "<>"),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Plain,
    Domain,
}

fn string_matches(p: &Pattern, value: &str, tables: &Tables, kind: Kind) -> bool {
    match p {
        Pattern::Literal(l) => match kind {
            Kind::Domain => crate::table::domain_matches(value, l),
            Kind::Plain => l == value,
        },
        Pattern::Table(t) => tables.get(t).is_some_and(|t| match kind {
            Kind::Domain => t.match_domain(value),
            Kind::Plain => t.contains(value),
        }),
        Pattern::Regex(re) => regex_matches(re, value),
        Pattern::RegexTable(t) => tables
            .get(t)
            .is_some_and(|t| t.entries().any(|(k, _)| regex_matches(k, value))),
    }
}

fn addr_matches(p: &Pattern, addr: &MailAddr, tables: &Tables) -> bool {
    match p {
        Pattern::Literal(l) => crate::table::mailaddr_matches(l, addr, '+'),
        Pattern::Table(t) => tables.get(t).is_some_and(|t| t.match_mailaddr(addr)),
        Pattern::Regex(_) | Pattern::RegexTable(_) => {
            string_matches(p, &addr.to_string(), tables, Kind::Plain)
        }
    }
}

fn src_matches(p: &Pattern, ip: IpAddr, tables: &Tables) -> bool {
    match p {
        Pattern::Literal(l) => crate::table::netaddr_matches(l, ip),
        Pattern::Table(t) => tables.get(t).is_some_and(|t| t.match_netaddr(ip)),
        Pattern::Regex(_) | Pattern::RegexTable(_) => {
            string_matches(p, &ip.to_string(), tables, Kind::Plain)
        }
    }
}

fn regex_matches(re: &str, value: &str) -> bool {
    // Patterns were validated at load time; one that still fails to
    // compile simply never matches.
    Regex::new(re).is_ok_and(|r| r.is_match(value))
}
