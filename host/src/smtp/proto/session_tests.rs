//! Session behaviour as a client sees it: transcripts of replies and the
//! events the driver is asked to decide.

use super::*;

fn config() -> SessionConfig {
    // Small limits so the tests can reach them.
    SessionConfig {
        max_message_size: 1000,
        max_rcpt: 3,
        max_mails: 2,
        max_commands: 100,
        starttls: true,
        ..SessionConfig::new("mx.example.org")
    }
}

type Policy = Box<dyn FnMut(&Event) -> Decision>;

/// What the driver saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Write(String),
    Event(Event),
    StartTls,
    Close,
}

/// A scripted driver that decides events with `policy` (accept all by
/// default) and records everything.
struct Client {
    s: Session,
    seen: Vec<Seen>,
    policy: Policy,
    /// Hold events instead of deciding them.
    manual: bool,
}

impl Client {
    fn new(cfg: SessionConfig) -> Client {
        Client::with(cfg, false, Box::new(|_| Decision::Accept(None)))
    }

    fn with(cfg: SessionConfig, tls: bool, policy: Policy) -> Client {
        let mut c = Client {
            s: Session::new(Arc::new(cfg), tls),
            seen: Vec::new(),
            policy,
            manual: false,
        };
        c.run();
        c
    }

    fn run(&mut self) {
        while let Some(o) = self.s.poll() {
            match o {
                Output::Write(w) => self
                    .seen
                    .push(Seen::Write(String::from_utf8_lossy(&w).into_owned())),
                Output::Event(e) => {
                    self.seen.push(Seen::Event(e.clone()));
                    if !self.manual {
                        let d = (self.policy)(&e);
                        self.s.decide(d);
                    }
                }
                Output::StartTls => self.seen.push(Seen::StartTls),
                Output::Close => self.seen.push(Seen::Close),
            }
        }
    }

    /// Feeds `input` in one go; returns the replies written meanwhile.
    fn send(&mut self, input: &[u8]) -> String {
        let mark = self.seen.len();
        self.s.feed(input);
        self.run();
        self.writes_since(mark)
    }

    /// Feeds `input` one octet at a time.
    fn send_bytewise(&mut self, input: &[u8]) -> String {
        let mark = self.seen.len();
        for b in input {
            self.s.feed(std::slice::from_ref(b));
            self.run();
        }
        self.writes_since(mark)
    }

    fn writes_since(&self, mark: usize) -> String {
        self.seen[mark..]
            .iter()
            .filter_map(|s| match s {
                Seen::Write(w) => Some(w.as_str()),
                _ => None,
            })
            .collect()
    }

    fn transcript(&self) -> String {
        self.writes_since(0)
    }

    fn events(&self) -> Vec<Event> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn messages(&self) -> Vec<Vec<u8>> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Message { content } => Some(content),
                _ => None,
            })
            .collect()
    }

    fn mail_froms(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::MailFrom { .. }))
            .count()
    }

    fn closed(&self) -> bool {
        self.seen.last() == Some(&Seen::Close)
    }
}

/// A client that has said EHLO and whose replies so far are forgotten.
fn ehlo(cfg: SessionConfig) -> Client {
    let mut c = Client::new(cfg);
    c.send(b"EHLO client.example.net\r\n");
    c
}

/// A client in a transaction with one accepted recipient.
fn in_tx() -> Client {
    let mut c = ehlo(config());
    c.send(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n");
    c
}

fn codes(transcript: &str) -> Vec<&str> {
    transcript
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| &l[..3])
        .collect()
}

// ---- greeting, HELO/EHLO ---------------------------------------------

#[test]
fn connect_is_the_first_event_and_greets() {
    let c = Client::new(config());
    assert_eq!(c.seen[0], Seen::Event(Event::Connect));
    assert_eq!(c.transcript(), "220 mx.example.org ESMTP wasmtpd\r\n");
}

#[test]
fn connect_rejected_closes() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|_| Decision::Reject(Reply::new(554, "5.7.1", "Go away"))),
    );
    assert_eq!(c.transcript(), "554 5.7.1 Go away\r\n");
    assert!(c.closed());
    assert_eq!(c.send(b"EHLO x\r\n"), "");
    assert!(c.s.poll().is_none());
    assert!(c.s.is_closed());
}

#[test]
fn ehlo_advertises_extensions() {
    let mut c = Client::new(config());
    assert_eq!(
        c.send(b"EHLO client.example.net\r\n"),
        "250-mx.example.org Hello client.example.net\r\n\
         250-PIPELINING\r\n\
         250-SIZE 1000\r\n\
         250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n\
         250-SMTPUTF8\r\n\
         250-DSN\r\n\
         250-CHUNKING\r\n\
         250-STARTTLS\r\n\
         250 HELP\r\n"
    );
    assert_eq!(c.s.helo(), Some("client.example.net"));
    assert_eq!(c.s.protocol(), "ESMTP");
    assert_eq!(
        c.events()[1],
        Event::Helo {
            extended: true,
            name: "client.example.net".into()
        }
    );
}

