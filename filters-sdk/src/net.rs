//! Client addresses and DNS blocklist names (RFC 5782), the pure parts:
//! what a DNSBL-style filter needs besides the lookup itself.

use std::net::{IpAddr, SocketAddr};

/// The client's IP from a session address ("192.0.2.7:51234",
/// `"[2001:db8::1]:51234"`, or a bare address). IPv4-mapped IPv6 addresses
/// come back as IPv4.
pub fn client_ip(address: &str) -> Option<IpAddr> {
    let ip = match address.parse::<SocketAddr>() {
        Ok(sa) => sa.ip(),
        Err(_) => address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()?,
    };
    Some(ip.to_canonical())
}

/// The DNSBL query name for `ip` under `zone` (RFC 5782 section 2.1 and
/// 2.4): "7.2.0.192.zone" for 192.0.2.7, 32 reversed nibbles for IPv6.
pub fn reverse_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    name.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                    name.push('.');
                }
            }
            name.push_str(zone);
            name
        }
    }
}

/// Whether `zone` is a plausible DNS name: letters, digits, hyphens and
/// dots only, no empty label, labels of at most 63 and a name of at most
/// 253 characters (a trailing dot is allowed). Zones come from the
/// configuration and end up in queries and reply texts.
pub fn valid_zone(zone: &str) -> bool {
    let zone = zone.strip_suffix('.').unwrap_or(zone);
    !zone.is_empty()
        && zone.len() <= 253
        && zone.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether DNSBL A answers say "listed": an address in 127.0.0.0/8
/// (RFC 5782 section 2.3; other answers are errors of the list).
pub fn listed(answers: &[String]) -> bool {
    answers.iter().any(|a| {
        a.trim()
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.octets()[0] == 127)
    })
}

/// Asks `zone` about `ip` through the host (`allow dns`): `Ok(true)` when
/// listed. Errors are the resolver's; most filters fail open on them.
pub fn dnsbl_listed(ip: IpAddr, zone: &str) -> Result<bool, String> {
    crate::dns::a(&reverse_name(ip, zone)).map(|answers| listed(&answers))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Session, SessionInfo};

    pub(crate) fn session(remote: &str) -> Session {
        Session::from_info(SessionInfo {
            id: "0123456789abcdef".into(),
            tenant: None,
            local_address: "127.0.0.1:25".into(),
            remote_address: remote.into(),
            rdns: None,
            fcrdns: false,
            helo: None,
            tls: None,
            auth_user: None,
            tag: None,
        })
    }

    #[test]
    fn client_ip_reads_both_address_forms() {
        assert_eq!(
            client_ip("192.0.2.7:51234"),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            client_ip("[2001:db8::1]:25"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            client_ip("[::ffff:192.0.2.7]:25"),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(client_ip("192.0.2.7"), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(client_ip("local"), None);
    }

    #[test]
    fn reverse_names_follow_rfc5782() {
        assert_eq!(
            reverse_name("192.0.2.99".parse().unwrap(), "bad.example.com"),
            "99.2.0.192.bad.example.com"
        );
        // RFC 5782 section 2.4's own example.
        assert_eq!(
            reverse_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com."
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com"
        );
    }

    #[test]
    fn zones_are_ldh_names_only() {
        assert!(valid_zone("zen.spamhaus.org"));
        assert!(valid_zone("bl.example-list.net."));
        assert!(!valid_zone(""));
        assert!(!valid_zone("a..b"));
        assert!(!valid_zone("evil.org\r\n"));
        assert!(!valid_zone("x y.org"));
        assert!(!valid_zone(&"a".repeat(64)));
    }

    #[test]
    fn only_loopback_answers_list() {
        assert!(listed(&["127.0.0.2".into()]));
        assert!(listed(&["10.0.0.1".into(), "127.0.0.10".into()]));
        assert!(!listed(&[]));
        assert!(!listed(&["10.0.0.1".into(), "not an ip".into()]));
    }
}
