//! The daemon's DNS resolver (hickory), shared by the filters' `host-dns`
//! capability and relay routing (MX and address lookups).
//!
//! It reads /etc/resolv.conf unless the daemon was told a name server
//! (`--nameserver IP:PORT`, which the tests use to reach a DNS server on
//! loopback).

mod answers;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};

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

/// Why a routing lookup gave no answer. Routing needs to tell a name that
/// does not exist (the mail bounces) from one that has no record of the
/// type asked (an implicit MX, or an MX host to skip) and from a failure
/// that may pass (the mail waits).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("invalid domain name")]
    BadName,
    /// NXDOMAIN.
    #[error("domain not found")]
    NotFound,
    /// The name exists but has no record of that type (NOERROR, no data).
    #[error("no records of that type")]
    NoRecords,
    /// Time-out, SERVFAIL, REFUSED, network trouble.
    #[error("temporary DNS failure: {0}")]
    Temporary(String),
}

pub struct Dns {
    resolver: TokioResolver,
    /// The filters' answers, kept for their TTL (see [`answers`]).
    answers: answers::Answers,
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
            answers: answers::Answers::default(),
        })
    }

    /// The answer kept for `name`, if it is still valid: [`Dns::lookup`]
    /// without the wait, for callers that would set a timer first.
    pub fn kept(&self, name: &str, kind: Kind) -> Option<Vec<String>> {
        self.answers.get(name, kind, Instant::now())
    }

    /// Records as text: addresses, TXT strings joined, "PREF HOST" for MX,
    /// names for PTR. A name or record that does not exist is an empty
    /// list, not an error; a server failure (SERVFAIL, REFUSED) or a
    /// time-out is an error.
    pub async fn lookup(&self, name: &str, kind: Kind) -> Result<Vec<String>, DnsError> {
        let now = Instant::now();
        // Checked before the name: only a valid name got an answer kept.
        if let Some(records) = self.answers.get(name, kind, now) {
            return Ok(records);
        }
        let fqdn = fqdn(name).ok_or(DnsError::BadName)?;
        let rtype = match kind {
            Kind::A => RecordType::A,
            Kind::Aaaa => RecordType::AAAA,
            Kind::Txt => RecordType::TXT,
            Kind::Mx => RecordType::MX,
            Kind::Ptr => RecordType::PTR,
        };
        let lookup = match self.resolve(fqdn, rtype).await {
            None => return Err(DnsError::Lookup("timed out".into())),
            Some(Err(e)) => {
                return match classify(&e) {
                    LookupError::NotFound | LookupError::NoRecords => {
                        if let Some(ttl) = negative_ttl(&e) {
                            let expires = now + ttl.min(answers::MAX_NEGATIVE_TTL);
                            self.answers.put(name, kind, Vec::new(), expires, now);
                        }
                        Ok(Vec::new())
                    }
                    _ => Err(DnsError::Lookup(e.to_string())),
                };
            }
            Some(Ok(l)) => l,
        };
        let records: Vec<String> = lookup
            .record_iter()
            .filter(|r| r.record_type() == rtype)
            .filter_map(|r| text_of(r.data()))
            .collect();
        self.answers
            .put(name, kind, records.clone(), lookup.valid_until(), now);
        Ok(records)
    }
}

impl Dns {
    /// MX records as (preference, exchange) with the exchange fully
    /// qualified in A-labels (`mx.example.org.`; the root, a null MX, is
    /// `.`), in the order the server gave them.
    pub async fn lookup_mx(&self, domain: &str) -> Result<Vec<(u16, String)>, LookupError> {
        let lookup = self.query(domain, RecordType::MX).await?;
        let mxs: Vec<(u16, String)> = lookup
            .record_iter()
            .filter_map(|r| match r.data() {
                RData::MX(mx) => Some((mx.preference(), mx.exchange().to_ascii())),
                _ => None,
            })
            .collect();
        if mxs.is_empty() {
            // Only a CNAME (or other types) came back.
            return Err(LookupError::NoRecords);
        }
        Ok(mxs)
    }

