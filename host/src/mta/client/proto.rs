//! The client's state machine: server replies in, commands out.
//!
//! Sans-IO like quinn-proto or rustls: no sockets, no clock, no TLS. The
//! driver feeds what it reads to `receive`, writes what `poll_transmit`
//! returns, reacts to `poll_event`, does the TLS handshake on
//! `Event::StartTls`, and owns every timeout (calling `abort` when one
//! fires). Behaviour follows Postfix's smtp(8) and OpenSMTPD's mta.

use std::collections::VecDeque;

use tracing::{debug, trace};

use super::command;
use super::config::{ClientConfig, TlsPolicy, Transaction};
use super::event::{
    ClientError, Event, FailureReason, RcptResult, SessionFailure, Stage, TxResult,
};
use super::ext::Extensions;
use super::parser::ReplyParser;
use super::reply::{EnhancedCode, Reply};

/// A client session on one connection. See the module docs for the loop
/// that drives it.
pub struct Client {
    cfg: ClientConfig,
    state: State,
    parser: ReplyParser,
    ext: Extensions,
    tls_active: bool,
    /// The transaction in flight (outside `State` so failures can settle
    /// its recipients wherever they happen).
    tx: Option<Box<TxState>>,
    /// A transaction sent while an RSET is still unanswered.
    queued: Option<Transaction>,
    quit_pending: bool,
    ready_sent: bool,
    out: Vec<u8>,
    events: VecDeque<Event>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Greeting,
    /// EHLO/LHLO (`helo: false`) or the HELO fallback sent.
    Hello {
        helo: bool,
    },
    StartTls,
    AwaitTls,
    Auth(AuthStep),
    Idle,
    Tx,
    Resetting,
    Quitting,
    Closed,
}

#[derive(Debug, Clone, Copy)]
enum AuthStep {
    Plain,
    /// `AUTH LOGIN` sent; the username challenge is awaited.
    LoginUser,
    LoginPassword,
    LoginDone,
}

/// The reply each sent command is waiting for, in sending order.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    /// The final reply after the message (LMTP: one per accepted recipient).
    Final,
    /// The reply to a lone "." sent because DATA got 354 although no
    /// recipient was accepted; its reply means nothing.
    DiscardDot,
}

impl Expect {
    fn stage(self) -> Stage {
        match self {
            Expect::Mail => Stage::Mail,
            Expect::Rcpt(_) => Stage::Rcpt,
            Expect::Data | Expect::DiscardDot => Stage::Data,
            Expect::Final => Stage::Content,
        }
    }
}

#[derive(Debug)]
struct TxState {
    tx: Transaction,
    results: Vec<Option<RcptResult>>,
    /// Recipients accepted at RCPT, in order.
    accepted: Vec<usize>,
    /// How many of `accepted` got their final reply (LMTP).
    finals: usize,
    pending: VecDeque<Expect>,
    pipelined: bool,
    mail_refused: Option<Reply>,
}

impl TxState {
    fn settle(&mut self, i: usize, reply: &Reply, stage: Stage) {
        if let Some(slot) = self.results.get_mut(i) {
            *slot = Some(RcptResult {
                reply: reply.clone(),
                stage,
            });
        }
    }

    fn settle_unsettled(&mut self, reply: &Reply, stage: Stage) {
        for slot in self.results.iter_mut().filter(|s| s.is_none()) {
            *slot = Some(RcptResult {
                reply: reply.clone(),
                stage,
            });
        }
    }

    fn result(mut self) -> TxResult {
        // Every path settles every recipient before this; a gap would be
        // a bug here, and must not pass for a delivery.
        let gap = Reply::synthesised(451, EnhancedCode::new(4, 3, 0), "no reply recorded");
        self.settle_unsettled(&gap, Stage::Content);
        TxResult {
            rcpts: self.results.into_iter().flatten().collect(),
        }
    }
}

/// What a transaction reply leads to.
enum TxStep {
    Continue,
    Finished { rset: bool },
    Protocol(String),
}