#[test]
fn ehlo_without_dsn_starttls_or_size() {
    let cfg = SessionConfig {
        dsn: false,
        max_message_size: 0,
        ..config()
    };
    let mut c = Client::with(cfg, true, Box::new(|_| Decision::Accept(None)));
    let r = c.send(b"EHLO x\r\n");
    assert!(r.contains("250-SIZE\r\n"), "{r}");
    assert!(
        !r.contains("DSN") && !r.contains("STARTTLS") && !r.contains("AUTH"),
        "{r}"
    );
    assert_eq!(c.s.protocol(), "ESMTPS");
}

#[test]
fn helo_reply_and_protocol() {
    let mut c = Client::new(config());
    assert_eq!(
        c.send(b"helo client\r\n"),
        "250 mx.example.org Hello client\r\n"
    );
    assert_eq!(c.s.protocol(), "SMTP");
    assert_eq!(c.s.helo(), Some("client"));
}

#[test]
fn helo_needs_an_argument() {
    let mut c = Client::new(config());
    assert_eq!(c.send(b"EHLO\r\n"), "501 Syntax: EHLO hostname\r\n");
    assert_eq!(c.send(b"HELO \r\n"), "501 Syntax: HELO hostname\r\n");
    assert_eq!(c.s.helo(), None);
}

#[test]
fn helo_rejected_by_policy() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|e| match e {
            Event::Helo { .. } => Decision::Reject(Reply::new(550, "5.7.1", "Bad HELO")),
            _ => Decision::Accept(None),
        }),
    );
    assert_eq!(
        c.send(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\n"),
        "550 5.7.1 Bad HELO\r\n503 5.5.1 Error: send HELO/EHLO first\r\n"
    );
}

#[test]
fn non_ascii_helo_and_ehlo() {
    let mut c = Client::new(config());
    assert_eq!(
        c.send("HELO exämple.org\r\n".as_bytes()),
        "553 5.6.7 Non-ASCII HELO argument requires EHLO and SMTPUTF8\r\n"
    );
    assert!(c
        .send("EHLO exämple.org\r\n".as_bytes())
        .starts_with("250-mx.example.org Hello exämple.org\r\n"));
}

#[test]
fn second_ehlo_resets_the_transaction() {
    let mut c = in_tx();
    assert!(c.s.transaction().is_some());
    c.send(b"EHLO again\r\n");
    assert!(c.s.transaction().is_none());
    assert_eq!(c.s.helo(), Some("again"));
}

// ---- sequencing and syntax errors -------------------------------------

#[test]
fn mail_before_helo() {
    let mut c = Client::new(config());
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\r\n"),
        "503 5.5.1 Error: send HELO/EHLO first\r\n"
    );
    // The sequencing error wins over a syntax error.
    assert_eq!(
        c.send(b"MAIL FROM:<a@@>\r\n"),
        "503 5.5.1 Error: send HELO/EHLO first\r\n"
    );
}

#[test]
fn rcpt_before_mail_and_data_without_rcpt() {
    let mut c = ehlo(config());
    assert_eq!(
        c.send(b"RCPT TO:<b@example.org>\r\n"),
        "503 5.5.1 Error: need MAIL command\r\n"
    );
    assert_eq!(
        c.send(b"DATA\r\n"),
        "503 5.5.1 Error: need MAIL command\r\n"
    );
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\r\n"),
        "250 2.1.0 Sender ok\r\n"
    );
    assert_eq!(
        c.send(b"DATA\r\n"),
        "503 5.5.1 Error: need RCPT command\r\n"
    );
}

#[test]
fn nested_mail() {
    let mut c = in_tx();
    assert_eq!(
        c.send(b"MAIL FROM:<c@b.org>\r\n"),
        "503 5.5.1 Error: nested MAIL command\r\n"
    );
}

#[test]
fn unknown_command_and_bad_arguments() {
    let mut c = ehlo(SessionConfig {
        max_errors: 100,
        ..config()
    });
    assert_eq!(c.send(b"FROB\r\n"), "500 5.5.1 Command unrecognized\r\n");
    assert_eq!(c.send(b"\r\n"), "500 5.5.2 Error: bad syntax\r\n");
    assert_eq!(
        c.send(b"MAIL FROM <a@b.org>\r\n"),
        "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
    );
    assert_eq!(
        c.send(b"MAIL FROM:<a b@b.org>\r\n"),
        "501 5.1.7 Bad sender address syntax\r\n"
    );
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org> SIZE=x\r\n"),
        "501 5.5.4 Bad SIZE value\r\n"
    );
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org> XFOO=1\r\n"),
        "555 5.5.4 Unsupported parameter XFOO\r\n"
    );
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org> BODY=BINARYMIME\r\n"),
        "555 5.5.4 BODY=BINARYMIME not supported\r\n"
    );
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org> AUTH=<>\r\n"),
        "555 5.5.4 Unsupported parameter AUTH\r\n"
    );
    assert_eq!(c.send(b"MAIL FROM:<>\r\n"), "250 2.1.0 Sender ok\r\n");
    assert_eq!(
        c.send(b"RCPT TO:<>\r\n"),
        "501 5.1.3 Bad recipient address syntax\r\n"
    );
    assert_eq!(
        c.send(b"RCPT TO:<user>\r\n"),
        "501 5.1.3 Bad recipient address syntax\r\n"
    );
    assert_eq!(
        c.send(b"RCPT TO:<b@example.org> FOO=BAR\r\n"),
        "555 5.5.4 Unsupported parameter FOO\r\n"
    );
    assert_eq!(c.send(b"RSET now\r\n"), "501 5.5.4 Syntax: RSET\r\n");
    // Sequencing first: RCPTs were tried and all failed.
    assert_eq!(
        c.send(b"DATA x\r\n"),
        "554 5.5.1 Error: no valid recipients\r\n"
    );
}

