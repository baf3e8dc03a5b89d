//! The scheduler: decides when each envelope is tried, runs the attempt
//! through a [`Deliver`] implementation, and acts on the outcome — remove
//! on success, retry with backoff on a temporary failure until the
//! envelope expires, bounce on a permanent one (never bouncing a bounce).
//!
//! It owns the in-memory schedule; the queue owns the durable state. Every
//! change to an envelope is written to the queue before it is forgotten.

pub mod backoff;
pub mod bounce;
pub mod control;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn, Instrument};

use crate::envelope::{Envelope, EnvelopeKind, EvpId, MsgId};
pub use crate::mda::Outcome;
use crate::queue::Queue;
use backoff::Backoff;
pub use control::{Activity, Class, Listed, Paused, Selector};

/// What the scheduler needs from the rest of the daemon.
pub trait Deliver: Send + Sync + 'static {
    /// One delivery attempt. Must not panic; errors are outcomes.
    fn deliver(&self, env: &Envelope) -> impl Future<Output = Outcome> + Send;
    /// Envelopes of one message with the same key may be attempted
    /// together (one SMTP transaction for several recipients of a relay
    /// destination); `None` attempts the envelope alone.
    fn batch_key(&self, _env: &Envelope) -> Option<String> {
        None
    }
    /// One attempt for a batch (same message, same [`Deliver::batch_key`]):
    /// one outcome per envelope, in order.
    fn deliver_batch(&self, envs: &[Envelope]) -> impl Future<Output = Vec<Outcome>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(envs.len());
            for env in envs {
                outcomes.push(self.deliver(env).await);
            }
            outcomes
        }
    }
    /// Queue one bounce (or, for [`Notice::Delayed`], one delay warning)
    /// about `failed` (envelopes of one message, whose sender is not
    /// null); returns the new envelopes, already committed, for the
    /// scheduler to run. `Err` means it could not be queued now (disk,
    /// lookups): the failed envelopes are kept and the bounce tried
    /// again later.
    fn bounce(
        &self,
        failed: &[Envelope],
        notice: Notice,
    ) -> impl Future<Output = Result<Vec<Envelope>, String>> + Send;
    /// When the envelope's destination is held (every host failed a
    /// moment ago), until when: it then waits without an attempt, so no
    /// try is counted against it.
    fn held_until(&self, _env: &Envelope) -> Option<i64> {
        None
    }
    /// Whether the delivery logs each outcome itself (the relay's
    /// `relay: Ok for …` lines); the scheduler then logs only what it
    /// changes (an expiry).
    fn logs_itself(&self, _env: &Envelope) -> bool {
        false
    }
    /// Short name of the delivery method for logs (`maildir`, `mbox`, …).
    fn method_name(&self, env: &Envelope) -> String;
}

#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Delivery attempts running at once.
    pub max_parallel: usize,
    /// Most envelopes in one batched attempt: RFC 5321 §4.5.3.1.8 has
    /// servers take at least 100 recipients per transaction.
    pub max_batch: usize,
    pub backoff: Backoff,
    /// `bounce warn-interval`: how long an envelope waits before each
    /// delay warning to its sender.
    pub warn_after: Vec<Duration>,
    /// Where deliveries are counted (`scheduler.delivery.*`).
    pub stats: crate::stats::Stats,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            max_parallel: 64,
            max_batch: 100,
            backoff: Backoff::default(),
            warn_after: vec![DEFAULT_WARN_AFTER],
            stats: crate::stats::Stats::new(std::time::Instant::now()),
        }
    }
}

/// OpenSMTPD's default `bounce warn-interval`.
pub const DEFAULT_WARN_AFTER: Duration = Duration::from_secs(4 * 3600);

/// What a notice to the sender says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Delivery failed for good (a bounce).
    Failed,
    /// Still trying (a delay warning).
    Delayed,
}

impl Notice {
    /// Whether the sender's NOTIFY parameter asks for this notice; with
    /// none, failures and delays are both reported.
    fn wanted(self, notify: Option<&str>) -> bool {
        let Some(notify) = notify else {
            return true;
        };
        let word = match self {
            Notice::Failed => "FAILURE",
            Notice::Delayed => "DELAY",
        };
        notify
            .split(',')
            .any(|w| w.trim().eq_ignore_ascii_case(word))
    }
}