    /// Both IPv4 and IPv6 addresses of `name` (A, then AAAA), asked in
    /// parallel. One family missing is fine; only when neither gave an
    /// address does the worse of the two errors come back (a temporary
    /// failure beats "no records", which beats "not found").
    pub async fn lookup_ip(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let (a, aaaa) = tokio::join!(
            self.query(name, RecordType::A),
            self.query(name, RecordType::AAAA)
        );
        let mut addrs = Vec::new();
        let mut errs = Vec::new();
        for result in [a, aaaa] {
            match result {
                Ok(lookup) => addrs.extend(lookup.record_iter().filter_map(|r| match r.data() {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) => errs.push(e),
            }
        }
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        Err(errs
            .into_iter()
            .max_by_key(|e| match e {
                LookupError::Temporary(_) => 3,
                LookupError::NoRecords => 2,
                LookupError::NotFound => 1,
                LookupError::BadName => 0,
            })
            .unwrap_or(LookupError::NoRecords))
    }

    async fn query(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<hickory_resolver::lookup::Lookup, LookupError> {
        let fqdn = fqdn(name).ok_or(LookupError::BadName)?;
        match self.resolve(fqdn, rtype).await {
            None => Err(LookupError::Temporary("timed out".into())),
            Some(Err(e)) => Err(classify(&e)),
            Some(Ok(l)) => Ok(l),
        }
    }

    /// One query through hickory, all attempts bounded by
    /// [`QUERY_TIMEOUT`]; None when it timed out.
    async fn resolve(
        &self,
        name: Name,
        rtype: RecordType,
    ) -> Option<Result<hickory_resolver::lookup::Lookup, ResolveError>> {
        tokio::time::timeout(QUERY_TIMEOUT, self.resolver.lookup(name, rtype))
            .await
            .ok()
    }
}

/// `name` fully qualified, when it is one that may be looked up (see
/// [`valid_name`]). valid_name lets only ASCII through: parsed as such,
/// the name skips IDNA mapping, the dearest part of a cached lookup.
fn fqdn(name: &str) -> Option<Name> {
    if !valid_name(name) {
        return None;
    }
    let mut fqdn = Name::from_ascii(name).ok()?;
    fqdn.set_fqdn(true);
    Some(fqdn)
}

/// hickory reports SERVFAIL and REFUSED as "no records found" too, with
/// the response code inside: only NXDOMAIN and NOERROR are answers.
fn classify(e: &ResolveError) -> LookupError {
    match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => match *response_code {
            ResponseCode::NXDomain => LookupError::NotFound,
            ResponseCode::NoError => LookupError::NoRecords,
            code => LookupError::Temporary(code.to_string()),
        },
        _ => LookupError::Temporary(e.to_string()),
    }
}

/// How long a "no such name/record" may be kept: the SOA's negative
/// TTL, when the server sent one.
fn negative_ttl(e: &ResolveError) -> Option<Duration> {
    match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound {
            negative_ttl: Some(ttl),
            ..
        }) => Some(Duration::from_secs(u64::from(*ttl))),
        _ => None,
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
    use hickory_resolver::proto::op::{Message, MessageType};
    use hickory_resolver::proto::rr::rdata::{A, AAAA, MX};
    use hickory_resolver::proto::rr::{Name, Record};

    /// A one-socket DNS server on loopback with fixed answers, so the
    /// mapping of real hickory errors is what gets tested.
    async fn fake_server() -> SocketAddr {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let (n, peer) = sock.recv_from(&mut buf).await.unwrap();
                let q = Message::from_vec(&buf[..n]).unwrap();
                let query = q.queries()[0].clone();
                let name = query.name().clone();
                let qname = name.to_ascii();
                let mut r = Message::new();
                r.set_id(q.id())
                    .set_message_type(MessageType::Response)
                    .set_recursion_available(true)
                    .add_query(query.clone());
                let rec = |d: RData| Record::from_rdata(name.clone(), 60, d);
                match (qname.as_str(), query.query_type()) {
                    ("nx.test.", _) => {
                        r.set_response_code(ResponseCode::NXDomain);
                    }
                    ("fail.test.", _) => {
                        r.set_response_code(ResponseCode::ServFail);
                    }
                    ("mx.test.", RecordType::MX) => {
                        r.add_answer(rec(RData::MX(MX::new(
                            10,
                            Name::from_ascii("mx1.mx.test.").unwrap(),
                        ))));
                        r.add_answer(rec(RData::MX(MX::new(
                            20,
                            Name::from_ascii("MX2.mx.test").unwrap(),
                        ))));
                    }
                    ("null.test.", RecordType::MX) => {
                        r.add_answer(rec(RData::MX(MX::new(0, Name::root()))));
                    }
                    ("host.test.", RecordType::A) => {
                        r.add_answer(rec(RData::A(A::new(192, 0, 2, 1))));
                    }
                    ("host.test.", RecordType::AAAA) => {
                        r.add_answer(rec(RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))));
                    }
                    ("v4only.test.", RecordType::A) => {
                        r.add_answer(rec(RData::A(A::new(192, 0, 2, 2))));
                    }
                    ("halfbroken.test.", RecordType::A) => {
                        r.set_response_code(ResponseCode::ServFail);
                    }
                    _ => {} // NOERROR, no data
                }
                sock.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn mx_lookups_tell_nxdomain_from_nodata_from_failure() {
        let dns = Dns::new(Some(fake_server().await)).unwrap();
        assert_eq!(
            dns.lookup_mx("mx.test").await.unwrap(),
            vec![(10, "mx1.mx.test.".into()), (20, "MX2.mx.test.".into())]
        );
        assert_eq!(
            dns.lookup_mx("null.test.").await.unwrap(),
            vec![(0, ".".into())]
        );
        assert_eq!(dns.lookup_mx("nx.test").await, Err(LookupError::NotFound));
        assert_eq!(
            dns.lookup_mx("empty.test").await,
            Err(LookupError::NoRecords)
        );
        assert!(matches!(
            dns.lookup_mx("fail.test").await,
            Err(LookupError::Temporary(_))
        ));
        assert_eq!(dns.lookup_mx("bad name").await, Err(LookupError::BadName));
    }

