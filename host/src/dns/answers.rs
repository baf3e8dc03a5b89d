//! The answers to [`super::Dns::lookup`] (the filters' `host-dns`), kept
//! for their TTL.
//!
//! hickory caches too, but a hit there cost ~12 µs of CPU in the daemon
//! (measured per session with a DNSBL filter: its cache's bookkeeping, the
//! name list and hosts-file check it builds for every lookup, its boxed
//! futures), against well under a microsecond here. A DNSBL filter asks
//! once a session, mostly for addresses asked before.
//!
//! Only answers are kept: records until the earliest of their TTLs runs
//! out, and "no such name" or "no such record" for the negative TTL the
//! zone's SOA gave (RFC 2308); without an SOA a negative answer may not
//! be cached, and failures never are.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Kind;

/// Names kept per record type; past that, expired answers go, and if
/// none had, all of that type's (a burst of new names refills it).
pub const MAX_NAMES: usize = 4096;

/// Longest a negative answer is kept, whatever the SOA says (hickory's
/// own ceiling).
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(24 * 3600);

struct Answer {
    records: Vec<String>,
    expires: Instant,
}

#[derive(Default)]
pub struct Answers {
    /// One map per [`Kind`], keyed by the lower-case name.
    by_kind: Mutex<[HashMap<String, Answer>; 5]>,
}

impl Answers {
    /// The records kept for `name`, if they are still valid at `now`.
    pub fn get(&self, name: &str, kind: Kind, now: Instant) -> Option<Vec<String>> {
        let key = lower(name);
        let maps = self.lock();
        let answer = maps[slot(kind)].get(key.as_ref())?;
        (answer.expires > now).then(|| answer.records.clone())
    }

    /// Keeps `records` for `name` until `expires`.
    pub fn put(
        &self,
        name: &str,
        kind: Kind,
        records: Vec<String>,
        expires: Instant,
        now: Instant,
    ) {
        if expires <= now {
            return;
        }
        let mut maps = self.lock();
        let map = &mut maps[slot(kind)];
        if map.len() >= MAX_NAMES {
            map.retain(|_, a| a.expires > now);
            if map.len() >= MAX_NAMES {
                map.clear();
            }
        }
        map.insert(lower(name).into_owned(), Answer { records, expires });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<String, Answer>; 5]> {
        self.by_kind.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::A => 0,
        Kind::Aaaa => 1,
        Kind::Txt => 2,
        Kind::Mx => 3,
        Kind::Ptr => 4,
    }
}

/// Names are compared without case and without the root's dot.
fn lower(name: &str) -> std::borrow::Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        name.to_ascii_lowercase().into()
    } else {
        name.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_until_it_expires() {
        let answers = Answers::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        answers.put(
            "2.0.0.127.zen.test",
            Kind::A,
            vec!["127.0.0.2".into()],
            later,
            now,
        );
        assert_eq!(
            answers.get("2.0.0.127.ZEN.test.", Kind::A, now),
            Some(vec!["127.0.0.2".to_string()])
        );
        assert_eq!(answers.get("2.0.0.127.zen.test", Kind::Txt, now), None);
        assert_eq!(answers.get("2.0.0.127.zen.test", Kind::A, later), None);
    }

    #[test]
    fn a_negative_answer_is_an_empty_list() {
        let answers = Answers::default();
        let now = Instant::now();
        answers.put(
            "nx.test",
            Kind::A,
            vec![],
            now + Duration::from_secs(1),
            now,
        );
        assert_eq!(answers.get("nx.test", Kind::A, now), Some(vec![]));
    }

    #[test]
    fn an_expired_answer_is_not_kept() {
        let answers = Answers::default();
        let now = Instant::now();
        answers.put("old.test", Kind::A, vec!["192.0.2.1".into()], now, now);
        assert_eq!(
            answers.get("old.test", Kind::A, now - Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn the_maps_stay_bounded() {
        let answers = Answers::default();
        let now = Instant::now();
        let soon = now + Duration::from_secs(1);
        let later = now + Duration::from_secs(3600);
        for i in 0..MAX_NAMES {
            let expires = if i % 2 == 0 { soon } else { later };
            answers.put(&format!("n{i}.test"), Kind::A, vec![], expires, now);
        }
        // Full: the expired half goes to make room.
        answers.put("new.test", Kind::A, vec![], later, soon);
        let maps = answers.lock();
        assert_eq!(maps[slot(Kind::A)].len(), MAX_NAMES / 2 + 1);
        drop(maps);
        // Full of live answers: the type's map starts over.
        for i in 0..MAX_NAMES {
            answers.put(&format!("m{i}.test"), Kind::A, vec![], later, soon);
        }
        assert!(answers.lock()[slot(Kind::A)].len() < MAX_NAMES);
        assert_eq!(answers.get("m0.test", Kind::A, soon), None);
    }
}
