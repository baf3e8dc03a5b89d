//! The SMTP server session as a pure state machine (RFC 5321, ESMTP).
//!
//! No sockets, no clock: the driver [`feed`](Session::feed)s received
//! octets, drains [`poll`](Session::poll) for replies to write, events to
//! decide, STARTTLS upgrades and the final close, and reports the
//! handshake and idle timeouts. Every decision that needs policy (rules,
//! filters, the queue) is an [`Event`] the session waits on; nothing
//! else is processed until [`decide`](Session::decide) answers it, which
//! keeps pipelined replies in order (RFC 2920).

use std::collections::VecDeque;
use std::mem;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::mailaddr::MailAddr;

use super::command::{self, Command, ParseError, RcptPath, Verb};
use super::data::{BdatBody, Body, DataReader};
use super::line::{LineError, LineReader, LineStatus};
use super::params::{BodyType, MailParams, RcptParams};
use super::reply::Reply;
use super::sasl::{self, Mechanism, Password, SaslError};

/// Server idle timeout between commands (RFC 5321 §4.5.3.2.7).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Idle timeout while message content is arriving (§4.5.3.2.5-6).
pub const DATA_TIMEOUT: Duration = Duration::from_secs(3 * 60);

/// Per-listener settings, shared by all its sessions. A limit of 0 means
/// "no limit" (and `SIZE` is then advertised without a value, RFC 1870).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Greeting and EHLO name.
    pub hostname: String,
    /// SIZE advertised; bigger messages get 552 5.3.4.
    pub max_message_size: u64,
    /// Accepted recipients per transaction; then 452 4.5.3.
    pub max_rcpt: usize,
    /// Transactions (accepted MAIL commands) per session; further MAIL
    /// commands get 452 4.5.3 and count as errors, so a client that keeps
    /// trying is eventually dropped by `max_errors`.
    pub max_mails: usize,
    /// Command lines per session; then 421 4.7.0 and close.
    pub max_commands: usize,
    /// Protocol errors per session; the one reaching it is followed by
    /// 421 4.7.0 and close (Postfix's `smtpd_hard_error_limit`).
    pub max_errors: usize,
    /// The listener offers STARTTLS.
    pub starttls: bool,
    /// MAIL needs TLS first (530 5.7.0).
    pub tls_required: bool,
    /// DSN advertised and its parameters accepted.
    pub dsn: bool,
    /// AUTH (PLAIN, LOGIN) enabled on the listener (`auth` or
    /// `auth-optional`). Offered only over TLS unless `auth_plaintext`;
    /// in clear, AUTH gets 538 5.7.11.
    pub auth: bool,
    /// `auth` (not `-optional`): MAIL needs AUTH first (530 5.7.0).
    pub auth_required: bool,
    /// Offer AUTH without TLS too. Only for a loopback listener the
    /// operator explicitly marked: passwords would cross in clear.
    pub auth_plaintext: bool,
    /// Failed AUTH attempts before 421 4.7.0 and close (0: no limit).
    pub max_auth_failures: usize,
}

impl SessionConfig {
    /// OpenSMTPD's defaults: 35 MB messages, 1000 recipients, 100 mails.
    pub fn new(hostname: impl Into<String>) -> SessionConfig {
        SessionConfig {
            hostname: hostname.into(),
            max_message_size: 35 * 1024 * 1024,
            max_rcpt: 1000,
            max_mails: 100,
            max_commands: 10_000,
            max_errors: 10,
            starttls: false,
            tls_required: false,
            dsn: true,
            auth: false,
            auth_required: false,
            auth_plaintext: false,
            max_auth_failures: 3,
        }
    }
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Reply octets, CRLF-terminated, possibly several replies.
    Write(Vec<u8>),
    /// A decision is needed: call [`Session::decide`].
    Event(Event),
    /// After writing the preceding 220: upgrade the stream, then call
    /// [`Session::tls_established`].
    StartTls,
    /// Close the connection after flushing what was written.
    Close,
}

