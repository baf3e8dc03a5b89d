//! The daemon's DNS resolver (hickory), shared by the filters' `host-dns`
//! capability and, later, relay MX lookups.
//!
//! It reads /etc/resolv.conf unless the daemon was told a name server
//! (`--nameserver IP:PORT`, which the tests use to reach a DNS server on
//! loopback).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

/// How long one query may take, all attempts included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The record types a caller may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    A,
    Aaaa,
    Txt,
    Mx,
    Ptr,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot set up the resolver: {0}")]
    Setup(String),
    #[error("invalid domain name")]
    BadName,
    #[error("{0}")]
    Lookup(String),
}

pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// The system's resolver, or `nameserver` alone when given.
    pub fn new(nameserver: Option<SocketAddr>) -> Result<Dns, DnsError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = QUERY_TIMEOUT / 2;
        opts.attempts = 2;
        // Names are fully qualified: no search list, no ndots games.
        opts.ndots = 0;
        let builder = match nameserver {
            Some(ns) => {
                let group = NameServerConfigGroup::from_ips_clear(&[ns.ip()], ns.port(), true);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], group),
                    TokioConnectionProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| DnsError::Setup(e.to_string()))?,
        };
        Ok(Dns {
            resolver: builder.with_options(opts).build(),
        })
    }

    /// Records as text: addresses, TXT strings joined, "PREF HOST" for MX,
    /// names for PTR. A name or record that does not exist is an empty
    /// list, not an error.
    pub async fn lookup(&self, name: &str, kind: Kind) -> Result<Vec<String>, DnsError> {
        if !valid_name(name) {
            return Err(DnsError::BadName);
        }
        let rtype = match kind {
            Kind::A => RecordType::A,
            Kind::Aaaa => RecordType::AAAA,
            Kind::Txt => RecordType::TXT,
            Kind::Mx => RecordType::MX,
            Kind::Ptr => RecordType::PTR,
        };
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let lookup =
            match tokio::time::timeout(QUERY_TIMEOUT, self.resolver.lookup(fqdn, rtype)).await {
                Err(_) => return Err(DnsError::Lookup("timed out".into())),
                Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => return Ok(Vec::new()),
                Ok(Err(e)) => return Err(DnsError::Lookup(e.to_string())),
                Ok(Ok(l)) => l,
            };
        Ok(lookup
            .record_iter()
            .filter(|r| r.record_type() == rtype)
            .filter_map(|r| text_of(r.data()))
            .collect())
    }
}

fn text_of(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::TXT(t) => t
            .txt_data()
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .concat(),
        RData::MX(mx) => format!("{} {}", mx.preference(), mx.exchange()),
        RData::PTR(p) => p.0.to_string(),
        _ => return None,
    })
}

/// Letters, digits, hyphens, underscores and dots, 253 octets at most:
/// what a lookup name can hold, and nothing a filter could smuggle.
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_filter_may_look_up() {
        assert!(valid_name("2.0.0.127.zen.example"));
        assert!(valid_name("_dmarc.example.org."));
        for bad in [
            "",
            ".",
            "a..b",
            "a b.example",
            "x\0.example",
            &"a".repeat(64),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
