//! The filter chain's part in a session: the filters' view of the
//! session, the phase questions and their verdicts turned into protocol
//! decisions, the message lines, and the report events.

use tracing::{debug, info};

use super::{reply, Inbound, Transaction};
use crate::envelope::Envelope;
use crate::filter::{FilterSession, Outcome, Phase, Report, SessionFilters, TxAddress, Verdict};
use crate::mailaddr::MailAddr;
use crate::smtp::proto::{Decision, Reply, Session};

impl Inbound {
    /// Instantiates the listener's filters (from the set current now:
    /// a reload later does not touch this session) and asks them about
    /// the connection.
    pub(super) async fn start_filters(&mut self, session: &Session) -> Decision {
        let (Some(registry), Some(name)) = (&self.services.filters, &self.listener.filter) else {
            return Decision::Accept(None);
        };
        let chain = registry.chain(name);
        if chain.is_empty() {
            return Decision::Accept(None);
        }
        let mut filters = SessionFilters::new(chain, &self.session_id);
        if let Some(tag) = &self.listener.tag {
            filters = filters.with_tenant(tag, registry.tenant_stats(tag));
        }
        self.filters = Some(filters);
        self.filter_view = Some(self.new_view());
        self.report(session, Report::LinkConnect).await;
        let ip = self.peer_text();
        match self.filter_phase(session, Phase::Connect, &ip).await {
            Ok(_) => Decision::Accept(None),
            Err(refusal) => refusal,
        }
    }

    pub(super) async fn filter_helo(
        &mut self,
        extended: bool,
        name: &str,
        session: &Session,
    ) -> Decision {
        let verb = if extended { "EHLO" } else { "HELO" };
        self.report(session, Report::LinkIdentify(format!("{verb} {name}")))
            .await;
        let phase = if extended { Phase::Ehlo } else { Phase::Helo };
        match self.filter_phase(session, phase, name).await {
            Ok((rewrite, _)) => {
                if rewrite.is_some() {
                    // The protocol keeps the name the client gave; only
                    // addresses can be rewritten.
                    debug!(
                        "filter: session {}: rewrite of the HELO name ignored",
                        self.session_id
                    );
                }
                Decision::Accept(None)
            }
            Err(refusal) => refusal,
        }
    }

    /// Asks the chain about a phase: Ok((rewrite, junk)) to go on, or the
    /// decision that refuses. Junk before MAIL marks the whole session.
    pub(super) async fn filter_phase(
        &mut self,
        session: &Session,
        phase: Phase,
        param: &str,
    ) -> Result<(Option<String>, bool), Decision> {
        self.refresh_view(session);
        let (Some(filters), Some(view)) = (self.filters.as_mut(), self.filter_view.as_ref()) else {
            return Ok((None, false));
        };
        let verdict = filters.phase(view, phase, param).await;
        let said = match &verdict {
            Verdict::Proceed {
                rewrite: Some(_), ..
            } => "rewrite",
            Verdict::Proceed { junk: true, .. } => "junk",
            Verdict::Proceed { .. } => "proceed",
            Verdict::Reject(_) => "reject",
            Verdict::Disconnect(_) => "disconnect",
        };
        self.report(session, Report::FilterResponse((phase, said.to_string())))
            .await;
        match verdict {
            Verdict::Proceed { rewrite, junk } => {
                if junk
                    && matches!(
                        phase,
                        Phase::Connect | Phase::Helo | Phase::Ehlo | Phase::Auth
                    )
                {
                    self.session_junk = true;
                }
                Ok((rewrite, junk))
            }
            Verdict::Reject(r) => {
                self.log_refusal(phase, &r);
                Err(Decision::Reject(r))
            }
            Verdict::Disconnect(r) => {
                self.log_refusal(phase, &r);
                Err(Decision::Disconnect(r))
            }
        }
    }

    /// The message through the filters that read lines, then the commit
    /// phase.
    pub(super) async fn filter_message(
        &mut self,
        session: &Session,
        tx: &mut Transaction,
        content: Vec<u8>,
    ) -> Result<Vec<u8>, Decision> {
        self.refresh_view(session);
        let max = usize::try_from(self.services.config.smtp.max_message_size).unwrap_or(usize::MAX);
        let (Some(filters), Some(view)) = (self.filters.as_mut(), self.filter_view.as_ref()) else {
            return Ok(content);
        };
        let content = match filters.data(view, content, max).await {
            Ok(c) => c,
            Err(verdict) => return Err(self.refuse_message(session, tx, verdict).await),
        };
        match self.filter_phase(session, Phase::Commit, "").await {
            Ok((_, junk)) => {
                tx.junk |= junk;
                self.report(session, Report::TxData((tx.msgid.to_string(), Outcome::Ok)))
                    .await;
                Ok(content)
            }
            Err(refusal) => {
                self.report(session, Report::TxRollback(tx.msgid.to_string()))
                    .await;
                Err(refusal)
            }
        }
    }

    async fn refuse_message(
        &mut self,
        session: &Session,
        tx: &Transaction,
        verdict: Verdict,
    ) -> Decision {
        self.report(session, Report::TxRollback(tx.msgid.to_string()))
            .await;
        match verdict {
            Verdict::Disconnect(r) => Decision::Disconnect(r),
            Verdict::Reject(r) => Decision::Reject(r),
            Verdict::Proceed { .. } => Decision::Reject(reply(451, "4.3.0", "Temporary failure")),
        }
    }

