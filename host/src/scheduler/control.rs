//! What the operator can ask of the scheduler (`wasmtpctl show queue`,
//! `pause`, `resume`, `schedule`, `remove`): the selectors, the requests
//! and the scheduler's side of each.
//!
//! Pauses live in memory, as OpenSMTPD's do: a restart resumes everything.
//! An envelope is "parked" when it waits in the schedule but is not due
//! (suspended by the operator, or its kind of delivery paused); it keeps
//! its place in the queue and its next-try time.

use std::collections::HashSet;

use tokio::sync::oneshot;

use super::{now, Deliver, Scheduler};
use crate::envelope::{Envelope, EnvelopeKind, EvpId, MsgId};

/// Which envelopes a request is about: smtpctl's `all`, a message id
/// (8 hex digits) or an envelope id (16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    All,
    Message(MsgId),
    Envelope(EvpId),
}

impl Selector {
    /// `all`, a message id or an envelope id; `None` for anything else.
    pub fn parse(word: &str) -> Option<Selector> {
        if word.eq_ignore_ascii_case("all") {
            return Some(Selector::All);
        }
        let hex = word.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return None;
        }
        match word.len() {
            8 => MsgId::parse(word).map(Selector::Message),
            16 => EvpId::parse(word).map(Selector::Envelope),
            _ => None,
        }
    }

    pub fn matches(self, id: EvpId) -> bool {
        match self {
            Selector::All => true,
            Selector::Message(m) => id.msgid() == m,
            Selector::Envelope(e) => id == e,
        }
    }
}

/// The two kinds of delivery an operator pauses as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Local delivery (`pause mda`).
    Mda,
    /// Relaying (`pause mta`).
    Mta,
}

impl Class {
    /// The class an envelope's delivery belongs to; a bounce still to be
    /// generated belongs to neither and is never paused.
    fn of(kind: EnvelopeKind) -> Option<Class> {
        match kind {
            EnvelopeKind::Mda => Some(Class::Mda),
            EnvelopeKind::Mta => Some(Class::Mta),
            EnvelopeKind::Bounce => None,
        }
    }
}

/// What the scheduler is doing with a listed envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Activity {
    /// Waiting for its next try.
    Pending,
    /// An attempt is running.
    Inflight,
    /// Paused by the operator (`pause envelope`).
    Suspended,
    /// Waiting out a hold on its destination.
    Held,
}

/// One envelope of `show queue`.
#[derive(Clone, Debug)]
pub struct Listed {
    pub envelope: Envelope,
    pub activity: Activity,
}

/// Whether local delivery and relaying run (`show status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paused {
    pub mda: bool,
    pub mta: bool,
}

impl Paused {
    fn get(&self, class: Class) -> bool {
        match class {
            Class::Mda => self.mda,
            Class::Mta => self.mta,
        }
    }

    fn set(&mut self, class: Class, on: bool) {
        match class {
            Class::Mda => self.mda = on,
            Class::Mta => self.mta = on,
        }
    }
}

/// A request from the control side, answered on its channel.
pub(super) enum Request {
    List(oneshot::Sender<Vec<Listed>>),
    /// Makes the selected envelopes due now; answers how many.
    Schedule(Selector, oneshot::Sender<usize>),
    /// Takes the selected envelopes out of the schedule and answers with
    /// their ids; the caller removes them from the queue.
    Remove(Selector, oneshot::Sender<Vec<EvpId>>),
    /// Suspends (true) or resumes the selected envelopes; answers how many.
    Suspend(Selector, bool, oneshot::Sender<usize>),
    /// Pauses (true) or resumes a class of delivery.
    PauseClass(Class, bool, oneshot::Sender<Paused>),
    /// Schedules the envelopes it does not know yet; answers how many.
    Discover(Vec<Envelope>, oneshot::Sender<usize>),
    Status(oneshot::Sender<Paused>),
}

/// What the scheduler keeps for the operator's requests.
#[derive(Default)]
pub(super) struct OperatorState {
    pub(super) suspended: HashSet<EvpId>,
    /// Envelopes waiting because their destination is held.
    pub(super) held: HashSet<EvpId>,
    /// In-flight envelopes removed meanwhile: not retried when their
    /// attempt ends.
    pub(super) doomed: HashSet<EvpId>,
    pub(super) paused: Paused,
}

impl<D: Deliver> Scheduler<D> {
    /// Whether a waiting envelope may be dispatched when due.
    pub(super) fn runnable(&self, env: &Envelope) -> bool {
        !self.operator.suspended.contains(&env.id)
            && Class::of(env.kind).is_none_or(|c| !self.operator.paused.get(c))
    }

