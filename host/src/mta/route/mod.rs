//! Where a relayed envelope goes: the ordered list of hosts to try, from
//! the relay action's smarthost (`host URL`) or the recipient domain's MX
//! records (RFC 5321 §5.1), or the reason there is none.
//!
//! - A smarthost name is resolved to its addresses; any failure there is
//!   temporary (a configuration or DNS problem of ours, not the
//!   recipient's).
//! - MX routing: NXDOMAIN bounces (5.1.2), a null MX bounces (5.1.10), no
//!   MX means the domain itself (implicit MX), time-outs and SERVFAIL
//!   wait. Our own entry in the list, and every worse one, are dropped
//!   (mail loop, 5.4.6); as a backup MX only strictly better MXs are kept.
//! - An MX host without addresses is skipped; if none has any, the mail
//!   waits, except for an implicit MX whose domain has no address at all,
//!   which bounces (there is nothing to wait for).

mod mx;
mod resolver;

use std::collections::HashSet;
use std::net::IpAddr;

pub use mx::MAX_MX;
pub use resolver::{LookupError, MxResolver};

use crate::config::model::RelayOptions;
use crate::mta::url::{RelayUrl, UrlError};
use mx::Role;

#[cfg(test)]
pub(crate) use resolver::table::Table;

/// How a relay action picks its hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `host URL`: always that host, on the URL's port.
    Smarthost(RelayUrl),
    /// The recipient domain's MX hosts. `backup`: we are a backup MX,
    /// listed as `backup_mx` (default: our hostname).
    Mx {
        backup: bool,
        backup_mx: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("relay host: {0}")]
    Url(#[from] UrlError),
    #[error("backup and host are mutually exclusive")]
    BackupWithHost,
}

impl Destination {
    pub fn from_options(opts: &RelayOptions) -> Result<Destination, DestinationError> {
        let backup = opts.backup || opts.backup_mx.is_some();
        match &opts.host {
            Some(_) if backup => Err(DestinationError::BackupWithHost),
            Some(url) => Ok(Destination::Smarthost(url.parse()?)),
            None => Ok(Destination::Mx {
                backup,
                backup_mx: opts.backup_mx.clone(),
            }),
        }
    }
}

/// One place to try: an address and the name it came from (for logs and
/// the TLS server name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// MX or smarthost name, lower case without trailing dot; the address
    /// itself for an IP smarthost or an address-literal domain.
    pub name: String,
    pub addr: IpAddr,
    pub port: u16,
    /// The MX preference; 0 for a smarthost or an implicit MX.
    pub preference: u16,
}

/// No host to try. Displays as an enhanced status code and a text, as a
/// bounce reports it: `5.1.2 Domain not found`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{enhanced} {text}")]
pub struct RouteError {
    /// Bounce now (true) or keep the envelope and retry (false).
    pub permanent: bool,
    /// RFC 3463 status, e.g. "5.1.2".
    pub enhanced: &'static str,
    pub text: String,
}

impl RouteError {
    fn permanent(enhanced: &'static str, text: String) -> RouteError {
        RouteError {
            permanent: true,
            enhanced,
            text,
        }
    }

    fn temporary(enhanced: &'static str, text: String) -> RouteError {
        RouteError {
            permanent: false,
            enhanced,
            text,
        }
    }
}

/// The hosts to try for mail to `domain` (the recipient domain, UTF-8 or
/// A-labels, or an address literal `[192.0.2.1]` / `[IPv6:…]`), in order.
/// `myname` is our hostname (loop detection, default backup name);
/// `mx_port` the port of MX hosts (25 but in tests).
pub async fn route<R: MxResolver>(
    resolver: &R,
    dest: &Destination,
    domain: &str,
    myname: &str,
    mx_port: u16,
) -> Result<Vec<Hop>, RouteError> {
    match dest {
        Destination::Smarthost(url) => smarthost(resolver, url).await,
        Destination::Mx { backup, backup_mx } => {
            let role = match (backup, backup_mx) {
                (_, Some(name)) => Role::Backup(name),
                (true, None) => Role::Backup(myname),
                (false, None) => Role::Primary(myname),
            };
            mx_hops(resolver, domain, role, mx_port).await
        }
    }
}

