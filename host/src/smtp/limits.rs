//! Sessions per client address: one host must not take every session
//! slot (slow senders holding connections open). Postfix's default,
//! `smtpd_client_connection_count_limit = 50`, with loopback exempt as
//! Postfix exempts `$mynetworks` by default.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::lka::rules::is_loopback;

/// Postfix's default limit.
pub const DEFAULT_PER_CLIENT: usize = 50;

pub struct PerClient {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// A session's place in its client's count; given back when dropped.
pub struct ClientSlot {
    owner: Arc<PerClient>,
    ip: Option<IpAddr>,
}

impl PerClient {
    pub fn new(max: usize) -> Arc<PerClient> {
        Arc::new(PerClient {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new session from `ip`, or `None` when that client
    /// already has its share.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        if is_loopback(ip) {
            return Some(ClientSlot {
                owner: self.clone(),
                ip: None,
            });
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            owner: self.clone(),
            ip: Some(ip),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut counts = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_gets_its_share_and_back() {
        let limit = PerClient::new(2);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = limit.try_acquire(ip).unwrap();
        let _b = limit.try_acquire(ip).unwrap();
        assert!(
            limit.try_acquire(ip).is_none(),
            "third session from one client"
        );
        assert!(limit.try_acquire("192.0.2.8".parse().unwrap()).is_some());
        drop(a);
        assert!(
            limit.try_acquire(ip).is_some(),
            "a closed session frees its slot"
        );
    }

    #[test]
    fn loopback_is_exempt() {
        let limit = PerClient::new(1);
        let slots: Vec<_> = (0..10)
            .filter_map(|_| limit.try_acquire("127.0.0.1".parse().unwrap()))
            .collect();
        assert_eq!(slots.len(), 10);
    }
}