enum Msg {
    Insert(Vec<Envelope>),
    /// An attempt finished: the envelopes it carried, and those of them
    /// to try again later.
    Finished {
        batch: Vec<EvpId>,
        again: Vec<Envelope>,
    },
    Control(control::Request),
}

/// Handle to the running scheduler; cheap to clone.
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

impl SchedulerHandle {
    /// Hands freshly committed envelopes over for delivery.
    pub fn insert(&self, envs: Vec<Envelope>) {
        let _ = self.tx.send(Msg::Insert(envs));
    }

    /// Makes the selected waiting envelopes due now (`wasmtpctl
    /// schedule`); how many.
    pub async fn schedule(&self, sel: Selector) -> usize {
        self.ask(|tx| control::Request::Schedule(sel, tx))
            .await
            .unwrap_or(0)
    }

    /// Every envelope the scheduler knows, waiting or in flight, by id.
    pub async fn list(&self) -> Vec<Listed> {
        self.ask(control::Request::List).await.unwrap_or_default()
    }

    /// Takes the selected envelopes out of the schedule (those in flight
    /// are not retried) and returns their ids: the caller removes them
    /// from the queue.
    pub async fn remove(&self, sel: Selector) -> Vec<EvpId> {
        self.ask(|tx| control::Request::Remove(sel, tx))
            .await
            .unwrap_or_default()
    }

    /// Suspends (`pause envelope`) or resumes the selected envelopes;
    /// how many changed.
    pub async fn suspend(&self, sel: Selector, on: bool) -> usize {
        self.ask(|tx| control::Request::Suspend(sel, on, tx))
            .await
            .unwrap_or(0)
    }

    /// Pauses or resumes local delivery or relaying as a whole.
    pub async fn pause(&self, class: Class, on: bool) -> Paused {
        self.ask(|tx| control::Request::PauseClass(class, on, tx))
            .await
            .unwrap_or_default()
    }

    /// Schedules those of `envs` (read from the queue) it does not know
    /// yet (`wasmtpctl discover`); how many.
    pub async fn discover(&self, envs: Vec<Envelope>) -> usize {
        self.ask(|tx| control::Request::Discover(envs, tx))
            .await
            .unwrap_or(0)
    }

    /// Which classes of delivery are paused.
    pub async fn status(&self) -> Paused {
        self.ask(control::Request::Status).await.unwrap_or_default()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> control::Request) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Control(make(tx))).ok()?;
        rx.await.ok()
    }
}

/// Starts the scheduler with the envelopes recovered from the queue.
pub fn start<D: Deliver>(
    queue: Queue,
    deliver: Arc<D>,
    opts: SchedulerOptions,
    recovered: Vec<Envelope>,
) -> SchedulerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = SchedulerHandle { tx: tx.clone() };
    let opts_stats = opts.stats.clone();
    let sched = Scheduler {
        queue,
        deliver,
        opts,
        tx,
        envs: HashMap::new(),
        due: BTreeSet::new(),
        by_msg: HashMap::new(),
        inflight: HashMap::new(),
        operator: control::OperatorState::default(),
        running: 0,
        gauges: QueueGauges::new(&opts_stats),
    };
    tokio::spawn(sched.run(rx, recovered));
    handle
}

struct Scheduler<D> {
    queue: Queue,
    deliver: Arc<D>,
    opts: SchedulerOptions,
    tx: mpsc::UnboundedSender<Msg>,
    /// Envelopes waiting for their next try (not the running ones).
    envs: HashMap<EvpId, Envelope>,
    /// (next_try, id) of every waiting envelope.
    due: BTreeSet<(i64, EvpId)>,
    /// The waiting envelopes of each message, to find batch mates.
    by_msg: HashMap<MsgId, BTreeSet<EvpId>>,
    /// Envelopes whose attempt is running, as they were when it began.
    inflight: HashMap<EvpId, Envelope>,
    /// Suspensions, pauses and holds (see [`control`]).
    operator: control::OperatorState,
    running: usize,
    gauges: QueueGauges,
}

/// `scheduler.envelope` (envelopes in the queue) and
/// `scheduler.envelope.inflight` (in an attempt now).
struct QueueGauges {
    queued: crate::stats::Gauge,
    inflight: crate::stats::Gauge,
}

