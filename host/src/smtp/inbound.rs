//! What the daemon answers to the protocol's events: rule matching for
//! each recipient, building envelopes, committing the message to the
//! queue before the 250, checking AUTH credentials (slowly, on
//! purpose, when they are wrong) and `senders` ownership, and
//! OpenSMTPD's smtp-in log lines.
//!
//! The protocol state machine (`proto`) knows nothing of this; the driver
//! (`server`) only shuttles bytes and hands events here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::auth;
use crate::filter::{Phase, Report, SessionFilters};
use filters::{invalid_rewrite, rewritten_address};

use crate::envelope::{DsnParams, Envelope, EnvelopeKind, EvpId, MsgId};
use crate::lka::resolve::{Resolved, Resolver};
use crate::lka::rules::MatchContext;
use crate::mailaddr::{display_sender, MailAddr};
use crate::smtp::local::LocalPeer;
use crate::smtp::proto::{Decision, Event, MailParams, Password, RcptParams, Reply, Session};
use crate::smtp::Services;
use crate::stats::{Counter, Gauge, Stats};

/// Per-listener facts the event handler needs.
#[derive(Clone, Debug)]
pub struct ListenerInfo {
    pub hostname: String,
    pub tag: Option<String>,
    pub mask_src: bool,
    /// `auth <t>` / `auth-optional <t>`: the credentials table.
    pub auth_table: Option<String>,
    /// `senders <t>`: user → the sender addresses the user owns.
    pub senders: Option<String>,
    /// `senders <t> masquerade`: From headers are rewritten to the
    /// envelope sender for authenticated users.
    pub masquerade: bool,
    /// Delay before answering a failed AUTH, times the session's failures
    /// so far: what slows a password guesser down.
    pub auth_failure_delay: Duration,
    /// `filter NAME`: the filter or chain sessions run.
    pub filter: Option<String>,
}

/// OpenSMTPD-like pace for password guessers: 1 s, 2 s, 3 s...
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

impl ListenerInfo {
    /// A listener without AUTH or senders checks.
    pub fn new(hostname: impl Into<String>) -> ListenerInfo {
        ListenerInfo {
            hostname: hostname.into(),
            tag: None,
            mask_src: false,
            auth_table: None,
            senders: None,
            masquerade: false,
            auth_failure_delay: AUTH_FAILURE_DELAY,
            filter: None,
        }
    }
}

/// One accepted recipient and what it resolved to.
struct AcceptedRcpt {
    rcpt: MailAddr,
    params: RcptParams,
    resolved: Vec<Resolved>,
}

/// The transaction as the daemon sees it.
struct Transaction {
    msgid: MsgId,
    sender: Option<MailAddr>,
    params: MailParams,
    rcpts: Vec<AcceptedRcpt>,
    /// A filter said junk: `X-Spam: yes` and the `.Junk` folder.
    junk: bool,
}

/// Event handling state of one session.
pub struct Inbound {
    services: Arc<Services>,
    listener: Arc<ListenerInfo>,
    pub session_id: String,
    peer: SocketAddr,
    local: SocketAddr,
    peer_name: String,
    tx: Option<Transaction>,
    auth_failures: u32,
    /// The listener's filters, instantiated for this session.
    filters: Option<SessionFilters>,
    /// What the filters see of the session, updated in place before each
    /// question (its strings are not rebuilt every time).
    filter_view: Option<crate::filter::FilterSession>,
    /// A filter said junk before MAIL: every message of the session is.
    session_junk: bool,
    /// "TLSv1.3:cipher:bits" once TLS is on, for the filters.
    tls_info: Option<String>,
    stats: SessionStats,
    /// A local enqueue (sendmail): there is no peer address and the
    /// session is `from local` and `from socket`.
    enqueue: Option<LocalPeer>,
}

/// The statistics a session moves, looked up once when it starts.
struct SessionStats {
    disconnect: Counter,
    /// Sessions open now: up when one starts, down when it is dropped.
    open: Gauge,
    tls: Counter,
    auth_ok: Counter,
    auth_fail: Counter,
    enqueued: Counter,
    rejected: Counter,
}