#[test]
fn data_after_only_rejected_recipients() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|e| match e {
            Event::RcptTo { .. } => Decision::Reject(Reply::new(550, "5.7.1", "Relaying denied")),
            _ => Decision::Accept(None),
        }),
    );
    let r = c.send(
        b"EHLO x\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<x@elsewhere.net>\r\nDATA\r\nbody\r\n.\r\n",
    );
    assert!(
        r.ends_with("250 2.1.0 Sender ok\r\n550 5.7.1 Relaying denied\r\n554 5.5.1 Error: no valid recipients\r\n500 5.5.1 Command unrecognized\r\n500 5.5.1 Command unrecognized\r\n"),
        "{r}"
    );
    assert!(c.messages().is_empty());
}

#[test]
fn dsn_parameters() {
    let mut c = ehlo(config());
    c.send(b"MAIL FROM:<a@b.org> RET=HDRS ENVID=QQ314159\r\nRCPT TO:<b@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@example.org\r\n");
    let tx = c.s.transaction().unwrap();
    assert_eq!(tx.mail_params.ret.as_deref(), Some("HDRS"));
    assert_eq!(tx.rcpts[0].1.notify.as_deref(), Some("FAILURE,DELAY"));
    let dsn = tx.mail_params.dsn(&tx.rcpts[0].1);
    assert_eq!(dsn.orcpt.as_deref(), Some("rfc822;b@example.org"));

    let mut c = ehlo(SessionConfig {
        dsn: false,
        ..config()
    });
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org> RET=FULL\r\n"),
        "555 5.5.4 DSN parameters not supported\r\n"
    );
    c.send(b"MAIL FROM:<a@b.org>\r\n");
    assert_eq!(
        c.send(b"RCPT TO:<b@example.org> NOTIFY=NEVER\r\n"),
        "555 5.5.4 DSN parameters not supported\r\n"
    );
}

// ---- MAIL / RCPT ------------------------------------------------------

#[test]
fn mail_and_rcpt_events_and_transaction() {
    let mut c = ehlo(config());
    let r = c.send(b"MAIL FROM:<a@example.net> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<@hop1,@hop2:c@example.org>\r\n");
    assert_eq!(
        r,
        "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n250 2.1.5 Recipient ok\r\n"
    );
    let tx = c.s.transaction().unwrap();
    assert_eq!(tx.sender, Some(MailAddr::new("a", "example.net")));
    assert_eq!(tx.mail_params.size, Some(100));
    assert_eq!(tx.mail_params.body, Some(BodyType::EightBitMime));
    let rcpts: Vec<String> = tx.rcpts.iter().map(|(a, _)| a.to_string()).collect();
    assert_eq!(rcpts, ["b@example.org", "c@example.org"]);
    assert!(matches!(&c.events()[2], Event::MailFrom { sender: Some(a), .. } if a.local == "a"));
}

#[test]
fn null_sender() {
    let mut c = ehlo(config());
    c.send(b"MAIL FROM:<>\r\n");
    assert_eq!(
        c.events()[2],
        Event::MailFrom {
            sender: None,
            params: MailParams::default()
        }
    );
    assert_eq!(c.s.transaction().unwrap().sender, None);
}

#[test]
fn postmaster_without_domain() {
    let mut c = ehlo(config());
    let r = c.send(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<Postmaster>\r\n");
    assert!(r.ends_with("250 2.1.5 Recipient ok\r\n"));
    assert_eq!(
        c.events()[3],
        Event::RcptTo {
            rcpt: MailAddr::new("postmaster", "mx.example.org"),
            params: RcptParams::default()
        }
    );
}

#[test]
fn rcpt_rejected_by_policy_is_not_kept() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|e| match e {
            Event::RcptTo { rcpt, .. } if rcpt.domain != "example.org" => {
                Decision::Reject(Reply::new(550, "5.7.1", "Relaying denied"))
            }
            _ => Decision::Accept(None),
        }),
    );
    let r = c.send(
        b"EHLO x\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<x@other.net>\r\nRCPT TO:<y@example.org>\r\n",
    );
    assert!(
        r.ends_with("550 5.7.1 Relaying denied\r\n250 2.1.5 Recipient ok\r\n"),
        "{r}"
    );
    assert_eq!(c.s.transaction().unwrap().rcpts.len(), 1);
}

#[test]
fn smtputf8_addresses() {
    let mut c = ehlo(config());
    assert_eq!(
        c.send("MAIL FROM:<jösé@exämple.org>\r\n".as_bytes()),
        "553 5.6.7 Must declare SMTPUTF8 to send non-ASCII addresses\r\n"
    );
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\r\n"),
        "250 2.1.0 Sender ok\r\n"
    );
    assert_eq!(
        c.send("RCPT TO:<ünï@example.org>\r\n".as_bytes()),
        "553 5.6.7 Must declare SMTPUTF8 to send non-ASCII addresses\r\n"
    );
    c.send(b"RSET\r\n");
    assert_eq!(
        c.send("MAIL FROM:<jösé@exämple.org> SMTPUTF8\r\n".as_bytes()),
        "250 2.1.0 Sender ok\r\n"
    );
    assert_eq!(
        c.send("RCPT TO:<ünï@example.org>\r\n".as_bytes()),
        "250 2.1.5 Recipient ok\r\n"
    );
    assert!(c.s.transaction().unwrap().mail_params.smtputf8);
}