impl Client {
    /// A client waiting for the server's greeting. Fails on a HELO name
    /// that is not one printable word (it would break the command line).
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        if !command::valid_helo(&cfg.helo) {
            return Err(ClientError::BadParameter("HELO name"));
        }
        Ok(Client {
            tls_active: cfg.tls_active,
            cfg,
            state: State::Greeting,
            parser: ReplyParser::default(),
            ext: Extensions::default(),
            tx: None,
            queued: None,
            quit_pending: false,
            ready_sent: false,
            out: Vec::new(),
            events: VecDeque::new(),
        })
    }

    /// What the server advertised (empty before EHLO, after HELO, and
    /// right after a TLS handshake).
    pub fn server_extensions(&self) -> &Extensions {
        &self.ext
    }

    /// Whether the session runs over TLS (from the start or after STARTTLS).
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// Where the session is, e.g. to pick the timeout for the next read.
    pub fn stage(&self) -> Stage {
        match self.state {
            State::Greeting => Stage::Greeting,
            State::Hello { .. } => Stage::Hello,
            State::StartTls => Stage::StartTls,
            State::AwaitTls => Stage::TlsHandshake,
            State::Auth(_) => Stage::Auth,
            State::Idle => Stage::Idle,
            State::Tx => self
                .tx
                .as_ref()
                .and_then(|t| t.pending.front())
                .map_or(Stage::Content, |e| e.stage()),
            State::Resetting => Stage::Rset,
            State::Quitting => Stage::Quit,
            State::Closed => Stage::Closed,
        }
    }

    /// Whether `send` would start a transaction right away.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Whether the session is over (failed or quit): drop the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Bytes read from the server, in any chunking.
    pub fn receive(&mut self, bytes: &[u8]) {
        match self.state {
            State::Closed => return,
            // Plain text between the STARTTLS reply and the handshake is
            // an injection attempt (CVE-2011-0411 and kin).
            State::AwaitTls if !bytes.is_empty() => {
                return self.fail_local("data received during the TLS handshake", false)
            }
            _ => {}
        }
        self.parser.push(bytes);
        while !matches!(self.state, State::Closed) {
            match self.parser.next_reply() {
                None => return,
                Some(Ok(r)) => self.on_reply(r),
                Some(Err(e)) => self.fail_local(&format!("protocol error: {e}"), false),
            }
        }
        self.parser.clear();
    }

    /// The driver finished the TLS handshake after `Event::StartTls`.
    pub fn tls_established(&mut self) {
        if !matches!(self.state, State::AwaitTls) {
            debug!(stage = %self.stage(), "tls_established outside a STARTTLS handshake, ignored");
            return;
        }
        self.tls_active = true;
        self.parser.clear();
        self.ext = Extensions::default();
        self.send_hello(false);
    }

    /// Starts a transaction: allowed after `Event::Ready` or `Event::Done`
    /// (if an RSET is still unanswered, it starts once it is).
    pub fn send(&mut self, tx: Transaction) -> Result<(), ClientError> {
        match self.state {
            State::Closed | State::Quitting => return Err(ClientError::Closed),
            _ if self.quit_pending => return Err(ClientError::Closed),
            State::Idle => {}
            State::Resetting if self.queued.is_none() => {}
            _ => return Err(ClientError::Busy(self.stage())),
        }
        command::validate(&tx)?;
        if matches!(self.state, State::Resetting) {
            self.queued = Some(tx);
        } else {
            self.start_tx(tx);
        }
        Ok(())
    }

    /// Ends the session politely: QUIT now if idle, else once the session
    /// setup or the current transaction is over.
    pub fn quit(&mut self) {
        match self.state {
            State::Closed | State::Quitting => {}
            State::Idle => self.send_quit(),
            _ => self.quit_pending = true,
        }
    }

    /// The connection ended or timed out (`reason` says which). After
    /// QUIT this is the normal end (`Event::Closed`); otherwise the
    /// session fails and an unfinished transaction's recipients get a
    /// temporary reply.
    pub fn abort(&mut self, reason: &str) {
        match self.state {
            State::Closed => {}
            State::Quitting => {
                self.state = State::Closed;
                self.events.push_back(Event::Closed);
            }
            _ => {
                self.out.clear();
                self.fail_local(reason, false);
            }
        }
    }

    /// Bytes to write to the server now, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn on_reply(&mut self, r: Reply) {
        trace!(stage = %self.stage(), reply = %r, "smtp client <<<");
        // 421: the server is closing the connection whatever we sent.
        if r.code == 421 && !matches!(self.state, State::Quitting) {
            return self.fail(FailureReason::Reply(r), false, false);
        }
        match self.state {
            State::Greeting => {
                if r.is_positive() && self.quit_pending {
                    self.send_quit()
                } else if r.is_positive() {
                    self.send_hello(false)
                } else {
                    let permanent = r.is_permanent();
                    self.fail(FailureReason::Reply(r), permanent, true)
                }
            }
            State::Hello { helo } => self.on_hello(r, helo),
            State::StartTls => self.on_starttls(r),
            State::AwaitTls => self.fail_local("reply received during the TLS handshake", false),
            State::Auth(step) => self.on_auth(r, step),
            State::Idle => self.fail_local(&format!("unexpected reply {r}"), false),
            State::Tx => self.on_tx_reply(r),
            State::Resetting => {
                if r.is_positive() {
                    self.become_idle()
                } else {
                    self.fail(FailureReason::Reply(r), false, true)
                }
            }
            State::Quitting => {
                self.state = State::Closed;
                self.events.push_back(Event::Closed);
            }
            State::Closed => {}
        }
    }

    fn send_hello(&mut self, helo: bool) {
        let verb = match (helo, self.cfg.lmtp) {
            (true, _) => "HELO",
            (false, true) => "LHLO",
            (false, false) => "EHLO",
        };
        let cmd = format!("{verb} {}\r\n", self.cfg.helo);
        self.write(&cmd);
        self.state = State::Hello { helo };
    }

    fn on_hello(&mut self, r: Reply, helo: bool) {
        if r.is_positive() {
            self.ext = if helo {
                Extensions::default()
            } else {
                Extensions::from_ehlo(&r)
            };
            return self.after_hello(false);
        }
        // A server that does not know EHLO still knows HELO (RFC 5321
        // §3.2); LMTP has no such fallback.
        if r.is_permanent() && !helo && !self.cfg.lmtp {
            debug!(reply = %r, "EHLO refused, falling back to HELO");
            return self.send_hello(true);
        }
        let permanent = r.is_permanent();
        self.fail(FailureReason::Reply(r), permanent, true)
    }

    /// After the server said hello: STARTTLS, then AUTH, then ready.
    /// `tls_refused`: STARTTLS was tried and refused (go on in plain text).
    fn after_hello(&mut self, tls_refused: bool) {
        if self.quit_pending {
            return self.send_quit();
        }
        if !self.tls_active && !tls_refused {
            if self.cfg.tls != TlsPolicy::Never && self.ext.starttls {
                self.write("STARTTLS\r\n");
                self.state = State::StartTls;
                return;
            }
            if self.cfg.tls == TlsPolicy::Required {
                return self.fail_local("TLS required but not offered by the server", true);
            }
        }
        let Some(creds) = self.cfg.auth.clone() else {
            return self.become_idle();
        };
        if !self.tls_active {
            return self.fail_local("authentication requires TLS", true);
        }
        if self.ext.offers_auth("PLAIN") {
            let cmd = command::auth_plain(&creds);
            self.write_secret(&cmd, "AUTH PLAIN <redacted>");
            self.state = State::Auth(AuthStep::Plain);
        } else if self.ext.offers_auth("LOGIN") {
            self.write("AUTH LOGIN\r\n");
            self.state = State::Auth(AuthStep::LoginUser);
        } else {
            self.fail_local(
                "the server offers no AUTH mechanism we support (PLAIN, LOGIN)",
                true,
            )
        }
    }

    fn on_starttls(&mut self, r: Reply) {
        if r.is_positive() {
            // Anything already behind the 220 came in plain text and
            // would be read as if it came over TLS.
            if !self.parser.is_empty() {
                return self.fail_local("data pipelined after the STARTTLS reply", false);
            }
            self.state = State::AwaitTls;
            self.events.push_back(Event::StartTls);
            return;
        }
        if self.cfg.tls == TlsPolicy::Required {
            let why = format!("TLS required but the server refused STARTTLS: {r}");
            return self.fail_local(&why, true);
        }
        debug!(reply = %r, "STARTTLS refused, going on in plain text");
        self.after_hello(true)
    }

    fn on_auth(&mut self, r: Reply, step: AuthStep) {
        let creds = self.cfg.auth.clone();
        match (step, r.code, creds) {
            (AuthStep::Plain | AuthStep::LoginDone, 235, _) => self.become_idle(),
            (AuthStep::LoginUser, 334, Some(c)) => {
                self.write_secret(&command::auth_login_response(&c.user), "<username>");
                self.state = State::Auth(AuthStep::LoginPassword);
            }
            (AuthStep::LoginPassword, 334, Some(c)) => {
                self.write_secret(&command::auth_login_response(&c.password), "<password>");
                self.state = State::Auth(AuthStep::LoginDone);
            }
            // Like Postfix, a refused login is a soft error: the
            // credentials may be fixed before the mail expires.
            _ => self.fail(FailureReason::Reply(r), false, true),
        }
    }

    fn become_idle(&mut self) {
        if self.quit_pending {
            return self.send_quit();
        }
        if let Some(tx) = self.queued.take() {
            return self.start_tx(tx);
        }
        self.state = State::Idle;
        // Ready once, when the session is set up; after a transaction
        // its Done says the same.
        if !self.ready_sent {
            self.ready_sent = true;
            self.events.push_back(Event::Ready);
        }
    }

    fn send_quit(&mut self) {
        self.write("QUIT\r\n");
        self.state = State::Quitting;
    }

    fn start_tx(&mut self, tx: Transaction) {
        if let Some(reply) = self.precheck(&tx) {
            let mut t = TxState::new(tx, false);
            t.settle_unsettled(&reply, Stage::Precheck);
            self.events.push_back(Event::Done(t.result()));
            self.state = State::Idle;
            return;
        }
        let pipelined = self.ext.pipelining;
        let mut t = TxState::new(tx, pipelined);
        self.write(&command::mail_from(&t.tx, &self.ext));
        t.pending.push_back(Expect::Mail);
        if pipelined {
            for i in 0..t.tx.rcpts.len() {
                self.write(&command::rcpt_to(&t.tx, i, &self.ext));
                t.pending.push_back(Expect::Rcpt(i));
            }
            self.write("DATA\r\n");
            t.pending.push_back(Expect::Data);
        }
        self.tx = Some(Box::new(t));
        self.state = State::Tx;
    }

    /// Refusals known before sending anything, as the server would give them.
    fn precheck(&self, tx: &Transaction) -> Option<Reply> {
        let size = command::wire_len(&tx.content);
        if let Some(limit) = self.ext.size_limit().filter(|&l| size > l) {
            return Some(Reply::synthesised(
                552,
                EnhancedCode::new(5, 3, 4),
                format!("Message size {size} exceeds the server's limit of {limit} bytes"),
            ));
        }
        if command::needs_smtputf8(tx) && !self.ext.smtputf8 {
            return Some(Reply::synthesised(
                553,
                EnhancedCode::new(5, 6, 7),
                "Non-ASCII address but the server does not support SMTPUTF8",
            ));
        }
        None
    }

    fn on_tx_reply(&mut self, r: Reply) {
        let Some(mut t) = self.tx.take() else {
            return self.fail_local("reply without a transaction", false);
        };
        let step = self.tx_step(&mut t, r);
        match step {
            TxStep::Continue => self.tx = Some(t),
            TxStep::Finished { rset } => {
                self.events.push_back(Event::Done(t.result()));
                if rset {
                    self.write("RSET\r\n");
                    self.state = State::Resetting;
                } else {
                    self.become_idle();
                }
            }
            TxStep::Protocol(why) => {
                self.tx = Some(t);
                self.fail_local(&format!("protocol error: {why}"), false)
            }
        }
    }

    fn tx_step(&mut self, t: &mut TxState, r: Reply) -> TxStep {
        let Some(expect) = t.pending.pop_front() else {
            return TxStep::Protocol(format!("unexpected reply {r}"));
        };
        // Only DATA may be answered with 3xx; a 3xx elsewhere is neither
        // an acceptance nor a refusal.
        let intermediate_ok = matches!(expect, Expect::Data | Expect::DiscardDot);
        if r.is_intermediate() && !intermediate_ok {
            return TxStep::Protocol(format!("unexpected reply {r} at {}", expect.stage()));
        }
        match expect {
            Expect::Mail => {
                if !r.is_positive() {
                    t.settle_unsettled(&r, Stage::Mail);
                    t.mail_refused = Some(r);
                    if !t.pipelined {
                        return TxStep::Finished { rset: true };
                    }
                } else if !t.pipelined {
                    self.write(&command::rcpt_to(&t.tx, 0, &self.ext));
                    t.pending.push_back(Expect::Rcpt(0));
                }
                TxStep::Continue
            }
            Expect::Rcpt(i) => {
                if t.mail_refused.is_some() {
                    return TxStep::Continue;
                }
                if r.is_positive() {
                    t.accepted.push(i);
                } else {
                    t.settle(i, &r, Stage::Rcpt);
                }
                if t.pipelined {
                    return TxStep::Continue;
                }
                if i + 1 < t.tx.rcpts.len() {
                    self.write(&command::rcpt_to(&t.tx, i + 1, &self.ext));
                    t.pending.push_back(Expect::Rcpt(i + 1));
                    return TxStep::Continue;
                }
                if t.accepted.is_empty() {
                    return TxStep::Finished { rset: true };
                }
                self.write("DATA\r\n");
                t.pending.push_back(Expect::Data);
                TxStep::Continue
            }
            Expect::Data => {
                let go_ahead = r.code == 354;
                if r.is_positive() || (r.is_intermediate() && !go_ahead) {
                    return TxStep::Protocol(format!("unexpected reply {r} to DATA"));
                }
                if t.mail_refused.is_some() || t.accepted.is_empty() {
                    // Pipelined DATA accepted with nothing to deliver:
                    // end it empty, as Postfix does.
                    if go_ahead {
                        self.write(".\r\n");
                        t.pending.push_back(Expect::DiscardDot);
                        return TxStep::Continue;
                    }
                    return TxStep::Finished { rset: true };
                }
                if !go_ahead {
                    t.settle_unsettled(&r, Stage::Data);
                    return TxStep::Finished { rset: true };
                }
                self.out
                    .extend_from_slice(&command::dot_stuffed(&t.tx.content));
                trace!(bytes = t.tx.content.len(), "smtp client >>> message");
                t.pending.push_back(Expect::Final);
                TxStep::Continue
            }
            Expect::Final => {
                if !self.cfg.lmtp {
                    t.settle_unsettled(&r, Stage::Content);
                    return TxStep::Finished { rset: false };
                }
                if let Some(&i) = t.accepted.get(t.finals) {
                    t.settle(i, &r, Stage::Content);
                }
                t.finals += 1;
                if t.finals < t.accepted.len() {
                    t.pending.push_back(Expect::Final);
                    return TxStep::Continue;
                }
                TxStep::Finished { rset: false }
            }
            Expect::DiscardDot => TxStep::Finished { rset: true },
        }
    }

    fn fail_local(&mut self, why: &str, send_quit: bool) {
        self.fail(FailureReason::Local(why.to_string()), false, send_quit)
    }

    /// Ends the session: settles the transaction in flight (and one
    /// waiting behind an RSET) with a temporary reply, reports the
    /// failure, and says QUIT when the stream is still in step.
    fn fail(&mut self, reason: FailureReason, permanent: bool, send_quit: bool) {
        let stage = self.stage();
        debug!(%stage, %reason, "smtp client session failed");
        let temp = match &reason {
            FailureReason::Reply(r) if r.is_transient() => r.clone(),
            _ => Reply::synthesised(
                421,
                EnhancedCode::new(4, 4, 2),
                format!("Session failed at {stage}: {reason}"),
            ),
        };
        if let Some(mut t) = self.tx.take() {
            t.settle_unsettled(&temp, stage);
            self.events.push_back(Event::Done(t.result()));
        }
        if let Some(q) = self.queued.take() {
            let mut t = TxState::new(q, false);
            t.settle_unsettled(&temp, Stage::Precheck);
            self.events.push_back(Event::Done(t.result()));
        }
        self.events.push_back(Event::Failed(SessionFailure {
            reason,
            permanent,
            stage,
        }));
        if send_quit {
            self.write("QUIT\r\n");
        }
        self.state = State::Closed;
    }

    fn write(&mut self, cmd: &str) {
        trace!(cmd = cmd.trim_end(), "smtp client >>>");
        self.out.extend_from_slice(cmd.as_bytes());
    }

    /// Writes a line carrying credentials; only `shown` reaches the logs.
    fn write_secret(&mut self, line: &str, shown: &str) {
        trace!(cmd = shown, "smtp client >>>");
        self.out.extend_from_slice(line.as_bytes());
    }
}

// By hand: `out` may hold an AUTH line not yet written.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("cfg", &self.cfg)
            .field("stage", &self.stage())
            .field("tls_active", &self.tls_active)
            .field("ext", &self.ext)
            .field("tx", &self.tx)
            .field("queued", &self.queued)
            .field("quit_pending", &self.quit_pending)
            .field("out_len", &self.out.len())
            .field("events", &self.events)
            .finish()
    }
}

impl TxState {
    fn new(tx: Transaction, pipelined: bool) -> TxState {
        TxState {
            results: vec![None; tx.rcpts.len()],
            tx,
            accepted: Vec::new(),
            finals: 0,
            pending: VecDeque::new(),
            pipelined,
            mail_refused: None,
        }
    }
}