impl SessionStats {
    /// Counts the new session (`smtp.session.connect`, by address family)
    /// and returns the handles for the rest of it.
    fn start(stats: &Stats, family: &str) -> SessionStats {
        use crate::control::format::monitor::keys;
        stats.counter(keys::SESSION_CONNECT).inc();
        stats.counter(family).inc();
        let open = stats.gauge("smtp.session");
        open.inc();
        SessionStats {
            disconnect: stats.counter(keys::SESSION_DISCONNECT),
            open,
            tls: stats.counter("smtp.tls"),
            auth_ok: stats.counter("smtp.auth.ok"),
            auth_fail: stats.counter("smtp.auth.fail"),
            enqueued: stats.counter(keys::ENVELOPE_ENQUEUED),
            rejected: stats.counter("smtp.message.rejected"),
        }
    }
}

impl Drop for SessionStats {
    fn drop(&mut self) {
        self.disconnect.inc();
        self.open.dec();
    }
}

impl Inbound {
    pub fn new(
        services: Arc<Services>,
        listener: Arc<ListenerInfo>,
        session_id: String,
        (peer, local): (SocketAddr, SocketAddr),
        peer_name: String,
    ) -> Inbound {
        Inbound::build(
            services,
            listener,
            session_id,
            (peer, local),
            peer_name,
            None,
        )
    }

    fn build(
        services: Arc<Services>,
        listener: Arc<ListenerInfo>,
        session_id: String,
        (peer, local): (SocketAddr, SocketAddr),
        peer_name: String,
        enqueue: Option<LocalPeer>,
    ) -> Inbound {
        let family = match (&enqueue, peer.ip().to_canonical()) {
            (Some(_), _) => "smtp.session.local",
            // An IPv4 client of a dual-stack socket shows as v4-mapped v6.
            (None, std::net::IpAddr::V4(_)) => "smtp.session.inet4",
            (None, std::net::IpAddr::V6(_)) => "smtp.session.inet6",
        };
        let stats = SessionStats::start(&services.stats, family);
        Inbound {
            services,
            listener,
            session_id,
            peer,
            local,
            peer_name,
            tx: None,
            auth_failures: 0,
            filters: None,
            filter_view: None,
            session_junk: false,
            tls_info: None,
            stats,
            enqueue,
        }
    }

    /// A session of the local enqueue socket: `peer` is who connected.
    pub fn new_local(
        services: Arc<Services>,
        listener: Arc<ListenerInfo>,
        session_id: String,
        peer: LocalPeer,
    ) -> Inbound {
        // The addresses are never shown: `peer_ip` and `peer_text` answer
        // for a local session.
        let none = SocketAddr::from(([0, 0, 0, 0], 0));
        Inbound::build(
            services,
            listener,
            session_id,
            (none, none),
            "localhost".to_string(),
            Some(peer),
        )
    }

