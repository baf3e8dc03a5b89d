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
    /// The rDNS name is forward-confirmed.
    pub fcrdns: bool,
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

/// Loopback, also as an IPv4-mapped IPv6 address.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
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

/// Whether every condition holds (a builtin filter's `match` part).
pub fn conditions_hold(conds: &[Condition], ctx: &MatchContext<'_>, tables: &Tables) -> bool {
    conds.iter().all(|c| condition_holds(c, ctx, tables))
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
        Cond::Fcrdns => ctx.fcrdns,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use std::path::Path;

    fn verdict_for(conf: &str, ctx: &MatchContext<'_>) -> Verdict {
        let cfg = parse_str(conf, Path::new("test.conf")).expect("config parses");
        let tables = Tables::load_all(&cfg).expect("tables load");
        verdict(&cfg.matches, ctx, &tables)
    }

    const ACTIONS: &str = "action \"a\" maildir\naction \"b\" maildir\n";

    fn ctx<'a>(src: &str, rcpt: &'a MailAddr, local: &'a [String]) -> MatchContext<'a> {
        MatchContext {
            src: Some(src.parse().unwrap()),
            rcpt: Some(rcpt),
            local_domains: local,
            ..Default::default()
        }
    }

    fn local() -> Vec<String> {
        vec!["localhost".into(), "mx.example.org".into()]
    }

    #[test]
    fn no_rule_means_reject_and_defaults_are_local() {
        let local = local();
        let outside = MailAddr::new("x", "elsewhere.example");
        let mine = MailAddr::new("x", "localhost");
        let conf = format!("{ACTIONS}match action \"a\"\n");
        // Without from/for: from local for local.
        assert_eq!(
            verdict_for(&conf, &ctx("127.0.0.1", &mine, &local)),
            Verdict::Action("a".into())
        );
        assert_eq!(
            verdict_for(&conf, &ctx("192.0.2.1", &mine, &local)),
            Verdict::Reject
        );
        assert_eq!(
            verdict_for(&conf, &ctx("127.0.0.1", &outside, &local)),
            Verdict::Reject
        );
    }

    #[test]
    fn first_match_wins_and_negation_works() {
        let local = local();
        let rcpt = MailAddr::new("x", "example.org");
        let conf = format!(
            "{ACTIONS}match from any for domain \"example.org\" !tag \"X\" action \"a\"\n\
             match from any for any action \"b\"\n"
        );
        assert_eq!(
            verdict_for(&conf, &ctx("192.0.2.1", &rcpt, &local)),
            Verdict::Action("a".into())
        );
        let tagged = MatchContext {
            tag: Some("X"),
            ..ctx("192.0.2.1", &rcpt, &local)
        };
        assert_eq!(verdict_for(&conf, &tagged), Verdict::Action("b".into()));
    }

    #[test]
    fn src_tables_wildcard_domains_and_reject_rules() {
        let local = local();
        let sub = MailAddr::new("x", "a.b.example.org");
        let conf = format!(
            "{ACTIONS}table lan {{ 192.0.2.0/24, \"[2001:db8::]/32\" }}\n\
             match from src \"198.51.100.7\" for any reject\n\
             match from src <lan> for domain \"*.example.org\" action \"a\"\n"
        );
        assert_eq!(
            verdict_for(&conf, &ctx("192.0.2.99", &sub, &local)),
            Verdict::Action("a".into())
        );
        assert_eq!(
            verdict_for(&conf, &ctx("2001:db8::5", &sub, &local)),
            Verdict::Action("a".into())
        );
        assert_eq!(
            verdict_for(&conf, &ctx("203.0.113.1", &sub, &local)),
            Verdict::Reject
        );
        assert_eq!(
            verdict_for(&conf, &ctx("198.51.100.7", &sub, &local)),
            Verdict::Reject
        );
    }

    #[test]
    fn tls_auth_and_mail_from() {
        let local = local();
        let rcpt = MailAddr::new("x", "elsewhere.example");
        let sender = MailAddr::new("boss", "example.org");
        let conf = format!(
            "{ACTIONS}match from any auth for any action \"a\"\n\
             match from any mail-from \"@example.org\" tls for any action \"b\"\n"
        );
        let base = ctx("192.0.2.1", &rcpt, &local);
        assert_eq!(verdict_for(&conf, &base), Verdict::Reject);
        let authed = MatchContext {
            auth_user: Some("joe"),
            ..base.clone()
        };
        assert_eq!(verdict_for(&conf, &authed), Verdict::Action("a".into()));
        let from_tls = MatchContext {
            sender: Some(&sender),
            tls: true,
            ..base.clone()
        };
        assert_eq!(verdict_for(&conf, &from_tls), Verdict::Action("b".into()));
        let no_tls = MatchContext {
            sender: Some(&sender),
            ..base
        };
        assert_eq!(verdict_for(&conf, &no_tls), Verdict::Reject);
    }
}