/// Something the session needs a decision on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Always the first output. Accept(None) greets with
    /// `220 {hostname} ESMTP wasmtpd`, Accept(Some(t)) with `220 t`;
    /// Reject(r) sends r and closes.
    Connect,
    Helo {
        extended: bool,
        name: String,
    },
    /// `None` is the null sender `<>`.
    MailFrom {
        sender: Option<MailAddr>,
        params: MailParams,
    },
    /// `<postmaster>` arrives as `postmaster@{hostname}`.
    RcptTo {
        rcpt: MailAddr,
        params: RcptParams,
    },
    /// DATA, or the first BDAT chunk of a transaction. For BDAT a
    /// rejection is sent once the chunk has been read and discarded.
    DataStart,
    /// The complete message: CRLF lines, dots unstuffed. The transaction
    /// is reset after the decision either way.
    Message {
        content: Vec<u8>,
    },
    /// Informational: the reply (221 + close) follows any decision.
    Quit,
    /// Informational (RSET): the reply (250) follows any decision.
    Reset,
    /// Credentials to check. Accept gives `235 2.7.0`, Reject(r) sends r
    /// (use 535 5.7.8 whatever was wrong) and counts a failure. The
    /// password's Debug prints `***`.
    Auth {
        mechanism: Mechanism,
        user: String,
        password: Password,
    },
    /// STARTTLS, before the 220: Accept starts the handshake, Reject(r)
    /// sends r and the session goes on in clear.
    StartTls,
}

/// The answer to an [`Event`]. Accept(Some(text)) replaces the whole
/// default reply text after the code (Connect, MAIL, RCPT, DATA, Message),
/// e.g. `2.0.0 2b4c… Message accepted for delivery`. A rejection with
/// code 421 also closes the session; Disconnect sends its reply and
/// closes whatever the code (a filter's `disconnect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Accept(Option<String>),
    Reject(Reply),
    Disconnect(Reply),
}

/// The mail transaction in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub sender: Option<MailAddr>,
    pub mail_params: MailParams,
    /// Accepted recipients only.
    pub rcpts: Vec<(MailAddr, RcptParams)>,
}

/// A transaction plus what the protocol needs to know about it.
#[derive(Debug)]
struct Tx {
    tx: Transaction,
    /// RCPT commands tried, accepted or not: DATA after only refused
    /// recipients gets "no valid recipients" (RFC 2920 §3.1).
    rcpt_attempts: usize,
    /// Set once BDAT content has started (DATA is then refused).
    bdat: Option<BdatBody>,
}

/// The event awaiting a decision, with what is needed to act on it.
#[derive(Debug)]
enum Pending {
    Connect,
    Helo {
        extended: bool,
        name: String,
    },
    Mail {
        sender: Option<MailAddr>,
        params: MailParams,
    },
    Rcpt {
        rcpt: MailAddr,
        params: RcptParams,
    },
    DataStart,
    BdatStart {
        size: u64,
        last: bool,
    },
    Message,
    Quit,
    Reset,
    Auth {
        user: String,
    },
    StartTls,
}

/// What happens to a BDAT chunk once read.
#[derive(Debug)]
enum ChunkFate {
    Keep,
    /// Drop the octets, then send `reply` (counted as a protocol error if
    /// `error`), resetting the transaction if `reset`.
    Discard {
        reply: Reply,
        error: bool,
        reset: bool,
    },
}

#[derive(Debug)]
enum State {
    Command,
    Data(DataReader),
    Chunk {
        size: u64,
        remaining: u64,
        last: bool,
        fate: ChunkFate,
    },
    /// STARTTLS answered; input is dropped until the handshake is done.
    TlsHandshake,
    /// AUTH sent a 334 challenge: the next line is a SASL response.
    Sasl(SaslStep),
}

/// Which response an AUTH exchange waits for.
#[derive(Debug)]
enum SaslStep {
    Plain,
    LoginUser,
    LoginPassword { user: String },
}

/// One inbound SMTP session.
#[derive(Debug)]
pub struct Session {
    cfg: Arc<SessionConfig>,
    tls: bool,
    helo: Option<String>,
    extended: bool,
    tx: Option<Tx>,
    state: State,
    pending: Option<Pending>,
    /// Received octets; `buf[pos..]` is still to be processed.
    buf: Vec<u8>,
    pos: usize,
    lines: LineReader,
    out: VecDeque<Output>,
    /// Close queued: nothing more is processed.
    closing: bool,
    /// Close handed out: poll() is done.
    closed: bool,
    commands: usize,
    errors: usize,
    mails: usize,
    /// Set by an accepted AUTH.
    auth_user: Option<String>,
    auth_failures: usize,
}

fn limit(n: usize) -> Option<usize> {
    (n != 0).then_some(n)
}

fn accepted(text: Option<String>, code: u16, enhanced: &str, default: &str) -> Reply {
    match text {
        Some(t) => Reply::plain(code, t),
        None => Reply::new(code, enhanced, default),
    }
}

impl Session {
    /// A session whose first output is `Event::Connect`. `tls_active` is
    /// true on smtps listeners (TLS from the first octet).
    pub fn new(cfg: Arc<SessionConfig>, tls_active: bool) -> Session {
        let mut s = Session {
            cfg,
            tls: tls_active,
            helo: None,
            extended: false,
            tx: None,
            state: State::Command,
            pending: None,
            buf: Vec::new(),
            pos: 0,
            lines: LineReader::default(),
            out: VecDeque::new(),
            closing: false,
            closed: false,
            commands: 0,
            errors: 0,
            mails: 0,
            auth_user: None,
            auth_failures: 0,
        };
        s.ask(Event::Connect, Pending::Connect);
        s
    }

