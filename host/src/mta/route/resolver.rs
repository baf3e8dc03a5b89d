//! The DNS questions routing asks, behind a trait so the routing rules can
//! be tested against a fixed table, and their answers from the daemon's
//! resolver.

use std::future::Future;
use std::net::IpAddr;

use crate::dns::Dns;
pub use crate::dns::LookupError;

/// MX and address lookups for routing. Names are A-labels; answers keep
/// the server's order.
pub trait MxResolver: Sync {
    /// (preference, exchange) pairs; the exchange may end with a dot, and
    /// the root (`.`) is a null MX.
    fn mx(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Vec<(u16, String)>, LookupError>> + Send;

    /// IPv4 and IPv6 addresses of a host.
    fn addrs(&self, name: &str) -> impl Future<Output = Result<Vec<IpAddr>, LookupError>> + Send;
}

impl MxResolver for Dns {
    fn mx(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Vec<(u16, String)>, LookupError>> + Send {
        self.lookup_mx(domain)
    }

    fn addrs(&self, name: &str) -> impl Future<Output = Result<Vec<IpAddr>, LookupError>> + Send {
        self.lookup_ip(name)
    }
}

#[cfg(test)]
pub(crate) mod table {
    //! An in-memory DNS for the routing tests.

    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct Table {
        pub mx: HashMap<String, Result<Vec<(u16, String)>, LookupError>>,
        pub addrs: HashMap<String, Result<Vec<IpAddr>, LookupError>>,
    }

    impl Table {
        pub fn mx(mut self, domain: &str, records: &[(u16, &str)]) -> Self {
            let records = records.iter().map(|(p, n)| (*p, n.to_string())).collect();
            self.mx.insert(domain.into(), Ok(records));
            self
        }

        pub fn mx_err(mut self, domain: &str, err: LookupError) -> Self {
            self.mx.insert(domain.into(), Err(err));
            self
        }

        pub fn host(mut self, name: &str, addrs: &[&str]) -> Self {
            let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
            self.addrs.insert(name.into(), Ok(addrs));
            self
        }

        pub fn host_err(mut self, name: &str, err: LookupError) -> Self {
            self.addrs.insert(name.into(), Err(err));
            self
        }
    }

    /// Names missing from the table do not exist. Lookups ignore case
    /// and a trailing dot, as DNS does.
    fn key(name: &str) -> String {
        name.trim_end_matches('.').to_ascii_lowercase()
    }

    impl MxResolver for Table {
        async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, LookupError> {
            self.mx
                .get(&key(domain))
                .cloned()
                .unwrap_or(Err(LookupError::NotFound))
        }

        async fn addrs(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
            self.addrs
                .get(&key(name))
                .cloned()
                .unwrap_or(Err(LookupError::NotFound))
        }
    }
}