impl QueueGauges {
    fn new(stats: &crate::stats::Stats) -> QueueGauges {
        QueueGauges {
            queued: stats.gauge("scheduler.envelope"),
            inflight: stats.gauge("scheduler.envelope.inflight"),
        }
    }
}

impl<D: Deliver> Scheduler<D> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>, recovered: Vec<Envelope>) {
        self.add(recovered);
        loop {
            self.dispatch_due();
            let inflight = self.inflight.len() as i64;
            self.gauges.inflight.set(inflight);
            self.gauges.queued.set(self.envs.len() as i64 + inflight);
            let wait = self.next_wakeup();
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Insert(envs) => self.add(envs),
            Msg::Finished { batch, again } => {
                self.running -= 1;
                for id in &batch {
                    self.inflight.remove(id);
                }
                let doomed = &mut self.operator.doomed;
                let again: Vec<Envelope> = again
                    .into_iter()
                    .filter(|e| !doomed.remove(&e.id))
                    .collect();
                for id in &batch {
                    doomed.remove(id);
                }
                self.add(again);
            }
            Msg::Control(req) => self.answer(req),
        }
    }

    /// Puts envelopes in the schedule: due at their next try unless the
    /// operator parked them.
    fn add(&mut self, envs: Vec<Envelope>) {
        for env in envs {
            if self.runnable(&env) {
                self.due.insert((env.next_try, env.id));
            }
            self.by_msg.entry(env.msgid()).or_default().insert(env.id);
            self.envs.insert(env.id, env);
        }
    }

    /// Takes a waiting envelope out of the schedule.
    fn take(&mut self, id: EvpId) -> Option<Envelope> {
        let env = self.envs.remove(&id)?;
        self.operator.held.remove(&id);
        self.due.remove(&(env.next_try, id));
        if let Some(mates) = self.by_msg.get_mut(&id.msgid()) {
            mates.remove(&id);
            if mates.is_empty() {
                self.by_msg.remove(&id.msgid());
            }
        }
        Some(env)
    }

    /// `first` and the due envelopes of its message that may share its
    /// attempt.
    fn batch_for(&mut self, first: Envelope, now: i64) -> Vec<Envelope> {
        if first.kind == EnvelopeKind::Bounce {
            return vec![first];
        }
        let Some(key) = self.deliver.batch_key(&first) else {
            return vec![first];
        };
        let mates: Vec<EvpId> = self
            .by_msg
            .get(&first.msgid())
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        let mut batch = vec![first];
        for id in mates {
            if batch.len() >= self.opts.max_batch.max(1) {
                break;
            }
            let fits = self.envs.get(&id).is_some_and(|env| {
                env.next_try <= now
                    && self.runnable(env)
                    && env.kind != EnvelopeKind::Bounce
                    && self.deliver.batch_key(env).as_ref() == Some(&key)
            });
            if fits {
                if let Some(env) = self.take(id) {
                    batch.push(env);
                }
            }
        }
        batch
    }

    fn next_wakeup(&self) -> Duration {
        if self.running >= self.opts.max_parallel {
            return Duration::from_secs(3600);
        }
        match self.due.first() {
            Some(&(at, _)) => Duration::from_secs(at.saturating_sub(now()).max(0) as u64),
            None => Duration::from_secs(3600),
        }
    }

    fn dispatch_due(&mut self) {
        let now = now();
        while self.running < self.opts.max_parallel {
            let Some(&(at, id)) = self.due.first() else {
                break;
            };
            if at > now {
                break;
            }
            let Some(mut env) = self.take(id) else {
                self.due.pop_first();
                continue;
            };
            // An expired envelope goes through, to be bounced.
            if env.kind != EnvelopeKind::Bounce && now < env.expire {
                if let Some(until) = self.deliver.held_until(&env).filter(|&t| t > now) {
                    env.next_try = until.min(env.expire);
                    self.add(vec![env]);
                    self.operator.held.insert(id);
                    continue;
                }
            }
            let batch = self.batch_for(env, now);
            self.running += 1;
            for env in &batch {
                self.inflight.insert(env.id, env.clone());
            }
            let attempt = Attempt {
                queue: self.queue.clone(),
                deliver: self.deliver.clone(),
                backoff: self.opts.backoff,
                warn_after: self.opts.warn_after.clone(),
                tx: self.tx.clone(),
                stats: self.opts.stats.clone(),
            };
            let span = tracing::info_span!("delivery", evpid = %id);
            let (tx, backoff, mut retry) = (self.tx.clone(), self.opts.backoff, batch.clone());
            let task = tokio::spawn(attempt.run(batch).instrument(span));
            tokio::spawn(async move {
                // A delivery that panicked never reported back: give its
                // slot back and try the envelopes again later.
                if task.await.is_err() {
                    warn!("delivery: attempt for {id} crashed; retrying later");
                    for env in &mut retry {
                        env.next_try = now + backoff.delay(env.tries.max(1)).as_secs() as i64;
                    }
                    let batch = retry.iter().map(|e| e.id).collect();
                    let _ = tx.send(Msg::Finished {
                        batch,
                        again: retry,
                    });
                }
            });
        }
    }
}

