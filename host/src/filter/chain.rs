//! A session's filters: one instance per filter, run in chain order for
//! each phase, each batch of message lines and each report, with the
//! operator's failure policy applied when a filter fails.

use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use super::bindings::{Decision, LinesOut, Phase, Report, Session, Subscriptions};
use super::builtin::Builtin;
use super::instance::{Failure, Instance};
use super::interest::Interest;
use super::registry::LoadedFilter;
use super::reply;
use super::stats::{FilterStats, TenantStats};
use crate::config::model::OnError;
use crate::smtp::proto::Reply;

/// Bytes per `on-data-lines` call (whole lines; a longer line goes alone).
const BATCH_BYTES: usize = 256 * 1024;

/// What the chain decided for a phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; `rewrite` replaces the phase's parameter, `junk` marks the
    /// message (or the session, before MAIL).
    Proceed { rewrite: Option<String>, junk: bool },
    /// Refuse the command with this reply (421 also ends the session).
    Reject(Reply),
    /// Send this reply and end the session.
    Disconnect(Reply),
}

impl Verdict {
    pub const PROCEED: Verdict = Verdict::Proceed {
        rewrite: None,
        junk: false,
    };
}

enum State {
    NotStarted,
    Live(Box<Instance>),
    /// Failed earlier in the session: its policy answers from now on.
    Failed,
    /// Done with the session: it asked for nothing after the connection
    /// (a DNSBL check), so its instance went back to the idle list right
    /// after the connect phase instead of idling until the session ends.
    Done,
}

/// A chain's member: a wasm filter (instantiated per session) or a
/// builtin one (a host-side rule).
pub enum ChainMember {
    Wasm(Arc<LoadedFilter>),
    Builtin(Arc<Builtin>),
}

enum Slot {
    Wasm(Member),
    Builtin(Arc<Builtin>),
}

struct Member {
    filter: Arc<LoadedFilter>,
    state: State,
    /// Why it failed, when it did.
    failure: Option<Failure>,
    /// Its commit decision for the message under way, given with the
    /// last batch of lines: commit then asks it nothing.
    commit: Option<Decision>,
}

pub struct SessionFilters {
    members: Vec<Slot>,
    session_id: String,
    /// The session's tenant (its listener's tag), when it has one.
    tenant: Option<String>,
    tenant_stats: Option<Arc<TenantStats>>,
}

impl SessionFilters {
    pub fn new(chain: Vec<ChainMember>, session_id: &str) -> SessionFilters {
        SessionFilters {
            members: chain
                .into_iter()
                .map(|m| match m {
                    ChainMember::Wasm(filter) => Slot::Wasm(Member {
                        filter,
                        state: State::NotStarted,
                        failure: None,
                        commit: None,
                    }),
                    ChainMember::Builtin(b) => Slot::Builtin(b),
                })
                .collect(),
            session_id: session_id.to_string(),
            tenant: None,
            tenant_stats: None,
        }
    }

