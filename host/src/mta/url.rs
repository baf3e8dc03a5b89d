//! Relay URLs, the `host` option of a relay action (smtpd.conf(5)):
//! `[proto://[label@]]host[:port]`, printed back as
//! `smtp+tls://label@host:587`.
//!
//! Parsing follows OpenSMTPD's `text_to_relayhost`: the scheme is matched
//! case-insensitively, a missing scheme means `smtp://`, and a credentials
//! label is refused on a scheme that does not guarantee TLS (the password
//! would otherwise cross the network in clear).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// How the client talks to the relay host, and what TLS it insists on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `smtp`: STARTTLS when offered, clear text otherwise.
    Smtp,
    /// `smtp+tls`: STARTTLS or fail.
    SmtpTls,
    /// `smtp+notls`: never TLS.
    SmtpNoTls,
    /// `smtps`: TLS from the first byte.
    Smtps,
    /// `lmtp`: LMTP (RFC 2033), no TLS.
    Lmtp,
}

impl Scheme {
    const ALL: [Scheme; 5] = [
        Scheme::Smtp,
        Scheme::SmtpTls,
        Scheme::SmtpNoTls,
        Scheme::Smtps,
        Scheme::Lmtp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Smtp => "smtp",
            Scheme::SmtpTls => "smtp+tls",
            Scheme::SmtpNoTls => "smtp+notls",
            Scheme::Smtps => "smtps",
            Scheme::Lmtp => "lmtp",
        }
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Smtps => 465,
            Scheme::Lmtp => 24,
            _ => 25,
        }
    }

    /// Whether the session is sure to be encrypted before AUTH.
    pub fn requires_tls(self) -> bool {
        matches!(self, Scheme::SmtpTls | Scheme::Smtps)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("unknown scheme {0:?} (smtp, smtp+tls, smtp+notls, smtps, lmtp)")]
    UnknownScheme(String),
    #[error("empty credentials label")]
    EmptyLabel,
    #[error("a credentials label needs smtp+tls or smtps, not {0}")]
    LabelWithoutTls(Scheme),
    #[error("empty host")]
    EmptyHost,
    #[error("bad host {0:?}")]
    BadHost(String),
    #[error("bad port {0:?}")]
    BadPort(String),
}

/// A parsed relay URL. `host` is a name or an IP address, without the
/// brackets an IPv6 address is written in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelayUrl {
    pub scheme: Scheme,
    /// Key in the relay's `auth <table>` (credentials table).
    pub label: Option<String>,
    pub host: String,
    pub port: u16,
}

impl RelayUrl {
    /// The host as an address when it is one (no DNS needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl FromStr for RelayUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<RelayUrl, UrlError> {
        let (scheme, rest) = match s.split_once("://") {
            None => (Scheme::Smtp, s),
            Some((name, rest)) => {
                let scheme = Scheme::ALL
                    .into_iter()
                    .find(|sc| sc.as_str().eq_ignore_ascii_case(name))
                    .ok_or_else(|| UrlError::UnknownScheme(name.to_string()))?;
                (scheme, rest)
            }
        };
        // The label is what precedes the last '@': a host never holds one.
        let (label, hostport) = match rest.rsplit_once('@') {
            None => (None, rest),
            Some(("", _)) => return Err(UrlError::EmptyLabel),
            Some((label, hostport)) => (Some(label.to_string()), hostport),
        };
        if label.is_some() && !scheme.requires_tls() {
            return Err(UrlError::LabelWithoutTls(scheme));
        }
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            None => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(UrlError::BadPort(p.to_string())),
            },
        };
        Ok(RelayUrl {
            scheme,
            label,
            host,
            port,
        })
    }
}