#[test]
fn too_many_recipients() {
    let mut c = in_tx();
    let r = c
        .send(b"RCPT TO:<c@example.org>\r\nRCPT TO:<d@example.org>\r\nRCPT TO:<e@example.org>\r\n");
    assert_eq!(
        r,
        "250 2.1.5 Recipient ok\r\n250 2.1.5 Recipient ok\r\n452 4.5.3 Too many recipients\r\n"
    );
    assert_eq!(c.s.transaction().unwrap().rcpts.len(), 3);
}

#[test]
fn too_many_mails() {
    let mut c = ehlo(config());
    for _ in 0..2 {
        c.send(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n");
    }
    assert_eq!(c.messages().len(), 2);
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\r\n"),
        "452 4.5.3 Too many messages for this session\r\n"
    );
}

#[test]
fn size_parameter_over_limit() {
    let mut c = ehlo(config());
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org> SIZE=1001\r\n"),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert!(c.s.transaction().is_none());
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org> SIZE=1000\r\n"),
        "250 2.1.0 Sender ok\r\n"
    );
}

#[test]
fn tls_required_before_mail() {
    let mut c = ehlo(SessionConfig {
        tls_required: true,
        ..config()
    });
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\r\n"),
        "530 5.7.0 Must issue a STARTTLS command first\r\n"
    );
    let mut c = Client::with(
        SessionConfig {
            tls_required: true,
            ..config()
        },
        true,
        Box::new(|_| Decision::Accept(None)),
    );
    c.send(b"EHLO x\r\n");
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\r\n"),
        "250 2.1.0 Sender ok\r\n"
    );
}

// ---- DATA -------------------------------------------------------------

#[test]
fn data_transaction() {
    let mut c = in_tx();
    assert_eq!(
        c.send(b"DATA\r\n"),
        "354 Enter mail, end with \".\" on a line by itself\r\n"
    );
    assert_eq!(c.s.idle_timeout(), DATA_TIMEOUT);
    let r = c.send(b"Subject: hi\r\n\r\n..leading dot\r\nbye\r\n.\r\n");
    assert_eq!(r, "250 2.0.0 Message accepted for delivery\r\n");
    assert_eq!(
        c.messages(),
        vec![b"Subject: hi\r\n\r\n.leading dot\r\nbye\r\n".to_vec()]
    );
    assert!(c.s.transaction().is_none());
    assert_eq!(c.s.idle_timeout(), COMMAND_TIMEOUT);
}

#[test]
fn empty_message() {
    let mut c = in_tx();
    c.send(b"DATA\r\n.\r\n");
    assert_eq!(c.messages(), vec![Vec::<u8>::new()]);
}

#[test]
fn message_decision_text_and_rejection() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|e| match e {
            Event::Message { content } if content.starts_with(b"spam") => {
                Decision::Reject(Reply::new(554, "5.7.1", "Looks like spam"))
            }
            Event::Message { .. } => {
                Decision::Accept(Some("2.0.0 2b4c1a00 Message accepted for delivery".into()))
            }
            _ => Decision::Accept(None),
        }),
    );
    c.send(b"EHLO x\r\n");
    let r = c.send(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nham\r\n.\r\n");
    assert!(
        r.ends_with("250 2.0.0 2b4c1a00 Message accepted for delivery\r\n"),
        "{r}"
    );
    let r = c.send(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nspam\r\n.\r\n");
    assert!(r.ends_with("554 5.7.1 Looks like spam\r\n"), "{r}");
    assert!(c.s.transaction().is_none());
}

#[test]
fn data_start_rejected_keeps_transaction() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|e| match e {
            Event::DataStart => Decision::Reject(Reply::new(451, "4.3.0", "Try later")),
            _ => Decision::Accept(None),
        }),
    );
    c.send(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<b@example.org>\r\n");
    assert_eq!(c.send(b"DATA\r\n"), "451 4.3.0 Try later\r\n");
    assert!(c.s.transaction().is_some());
}

#[test]
fn reject_with_421_closes() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|e| match e {
            Event::MailFrom { .. } => Decision::Reject(Reply::new(421, "4.3.2", "Shutting down")),
            _ => Decision::Accept(None),
        }),
    );
    let r = c.send(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\nNOOP\r\n");
    assert!(r.ends_with("421 4.3.2 Shutting down\r\n"), "{r}");
    assert!(c.closed());
}

#[test]
fn reject_with_positive_code_is_made_a_failure() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|e| match e {
            Event::MailFrom { .. } => Decision::Reject(Reply::new(250, "2.0.0", "oops")),
            _ => Decision::Accept(None),
        }),
    );
    assert!(c
        .send(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\n")
        .ends_with("451 4.3.0 oops\r\n"));
    assert!(c.s.transaction().is_none());
}