    /// The session belongs to tenant `tag`: its instances are its own
    /// (reused ones included), and its filter work is counted for it.
    pub fn with_tenant(mut self, tag: &str, stats: TenantStats) -> SessionFilters {
        self.tenant = Some(tag.to_string());
        self.tenant_stats = Some(Arc::new(stats));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether a report could reach anyone: a filter that asked for them,
    /// or one not started yet (its subscriptions are not known). Lets the
    /// session skip building the filters' view for every event.
    pub fn wants_reports(&self) -> bool {
        self.members.iter().any(|slot| match slot {
            Slot::Wasm(m) => match &m.state {
                State::NotStarted => m
                    .filter
                    .interest
                    .get()
                    .is_none_or(|s| s.subscriptions.reports),
                State::Live(instance) => instance.interest.subscriptions.reports,
                State::Failed | State::Done => false,
            },
            Slot::Builtin(_) => false,
        })
    }

    /// The filters that failed in this session, and why.
    pub fn failures(&self) -> Vec<(&str, &Failure)> {
        self.members
            .iter()
            .filter_map(|slot| match slot {
                Slot::Wasm(m) => Some((m.filter.name.as_str(), m.failure.as_ref()?)),
                Slot::Builtin(_) => None,
            })
            .collect()
    }

    /// Asks the chain about a phase. Filters that did not subscribe to
    /// it are not called; a rewrite feeds the next filter's parameter.
    pub async fn phase(&mut self, session: &Session, phase: Phase, param: &str) -> Verdict {
        let verdict = self.ask(session, phase, param).await;
        match phase {
            Phase::Connect => self.release(connect_only, || State::Done),
            Phase::Commit => self.release_per_message(),
            _ => {}
        }
        verdict
    }

    /// The transaction under way was dropped (RSET, a new MAIL FROM, the
    /// session's end) or ended: the filters that serve a message at a
    /// time hand their instances back.
    pub fn end_message(&mut self) {
        self.release_per_message();
    }

    /// Hands back the instances of the filters that serve a message at a
    /// time: the message is decided. The next message takes one again.
    fn release_per_message(&mut self) {
        self.release(|s| s.per_message, || State::NotStarted);
    }

    /// Parks the live instances that `done` says will not be called
    /// again for now, leaving their member in `then`'s state. Their next
    /// session (or message) may start while this one goes on, on a hot
    /// instance, and fewer instances go round.
    fn release(&mut self, done: impl Fn(&Subscriptions) -> bool, then: impl Fn() -> State) {
        for slot in &mut self.members {
            let Slot::Wasm(member) = slot else { continue };
            let State::Live(instance) = &member.state else {
                continue;
            };
            if !done(&instance.interest.subscriptions) {
                continue;
            }
            let State::Live(instance) = std::mem::replace(&mut member.state, then()) else {
                continue;
            };
            member.commit = None;
            if instance.reusable() {
                member.filter.idle.park(self.tenant.clone(), instance);
            }
        }
    }

    async fn ask(&mut self, session: &Session, phase: Phase, param: &str) -> Verdict {
        let mut param = param.to_string();
        let (mut rewritten, mut junk) = (false, false);
        for i in 0..self.members.len() {
            let answer = if let Slot::Builtin(b) = &self.members[i] {
                match b.decide(phase, &param, session) {
                    Some(d) => Ok(d),
                    None => continue,
                }
            } else if let Some(d) = self.early_commit(i, phase) {
                Ok(d)
            } else if self.not_wanted(i, |s| s.wants_phase(phase, &param)) {
                continue;
            } else {
                match self.live(i).await {
                    Err(failure) => Err(failure),
                    Ok(None) => continue,
                    Ok(Some(instance)) if !instance.interest.wants_phase(phase, &param) => continue,
                    Ok(Some(instance)) => instance.on_phase(session, phase, &param).await,
                }
            };
            let decision = match answer {
                Ok(d) => d,
                Err(failure) => match self.failed(i, phase_name(phase), failure) {
                    Some(v) => return v,
                    None => continue,
                },
            };
            match decision {
                Decision::Proceed => {}
                Decision::Junk => junk = true,
                Decision::Bypass => break,
                // The client's address is a fact, not a parameter: the
                // filters after this one (a DNSBL) see the real one.
                Decision::Rewrite(_) if phase == Phase::Connect => {}
                Decision::Rewrite(v) => {
                    param = v;
                    rewritten = true;
                }
                Decision::Reject(r) => match reply::checked(&r) {
                    Ok(r) => {
                        self.log_decision(i, phase, "reject", &r);
                        return Verdict::Reject(r);
                    }
                    Err(why) => {
                        if let Some(v) = self.failed(i, phase_name(phase), Failure::BadAnswer(why))
                        {
                            return v;
                        }
                    }
                },
                Decision::Disconnect(r) => match reply::checked(&r) {
                    Ok(r) => {
                        self.log_decision(i, phase, "disconnect", &r);
                        return Verdict::Disconnect(r);
                    }
                    Err(why) => {
                        if let Some(v) = self.failed(i, phase_name(phase), Failure::BadAnswer(why))
                        {
                            return v;
                        }
                    }
                },
            }
        }
        Verdict::Proceed {
            rewrite: rewritten.then_some(param),
            junk,
        }
    }

    /// Whether member `i` has no instance yet and its filter's
    /// interest (known once any instance answered `init`) says it does
    /// not want this event: it is then not started for it. An
    /// instance is taken at the first event its filter asked for, and
    /// touched no earlier: each instance a session touches costs it
    /// cache misses.
    fn not_wanted(&self, i: usize, wants: impl Fn(&Interest) -> bool) -> bool {
        self.known_interest(i).is_some_and(|s| !wants(s))
    }

    /// The filter's interest when member `i` has no instance yet and an
    /// earlier instance answered `init`.
    fn known_interest(&self, i: usize) -> Option<&Interest> {
        match &self.members[i] {
            Slot::Wasm(member) if matches!(member.state, State::NotStarted) => {
                member.filter.interest.get().map(|s| &**s)
            }
            _ => None,
        }
    }

    /// The commit decision member `i` gave with the message's last
    /// lines, when `phase` is commit.
    fn early_commit(&mut self, i: usize, phase: Phase) -> Option<Decision> {
        match &mut self.members[i] {
            Slot::Wasm(member) if phase == Phase::Commit => member.commit.take(),
            _ => None,
        }
    }

    /// The message was refused on its lines: no commit follows, the
    /// per-message instances are done with it.
    fn message_refused(&mut self, verdict: Verdict) -> Verdict {
        self.release_per_message();
        verdict
    }

    /// Member `i`'s message guard matched nothing: it is asked nothing
    /// about this message, its commit answer is proceed.
    fn pass_message(&mut self, i: usize) {
        if let Slot::Wasm(member) = &mut self.members[i] {
            member.commit = Some(Decision::Proceed);
        }
    }

    /// Runs the message through every filter that reads lines, in
    /// batches. `content` is CRLF lines; so is the result. `max_size`
    /// bounds what a filter may hand back.
    pub async fn data(
        &mut self,
        session: &Session,
        mut content: Vec<u8>,
        max_size: usize,
    ) -> Result<Vec<u8>, Verdict> {
        for slot in &mut self.members {
            if let Slot::Wasm(member) = slot {
                member.commit = None;
            }
        }
        for i in 0..self.members.len() {
            if self.not_wanted(i, |s| s.subscriptions.data_lines) {
                continue;
            }
            // Checked here when the filter's interest is known and it has
            // no instance yet, else once it has one (never twice: the
            // check reads the whole message).
            let wanted = self.known_interest(i).map(|s| s.wants_message(&content));
            if wanted == Some(false) {
                self.pass_message(i);
                continue;
            }
            let guard_checked = wanted.is_some();
            let instance = match self.live(i).await {
                Err(failure) => match self.failed(i, "data-line", failure) {
                    Some(v) => return Err(self.message_refused(v)),
                    None => continue,
                },
                Ok(None) => continue,
                Ok(Some(instance)) if !instance.interest.subscriptions.data_lines => continue,
                Ok(Some(instance)) => instance,
            };
            if !guard_checked && !instance.interest.wants_message(&content) {
                self.pass_message(i);
                continue;
            }
            match run_lines(instance, session, &content, max_size).await {
                Ok(output) => {
                    if let Some(out) = output.lines {
                        content = out;
                    }
                    if !output.prepend.is_empty() {
                        let mut top = output.prepend;
                        top.extend_from_slice(&content);
                        content = top;
                    }
                    if let Slot::Wasm(member) = &mut self.members[i] {
                        member.commit = output.commit;
                    }
                }
                Err(failure) => {
                    if let Some(v) = self.failed(i, "data-line", failure) {
                        return Err(self.message_refused(v));
                    }
                }
            }
        }
        Ok(content)
    }

    /// Tells every filter that asked for reports. A failure here only
    /// marks the filter failed; its policy answers at the next phase.
    pub async fn report(&mut self, session: &Session, report: Report) {
        for i in 0..self.members.len() {
            if self.not_wanted(i, |s| s.subscriptions.reports) {
                continue;
            }
            let instance = match self.live(i).await {
                Ok(Some(instance)) if instance.interest.subscriptions.reports => instance,
                _ => continue,
            };
            if let Err(failure) = instance.on_report(session, &report).await {
                let _ = self.failed(i, "report", failure);
            }
        }
    }

    /// The member's instance, started on first use; None when it failed
    /// before and its policy is to proceed.
    async fn live(&mut self, i: usize) -> Result<Option<&mut Instance>, Failure> {
        let Slot::Wasm(member) = &mut self.members[i] else {
            return Ok(None);
        };
        if let State::NotStarted = member.state {
            if member.filter.quarantine.is_quarantined(Instant::now()) {
                member.state = State::Failed;
                return Err(Failure::Quarantined);
            }
            let tenant = self.tenant_stats.clone();
            let instance = match member.filter.idle.take(self.tenant.as_deref()) {
                Some(mut idle) => {
                    idle.restart(&self.session_id, tenant);
                    idle
                }
                None => {
                    let instance =
                        Instance::start_for(&member.filter, &self.session_id, tenant).await?;
                    let known = &member.filter.interest;
                    known.get_or_init(|| instance.interest.clone());
                    Box::new(instance)
                }
            };
            member.state = State::Live(instance);
        }
        match &mut member.state {
            State::Live(instance) => Ok(Some(instance)),
            State::Done => Ok(None),
            State::Failed if member.filter.on_error == OnError::Proceed => Ok(None),
            State::Failed | State::NotStarted => Err(Failure::Quarantined),
        }
    }

    /// Logs a failure, drops the instance, counts it towards quarantine
    /// and returns the policy's verdict (None: proceed without it).
    fn failed(&mut self, i: usize, phase: &str, failure: Failure) -> Option<Verdict> {
        let Slot::Wasm(member) = &mut self.members[i] else {
            return None;
        };
        let filter = &member.filter;
        let was_live = matches!(member.state, State::Live(_) | State::NotStarted);
        member.state = State::Failed;
        if member.failure.is_none() {
            member.failure = Some(failure.clone());
        }
        if was_live && failure != Failure::Quarantined {
            count_failure(&filter.stats, self.tenant_stats.as_deref(), &failure);
            warn!(
                "filter {}: session {}: failed in {phase}: {failure} (on-error {})",
                filter.name,
                self.session_id,
                policy_name(filter.on_error)
            );
            if filter.quarantine.record_failure(Instant::now()) {
                filter.stats.quarantines.inc();
                warn!(
                    "filter {}: quarantined for {}s after {} failures",
                    filter.name,
                    super::quarantine::DURATION.as_secs(),
                    super::quarantine::THRESHOLD
                );
            }
        }
        match filter.on_error {
            OnError::Proceed => None,
            OnError::Tempfail => Some(Verdict::Disconnect(policy_reply(OnError::Tempfail))),
            OnError::Reject => Some(Verdict::Reject(policy_reply(OnError::Reject))),
        }
    }

    fn member_name(&self, i: usize) -> &str {
        match &self.members[i] {
            Slot::Wasm(m) => &m.filter.name,
            Slot::Builtin(b) => &b.name,
        }
    }

    fn member_stats(&self, i: usize) -> &FilterStats {
        match &self.members[i] {
            Slot::Wasm(m) => &m.filter.stats,
            Slot::Builtin(b) => b.stats(),
        }
    }

    fn log_decision(&self, i: usize, phase: Phase, what: &str, r: &Reply) {
        self.member_stats(i).rejects.inc();
        info!(
            "filter {}: session {}: {what} in {}: {} {}",
            self.member_name(i),
            self.session_id,
            phase_name(phase),
            r.code,
            r.text
        );
    }
}

/// A filter that asked for nothing after the connection (a DNSBL).
fn connect_only(subs: &Subscriptions) -> bool {
    !subs.data_lines && !subs.reports && subs.phases.iter().all(|p| *p == Phase::Connect)
}

/// At the session's end, instances that may serve again are parked for
/// the tenant's next session; the rest are dropped.
impl Drop for SessionFilters {
    fn drop(&mut self) {
        for slot in &mut self.members {
            let Slot::Wasm(member) = slot else { continue };
            let State::Live(instance) = std::mem::replace(&mut member.state, State::Failed) else {
                continue;
            };
            if member.failure.is_none() && instance.reusable() {
                member.filter.idle.park(self.tenant.clone(), instance);
            }
        }
    }
}

/// A failure that set the policy going; traps (limits included) are
/// told apart from answers the host refused and failed starts.
fn count_failure(stats: &FilterStats, tenant: Option<&TenantStats>, failure: &Failure) {
    stats.errors.inc();
    let trapped = matches!(
        failure,
        Failure::Fuel
            | Failure::SessionFuel
            | Failure::Deadline
            | Failure::Memory
            | Failure::Stack
            | Failure::Budget(_)
            | Failure::Trap(_)
    );
    if trapped {
        stats.traps.inc();
        if let Some(t) = tenant {
            t.traps.inc();
        }
    }
    if *failure == Failure::Deadline {
        stats.timeouts.inc();
    }
}

/// What one filter made of a message's lines.
struct LinesOutput {
    /// The lines, or None when it passed every batch on unchanged (so
    /// nothing was copied).
    lines: Option<Vec<u8>>,
    /// The commit decision it gave with the last batch, if it did.
    commit: Option<Decision>,
    /// Lines for the top of the message, given with the last batch.
    prepend: Vec<u8>,
}

/// One filter over all the lines, batch by batch.
async fn run_lines(
    instance: &mut Instance,
    session: &Session,
    input: &[u8],
    max_size: usize,
) -> Result<LinesOutput, Failure> {
    let mut out: Option<Vec<u8>> = None;
    let mut start = 0;
    loop {
        let end = batch_end(input, start);
        let last = end == input.len();
        let batch = &input[start..end];
        let answer = instance.on_data_lines(session, batch, last).await?;
        match answer.lines {
            LinesOut::Pass => {
                if let Some(out) = &mut out {
                    out.extend_from_slice(batch);
                }
            }
            LinesOut::Replace(lines) => {
                check_lines(&lines)?;
                match &mut out {
                    Some(out) => out.extend_from_slice(&lines),
                    None if start == 0 => out = Some(lines),
                    None => {
                        let mut so_far = Vec::with_capacity(start + lines.len());
                        so_far.extend_from_slice(&input[..start]);
                        so_far.extend_from_slice(&lines);
                        out = Some(so_far);
                    }
                }
            }
        }
        let prepend = if last { answer.prepend } else { Vec::new() };
        check_lines(&prepend)?;
        let size = out.as_ref().map_or(input.len(), Vec::len) + prepend.len();
        if size > max_size && (out.is_some() || !prepend.is_empty()) {
            return Err(Failure::BadAnswer(
                "message grew past the size limit".into(),
            ));
        }
        if last {
            return Ok(LinesOutput {
                lines: out,
                commit: answer.commit,
                prepend,
            });
        }
        start = end;
    }
}

/// Where the batch starting at `start` ends: after the last line end
/// within [`BATCH_BYTES`], or after the first line end past it when a
/// single line is longer.
fn batch_end(input: &[u8], start: usize) -> usize {
    let limit = start + BATCH_BYTES;
    if limit >= input.len() {
        return input.len();
    }
    match memchr::memrchr(b'\n', &input[start..limit]) {
        Some(i) => start + i + 1,
        None => memchr::memchr(b'\n', &input[limit..]).map_or(input.len(), |i| limit + i + 1),
    }
}

/// Lines a filter handed back: each ends with CRLF and holds no other CR
/// or LF, so the message keeps its line structure (a bare LF would let a
/// filter smuggle a `.` line or a header past the others).
fn check_lines(lines: &[u8]) -> Result<(), Failure> {
    let bad = |why: &str| Err(Failure::BadAnswer(why.into()));
    if !lines.is_empty() && !lines.ends_with(b"\r\n") {
        return bad("lines that do not end with CRLF");
    }
    let mut lfs = 0;
    for i in memchr::memchr_iter(b'\n', lines) {
        if i == 0 || lines[i - 1] != b'\r' {
            return bad("a line with a bare LF in it");
        }
        lfs += 1;
    }
    if memchr::memchr_iter(b'\r', lines).count() != lfs {
        return bad("a line with a bare CR in it");
    }
    Ok(())
}

fn policy_reply(policy: OnError) -> Reply {
    match policy {
        OnError::Reject => Reply {
            code: 554,
            enhanced: Some("5.7.0".into()),
            text: "Rejected: content filter failure".into(),
        },
        _ => Reply {
            code: 421,
            enhanced: Some("4.7.0".into()),
            text: "Temporary failure in content filter, try again later".into(),
        },
    }
}

fn policy_name(p: OnError) -> &'static str {
    match p {
        OnError::Tempfail => "tempfail",
        OnError::Reject => "reject",
        OnError::Proceed => "proceed",
    }
}