async fn smarthost<R: MxResolver>(resolver: &R, url: &RelayUrl) -> Result<Vec<Hop>, RouteError> {
    let hop = |name: &str, addr| Hop {
        name: name.to_string(),
        addr,
        port: url.port,
        preference: 0,
    };
    if let Some(ip) = url.ip() {
        return Ok(vec![hop(&url.host, ip)]);
    }
    let name = mx::normalise(&url.host);
    match resolver.addrs(&name).await {
        Ok(addrs) if !addrs.is_empty() => Ok(dedup(addrs).map(|a| hop(&name, a)).collect()),
        Ok(_) | Err(LookupError::NoRecords | LookupError::NotFound | LookupError::BadName) => Err(
            RouteError::temporary("4.4.4", format!("smarthost {name} has no address")),
        ),
        Err(LookupError::Temporary(e)) => Err(RouteError::temporary(
            "4.4.3",
            format!("cannot resolve smarthost {name}: {e}"),
        )),
    }
}

async fn mx_hops<R: MxResolver>(
    resolver: &R,
    domain: &str,
    role: Role<'_>,
    mx_port: u16,
) -> Result<Vec<Hop>, RouteError> {
    if let Some(addr) = address_literal(domain) {
        return Ok(vec![Hop {
            name: addr.to_string(),
            addr,
            port: mx_port,
            preference: 0,
        }]);
    }
    let domain = a_labels(domain)?;
    let (records, implicit) = match resolver.mx(&domain).await {
        Ok(records) if !records.is_empty() => (records, false),
        Ok(_) | Err(LookupError::NoRecords) => (vec![(0, domain.clone())], true),
        Err(LookupError::NotFound) => {
            return Err(RouteError::permanent("5.1.2", "Domain not found".into()))
        }
        Err(LookupError::BadName) => {
            return Err(RouteError::permanent("5.1.2", "Invalid domain name".into()))
        }
        Err(LookupError::Temporary(e)) => {
            return Err(RouteError::temporary(
                "4.4.3",
                format!("cannot look up MX of {domain}: {e}"),
            ))
        }
    };
    let mxs = mx::select(&records, &domain, role, &mut rand::thread_rng())?;

    let mut hops = Vec::new();
    let mut seen = HashSet::new();
    let mut dns_trouble = None;
    for mx in mxs {
        match resolver.addrs(&mx.name).await {
            Ok(addrs) => {
                for addr in addrs.into_iter().filter(|a| seen.insert(*a)) {
                    hops.push(Hop {
                        name: mx.name.clone(),
                        addr,
                        port: mx_port,
                        preference: mx.preference,
                    });
                }
            }
            Err(e) => {
                tracing::debug!(domain, mx = mx.name, error = %e, "MX host skipped");
                if let LookupError::Temporary(msg) = e {
                    dns_trouble.get_or_insert(format!("{}: {msg}", mx.name));
                }
            }
        }
    }
    if !hops.is_empty() {
        return Ok(hops);
    }
    Err(match dns_trouble {
        Some(msg) => RouteError::temporary(
            "4.4.3",
            format!("cannot resolve MX hosts of {domain}: {msg}"),
        ),
        None if implicit => RouteError::permanent(
            "5.1.2",
            format!("Domain {domain} has neither MX nor address"),
        ),
        None => RouteError::temporary("4.4.4", format!("no MX host of {domain} has an address")),
    })
}

fn dedup(addrs: Vec<IpAddr>) -> impl Iterator<Item = IpAddr> {
    let mut seen = HashSet::new();
    addrs.into_iter().filter(move |a| seen.insert(*a))
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3): delivered to
/// that address, no DNS.
fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..]
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(IpAddr::V6),
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// The domain as DNS knows it: IDNA A-labels (UTS #46), lower case, no
/// trailing dot.
fn a_labels(domain: &str) -> Result<String, RouteError> {
    let bad = || RouteError::permanent("5.1.2", "Invalid domain name".into());
    let name = hickory_resolver::Name::from_utf8(domain).map_err(|_| bad())?;
    let ascii = mx::normalise(&name.to_ascii());
    if !crate::dns::valid_name(&ascii) {
        return Err(bad());
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests;