#[test]
fn message_too_big_is_read_to_the_end() {
    let mut c = in_tx();
    c.send(b"DATA\r\n");
    let line = [b'x'; 98];
    let mut body = Vec::new();
    for _ in 0..20 {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"MAIL FROM:<smuggled@x>\r\n.\r\nNOOP\r\n");
    assert_eq!(
        c.send(&body),
        "552 5.3.4 Message too big\r\n250 2.0.0 Ok\r\n"
    );
    assert!(c.messages().is_empty());
    assert!(c.s.transaction().is_none());
    assert_eq!(c.mail_froms(), 1);
}

// ---- smuggling --------------------------------------------------------

/// Every way a bare CR or LF could pass for an end of DATA elsewhere.
const SMUGGLE_ENDINGS: &[&[u8]] = &[
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\n.\r",
    b"\r\n.\r",
    b"\r\n.\r\r\n",
    b"\n..\n",
    b"\r\n.\n\r\n",
    b"\n\n.\n\n",
];

fn smuggle_attempt(ending: &[u8], bytewise: bool) -> Client {
    let mut c = in_tx();
    c.send(b"DATA\r\n");
    let mut input = b"Subject: hello\r\n\r\nfirst message".to_vec();
    input.extend_from_slice(ending);
    input.extend_from_slice(b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n");
    input.extend_from_slice(b"NOOP\r\n");
    if bytewise {
        c.send_bytewise(&input);
    } else {
        c.send(&input);
    }
    c
}

#[test]
fn smuggling_attempts_are_rejected_whole() {
    for ending in SMUGGLE_ENDINGS {
        for bytewise in [false, true] {
            let c = smuggle_attempt(ending, bytewise);
            let t = c.transcript();
            assert!(
                t.ends_with("354 Enter mail, end with \".\" on a line by itself\r\n550 5.5.2 Message contains bare CR or LF characters\r\n250 2.0.0 Ok\r\n"),
                "{ending:?} bytewise={bytewise}: {t}"
            );
            assert_eq!(
                c.mail_froms(),
                1,
                "{ending:?}: a second transaction started"
            );
            assert!(c.messages().is_empty(), "{ending:?}");
            assert!(c.s.transaction().is_none());
        }
    }
}

#[test]
fn smuggled_text_accepted_only_as_content_when_properly_framed() {
    // A proper CRLF.CRLF ends the message; text merely looking like
    // commands inside it is content.
    let mut c = in_tx();
    c.send(b"DATA\r\n");
    c.send(b"x\r\n.MAIL FROM:<admin@example.org>\r\n..\r\nDATA\r\n.\r\n");
    assert_eq!(
        c.messages(),
        vec![b"x\r\nMAIL FROM:<admin@example.org>\r\n.\r\nDATA\r\n".to_vec()]
    );
    assert_eq!(c.mail_froms(), 1);
}

#[test]
fn crlf_split_across_feeds() {
    let mut c = in_tx();
    c.send(b"DATA\r\n");
    for piece in [&b"a\r"[..], b"\n", b".", b"\r", b"\n"] {
        c.send(piece);
    }
    assert_eq!(c.messages(), vec![b"a\r\n".to_vec()]);
}

#[test]
fn pipelined_commands_after_message_in_same_feed() {
    let mut c = in_tx();
    c.send(b"DATA\r\n");
    let r = c.send(b"hi\r\n.\r\nMAIL FROM:<c@b.org>\r\nRCPT TO:<b@example.org>\r\nQUIT\r\n");
    assert_eq!(r, "250 2.0.0 Message accepted for delivery\r\n250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n221 2.0.0 Bye\r\n");
    assert!(c.closed());
}

// ---- command-line framing --------------------------------------------

#[test]
fn bare_lf_and_cr_in_commands() {
    // The command is not run and the session ends (Postfix's
    // smtpd_forbid_bare_newline): nothing after it is read as commands.
    for (input, which) in [(&b"NOOP\nNOOP\r\n"[..], "LF"), (b"NOOP\rNOOP\r\n", "CR")] {
        let mut c = ehlo(config());
        assert_eq!(
            c.send(input),
            format!("521 5.5.2 Bare {which} received: lines must end with CRLF\r\n")
        );
        assert!(c.s.is_closed());
    }
    // A bare LF never completes a command, even split across feeds.
    let mut c = ehlo(config());
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\n"),
        "521 5.5.2 Bare LF received: lines must end with CRLF\r\n"
    );
    assert!(c.s.transaction().is_none());
}