    /// The client's IP; `None` for a local enqueue.
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.enqueue.is_none().then(|| self.peer.ip())
    }

    /// The client's address as logs, headers and filters show it: the IP,
    /// or `local` as OpenSMTPD writes for its enqueue socket.
    fn peer_text(&self) -> String {
        match self.peer_ip() {
            Some(ip) => ip.to_string(),
            None => "local".to_string(),
        }
    }

    /// Loopback and the local socket count as forward-confirmed.
    fn peer_confirmed(&self) -> bool {
        self.peer_ip().is_none_or(|ip| ip.is_loopback())
    }

    pub async fn on_event(&mut self, event: Event, session: &Session) -> Decision {
        match event {
            Event::Connect => {
                // A local sender can claim any MAIL FROM: the log says
                // who it really was.
                let who = self
                    .enqueue
                    .as_ref()
                    .map(|p| format!(" uid={} user={}", p.uid, printable(&p.user)))
                    .unwrap_or_default();
                info!(
                    "smtp-in: New session {} from host {} [{}]{who}",
                    self.session_id,
                    self.peer_name,
                    self.peer_text()
                );
                self.start_filters(session).await
            }
            Event::Helo { extended, name } => self.filter_helo(extended, &name, session).await,
            Event::StartTls => match self.filter_phase(session, Phase::Starttls, "").await {
                Ok(_) => Decision::Accept(None),
                Err(refusal) => refusal,
            },
            Event::DataStart => match self.filter_phase(session, Phase::Data, "").await {
                Ok(_) => Decision::Accept(None),
                Err(refusal) => refusal,
            },
            Event::Auth { user, password, .. } => {
                if let Err(refusal) = self.filter_phase(session, Phase::Auth, &user).await {
                    return refusal;
                }
                self.on_auth(user, password, session).await
            }
            Event::MailFrom { sender, params } => {
                // A transaction the protocol dropped on its own (bad data,
                // size) ends here.
                self.abandon(session).await;
                let param = sender.as_ref().map(|s| s.to_string()).unwrap_or_default();
                let (sender, junk) = match self.filter_phase(session, Phase::MailFrom, &param).await
                {
                    Err(refusal) => return refusal,
                    Ok((None, junk)) => (sender, junk),
                    Ok((Some(new), junk)) => match rewritten_address(&new) {
                        Ok(addr) => (addr, junk),
                        Err(refusal) => return refusal,
                    },
                };
                if let Some(refusal) = self.check_sender(sender.as_ref(), session) {
                    return refusal;
                }
                let msgid = self.services.queue.new_msgid();
                self.tx = Some(Transaction {
                    msgid,
                    sender,
                    params,
                    rcpts: Vec::new(),
                    junk: junk || self.session_junk,
                });
                self.report_mail(session, msgid).await;
                Decision::Accept(None)
            }
            Event::RcptTo { rcpt, params } => {
                let rcpt = match self
                    .filter_phase(session, Phase::RcptTo, &rcpt.to_string())
                    .await
                {
                    Err(refusal) => return refusal,
                    Ok((None, junk)) => {
                        self.mark_junk(junk);
                        rcpt
                    }
                    Ok((Some(new), junk)) => match rewritten_address(&new) {
                        Ok(Some(addr)) => {
                            self.mark_junk(junk);
                            addr
                        }
                        Ok(None) => return invalid_rewrite(),
                        Err(refusal) => return refusal,
                    },
                };
                let decision = self.on_rcpt(rcpt.clone(), params, session);
                self.report_rcpt(session, &rcpt, &decision).await;
                decision
            }
            Event::Message { content } => self.on_message(content, session).await,
            Event::Quit => {
                self.abandon(session).await;
                Decision::Accept(None)
            }
            Event::Reset => {
                self.abandon(session).await;
                self.report(session, Report::TxReset).await;
                Decision::Accept(None)
            }
        }
    }

    /// Checks credentials off the async threads (hashing is slow by
    /// design). A failure is answered only after a delay that grows with
    /// each failure; the reply never says which part was wrong.
    async fn on_auth(&mut self, user: String, password: Password, session: &Session) -> Decision {
        let tables = Arc::clone(&self.services.tables);
        let table = self.listener.auth_table.clone();
        let name = user.clone();
        let checked = tokio::task::spawn_blocking(move || {
            auth::check_credentials(&tables, table.as_deref(), &name, password.expose())
        })
        .await;
        let shown = printable(&user);
        match checked {
            Ok(Ok(true)) => {
                info!(
                    "smtp-in: Authentication succeeded for user \"{shown}\" on session {}",
                    self.session_id
                );
                self.stats.auth_ok.inc();
                self.report_auth(session, &user, "pass").await;
                Decision::Accept(None)
            }
            Ok(Ok(false)) => {
                self.auth_failures += 1;
                self.stats.auth_fail.inc();
                info!(
                    "smtp-in: Authentication failed for user \"{shown}\" on session {}",
                    self.session_id
                );
                self.report_auth(session, &user, "fail").await;
                tokio::time::sleep(self.listener.auth_failure_delay * self.auth_failures).await;
                Decision::Reject(reply(535, "5.7.8", "Authentication failed"))
            }
            Ok(Err(err)) => {
                error!(
                    "smtp-in: Authentication temporarily failed for user \"{shown}\" on session {}: {err}",
                    self.session_id
                );
                Decision::Reject(reply(454, "4.7.0", "Temporary authentication failure"))
            }
            Err(err) => {
                error!(
                    "smtp-in: Authentication check crashed on session {}: {err}",
                    self.session_id
                );
                Decision::Reject(reply(454, "4.7.0", "Temporary authentication failure"))
            }
        }
    }

    /// `senders <t>`: an authenticated user may only send as the
    /// addresses the table gives it. Unauthenticated sessions (on an
    /// `auth-optional` listener) are not checked, as in OpenSMTPD.
    fn check_sender(&self, sender: Option<&MailAddr>, session: &Session) -> Option<Decision> {
        let table = self.listener.senders.as_deref()?;
        let user = session.auth_user()?;
        match auth::sender_allowed(&self.services.tables, table, user, sender) {
            Ok(true) => None,
            Ok(false) => {
                info!(
                    "smtp-in: Failed command on session {}: \"MAIL FROM:<{}>\" => 550 5.7.1 Sender address rejected: not owned by user \"{}\"",
                    self.session_id,
                    display_sender(sender),
                    printable(user)
                );
                Some(Decision::Reject(reply(
                    550,
                    "5.7.1",
                    "Sender address rejected: not owned by user",
                )))
            }
            Err(err) => {
                error!(
                    "smtp-in: senders check failed on session {}: {err}",
                    self.session_id
                );
                Some(Decision::Reject(reply(
                    451,
                    "4.3.0",
                    "Temporary failure, try again later",
                )))
            }
        }
    }

    /// `senders <t> masquerade`: an authenticated user's From header
    /// shows the (checked) envelope sender.
    fn masquerade(
        &self,
        content: Vec<u8>,
        sender: Option<&MailAddr>,
        session: &Session,
    ) -> Vec<u8> {
        let active = self.listener.masquerade
            && self.listener.senders.is_some()
            && session.auth_user().is_some();
        match sender {
            Some(sender) if active => auth::rewrite_from(&content, sender).unwrap_or(content),
            _ => content,
        }
    }

    /// Drops the transaction in progress, giving back its message id;
    /// the filters serving one message at a time hand back their instances.
    async fn abandon(&mut self, session: &Session) {
        if let Some(tx) = self.tx.take() {
            self.services.queue.release_msgid(tx.msgid);
            self.report(session, Report::TxRollback(tx.msgid.to_string()))
                .await;
        }
        if let Some(filters) = self.filters.as_mut() {
            filters.end_message();
        }
    }

    fn mark_junk(&mut self, junk: bool) {
        if let Some(tx) = self.tx.as_mut() {
            tx.junk |= junk;
        }
    }

    fn on_rcpt(&mut self, rcpt: MailAddr, params: RcptParams, session: &Session) -> Decision {
        let (src, fcrdns) = (self.peer_ip(), self.peer_confirmed());
        let Some(tx) = self.tx.as_mut() else {
            return Decision::Reject(reply(503, "5.5.1", "Need MAIL before RCPT"));
        };
        let ctx = MatchContext {
            src,
            socket: self.enqueue.is_some(),
            rdns: Some(self.peer_name.as_str()),
            fcrdns,
            helo: session.helo(),
            auth_user: session.auth_user(),
            tls: session.tls_active(),
            tag: self.listener.tag.as_deref(),
            sender: tx.sender.as_ref(),
            rcpt: Some(&rcpt),
            local_domains: &self.services.local_domains,
        };
        let resolver = Resolver {
            config: &self.services.config,
            tables: &self.services.tables,
        };
        match resolver.resolve(&ctx) {
            Ok(resolved) => {
                tx.rcpts.push(AcceptedRcpt {
                    rcpt,
                    params,
                    resolved,
                });
                Decision::Accept(None)
            }
            Err(refusal) => {
                let (code, enhanced) = refusal.status();
                info!(
                    "smtp-in: Failed command on session {}: \"RCPT TO:<{}>\" => {} {} {}",
                    self.session_id, rcpt, code, enhanced, refusal
                );
                Decision::Reject(reply(code, enhanced, &refusal.to_string()))
            }
        }
    }

    async fn on_message(&mut self, content: Vec<u8>, session: &Session) -> Decision {
        let Some(mut tx) = self.tx.take() else {
            return Decision::Reject(reply(503, "5.5.1", "No transaction"));
        };
        if crate::loops::too_many_hops(&content) {
            self.services.queue.release_msgid(tx.msgid);
            self.stats.rejected.inc();
            info!(
                "smtp-in: Rejected message on session {}: too many hops",
                self.session_id
            );
            return Decision::Reject(reply(554, "5.4.6", "Too many hops"));
        }
        let content = self.masquerade(content, tx.sender.as_ref(), session);
        let content = match self.filter_message(session, &mut tx, content).await {
            Ok(content) => content,
            Err(refusal) => {
                self.services.queue.release_msgid(tx.msgid);
                self.stats.rejected.inc();
                return refusal;
            }
        };
        let now = chrono::Utc::now();
        let envelopes = self.envelopes(&tx, session, now.timestamp());
        let mut message = self.received_header(&tx, session, now).into_bytes();
        if tx.junk {
            message.extend_from_slice(b"X-Spam: yes\r\n");
        }
        message.extend_from_slice(&content);
        let size = message.len();
        if let Err(err) = self
            .services
            .queue
            .commit(tx.msgid, message, envelopes.clone())
            .await
        {
            self.services.queue.release_msgid(tx.msgid);
            warn!(
                "smtp-in: queue commit failed on session {}: {err}",
                self.session_id
            );
            self.report(session, Report::TxRollback(tx.msgid.to_string()))
                .await;
            return Decision::Reject(reply(451, "4.3.0", "Temporary failure, try again later"));
        }
        self.stats.enqueued.add(envelopes.len() as u64);
        let to: Vec<String> = tx.rcpts.iter().map(|r| r.rcpt.to_string()).collect();
        info!(
            "smtp-in: Accepted message {} on session {}: from=<{}>, to=<{}>, size={}, ndest={}, proto={}",
            tx.msgid,
            self.session_id,
            display_sender(tx.sender.as_ref()),
            to.join(">, to=<"),
            size,
            envelopes.len(),
            session.protocol()
        );
        self.report_commit(session, &tx, &envelopes, size).await;
        self.services.scheduler.insert(envelopes);
        Decision::Accept(Some(format!(
            "2.0.0 {} Message accepted for delivery",
            tx.msgid
        )))
    }

    /// One envelope per distinct delivery: two aliases that reach the same
    /// mailbox deliver once, as OpenSMTPD does.
    fn envelopes(&self, tx: &Transaction, session: &Session, now: i64) -> Vec<Envelope> {
        let mut out: Vec<Envelope> = Vec::new();
        let expire = now + self.services.expire.as_secs() as i64;
        for r in &tx.rcpts {
            for res in &r.resolved {
                let dup = out.iter().any(|e| {
                    e.action == res.action && e.dest == res.dest && e.target == res.target
                });
                if dup {
                    continue;
                }
                out.push(Envelope {
                    id: EvpId::new_in(tx.msgid),
                    kind: res.kind,
                    action: res.action.clone(),
                    sender: tx.sender.clone(),
                    rcpt: r.rcpt.clone(),
                    dest: res.dest.clone(),
                    target: res.target.clone(),
                    dsn: DsnParams {
                        ret: tx.params.ret.clone(),
                        envid: tx.params.envid.clone(),
                        notify: r.params.notify.clone(),
                        orcpt: r.params.orcpt.clone(),
                    },
                    tag: self.listener.tag.clone(),
                    helo: session.helo().unwrap_or_default().to_string(),
                    peer: self.enqueue.is_none().then_some(self.peer),
                    peer_name: self.peer_name.clone(),
                    hostname: self.listener.hostname.clone(),
                    auth_user: session.auth_user().map(str::to_string),
                    created: now,
                    expire,
                    tries: 0,
                    last_try: 0,
                    next_try: now,
                    last_error: None,
                    bounce_reason: None,
                    warnings: 0,
                    junk: tx.junk,
                });
            }
        }
        debug_assert!(out.iter().all(|e| e.kind != EnvelopeKind::Bounce));
        out
    }

    fn received_header(
        &self,
        tx: &Transaction,
        session: &Session,
        now: chrono::DateTime<chrono::Utc>,
    ) -> String {
        let helo = session.helo().unwrap_or("unknown");
        let from = if self.listener.mask_src {
            format!("from {helo} (masked)")
        } else {
            format!("from {helo} ({} [{}])", self.peer_name, self.peer_text())
        };
        let mut h = format!(
            "Received: {from}\r\n\tby {} (wasmtpd) with {} id {}",
            self.listener.hostname,
            session.protocol(),
            tx.msgid
        );
        // Local mail names its sender's account, as Postfix's
        // "from userid N": the HELO of a local client proves nothing.
        if let Some(peer) = &self.enqueue {
            h += &format!("\r\n\t(from userid {})", peer.uid);
        }
        if let [only] = tx.rcpts.as_slice() {
            h += &format!("\r\n\tfor <{}>", only.rcpt);
        }
        h += &format!(";\r\n\t{}\r\n", now.to_rfc2822());
        h
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.services.queue.release_msgid(tx.msgid);
        }
    }
}

/// A user name as the client sent it, safe for one log line.
fn printable(user: &str) -> String {
    user.chars().flat_map(char::escape_debug).collect()
}

fn reply(code: u16, enhanced: &str, text: &str) -> Reply {
    Reply {
        code,
        enhanced: Some(enhanced.to_string()),
        text: text.to_string(),
    }
}

#[path = "inbound_filters.rs"]
mod filters;

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