    /// Appends received octets. Ignored after close and during the TLS
    /// handshake (plaintext sent then must never be acted on).
    pub fn feed(&mut self, input: &[u8]) {
        if self.closing || matches!(self.state, State::TlsHandshake) || input.is_empty() {
            return;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            // Moves at most as many octets as were consumed: linear overall.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(input);
    }

    /// The next thing to do; `None` means more input is needed or an
    /// event awaits its decision. Consecutive replies come out as one
    /// Write, so pipelined commands get one flush.
    pub fn poll(&mut self) -> Option<Output> {
        if self.closed {
            return None;
        }
        loop {
            let barrier = matches!(self.out.back(), Some(o) if !matches!(o, Output::Write(_)));
            if barrier || self.pending.is_some() || self.closing || !self.step() {
                break;
            }
        }
        let o = self.out.pop_front()?;
        if o == Output::Close {
            self.closed = true;
            self.out.clear();
        }
        Some(o)
    }

    /// Answers the pending event; ignored when none is pending.
    pub fn decide(&mut self, decision: Decision) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        if self.closing {
            return;
        }
        let cfg = Arc::clone(&self.cfg);
        match (pending, decision) {
            (_, Decision::Disconnect(r)) => {
                self.tx = None;
                self.close_with(sanitize(r));
            }
            (Pending::Connect, Decision::Accept(text)) => {
                let text = text.unwrap_or_else(|| format!("{} ESMTP wasmtpd", cfg.hostname));
                self.write(&Reply::plain(220, text));
            }
            (Pending::Connect, Decision::Reject(r)) => self.close_with(sanitize(r)),
            (Pending::Helo { extended, name }, Decision::Accept(_)) => {
                let reply = self.helo_reply(extended, &name);
                self.helo = Some(name);
                self.extended = extended;
                self.tx = None;
                self.write(&reply);
            }
            (Pending::Mail { sender, params }, Decision::Accept(text)) => {
                self.tx = Some(Tx {
                    tx: Transaction {
                        sender,
                        mail_params: params,
                        rcpts: Vec::new(),
                    },
                    rcpt_attempts: 0,
                    bdat: None,
                });
                self.mails += 1;
                self.write(&accepted(text, 250, "2.1.0", "Sender ok"));
            }
            (Pending::Rcpt { rcpt, params }, Decision::Accept(text)) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.tx.rcpts.push((rcpt, params));
                }
                self.write(&accepted(text, 250, "2.1.5", "Recipient ok"));
            }
            (Pending::DataStart, Decision::Accept(text)) => {
                let text =
                    text.unwrap_or_else(|| "Enter mail, end with \".\" on a line by itself".into());
                self.write(&Reply::plain(354, text));
                self.state = State::Data(DataReader::new(cfg.max_message_size));
            }
            (Pending::BdatStart { size, last }, Decision::Accept(_)) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.bdat = Some(BdatBody::new(cfg.max_message_size));
                }
                self.state = State::Chunk {
                    size,
                    remaining: size,
                    last,
                    fate: ChunkFate::Keep,
                };
            }
            (Pending::BdatStart { size, last }, Decision::Reject(r)) => {
                let reply = sanitize(r);
                if reply.is_closing() {
                    self.close_with(reply);
                } else {
                    self.discard_chunk(size, last, reply);
                }
            }
            (Pending::Message, Decision::Accept(text)) => {
                self.tx = None;
                self.write(&accepted(
                    text,
                    250,
                    "2.0.0",
                    "Message accepted for delivery",
                ));
            }
            (Pending::Message, Decision::Reject(r)) => {
                self.tx = None;
                self.reject(r);
            }
            (Pending::Auth { user }, Decision::Accept(_)) => {
                // Credential tables match users case-insensitively (keys
                // are lowercased); rules and logs see that one spelling.
                self.auth_user = Some(user.to_lowercase());
                self.write(&Reply::new(235, "2.7.0", "Authentication succeeded"));
            }
            (Pending::Auth { .. }, Decision::Reject(r)) => self.auth_failed(r),
            (Pending::Quit, _) => self.close_with(Reply::new(221, "2.0.0", "Bye")),
            (Pending::StartTls, Decision::Accept(_)) => {
                self.write(&Reply::new(220, "2.0.0", "Ready to start TLS"));
                self.out.push_back(Output::StartTls);
                self.state = State::TlsHandshake;
                // CVE-2011-0411: whatever was pipelined after STARTTLS
                // arrived in plaintext and must never be executed.
                self.buf.clear();
                self.pos = 0;
                self.lines.reset();
            }
            (Pending::Reset, _) => {
                self.tx = None;
                self.write(&Reply::new(250, "2.0.0", "Reset state"));
            }
            (_, Decision::Reject(r)) => self.reject(r),
        }
    }

    /// The TLS handshake asked for by `Output::StartTls` succeeded: the
    /// session starts over, expecting EHLO (RFC 3207 §4.2).
    pub fn tls_established(&mut self) {
        if self.closing || !matches!(self.state, State::TlsHandshake) {
            return;
        }
        self.tls = true;
        self.helo = None;
        self.auth_user = None;
        self.extended = false;
        self.tx = None;
        self.state = State::Command;
        self.buf.clear();
        self.pos = 0;
        self.lines.reset();
    }

    /// The idle timer fired: 421 and close.
    pub fn timed_out(&mut self) {
        if self.closing {
            return;
        }
        let text = format!("{} Error: timeout exceeded", self.cfg.hostname);
        self.close_with(Reply::new(421, "4.4.2", text));
    }

    /// How long the driver may wait for the client's next octets.
    pub fn idle_timeout(&self) -> Duration {
        match self.state {
            State::Data(_) | State::Chunk { .. } => DATA_TIMEOUT,
            _ => COMMAND_TIMEOUT,
        }
    }

    pub fn transaction(&self) -> Option<&Transaction> {
        self.tx.as_ref().map(|t| &t.tx)
    }

    /// The accepted HELO/EHLO name.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// The `with` keyword of the Received header (RFC 3848).
    pub fn protocol(&self) -> &'static str {
        match (self.extended, self.tls, self.auth_user.is_some()) {
            (true, true, true) => "ESMTPSA",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, false, false) => "ESMTP",
            (false, _, _) => "SMTP",
        }
    }

    /// The user an accepted AUTH authenticated as.
    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    pub fn tls_active(&self) -> bool {
        self.tls
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// True while an event handed out by `poll` awaits its decision. The
    /// driver should stop reading then (backpressure): input fed
    /// meanwhile is only buffered.
    pub fn awaiting_decision(&self) -> bool {
        self.pending.is_some()
    }

    /// Received octets not processed yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True once `Output::Close` has been handed out.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ---- processing -------------------------------------------------

    /// Processes some input; false when nothing could be done.
    fn step(&mut self) -> bool {
        match self.state {
            State::Command => self.step_command(),
            State::Data(_) => self.step_data(),
            State::Chunk { .. } => self.step_chunk(),
            State::TlsHandshake => false,
            State::Sasl(_) => self.step_sasl(),
        }
    }

    fn step_command(&mut self) -> bool {
        match self.lines.next(&self.buf[self.pos..]) {
            LineStatus::Incomplete { consumed } => {
                self.pos += consumed;
                consumed > 0
            }
            LineStatus::Line { len, consumed } => {
                let line = &self.buf[self.pos..self.pos + len];
                trace_command(line);
                let forbidden = command::is_forbidden(line);
                let parsed = command::parse(line);
                self.pos += consumed;
                if forbidden {
                    self.close_with(Reply::new(
                        421,
                        "4.7.0",
                        "Non-SMTP command, closing connection",
                    ));
                } else {
                    self.on_command(parsed);
                }
                true
            }
            LineStatus::Bad { error, consumed } => {
                self.pos += consumed;
                if self.count_command(None) {
                    match error {
                        LineError::TooLong => self.error(Reply::new(500, "5.5.2", "Line too long")),
                        // Where this line ends is ambiguous: a hop before us
                        // may have seen one command where we would see two.
                        // Stop here, as Postfix's smtpd_forbid_bare_newline.
                        LineError::BareLf => self.close_with(Reply::new(
                            521,
                            "5.5.2",
                            "Bare LF received: lines must end with CRLF",
                        )),
                        LineError::BareCr => self.close_with(Reply::new(
                            521,
                            "5.5.2",
                            "Bare CR received: lines must end with CRLF",
                        )),
                    }
                }
                true
            }
        }
    }

    fn step_data(&mut self) -> bool {
        let State::Data(reader) = &mut self.state else {
            return false;
        };
        let n = reader.read(&self.buf[self.pos..]);
        self.pos += n;
        if !reader.is_done() {
            return n > 0;
        }
        if let State::Data(reader) = mem::replace(&mut self.state, State::Command) {
            self.end_of_body(reader.finish());
        }
        true
    }

    fn step_chunk(&mut self) -> bool {
        let State::Chunk {
            remaining, fate, ..
        } = &mut self.state
        else {
            return false;
        };
        let avail = (self.buf.len() - self.pos) as u64;
        let n = (*remaining).min(avail) as usize;
        if n > 0 {
            if let ChunkFate::Keep = fate {
                if let Some(body) = self.tx.as_mut().and_then(|t| t.bdat.as_mut()) {
                    body.push(&self.buf[self.pos..self.pos + n]);
                }
            }
            self.pos += n;
            *remaining -= n as u64;
        }
        if *remaining > 0 {
            return n > 0;
        }
        if let State::Chunk {
            size, last, fate, ..
        } = mem::replace(&mut self.state, State::Command)
        {
            self.end_of_chunk(size, last, fate);
        }
        true
    }

    fn end_of_chunk(&mut self, size: u64, last: bool, fate: ChunkFate) {
        match fate {
            ChunkFate::Discard {
                reply,
                error,
                reset,
            } => {
                if reset {
                    self.tx = None;
                }
                if error {
                    self.error(reply);
                } else {
                    self.reject(reply);
                }
            }
            ChunkFate::Keep if !last => {
                self.write(&Reply::new(250, "2.0.0", format!("{size} octets received")));
            }
            ChunkFate::Keep => match self.tx.as_mut().and_then(|t| t.bdat.take()) {
                Some(body) => self.end_of_body(body.finish()),
                None => self.error(Reply::new(503, "5.5.1", "Error: no mail transaction")),
            },
        }
    }

    /// DATA or the last BDAT chunk is in.
    fn end_of_body(&mut self, body: Body) {
        match body {
            Body::Complete(content) => self.ask(Event::Message { content }, Pending::Message),
            Body::BareNewline => {
                self.tx = None;
                self.error(Reply::new(
                    550,
                    "5.5.2",
                    "Message contains bare CR or LF characters",
                ));
            }
            Body::TooBig => {
                self.tx = None;
                self.write(&Reply::new(552, "5.3.4", "Message too big"));
            }
        }
    }

    /// Counts a command line; false if that broke the limit (and closed).
    fn count_command(&mut self, verb: Option<Verb>) -> bool {
        self.commands += 1;
        match limit(self.cfg.max_commands) {
            Some(max) if self.commands > max && verb != Some(Verb::Quit) => {
                self.close_with(Reply::new(421, "4.7.0", "Too many commands"));
                false
            }
            _ => true,
        }
    }

    fn on_command(&mut self, parsed: Result<Command, ParseError>) {
        let verb = match &parsed {
            Ok(c) => Some(c.verb()),
            Err(e) => e.verb,
        };
        if !self.count_command(verb) {
            return;
        }
        let cmd = match parsed {
            Ok(cmd) => cmd,
            Err(e) => return self.on_bad_command(e),
        };
        if let Err(reply) = self.check_sequence(cmd.verb()) {
            if let Command::Bdat { size, last } = cmd {
                // The chunk follows anyway: skip it to stay in sync.
                let fate = ChunkFate::Discard {
                    reply,
                    error: true,
                    reset: false,
                };
                self.state = State::Chunk {
                    size,
                    remaining: size,
                    last,
                    fate,
                };
            } else {
                self.error(reply);
            }
            return;
        }
        self.dispatch(cmd);
    }

    fn on_bad_command(&mut self, e: ParseError) {
        if e.verb == Some(Verb::Bdat) {
            // Without a valid size the chunk cannot be skipped: its octets
            // would be read as commands. Hang up instead.
            self.write(&e.reply);
            self.out.push_back(Output::Close);
            self.closing = true;
            return;
        }
        if let Some(verb) = e.verb {
            if let Err(reply) = self.check_sequence(verb) {
                return self.error(reply);
            }
        }
        if e.verb == Some(Verb::Rcpt) {
            if let Some(tx) = self.tx.as_mut() {
                tx.rcpt_attempts += 1;
            }
        }
        self.error(e.reply);
    }

    /// Is this verb allowed now? Checked before the arguments.
    fn check_sequence(&self, verb: Verb) -> Result<(), Reply> {
        let seq = |text: &str| Err(Reply::new(503, "5.5.1", text));
        match verb {
            Verb::Mail => {
                if self.helo.is_none() {
                    return seq("Error: send HELO/EHLO first");
                }
                if self.cfg.tls_required && !self.tls {
                    return Err(Reply::new(
                        530,
                        "5.7.0",
                        "Must issue a STARTTLS command first",
                    ));
                }
                if self.cfg.auth_required && self.auth_user.is_none() {
                    return Err(Reply::new(530, "5.7.0", "Authentication required"));
                }
                if self.tx.is_some() {
                    return seq("Error: nested MAIL command");
                }
            }
            Verb::Rcpt if self.tx.is_none() => return seq("Error: need MAIL command"),
            Verb::Data | Verb::Bdat => {
                let Some(tx) = &self.tx else {
                    return seq("Error: need MAIL command");
                };
                if tx.rcpt_attempts == 0 {
                    return seq("Error: need RCPT command");
                }
                if tx.tx.rcpts.is_empty() {
                    return Err(Reply::new(554, "5.5.1", "Error: no valid recipients"));
                }
                if verb == Verb::Data && tx.bdat.is_some() {
                    return seq("Error: DATA and BDAT cannot be mixed");
                }
            }
            Verb::StartTls => {
                if self.tls {
                    return seq("Error: TLS already active");
                }
                if !self.cfg.starttls {
                    return Err(Reply::new(502, "5.5.1", "Error: command not implemented"));
                }
                if self.helo.is_none() {
                    return seq("Error: send EHLO first");
                }
                if self.tx.is_some() {
                    return seq("Error: STARTTLS not allowed during a mail transaction");
                }
            }
            Verb::Auth => {
                if !self.cfg.auth {
                    return Err(Reply::new(502, "5.5.1", "AUTH not available"));
                }
                if !self.extended {
                    return seq("Error: send EHLO first");
                }
                if self.auth_user.is_some() {
                    return seq("Error: already authenticated");
                }
                if self.tx.is_some() {
                    return seq("Error: AUTH not allowed during a mail transaction");
                }
                if !self.auth_advertised() {
                    return Err(Reply::new(
                        538,
                        "5.7.11",
                        "Encryption required for requested authentication mechanism",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, cmd: Command) {
        match cmd {
            Command::Helo(name) => self.ask(
                Event::Helo {
                    extended: false,
                    name: name.clone(),
                },
                Pending::Helo {
                    extended: false,
                    name,
                },
            ),
            Command::Ehlo(name) => self.ask(
                Event::Helo {
                    extended: true,
                    name: name.clone(),
                },
                Pending::Helo {
                    extended: true,
                    name,
                },
            ),
            Command::Mail { sender, params } => self.on_mail(sender, params),
            Command::Rcpt { rcpt, params } => self.on_rcpt(rcpt, params),
            Command::Data => self.ask(Event::DataStart, Pending::DataStart),
            Command::Bdat { size, last } => self.on_bdat(size, last),
            Command::Rset => self.ask(Event::Reset, Pending::Reset),
            Command::Noop => self.write(&Reply::new(250, "2.0.0", "Ok")),
            Command::Quit => self.ask(Event::Quit, Pending::Quit),
            Command::Vrfy => self.write(&Reply::new(502, "5.5.1", "VRFY command is disabled")),
            Command::Expn => self.write(&Reply::new(502, "5.5.1", "EXPN command is disabled")),
            Command::Help => self.write(&Reply::new(
                214,
                "2.0.0",
                "This is wasmtpd\n\
                 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN STARTTLS\n\
                 End of HELP info",
            )),
            Command::StartTls => self.ask(Event::StartTls, Pending::StartTls),
            Command::Auth { mechanism, initial } => self.on_auth(&mechanism, initial),
        }
    }

    /// AUTH is offered on this listener, now: over TLS, or in clear
    /// where the operator allowed it.
    fn auth_advertised(&self) -> bool {
        self.cfg.auth && (self.tls || self.cfg.auth_plaintext)
    }

    fn on_auth(&mut self, mechanism: &str, initial: Option<String>) {
        let Some(mech) = Mechanism::parse(mechanism) else {
            return self.error(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
        };
        match (mech, initial) {
            (Mechanism::Plain, Some(resp)) => self.sasl_response(SaslStep::Plain, &resp),
            (Mechanism::Login, Some(resp)) => self.sasl_response(SaslStep::LoginUser, &resp),
            (Mechanism::Plain, None) => self.challenge(SaslStep::Plain, ""),
            (Mechanism::Login, None) => self.challenge(SaslStep::LoginUser, "VXNlcm5hbWU6"),
        }
    }

    /// Sends a 334 and waits for the client's response line.
    fn challenge(&mut self, step: SaslStep, text: &str) {
        self.write(&Reply::plain(334, text));
        self.state = State::Sasl(step);
    }

    /// Reads one SASL response line; not counted as a command (AUTH was),
    /// and bounded by the failure limit.
    fn step_sasl(&mut self) -> bool {
        match self.lines.next(&self.buf[self.pos..]) {
            LineStatus::Incomplete { consumed } => {
                self.pos += consumed;
                consumed > 0
            }
            LineStatus::Line { len, consumed } => {
                let line = String::from_utf8_lossy(&self.buf[self.pos..self.pos + len]);
                let line = Zeroizing::new(line.into_owned());
                self.pos += consumed;
                if let State::Sasl(step) = mem::replace(&mut self.state, State::Command) {
                    if line.as_str() == "*" {
                        self.error(Reply::new(501, "5.0.0", "Authentication cancelled"));
                    } else {
                        self.sasl_response(step, &line);
                    }
                }
                true
            }
            LineStatus::Bad { consumed, .. } => {
                self.pos += consumed;
                self.state = State::Command;
                self.error(Reply::new(500, "5.5.2", "Invalid authentication data"));
                true
            }
        }
    }

    fn sasl_response(&mut self, step: SaslStep, resp: &str) {
        let result = match step {
            SaslStep::Plain => sasl::parse_plain(resp).map(|(user, password)| {
                self.ask_auth(Mechanism::Plain, user, password);
            }),
            SaslStep::LoginUser => sasl::decode_text(resp).and_then(|user| {
                if user.is_empty() {
                    return Err(SaslError::Malformed);
                }
                let user = user.to_string();
                self.challenge(SaslStep::LoginPassword { user }, "UGFzc3dvcmQ6");
                Ok(())
            }),
            SaslStep::LoginPassword { user } => sasl::decode_text(resp).map(|p| {
                self.ask_auth(Mechanism::Login, user, Password::new(p.as_str()));
            }),
        };
        match result {
            Ok(()) => {}
            Err(SaslError::Base64) => self.error(Reply::new(501, "5.5.2", "Invalid base64 data")),
            Err(SaslError::Malformed) => {
                self.auth_failed(Reply::new(535, "5.7.8", "Authentication failed"))
            }
        }
    }

    fn ask_auth(&mut self, mechanism: Mechanism, user: String, password: Password) {
        self.ask(
            Event::Auth {
                mechanism,
                user: user.clone(),
                password,
            },
            Pending::Auth { user },
        );
    }

    /// A failed attempt: the rejection, then 421 and close once the
    /// limit is reached so a guesser must reconnect (and be slowed
    /// again by the driver's delay).
    fn auth_failed(&mut self, reply: Reply) {
        self.auth_failures += 1;
        self.reject(reply);
        if self.closing {
            return;
        }
        if limit(self.cfg.max_auth_failures).is_some_and(|max| self.auth_failures >= max) {
            self.close_with(Reply::new(421, "4.7.0", "Too many authentication failures"));
        }
    }

    fn on_mail(&mut self, sender: Option<MailAddr>, params: MailParams) {
        let cfg = Arc::clone(&self.cfg);
        if params.body == Some(BodyType::BinaryMime) {
            // Not advertised: binary content would break the bare CR/LF
            // rule and could not be relayed to non-BINARYMIME hosts.
            return self.error(Reply::new(555, "5.5.4", "BODY=BINARYMIME not supported"));
        }
        if params.auth.is_some() && !self.auth_advertised() {
            return self.error(Reply::new(555, "5.5.4", "Unsupported parameter AUTH"));
        }
        if params.has_dsn() && !cfg.dsn {
            return self.error(Reply::new(555, "5.5.4", "DSN parameters not supported"));
        }
        if let (Some(size), Some(max)) = (params.size, limit_u64(cfg.max_message_size)) {
            if size > max {
                return self.write(&Reply::new(
                    552,
                    "5.3.4",
                    "Message size exceeds fixed maximum message size",
                ));
            }
        }
        if limit(cfg.max_mails).is_some_and(|max| self.mails >= max) {
            return self.error(Reply::new(
                452,
                "4.5.3",
                "Too many messages for this session",
            ));
        }
        self.ask(
            Event::MailFrom {
                sender: sender.clone(),
                params: params.clone(),
            },
            Pending::Mail { sender, params },
        );
    }

    fn on_rcpt(&mut self, rcpt: RcptPath, params: RcptParams) {
        let cfg = Arc::clone(&self.cfg);
        let Some(tx) = self.tx.as_mut() else {
            return self.error(Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        tx.rcpt_attempts += 1;
        let addr = match rcpt {
            RcptPath::Postmaster => MailAddr::new("postmaster", cfg.hostname.as_str()),
            RcptPath::Addr(a) => a,
        };
        let ascii = addr.local.is_ascii() && addr.domain.is_ascii();
        if !ascii && !tx.tx.mail_params.smtputf8 {
            return self.error(Reply::new(
                553,
                "5.6.7",
                "Must declare SMTPUTF8 to send non-ASCII addresses",
            ));
        }
        if params.has_dsn() && !cfg.dsn {
            return self.error(Reply::new(555, "5.5.4", "DSN parameters not supported"));
        }
        if limit(cfg.max_rcpt).is_some_and(|max| tx.tx.rcpts.len() >= max) {
            return self.write(&Reply::new(452, "4.5.3", "Too many recipients"));
        }
        self.ask(
            Event::RcptTo {
                rcpt: addr.clone(),
                params: params.clone(),
            },
            Pending::Rcpt { rcpt: addr, params },
        );
    }

    fn on_bdat(&mut self, size: u64, last: bool) {
        let max = self.cfg.max_message_size;
        let Some(tx) = self.tx.as_ref() else {
            return self.error(Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        let have = tx.bdat.as_ref().map_or(0, BdatBody::size);
        if max != 0 && have.saturating_add(size) > max {
            self.discard_chunk(size, last, Reply::new(552, "5.3.4", "Message too big"));
        } else if tx.bdat.is_none() {
            self.ask(Event::DataStart, Pending::BdatStart { size, last });
        } else {
            self.state = State::Chunk {
                size,
                remaining: size,
                last,
                fate: ChunkFate::Keep,
            };
        }
    }

    /// Reads the announced chunk and throws it away, keeping the stream in
    /// step, then answers `reply` and resets the transaction.
    fn discard_chunk(&mut self, size: u64, last: bool, reply: Reply) {
        let fate = ChunkFate::Discard {
            reply,
            error: false,
            reset: true,
        };
        self.state = State::Chunk {
            size,
            remaining: size,
            last,
            fate,
        };
    }

    fn helo_reply(&self, extended: bool, name: &str) -> Reply {
        let cfg = &self.cfg;
        let first = format!("{} Hello {}", cfg.hostname, name);
        if !extended {
            return Reply::plain(250, first);
        }
        let mut lines = vec![first, "PIPELINING".to_string()];
        lines.push(match cfg.max_message_size {
            0 => "SIZE".to_string(),
            max => format!("SIZE {max}"),
        });
        lines.extend(["8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"].map(String::from));
        if cfg.dsn {
            lines.push("DSN".into());
        }
        lines.push("CHUNKING".into());
        if cfg.starttls && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_advertised() && self.auth_user.is_none() {
            lines.push(sasl::ADVERTISED.into());
        }
        lines.push("HELP".into());
        Reply::plain(250, lines.join("\n"))
    }

    // ---- output -----------------------------------------------------

    fn ask(&mut self, event: Event, pending: Pending) {
        self.out.push_back(Output::Event(event));
        self.pending = Some(pending);
    }

    fn write(&mut self, reply: &Reply) {
        let bytes = reply.encode();
        if tracing::enabled!(tracing::Level::DEBUG) {
            for line in String::from_utf8_lossy(&bytes).lines() {
                tracing::debug!("smtp: >>> {line}");
            }
        }
        if let Some(Output::Write(w)) = self.out.back_mut() {
            w.extend_from_slice(&bytes);
        } else {
            self.out.push_back(Output::Write(bytes));
        }
    }

    /// A protocol error: reply, count it, hang up at the limit.
    fn error(&mut self, reply: Reply) {
        self.write(&reply);
        self.errors += 1;
        if limit(self.cfg.max_errors).is_some_and(|max| self.errors >= max) {
            self.close_with(Reply::new(421, "4.7.0", "Too many errors"));
        }
    }

    /// A policy rejection from a decision.
    fn reject(&mut self, reply: Reply) {
        let reply = sanitize(reply);
        if reply.is_closing() {
            self.close_with(reply);
        } else {
            self.write(&reply);
        }
    }

    fn close_with(&mut self, reply: Reply) {
        self.write(&reply);
        self.out.push_back(Output::Close);
        self.closing = true;
        self.pending = None;
    }
}

fn limit_u64(n: u64) -> Option<u64> {
    (n != 0).then_some(n)
}

/// A rejection must be a 4xx/5xx; anything else is turned into a
/// temporary failure rather than telling the client "ok".
fn sanitize(reply: Reply) -> Reply {
    if (400..600).contains(&reply.code) {
        reply
    } else {
        Reply::new(451, "4.3.0", reply.text)
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

/// `trace smtp`: each command line as received, with AUTH's initial
/// response hidden (it carries the password).
fn trace_command(line: &[u8]) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let text = String::from_utf8_lossy(line);
    let mut words = text.splitn(3, ' ');
    let shown = match (words.next(), words.next(), words.next()) {
        (Some(verb), Some(mech), Some(_)) if verb.eq_ignore_ascii_case("AUTH") => {
            format!("{verb} {mech} ********")
        }
        _ => text.escape_debug().to_string(),
    };
    tracing::debug!("smtp: <<< {shown}");
}
