//! dnsbl: refuses (or marks as junk) clients listed in DNS blocklists,
//! like OpenSMTPD's filter-dnsbl.
//!
//! Configuration (smtpd.conf, after the filter):
//! - `zone ZONE` — a DNSBL zone; repeat for several, asked in order, the
//!   first listing wins. Zones that are not LDH names are logged and
//!   skipped.
//! - `action reject|junk` — `reject` (default) answers
//!   `554 5.7.1 Client address listed at ZONE: REASON` (the TXT record;
//!   without one the text stops at ZONE); `junk` accepts the session's
//!   mail marked as junk.
//! - `check-local yes|no` — whether loopback, private (RFC 1918, ULA) and
//!   link-local clients are looked up; `no` by default, since public
//!   lists never list them and local clients are the site's own.
//!
//! Subscribes to `connect` only and needs `allow dns`. A lookup error
//! proceeds with a warning (fail open): a broken list must not stop mail.

use std::net::IpAddr;
use std::rc::Rc;

use wasmtpd_filter::{config, dns, log, net, Decision, Filter, Phase, Session, Subscriptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Action {
    #[default]
    Reject,
    Junk,
}

/// The configuration, shared by every session's copy of the value.
#[derive(Default, Clone)]
struct Dnsbl {
    zones: Rc<[String]>,
    action: Action,
    check_local: bool,
}

/// Addresses no public list knows: loopback, private, link-local.
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_local(IpAddr::V4(v4)))
        }
    }
}

/// Keeps the valid zones, naming the others in the returned errors.
fn parse_zones(values: Vec<String>) -> (Vec<String>, Vec<String>) {
    let (good, bad): (Vec<_>, Vec<_>) = values
        .into_iter()
        .map(|z| z.trim().trim_end_matches('.').to_ascii_lowercase())
        .partition(|z| net::valid_zone(z));
    let errors = bad
        .into_iter()
        .map(|z| format!("ignoring invalid zone {:?}", z.escape_debug().to_string()))
        .collect();
    (good, errors)
}

fn parse_action(value: Option<&str>) -> Result<Action, String> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("reject") => Ok(Action::Reject),
        Some("junk") => Ok(Action::Junk),
        Some(other) => Err(format!("unknown action {other:?}, using reject")),
    }
}

/// Longest TXT reason quoted: the reply must stay one sane SMTP line.
const MAX_REASON: usize = 200;

/// The first `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The decision once `zone` listed the client, with the TXT `reason`s.
fn listed_decision(action: Action, zone: &str, reasons: &[String]) -> Decision {
    match action {
        Action::Junk => Decision::Junk,
        Action::Reject => {
            let reason = reasons
                .iter()
                .map(|r| truncate(r.trim(), MAX_REASON))
                .find(|r| !r.is_empty());
            let text = match reason {
                Some(r) => format!("Client address listed at {zone}: {r}"),
                None => format!("Client address listed at {zone}"),
            };
            Decision::reject(554, "5.7.1", text)
        }
    }
}

impl Dnsbl {
    fn check(&self, ip: IpAddr) -> Decision {
        for zone in self.zones.iter() {
            match net::dnsbl_listed(ip, zone) {
                Ok(false) => {}
                Ok(true) => {
                    log::info(&format!("{ip} listed at {zone}"));
                    let reasons = match self.action {
                        Action::Reject => {
                            dns::txt(&net::reverse_name(ip, zone)).unwrap_or_default()
                        }
                        Action::Junk => Vec::new(),
                    };
                    return listed_decision(self.action, zone, &reasons);
                }
                Err(e) => log::warn(&format!("lookup of {ip} at {zone} failed: {e}")),
            }
        }
        Decision::Proceed
    }
}

impl Filter for Dnsbl {
    const PHASES: &'static [Phase] = &[Phase::Connect];

    fn init(&mut self) -> Subscriptions {
        let (zones, errors) = parse_zones(config::get_all("zone"));
        for e in errors {
            log::error(&e);
        }
        if zones.is_empty() {
            log::warn("no zone configured: every client passes");
        }
        self.zones = zones.into();
        self.check_local = matches!(
            config::get("check-local").as_deref().map(str::trim),
            Some("yes") | Some("true")
        );
        self.action = parse_action(config::get("action").as_deref()).unwrap_or_else(|e| {
            log::error(&e);
            Action::Reject
        });
        Self::default_subscriptions()
    }

    /// Connect, whose parameter is the client's address ("local" for a
    /// local sender): the session's record is not even fetched.
    fn on_phase(&mut self, _: &Session, _: Phase, client: &str) -> Decision {
        match net::client_ip(client) {
            Some(ip) if is_local(ip) && !self.check_local => Decision::Proceed,
            Some(ip) => self.check(ip),
            // A local (non-IP) client is nobody a DNSBL knows.
            None => Decision::Proceed,
        }
    }
}

wasmtpd_filter::export_filter!(Dnsbl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_zones_are_skipped_with_a_message() {
        let (good, errors) = parse_zones(vec![
            "zen.spamhaus.org".into(),
            "evil zone;rm".into(),
            "BL.Example.NET.".into(),
        ]);
        assert_eq!(good, ["zen.spamhaus.org", "bl.example.net"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("evil zone;rm"));
    }

    #[test]
    fn local_clients_are_not_looked_up_by_default() {
        for local in [
            "127.0.0.2",
            "10.1.2.3",
            "192.168.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.2",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for public in ["192.0.2.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_local(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn action_defaults_to_reject() {
        assert_eq!(parse_action(None), Ok(Action::Reject));
        assert_eq!(parse_action(Some("Junk")), Ok(Action::Junk));
        assert!(parse_action(Some("drop")).is_err());
    }

    #[test]
    fn reject_text_names_the_zone_and_reason() {
        assert_eq!(
            listed_decision(Action::Reject, "bl.example", &["Listed since 2024".into()]),
            Decision::reject(
                554,
                "5.7.1",
                "Client address listed at bl.example: Listed since 2024"
            )
        );
        assert_eq!(
            listed_decision(Action::Reject, "bl.example", &[]),
            Decision::reject(554, "5.7.1", "Client address listed at bl.example")
        );
        assert_eq!(
            listed_decision(Action::Junk, "bl.example", &[]),
            Decision::Junk
        );
        let long = ["é".repeat(300)];
        let Decision::Reject(reply) = listed_decision(Action::Reject, "z", &long) else {
            panic!("not a reject");
        };
        assert_eq!(reply.text.len(), "Client address listed at z: ".len() + 200);
    }
}