pub const ALL_PHASES: [Phase; 9] = [
    Phase::Connect,
    Phase::Helo,
    Phase::Ehlo,
    Phase::Starttls,
    Phase::Auth,
    Phase::MailFrom,
    Phase::RcptTo,
    Phase::Data,
    Phase::Commit,
];

pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Connect => "connect",
        Phase::Helo => "helo",
        Phase::Ehlo => "ehlo",
        Phase::Starttls => "starttls",
        Phase::Auth => "auth",
        Phase::MailFrom => "mail-from",
        Phase::RcptTo => "rcpt-to",
        Phase::Data => "data",
        Phase::Commit => "commit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_end_at_line_ends() {
        let line = vec![b'x'; 1000];
        let mut msg = Vec::new();
        while msg.len() < 3 * BATCH_BYTES {
            msg.extend_from_slice(&line);
            msg.extend_from_slice(b"\r\n");
        }
        let mut start = 0;
        while start < msg.len() {
            let end = batch_end(&msg, start);
            assert!(end > start && end - start <= BATCH_BYTES);
            assert!(msg[..end].ends_with(b"\r\n"));
            start = end;
        }
        assert_eq!(batch_end(b"", 0), 0);
        let long = [vec![b'y'; BATCH_BYTES + 10], b"\r\nz\r\n".to_vec()].concat();
        assert_eq!(
            batch_end(&long, 0),
            BATCH_BYTES + 12,
            "a long line goes alone"
        );
    }

    #[test]
    fn handed_back_lines_keep_the_line_structure() {
        assert!(check_lines(b"").is_ok());
        assert!(check_lines(b"a\r\n\r\nb\r\n").is_ok());
        for bad in [
            &b"a"[..],
            b"a\n",
            b"a\r\nb",
            b"a\nb\r\n",
            b"a\rb\r\n",
            b"\n.\r\n",
        ] {
            assert!(
                check_lines(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