/// `name[:port]`, `a.b.c.d[:port]`, `[v6][:port]`, `[IPv6:v6][:port]`,
/// `[a.b.c.d][:port]`.
fn split_host_port(s: &str) -> Result<(String, Option<&str>), UrlError> {
    if let Some(inner) = s.strip_prefix('[') {
        let (lit, after) = inner
            .split_once(']')
            .ok_or_else(|| UrlError::BadHost(s.to_string()))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| UrlError::BadHost(s.to_string()))?,
            ),
        };
        let v6 = lit
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("IPv6:"))
            .map_or(lit, |_| &lit[5..]);
        let ip: IpAddr = match v6.parse::<Ipv6Addr>() {
            Ok(a) => a.into(),
            Err(_) if v6.len() == lit.len() => lit
                .parse()
                .map_err(|_| UrlError::BadHost(lit.to_string()))?,
            Err(_) => return Err(UrlError::BadHost(lit.to_string())),
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match s.split_once(':') {
        None => (s, None),
        Some((h, p)) => (h, Some(p)),
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    if host.parse::<IpAddr>().is_err() && !crate::dns::valid_name(host) {
        return Err(UrlError::BadHost(host.to_string()));
    }
    Ok((host.to_string(), port))
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(label) = &self.label {
            write!(f, "{label}@")?;
        }
        match self.host.parse::<Ipv6Addr>() {
            Ok(v6) => write!(f, "[{v6}]")?,
            Err(_) => f.write_str(&self.host)?,
        }
        write!(f, ":{}", self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RelayUrl {
        s.parse().unwrap()
    }

    #[test]
    fn scheme_label_host_port() {
        let u = url("smtp+tls://label@mail.example.org:587");
        assert_eq!(u.scheme, Scheme::SmtpTls);
        assert_eq!(u.label.as_deref(), Some("label"));
        assert_eq!(u.host, "mail.example.org");
        assert_eq!(u.port, 587);
        assert_eq!(u.to_string(), "smtp+tls://label@mail.example.org:587");
    }

    #[test]
    fn default_ports_by_scheme() {
        assert_eq!(url("mail.example.org").port, 25);
        assert_eq!(url("smtp://mail.example.org").port, 25);
        assert_eq!(url("smtp+tls://x").port, 25);
        assert_eq!(url("smtp+notls://x").port, 25);
        assert_eq!(url("smtps://x").port, 465);
        assert_eq!(url("lmtp://x").port, 24);
    }

    #[test]
    fn no_scheme_is_opportunistic_smtp() {
        let u = url("127.0.0.1:10024");
        assert_eq!(u.scheme, Scheme::Smtp);
        assert_eq!(u.ip(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(u.to_string(), "smtp://127.0.0.1:10024");
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(url("SMTPS://x").scheme, Scheme::Smtps);
    }

    #[test]
    fn ipv6_in_brackets() {
        let u = url("smtps://[2001:db8::1]:4650");
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.port, 4650);
        assert_eq!(u.ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(u.to_string(), "smtps://[2001:db8::1]:4650");
        assert_eq!(url("[IPv6:::1]").host, "::1");
        assert_eq!(url("[192.0.2.1]:26").host, "192.0.2.1");
        assert_eq!(url("[::1]").port, 25);
    }

    #[test]
    fn names_are_not_addresses() {
        assert_eq!(url("mx.example").ip(), None);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let err = |s: &str| s.parse::<RelayUrl>().unwrap_err();
        assert_eq!(err("http://x"), UrlError::UnknownScheme("http".into()));
        assert_eq!(err("smtp://"), UrlError::EmptyHost);
        assert_eq!(err("smtp://:25"), UrlError::EmptyHost);
        assert_eq!(err("x:0"), UrlError::BadPort("0".into()));
        assert_eq!(err("x:65536"), UrlError::BadPort("65536".into()));
        assert_eq!(err("x:+25"), UrlError::BadPort("+25".into()));
        assert_eq!(err("x:"), UrlError::BadPort("".into()));
        assert_eq!(err("x:25:26"), UrlError::BadPort("25:26".into()));
        assert_eq!(err("bad host"), UrlError::BadHost("bad host".into()));
        assert_eq!(err("a..b"), UrlError::BadHost("a..b".into()));
        assert_eq!(err("[::1"), UrlError::BadHost("[::1".into()));
        assert_eq!(err("[::1]25"), UrlError::BadHost("[::1]25".into()));
        assert_eq!(err("[nope]"), UrlError::BadHost("nope".into()));
        assert_eq!(err("smtps://@x"), UrlError::EmptyLabel);
        assert!(err("smtp://x:99999").to_string().contains("bad port"));
    }

    #[test]
    fn label_needs_a_tls_scheme() {
        let err = |s: &str| s.parse::<RelayUrl>().unwrap_err();
        assert_eq!(err("smtp://l@x"), UrlError::LabelWithoutTls(Scheme::Smtp));
        assert_eq!(err("l@x"), UrlError::LabelWithoutTls(Scheme::Smtp));
        assert_eq!(
            err("smtp+notls://l@x"),
            UrlError::LabelWithoutTls(Scheme::SmtpNoTls)
        );
        assert_eq!(
            err("lmtp://l@x:24"),
            UrlError::LabelWithoutTls(Scheme::Lmtp)
        );
        assert_eq!(url("smtps://l@x").label.as_deref(), Some("l"));
    }
}