    pub(super) fn answer(&mut self, req: Request) {
        match req {
            Request::List(reply) => {
                let _ = reply.send(self.list());
            }
            Request::Schedule(sel, reply) => {
                let _ = reply.send(self.schedule(sel));
            }
            Request::Remove(sel, reply) => {
                let _ = reply.send(self.remove(sel));
            }
            Request::Suspend(sel, on, reply) => {
                let _ = reply.send(self.suspend(sel, on));
            }
            Request::PauseClass(class, on, reply) => {
                self.pause_class(class, on);
                let _ = reply.send(self.operator.paused);
            }
            Request::Status(reply) => {
                let _ = reply.send(self.operator.paused);
            }
            Request::Discover(envs, reply) => {
                let new: Vec<Envelope> = envs
                    .into_iter()
                    .filter(|e| {
                        !self.envs.contains_key(&e.id) && !self.inflight.contains_key(&e.id)
                    })
                    .collect();
                let n = new.len();
                self.add(new);
                let _ = reply.send(n);
            }
        }
    }

    fn list(&self) -> Vec<Listed> {
        let waiting = self.envs.values().map(|env| Listed {
            envelope: env.clone(),
            activity: if self.operator.suspended.contains(&env.id) {
                Activity::Suspended
            } else if self.operator.held.contains(&env.id) {
                Activity::Held
            } else {
                Activity::Pending
            },
        });
        let running = self.inflight.values().map(|env| Listed {
            envelope: env.clone(),
            activity: Activity::Inflight,
        });
        let mut all: Vec<Listed> = waiting.chain(running).collect();
        all.sort_by_key(|l| l.envelope.id);
        all
    }

    fn selected_waiting(&self, sel: Selector) -> Vec<EvpId> {
        match sel {
            Selector::Envelope(id) => self
                .envs
                .contains_key(&id)
                .then_some(id)
                .into_iter()
                .collect(),
            Selector::Message(m) => self
                .by_msg
                .get(&m)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
            Selector::All => self.envs.keys().copied().collect(),
        }
    }

    fn selected_inflight(&self, sel: Selector) -> Vec<EvpId> {
        self.inflight
            .keys()
            .copied()
            .filter(|&id| sel.matches(id))
            .collect()
    }

    fn schedule(&mut self, sel: Selector) -> usize {
        let now = now();
        let ids = self.selected_waiting(sel);
        for &id in &ids {
            let Some(mut env) = self.take(id) else {
                continue;
            };
            env.next_try = now;
            self.add(vec![env]);
        }
        ids.len()
    }

    fn remove(&mut self, sel: Selector) -> Vec<EvpId> {
        let mut removed = Vec::new();
        for id in self.selected_waiting(sel) {
            if self.take(id).is_some() {
                self.operator.suspended.remove(&id);
                removed.push(id);
            }
        }
        for id in self.selected_inflight(sel) {
            self.operator.doomed.insert(id);
            removed.push(id);
        }
        removed.sort();
        removed
    }

    fn suspend(&mut self, sel: Selector, on: bool) -> usize {
        let waiting = self.selected_waiting(sel);
        // One in flight stays suspended if its attempt sends it back.
        let running = self.selected_inflight(sel);
        let mut changed = 0;
        for &id in waiting.iter().chain(&running) {
            let was = if on {
                !self.operator.suspended.insert(id)
            } else {
                self.operator.suspended.remove(&id)
            };
            changed += usize::from(was != on);
        }
        // Waiting ones leave or rejoin the due set.
        for id in waiting {
            if let Some(env) = self.take(id) {
                self.add(vec![env]);
            }
        }
        changed
    }

    fn pause_class(&mut self, class: Class, on: bool) {
        if self.operator.paused.get(class) == on {
            return;
        }
        self.operator.paused.set(class, on);
        let ids: Vec<EvpId> = self
            .envs
            .values()
            .filter(|e| Class::of(e.kind) == Some(class))
            .map(|e| e.id)
            .collect();
        for id in ids {
            if let Some(env) = self.take(id) {
                self.add(vec![env]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_take_smtpctl_ids() {
        assert_eq!(Selector::parse("all"), Some(Selector::All));
        assert_eq!(
            Selector::parse("0badcafe"),
            Some(Selector::Message(MsgId(0x0bad_cafe)))
        );
        assert_eq!(
            Selector::parse("0badcafe00000001"),
            Some(Selector::Envelope(EvpId(0x0bad_cafe_0000_0001)))
        );
        for bad in ["", "12345", "+badcafe", "0badcafe0000000g", "everything"] {
            assert_eq!(Selector::parse(bad), None, "{bad}");
        }
        let sel = Selector::Message(MsgId(7));
        assert!(sel.matches(EvpId((7 << 32) | 1)));
        assert!(!sel.matches(EvpId((8 << 32) | 1)));
    }
}