#[test]
fn line_too_long() {
    let mut c = ehlo(config());
    let mut line = b"NOOP ".to_vec();
    line.resize(5000, b'x');
    line.extend_from_slice(b"\r\nNOOP\r\n");
    assert_eq!(c.send(&line), "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
    let mut c = ehlo(config());
    assert_eq!(
        c.send_bytewise(&line),
        "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n"
    );
}

// ---- pipelining -------------------------------------------------------

#[test]
fn whole_session_pipelined_in_one_feed() {
    let mut c = Client::new(config());
    c.send(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    assert_eq!(
        codes(&c.transcript()),
        [
            &["220"][..],
            &["250"; 10],
            &["250"; 3],
            &["354", "250", "221"]
        ]
        .concat()
    );
    let kinds: Vec<&str> = c
        .events()
        .iter()
        .map(|e| match e {
            Event::Connect => "connect",
            Event::Helo { .. } => "helo",
            Event::MailFrom { .. } => "mail",
            Event::RcptTo { .. } => "rcpt",
            Event::DataStart => "data",
            Event::Message { .. } => "message",
            Event::Quit => "quit",
            Event::Reset => "reset",
            Event::Auth { .. } => "auth",
            Event::StartTls => "starttls",
        })
        .collect();
    assert_eq!(
        kinds,
        ["connect", "helo", "mail", "rcpt", "rcpt", "data", "message", "quit"]
    );
    assert_eq!(c.messages(), vec![b"Subject: s\r\n\r\nbody\r\n".to_vec()]);
    assert!(c.closed());
}

#[test]
fn nothing_runs_while_an_event_is_pending() {
    let mut c = Client::new(config());
    c.manual = true;
    c.send(b"EHLO x\r\nNOOP\r\nNOOP\r\n");
    assert_eq!(
        c.seen.last(),
        Some(&Seen::Event(Event::Helo {
            extended: true,
            name: "x".into()
        }))
    );
    assert!(c.s.poll().is_none());
    c.s.feed(b"NOOP\r\n");
    assert!(c.s.poll().is_none());
    c.s.decide(Decision::Accept(None));
    // Replies of pipelined commands come out together, in order.
    match c.s.poll() {
        Some(Output::Write(w)) => {
            let w = String::from_utf8(w).unwrap();
            assert!(w.starts_with("250-mx.example.org Hello x\r\n"));
            assert!(
                w.ends_with("250 HELP\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"),
                "{w}"
            );
        }
        o => panic!("{o:?}"),
    }
    assert!(c.s.poll().is_none());
}

#[test]
fn decide_without_pending_event_is_ignored() {
    let mut c = ehlo(config());
    c.s.decide(Decision::Accept(None));
    c.s.decide(Decision::Reject(Reply::new(550, "5.0.0", "x")));
    assert!(c.s.poll().is_none());
    assert_eq!(c.send(b"NOOP\r\n"), "250 2.0.0 Ok\r\n");
}

/// A session exercising most paths, for fragmentation comparisons.
const SCRIPT: &[u8] = b"EHLO client\r\n\
NOOP\r\n\
VRFY root\r\n\
MAIL FROM:<a@b.org> SIZE=20\r\n\
RCPT TO:<b@example.org>\r\n\
RCPT TO:<postmaster>\r\n\
DATA\r\n\
line1\r\n\
..dotted\r\n\
\r\n\
.\r\n\
MAIL FROM:<a@b.org>\r\n\
RCPT TO:<c@example.org>\r\n\
BDAT 7\r\n\
chunk1\n\
BDAT 9\r\n\
\r\nchunk\r\n\
BDAT 0 LAST\r\n\
BOGUS\r\n\
bad\nline\r\n\
RSET\r\n\
QUIT\r\n";

#[test]
fn byte_at_a_time_equals_bulk() {
    let mut bulk = Client::new(config());
    bulk.send(SCRIPT);
    for step in [1usize, 2, 3, 5, 7, 13, 64] {
        let mut c = Client::new(config());
        for piece in SCRIPT.chunks(step) {
            c.send(piece);
        }
        assert_eq!(c.transcript(), bulk.transcript(), "step {step}");
        assert_eq!(c.events(), bulk.events(), "step {step}");
    }
    assert!(bulk.closed());
    // "chunk1\n" has a bare LF: the BDAT message is refused at LAST.
    assert!(
        bulk.transcript().contains("521 5.5.2 Bare LF received"),
        "{}",
        bulk.transcript()
    );
    assert!(
        bulk.transcript()
            .contains("550 5.5.2 Message contains bare CR or LF characters\r\n"),
        "{}",
        bulk.transcript()
    );
    assert_eq!(bulk.messages(), vec![b"line1\r\n.dotted\r\n\r\n".to_vec()]);
}

// ---- BDAT -------------------------------------------------------------

#[test]
fn bdat_chunks() {
    let mut c = in_tx();
    assert_eq!(
        c.send(b"BDAT 8\r\nSubject:"),
        "250 2.0.0 8 octets received\r\n"
    );
    assert_eq!(c.s.idle_timeout(), COMMAND_TIMEOUT);
    assert_eq!(c.send(b"BDAT 10 LAST\r\n x\r\n\r\n."), "");
    assert_eq!(c.s.idle_timeout(), DATA_TIMEOUT);
    assert_eq!(
        c.send(b".\r\n"),
        "250 2.0.0 Message accepted for delivery\r\n"
    );
    assert_eq!(c.messages(), vec![b"Subject: x\r\n\r\n..\r\n".to_vec()]);
    assert!(c.events().contains(&Event::DataStart));
    assert!(c.s.transaction().is_none());
}

#[test]
fn bdat_zero_last() {
    let mut c = in_tx();
    assert_eq!(
        c.send(b"BDAT 0 LAST\r\n"),
        "250 2.0.0 Message accepted for delivery\r\n"
    );
    assert_eq!(c.messages(), vec![Vec::<u8>::new()]);
}

#[test]
fn bdat_without_recipient_skips_the_chunk() {
    let mut c = ehlo(config());
    assert_eq!(
        c.send(b"BDAT 17 LAST\r\nMAIL FROM:<x@y>\r\nNOOP\r\n"),
        "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n"
    );
    assert_eq!(c.mail_froms(), 0);
}

#[test]
fn data_and_bdat_cannot_mix() {
    let mut c = in_tx();
    c.send(b"BDAT 3\r\nabc");
    assert_eq!(
        c.send(b"DATA\r\n"),
        "503 5.5.1 Error: DATA and BDAT cannot be mixed\r\n"
    );
}

#[test]
fn bdat_size_cap_keeps_stream_in_sync() {
    let mut c = in_tx();
    let mut input = b"BDAT 600\r\n".to_vec();
    input.extend_from_slice(&[b'a'; 600]);
    input.extend_from_slice(b"BDAT 600 LAST\r\n");
    input.extend_from_slice(&[b'b'; 592]);
    input.extend_from_slice(b"QUIT\r\n\r\n");
    input.extend_from_slice(b"NOOP\r\n");
    assert_eq!(
        c.send(&input),
        "250 2.0.0 600 octets received\r\n552 5.3.4 Message too big\r\n250 2.0.0 Ok\r\n"
    );
    assert!(!c.closed());
    assert!(c.s.transaction().is_none());
    assert!(c.messages().is_empty());
}

#[test]
fn bdat_after_failure_is_skipped() {
    let mut c = in_tx();
    let mut input = b"BDAT 1001\r\n".to_vec();
    input.extend_from_slice(&[b'a'; 1001]);
    input.extend_from_slice(b"BDAT 4 LAST\r\nabcd");
    assert_eq!(
        c.send(&input),
        "552 5.3.4 Message too big\r\n503 5.5.1 Error: need MAIL command\r\n"
    );
}

#[test]
fn bdat_bad_size_closes() {
    let mut c = in_tx();
    assert_eq!(
        c.send(b"BDAT lots\r\nMAIL FROM:<x@y>\r\n"),
        "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
    );
    assert!(c.closed());
}

#[test]
fn bdat_bare_newlines_rejected_at_last() {
    for content in [&b"a\nb\r\n"[..], b"a\rb\r\n", b"a\r", b"x\r\n.\n"] {
        let mut c = in_tx();
        let mut input = format!("BDAT {} LAST\r\n", content.len()).into_bytes();
        input.extend_from_slice(content);
        assert_eq!(
            c.send(&input),
            "550 5.5.2 Message contains bare CR or LF characters\r\n",
            "{content:?}"
        );
        assert!(c.messages().is_empty());
    }
}

#[test]
fn bdat_data_start_rejected_discards_chunk() {
    let mut c = Client::with(
        config(),
        false,
        Box::new(|e| match e {
            Event::DataStart => Decision::Reject(Reply::new(554, "5.7.1", "No")),
            _ => Decision::Accept(None),
        }),
    );
    c.send(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<b@example.org>\r\n");
    assert_eq!(c.send(b"BDAT 6\r\nQUIT\r\n"), "554 5.7.1 No\r\n");
    assert_eq!(
        c.send(b"BDAT 2 LAST\r\nab"),
        "503 5.5.1 Error: need MAIL command\r\n"
    );
    assert!(!c.closed());
}

// ---- STARTTLS ---------------------------------------------------------

#[test]
fn starttls_discards_pipelined_input() {
    let mut c = ehlo(config());
    let r = c.send(b"STARTTLS\r\nMAIL FROM:<evil@x.org>\r\nRCPT TO:<v@example.org>\r\n");
    assert_eq!(r, "220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(c.seen.last(), Some(&Seen::StartTls));
    // Plaintext arriving before the handshake completes is dropped too.
    c.send(b"DATA\r\n");
    c.s.tls_established();
    assert!(c.s.tls_active());
    assert_eq!(c.s.helo(), None);
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\r\n"),
        "503 5.5.1 Error: send HELO/EHLO first\r\n"
    );
    assert_eq!(c.mail_froms(), 0);
    let r = c.send(b"EHLO x\r\n");
    assert!(!r.contains("STARTTLS"), "{r}");
    assert_eq!(c.s.protocol(), "ESMTPS");
    assert_eq!(
        c.send(b"STARTTLS\r\n"),
        "503 5.5.1 Error: TLS already active\r\n"
    );
}

#[test]
fn starttls_pipelined_after_ehlo_in_one_feed() {
    let mut c = Client::new(config());
    c.send(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x.org>\r\nRCPT TO:<v@example.org>\r\nDATA\r\n");
    let n = c.seen.len();
    assert!(
        matches!(&c.seen[n - 2], Seen::Write(w) if w.ends_with("220 2.0.0 Ready to start TLS\r\n"))
    );
    assert_eq!(c.seen[n - 1], Seen::StartTls);
    assert_eq!(c.s.buffered(), 0);
    assert!(c.s.poll().is_none());
    c.s.tls_established();
    assert_eq!(
        c.send(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\n").lines().last(),
        Some("250 2.1.0 Sender ok")
    );
    assert_eq!(c.mail_froms(), 1);
    assert!(matches!(&c.events()[4], Event::MailFrom { sender: Some(a), .. } if a.local == "a"));
}

#[test]
fn session_can_move_between_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Session>();
    assert_send::<Output>();
}

#[test]
fn backpressure_accessors() {
    let mut c = Client::new(config());
    c.manual = true;
    c.send(b"EHLO x\r\nNOOP\r\n");
    assert!(c.s.awaiting_decision());
    assert_eq!(c.s.buffered(), 6);
    c.s.decide(Decision::Accept(None));
    assert!(!c.s.awaiting_decision());
    c.run();
    assert_eq!(c.s.buffered(), 0);
}

#[test]
fn starttls_not_offered_or_out_of_place() {
    let mut c = ehlo(SessionConfig {
        starttls: false,
        ..config()
    });
    assert_eq!(
        c.send(b"STARTTLS\r\n"),
        "502 5.5.1 Error: command not implemented\r\n"
    );
    let mut c = Client::new(config());
    assert_eq!(
        c.send(b"STARTTLS\r\n"),
        "503 5.5.1 Error: send EHLO first\r\n"
    );
    let mut c = in_tx();
    assert_eq!(
        c.send(b"STARTTLS\r\n"),
        "503 5.5.1 Error: STARTTLS not allowed during a mail transaction\r\n"
    );
    let mut c = ehlo(config());
    assert_eq!(
        c.send(b"STARTTLS now\r\n"),
        "501 5.5.4 Syntax: STARTTLS\r\n"
    );
    // tls_established() out of place does nothing.
    c.s.tls_established();
    assert!(!c.s.tls_active());
}

// ---- simple commands --------------------------------------------------

#[test]
fn simple_commands() {
    let mut c = ehlo(config());
    assert_eq!(c.send(b"noop\r\n"), "250 2.0.0 Ok\r\n");
    assert_eq!(
        c.send(b"VRFY root\r\n"),
        "502 5.5.1 VRFY command is disabled\r\n"
    );
    assert_eq!(
        c.send(b"EXPN staff\r\n"),
        "502 5.5.1 EXPN command is disabled\r\n"
    );
    assert!(c
        .send(b"HELP\r\n")
        .starts_with("214-2.0.0 This is wasmtpd\r\n"));
    assert_eq!(
        c.send(b"AUTH PLAIN AGFAYg==\r\n"),
        "502 5.5.1 AUTH not available\r\n"
    );
    assert_eq!(c.send(b"AUTH\r\n"), "502 5.5.1 AUTH not available\r\n");
}

#[test]
fn rset_clears_the_transaction() {
    let mut c = in_tx();
    assert_eq!(c.send(b"RSET\r\n"), "250 2.0.0 Reset state\r\n");
    assert_eq!(c.events().last(), Some(&Event::Reset));
    assert!(c.s.transaction().is_none());
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org>\r\n"),
        "250 2.1.0 Sender ok\r\n"
    );
}

#[test]
fn quit_closes_for_good() {
    let mut c = ehlo(config());
    assert_eq!(c.send(b"QUIT\r\nNOOP\r\n"), "221 2.0.0 Bye\r\n");
    assert!(c.closed());
    assert_eq!(c.events().last(), Some(&Event::Quit));
    assert!(c.s.poll().is_none());
    c.s.feed(b"NOOP\r\n");
    c.s.timed_out();
    assert!(c.s.poll().is_none());
}

#[test]
fn web_requests_are_hung_up_on() {
    let mut c = Client::new(config());
    assert_eq!(
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n"),
        "421 4.7.0 Non-SMTP command, closing connection\r\n"
    );
    assert!(c.closed());
}

// ---- limits and timeouts ----------------------------------------------

#[test]
fn too_many_commands() {
    let mut c = ehlo(SessionConfig {
        max_commands: 3,
        ..config()
    });
    assert_eq!(
        c.send(b"NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n"),
        "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n421 4.7.0 Too many commands\r\n"
    );
    assert!(c.closed());
}

#[test]
fn too_many_errors() {
    let mut c = ehlo(SessionConfig {
        max_errors: 3,
        ..config()
    });
    let r = c.send(b"FOO\r\nRCPT TO:<a@b.org>\r\nBAR\r\nNOOP\r\n");
    assert_eq!(
        r,
        "500 5.5.1 Command unrecognized\r\n503 5.5.1 Error: need MAIL command\r\n\
         500 5.5.1 Command unrecognized\r\n421 4.7.0 Too many errors\r\n"
    );
    assert!(c.closed());
}

#[test]
fn timeout() {
    let mut c = ehlo(config());
    assert_eq!(c.s.idle_timeout(), COMMAND_TIMEOUT);
    c.s.timed_out();
    c.run();
    assert_eq!(
        c.transcript().rsplit("\r\n").nth(1),
        Some("421 4.4.2 mx.example.org Error: timeout exceeded")
    );
    assert!(c.closed());
}

#[test]
fn timeout_while_event_pending() {
    let mut c = Client::new(config());
    c.manual = true;
    c.send(b"EHLO x\r\n");
    c.s.timed_out();
    c.s.decide(Decision::Accept(None));
    c.run();
    assert!(c
        .transcript()
        .ends_with("421 4.4.2 mx.example.org Error: timeout exceeded\r\n"));
    assert!(c.closed());
}

#[test]
fn large_message_in_big_fragments() {
    let cfg = SessionConfig {
        max_message_size: 0,
        ..config()
    };
    let mut c = ehlo(cfg);
    c.send(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    let mut body = Vec::new();
    let line = [b'y'; 76];
    while body.len() < 8 * 1024 * 1024 {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    let expected = body.clone();
    body.extend_from_slice(b".\r\n");
    for piece in body.chunks(65536) {
        c.s.feed(piece);
        c.run();
    }
    assert_eq!(c.messages(), vec![expected]);
}

#[path = "session_auth_tests.rs"]
mod auth;
