//! Idle connections kept for the next message to the same host, and
//! the key that says which connections are interchangeable.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::mta::session::Connection;
use crate::mta::url::Scheme;

/// How long an idle connection is kept for the next message.
const IDLE_FOR: Duration = Duration::from_secs(5);

/// What makes a pooled connection fit for another message: the same
/// host under the same name (its certificate was checked for that name),
/// the same TLS, HELO and credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ConnKey {
    pub addr: IpAddr,
    pub port: u16,
    pub name: String,
    pub scheme: Scheme,
    pub helo: String,
    pub label: Option<String>,
    pub action: String,
}

/// Idle connections kept for one host under one set of settings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdleReport {
    pub addr: String,
    pub port: u16,
    /// The host's name (MX name or smarthost).
    pub name: String,
    pub scheme: String,
    pub helo: String,
    pub action: String,
    pub idle: usize,
}

pub(super) struct Pool {
    per_host: usize,
    idle: Mutex<HashMap<ConnKey, Vec<(Instant, Connection)>>>,
}

impl Pool {
    /// Keeps up to `per_host` idle connections per key.
    pub fn new(per_host: usize) -> Pool {
        Pool {
            per_host,
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnKey, Vec<(Instant, Connection)>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live idle connection for `key`, if any; stale ones are dropped
    /// (the server closed them).
    pub fn take(&self, key: &ConnKey) -> Option<Connection> {
        let mut idle = self.lock();
        let pool = idle.get_mut(key)?;
        while let Some((since, conn)) = pool.pop() {
            if since.elapsed() < IDLE_FOR && !conn.is_stale() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next message; hands it back when the pool
    /// is full, to be closed properly.
    pub fn put(&self, key: ConnKey, conn: Connection) -> Option<Connection> {
        let mut idle = self.lock();
        let pool = idle.entry(key).or_default();
        if pool.len() < self.per_host {
            pool.push((Instant::now(), conn));
            None
        } else {
            Some(conn)
        }
    }

    /// Idle connections per host, for `wasmtpctl show hosts|routes`.
    pub fn report(&self) -> Vec<IdleReport> {
        let idle = self.lock();
        let mut out: Vec<IdleReport> = idle
            .iter()
            .filter(|(_, conns)| !conns.is_empty())
            .map(|(key, conns)| IdleReport {
                addr: key.addr.to_string(),
                port: key.port,
                name: key.name.clone(),
                scheme: key.scheme.as_str().to_string(),
                helo: key.helo.clone(),
                action: key.action.clone(),
                idle: conns.len(),
            })
            .collect();
        out.sort_by(|a, b| (&a.addr, a.port, &a.action).cmp(&(&b.addr, b.port, &b.action)));
        out
    }

    /// Takes out the connections that have waited long enough, for the
    /// caller to close.
    pub fn expired(&self) -> Vec<Connection> {
        let mut idle = self.lock();
        let mut out = Vec::new();
        for pool in idle.values_mut() {
            let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(pool)
                .into_iter()
                .partition(|(since, _)| since.elapsed() >= IDLE_FOR);
            *pool = keep;
            out.extend(old.into_iter().map(|(_, c)| c));
        }
        idle.retain(|_, pool| !pool.is_empty());
        out
    }
}
