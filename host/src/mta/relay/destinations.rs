//! What the relay remembers per destination (a smarthost or a domain):
//! a hold after every host failed, so the queue does not hammer a dead
//! host, and the limit on connections open at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

struct Hold {
    until: Instant,
    failures: u32,
    why: String,
}

#[derive(Default)]
struct State {
    holds: HashMap<String, Hold>,
    limits: HashMap<String, Arc<Semaphore>>,
}

/// One destination as `wasmtpctl show relays` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DestinationReport {
    /// The smarthost or the domain.
    pub destination: String,
    /// Connections open (or being opened) now.
    pub connections: usize,
    pub limit: usize,
    /// Seconds the destination stays held, when it is.
    pub held_for: Option<u64>,
    pub failures: u32,
    pub error: Option<String>,
}

pub(super) struct Destinations {
    hold_for: Duration,
    per_destination: usize,
    state: Mutex<State>,
}

impl Destinations {
    pub fn new(hold_for: Duration, per_destination: usize) -> Destinations {
        Destinations {
            hold_for,
            per_destination,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why `destination` is held now, if it is.
    pub fn held(&self, destination: &str) -> Option<String> {
        let state = self.lock();
        let hold = state.holds.get(destination)?;
        (hold.until > Instant::now()).then(|| {
            format!(
                "Destination {destination} held after {} failed attempt{}: {}",
                hold.failures,
                if hold.failures == 1 { "" } else { "s" },
                hold.why
            )
        })
    }

    /// How much longer `destination` is held.
    pub fn held_for(&self, destination: &str) -> Option<Duration> {
        let until = self.lock().holds.get(destination)?.until;
        until.checked_duration_since(Instant::now())
    }

    pub fn hold(&self, destination: &str, why: &str) {
        let mut state = self.lock();
        let hold = state.holds.entry(destination.to_string()).or_insert(Hold {
            until: Instant::now(),
            failures: 0,
            why: String::new(),
        });
        hold.failures += 1;
        hold.until = Instant::now() + self.hold_for;
        hold.why = why.to_string();
    }

    pub fn clear(&self, destination: &str) {
        self.lock().holds.remove(destination);
    }

    /// The semaphore bounding connections to `destination`.
    pub fn limit(&self, destination: &str) -> Arc<Semaphore> {
        let per = self.per_destination;
        self.lock()
            .limits
            .entry(destination.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(per)))
            .clone()
    }

    /// Each known destination's connections and hold, by name.
    pub fn report(&self) -> Vec<DestinationReport> {
        let state = self.lock();
        let now = Instant::now();
        let mut names: Vec<&String> = state.holds.keys().chain(state.limits.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let hold = state.holds.get(name).filter(|h| h.until > now);
                DestinationReport {
                    destination: name.clone(),
                    connections: state.limits.get(name).map_or(0, |sem| {
                        self.per_destination.saturating_sub(sem.available_permits())
                    }),
                    limit: self.per_destination,
                    held_for: hold.map(|h| h.until.duration_since(now).as_secs()),
                    failures: hold.map_or(0, |h| h.failures),
                    error: hold.map(|h| h.why.clone()),
                }
            })
            .collect()
    }

    /// Forgets expired holds and limits nobody uses, so destinations
    /// seen once do not pile up.
    pub fn prune(&self) {
        let per = self.per_destination;
        let mut state = self.lock();
        let now = Instant::now();
        state.holds.retain(|_, hold| hold.until > now);
        // Only the map holds it and nobody waits: unused.
        state
            .limits
            .retain(|_, sem| Arc::strong_count(sem) > 1 || sem.available_permits() < per);
    }
}