    #[tokio::test]
    async fn address_lookups_keep_both_families() {
        let dns = Dns::new(Some(fake_server().await)).unwrap();
        assert_eq!(
            dns.lookup_ip("host.test").await.unwrap(),
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert_eq!(
            dns.lookup_ip("v4only.test").await.unwrap(),
            vec!["192.0.2.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(dns.lookup_ip("nx.test").await, Err(LookupError::NotFound));
        assert_eq!(
            dns.lookup_ip("empty.test").await,
            Err(LookupError::NoRecords)
        );
        assert!(matches!(
            dns.lookup_ip("fail.test").await,
            Err(LookupError::Temporary(_))
        ));
        // SERVFAIL on A and no AAAA: the mail must wait, not skip the host.
        assert!(matches!(
            dns.lookup_ip("halfbroken.test").await,
            Err(LookupError::Temporary(_))
        ));
    }

    #[tokio::test]
    async fn filter_lookups_answer_lists_and_fail_on_server_failure() {
        let dns = Dns::new(Some(fake_server().await)).unwrap();
        for _ in 0..2 {
            // The second round is answered from what the first kept.
            assert_eq!(
                dns.lookup("host.test", Kind::A).await.unwrap(),
                ["192.0.2.1"]
            );
            assert_eq!(
                dns.lookup("HOST.test.", Kind::A).await.unwrap(),
                ["192.0.2.1"]
            );
            assert!(dns.lookup("nx.test", Kind::A).await.unwrap().is_empty());
            assert!(dns
                .lookup("empty.test", Kind::Txt)
                .await
                .unwrap()
                .is_empty());
            // SERVFAIL is no answer: a DNSBL must not read it as "not listed".
            assert!(matches!(
                dns.lookup("fail.test", Kind::A).await,
                Err(DnsError::Lookup(_))
            ));
        }
        assert!(matches!(
            dns.lookup("bad name", Kind::A).await,
            Err(DnsError::BadName)
        ));
    }

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