    /// Sends a report to the filters that asked for reports.
    pub(super) async fn report(&mut self, session: &Session, report: Report) {
        if !self.reports_wanted() {
            return;
        }
        self.refresh_view(session);
        if let (Some(filters), Some(view)) = (self.filters.as_mut(), self.filter_view.as_ref()) {
            filters.report(view, report).await;
        }
    }

    pub(super) async fn report_mail(&mut self, session: &Session, msgid: crate::envelope::MsgId) {
        if !self.reports_wanted() {
            return;
        }
        let address = self
            .tx
            .as_ref()
            .and_then(|t| t.sender.as_ref().map(|s| s.to_string()))
            .unwrap_or_default();
        self.report(session, Report::TxBegin(msgid.to_string()))
            .await;
        let mail = TxAddress {
            msgid: msgid.to_string(),
            outcome: Outcome::Ok,
            address,
        };
        self.report(session, Report::TxMail(mail)).await;
    }

    pub(super) async fn report_rcpt(&mut self, session: &Session, rcpt: &MailAddr, d: &Decision) {
        let Some(msgid) = self.tx.as_ref().map(|t| t.msgid.to_string()) else {
            return;
        };
        let outcome = match d {
            Decision::Accept(_) => Outcome::Ok,
            Decision::Reject(r) | Decision::Disconnect(r) if r.code >= 500 => Outcome::Permfail,
            _ => Outcome::Tempfail,
        };
        let report = Report::TxRcpt(TxAddress {
            msgid,
            outcome,
            address: rcpt.to_string(),
        });
        self.report(session, report).await;
    }

    pub(super) async fn report_auth(&mut self, session: &Session, user: &str, result: &str) {
        let report = Report::LinkAuth(crate::filter::bindings::AuthReport {
            user: user.to_string(),
            result: result.to_string(),
        });
        self.report(session, report).await;
    }

    pub(super) async fn report_commit(
        &mut self,
        session: &Session,
        tx: &Transaction,
        envelopes: &[Envelope],
        size: usize,
    ) {
        if !self.reports_wanted() {
            return;
        }
        for e in envelopes {
            let report = Report::TxEnvelope((tx.msgid.to_string(), e.id.to_string()));
            self.report(session, report).await;
        }
        self.report(
            session,
            Report::TxCommit((tx.msgid.to_string(), size as u64)),
        )
        .await;
    }

    /// TLS is on: the filters see it from now on.
    pub async fn tls_started(&mut self, session: &Session, description: String) {
        self.stats.tls.inc();
        self.tls_info = Some(description.clone());
        self.report(session, Report::LinkTls(description)).await;
    }

    /// The session is over (closed by either side or timed out).
    pub async fn finish(&mut self, session: &Session, timed_out: bool) {
        self.abandon(session).await;
        if timed_out {
            self.report(session, Report::Timeout).await;
        }
        self.report(session, Report::LinkDisconnect).await;
    }

    fn reports_wanted(&self) -> bool {
        self.filters
            .as_ref()
            .is_some_and(SessionFilters::wants_reports)
    }

    /// What the filters see of the session at its start: the addresses
    /// and names, which do not change.
    fn new_view(&self) -> FilterSession {
        let (local, remote) = match self.enqueue {
            Some(_) => ("local".to_string(), "local".to_string()),
            None => (self.local.to_string(), self.peer.to_string()),
        };
        FilterSession {
            id: self.session_id.clone(),
            tenant: self.listener.tag.clone(),
            local_address: local,
            remote_address: remote,
            rdns: (self.peer_name != "<unknown>").then(|| self.peer_name.clone()),
            fcrdns: self.peer_confirmed(),
            helo: None,
            tls: None,
            auth_user: None,
            tag: self.listener.tag.clone(),
        }
    }

    /// Brings the filters' view up to date with what changes during a
    /// session (HELO, TLS, AUTH), copied in place.
    fn refresh_view(&mut self, session: &Session) {
        let Some(view) = self.filter_view.as_mut() else {
            return;
        };
        set_text(&mut view.helo, session.helo());
        view.tls.clone_from(&self.tls_info);
        set_text(&mut view.auth_user, session.auth_user());
    }

    fn log_refusal(&self, phase: Phase, r: &Reply) {
        info!(
            "smtp-in: Filter refused {} on session {}: {} {} {}",
            crate::filter::chain::phase_name(phase),
            self.session_id,
            r.code,
            r.enhanced.as_deref().unwrap_or(""),
            r.text
        );
    }
}

/// An address a filter rewrote: `<>`/empty is the null sender (None).
pub(super) fn rewritten_address(new: &str) -> Result<Option<MailAddr>, Decision> {
    let bare = new.trim().trim_start_matches('<').trim_end_matches('>');
    if bare.is_empty() {
        return Ok(None);
    }
    MailAddr::parse(bare)
        .map(Some)
        .map_err(|_| invalid_rewrite())
}

pub(super) fn invalid_rewrite() -> Decision {
    Decision::Reject(reply(
        451,
        "4.3.0",
        "Temporary failure: filter rewrote an invalid address",
    ))
}

/// `field = value`, reusing the field's buffer.
fn set_text(field: &mut Option<String>, value: Option<&str>) {
    match (field.as_mut(), value) {
        (Some(have), Some(v)) if have != v => {
            have.clear();
            have.push_str(v);
        }
        (Some(_), Some(_)) => {}
        (None, Some(v)) => *field = Some(v.to_string()),
        (_, None) => *field = None,
    }
}