/// One delivery attempt and its bookkeeping, run as its own task.
struct Attempt<D> {
    queue: Queue,
    deliver: Arc<D>,
    backoff: Backoff,
    warn_after: Vec<Duration>,
    tx: mpsc::UnboundedSender<Msg>,
    /// Outcomes, expiries, dequeues, notices (monitor's keys), the
    /// delivery delay and the envelopes in flight.
    stats: crate::stats::Stats,
}

/// Whether a permanent failure is a mail loop (`5.4.6`, RFC 3463's
/// routing loop status, or the words for it).
fn is_loop(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("5.4.6")
        || [
            "mail loop",
            "routing loop",
            "loop detected",
            "too many hops",
        ]
        .iter()
        .any(|w| lower.contains(w))
}

/// What became of one envelope after an attempt.
enum Settled {
    /// Delivered: to be removed from the queue.
    Delivered(EvpId),
    /// To be tried again; `warn` when a delay warning is due now.
    Retry { env: Envelope, warn: bool },
    /// Failed for good: its sender is owed a bounce.
    Failed(Envelope),
}

impl<D: Deliver> Attempt<D> {
    /// Attempts the batch, then settles each envelope. The recipients
    /// that failed (or are late) together get one notice, as OpenSMTPD
    /// groups a message's bounces.
    async fn run(self, envs: Vec<Envelope>) {
        let batch: Vec<EvpId> = envs.iter().map(|e| e.id).collect();
        let outcomes = self.attempt(&envs).await;
        let now = now();
        let (mut again, mut late, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for (env, outcome) in envs.into_iter().zip(outcomes) {
            match self.settle(env, outcome, now) {
                Settled::Delivered(id) => self.remove(id).await,
                Settled::Retry { env, warn: true } => late.push(env),
                Settled::Retry { env, warn: false } => again.push(env),
                Settled::Failed(env) => failed.push(env),
            }
        }
        self.warn(&mut late).await;
        for env in late.into_iter().chain(std::mem::take(&mut again)) {
            if let Some(env) = self.store(env).await {
                again.push(env);
            }
        }
        again.extend(self.fail(failed, now).await);
        let _ = self.tx.send(Msg::Finished { batch, again });
    }

    async fn attempt(&self, envs: &[Envelope]) -> Vec<Outcome> {
        let mut outcomes = match envs {
            // Failed for good already; only its bounce is still owed.
            [env] if env.kind == EnvelopeKind::Bounce => vec![Outcome::PermFail(
                env.bounce_reason.clone().unwrap_or_default(),
            )],
            [env] => vec![self.deliver.deliver(env).await],
            _ => self.deliver.deliver_batch(envs).await,
        };
        outcomes.resize_with(envs.len(), || {
            Outcome::TempFail("the delivery gave no result for this recipient".into())
        });
        outcomes
    }

    /// Applies one envelope's outcome to it (tries, errors, next try) and
    /// logs it.
    fn settle(&self, mut env: Envelope, outcome: Outcome, now: i64) -> Settled {
        env.tries += 1;
        env.last_try = now;
        let (outcome, expired) = match outcome {
            Outcome::TempFail(e) if now >= env.expire => {
                (Outcome::PermFail(format!("Envelope expired: {e}")), true)
            }
            other => (other, false),
        };
        if expired || !self.deliver.logs_itself(&env) {
            self.log(&env, &outcome, now);
        }
        // A bounce-kind envelope failed earlier and was counted then; its
        // outcome here only stands for the notice still owed.
        if env.kind != EnvelopeKind::Bounce {
            self.count(&env, &outcome, expired, now);
        }
        match outcome {
            Outcome::Ok(_) => Settled::Delivered(env.id),
            Outcome::TempFail(e) => {
                env.last_error = Some(e);
                env.next_try = now + self.backoff.delay(env.tries).as_secs() as i64;
                let warn = self
                    .warn_after
                    .get(env.warnings as usize)
                    .is_some_and(|after| now - env.created >= after.as_secs() as i64);
                Settled::Retry { env, warn }
            }
            Outcome::PermFail(e) => {
                env.last_error = Some(e.clone());
                env.bounce_reason = Some(e);
                Settled::Failed(env)
            }
        }
    }

    /// Counts one attempt's outcome for an envelope; an expiry counts as
    /// the temporary failure it was, plus the expiry.
    fn count(&self, env: &Envelope, outcome: &Outcome, expired: bool, now: i64) {
        use crate::control::format::monitor::keys;
        let key = match outcome {
            Outcome::Ok(_) => {
                let delay = (now - env.created).max(0) as f64;
                self.stats
                    .histogram("scheduler.delivery.delay", crate::stats::DELAY_BUCKETS)
                    .observe(delay);
                keys::DELIVERY_OK
            }
            Outcome::TempFail(_) => keys::DELIVERY_TEMPFAIL,
            Outcome::PermFail(_) if expired => {
                self.stats.counter(keys::ENVELOPE_EXPIRED).inc();
                keys::DELIVERY_TEMPFAIL
            }
            Outcome::PermFail(e) => {
                if is_loop(e) {
                    self.stats.counter(keys::DELIVERY_LOOP).inc();
                }
                keys::DELIVERY_PERMFAIL
            }
        };
        self.stats.counter(key).inc();
    }

    /// Sends the delay warnings (`bounce warn-interval`) now due; one
    /// that cannot be queued is tried at the next failure.
    async fn warn(&self, late: &mut [Envelope]) {
        let wanted: Vec<Envelope> = late
            .iter()
            .filter(|e| Notice::Delayed.wanted(e.dsn.notify.as_deref()))
            .cloned()
            .collect();
        let wanted = self.still_queued(wanted).await;
        let sent = wanted.is_empty() || self.notify(&wanted, Notice::Delayed).await.is_ok();
        if sent {
            for env in late.iter_mut() {
                env.warnings += 1;
            }
        }
    }

    /// Writes a retried envelope's new state; returns it unless it was
    /// removed meanwhile.
    async fn store(&self, env: Envelope) -> Option<Envelope> {
        match self.queue.update_envelope(&env).await {
            Ok(()) => Some(env),
            // Removed meanwhile (wasmtpctl remove): nothing to retry.
            Err(crate::queue::QueueError::NotFound(_)) => None,
            Err(err) => {
                // The on-disk envelope still holds the previous state;
                // keep trying from memory.
                warn!("queue: cannot update envelope {}: {err}", env.id);
                Some(env)
            }
        }
    }

    /// Bounces the envelopes that failed for good and removes them;
    /// returns those whose bounce could not be queued yet, kept as
    /// bounce envelopes to try again.
    async fn fail(&self, failed: Vec<Envelope>, now: i64) -> Vec<Envelope> {
        let owed: Vec<Envelope> = failed
            .iter()
            .filter(|e| e.sender.is_some() && Notice::Failed.wanted(e.dsn.notify.as_deref()))
            .cloned()
            .collect();
        let owed = self.still_queued(owed).await;
        let queued = if owed.is_empty() {
            Ok(())
        } else {
            self.notify(&owed, Notice::Failed).await
        };
        let mut kept = Vec::new();
        for mut env in failed {
            let owes = owed.iter().any(|o| o.id == env.id);
            match &queued {
                Err(why) if owes => {
                    // The sender must hear of it: keep the envelope until
                    // its bounce is safely queued.
                    warn!("bounce: cannot queue the bounce for {} yet: {why}", env.id);
                    env.kind = EnvelopeKind::Bounce;
                    env.next_try = now + self.backoff.delay(1).as_secs() as i64;
                    if let Err(err) = self.queue.update_envelope(&env).await {
                        warn!("queue: cannot update envelope {}: {err}", env.id);
                    }
                    kept.push(env);
                }
                _ => self.remove(env.id).await,
            }
        }
        kept
    }

    /// Queues one notice about `envs` (one message, a sender that is not
    /// null) and hands the new envelopes to the scheduler.
    async fn notify(&self, envs: &[Envelope], notice: Notice) -> Result<(), String> {
        if envs.first().is_none_or(|e| e.sender.is_none()) {
            return Ok(());
        }
        let bounces = self.deliver.bounce(envs, notice).await?;
        if !bounces.is_empty() {
            use crate::control::format::monitor::keys;
            self.stats.counter(keys::BOUNCE).inc();
            self.stats
                .counter(keys::ENVELOPE_ENQUEUED)
                .add(bounces.len() as u64);
            let _ = self.tx.send(Msg::Insert(bounces));
        }
        Ok(())
    }

    /// Takes a settled envelope out of the queue. One already gone (the
    /// operator removed it meanwhile) was counted as removed then.
    async fn remove(&self, id: EvpId) {
        match self.queue.remove_envelope(id).await {
            Ok(()) => self
                .stats
                .counter(crate::control::format::monitor::keys::ENVELOPE_DEQUEUED)
                .inc(),
            Err(crate::queue::QueueError::NotFound(_)) => {}
            Err(err) => warn!("queue: cannot remove envelope {id}: {err}"),
        }
    }

    /// Those of `envs` still in the queue: the sender hears nothing of an
    /// envelope the operator removed while it was being tried.
    async fn still_queued(&self, envs: Vec<Envelope>) -> Vec<Envelope> {
        let mut kept = Vec::with_capacity(envs.len());
        for env in envs {
            match self.queue.read_envelope(env.id).await {
                Err(crate::queue::QueueError::NotFound(_)) => {}
                // Present, or unreadable for now: the notice still goes.
                _ => kept.push(env),
            }
        }
        kept
    }

    fn log(&self, env: &Envelope, outcome: &Outcome, now: i64) {
        let (result, stat) = match outcome {
            // OpenSMTPD's word; the detail (file, LMTP reply) is for -v.
            Outcome::Ok(s) => {
                tracing::debug!("delivery: {}: {s}", env.id);
                ("Ok", "Delivered")
            }
            Outcome::TempFail(s) => ("TempFail", s.as_str()),
            Outcome::PermFail(s) => ("PermFail", s.as_str()),
        };
        let user = match &env.target {
            Some(crate::envelope::LocalTarget::User { username, .. }) => username.as_str(),
            Some(crate::envelope::LocalTarget::File { user, .. })
            | Some(crate::envelope::LocalTarget::Command { user, .. }) => user.as_str(),
            None => "",
        };
        info!(
            "delivery: {result} for {}: from=<{}>, to=<{}>, user={user}, method={}, delay={}, stat={stat}",
            env.id,
            crate::mailaddr::display_sender(env.sender.as_ref()),
            env.rcpt,
            self.deliver.method_name(env),
            human_delay(now - env.created),
        );
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// OpenSMTPD's delay format: `1d2h3m4s` with zero fields left out.
pub fn human_delay(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    for (v, unit) in [(d, 'd'), (h, 'h'), (m, 'm')] {
        if v > 0 || !out.is_empty() {
            out += &format!("{v}{unit}");
        }
    }
    out += &format!("{s}s");
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn notify_decides_which_notices_go() {
        assert!(Notice::Failed.wanted(None));
        assert!(Notice::Delayed.wanted(None));
        assert!(!Notice::Failed.wanted(Some("NEVER")));
        assert!(Notice::Failed.wanted(Some("SUCCESS,FAILURE")));
        assert!(!Notice::Delayed.wanted(Some("SUCCESS,FAILURE")));
        assert!(Notice::Delayed.wanted(Some("delay")));
    }

    #[test]
    fn delay_format() {
        assert_eq!(human_delay(0), "0s");
        assert_eq!(human_delay(61), "1m1s");
        assert_eq!(human_delay(90061), "1d1h1m1s");
    }
}
