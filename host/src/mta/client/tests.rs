//! Sessions against scripted servers: server bytes in, the exact client
//! bytes and events out.

use std::sync::Arc;

use super::*;
use crate::mailaddr::MailAddr;

const EHLO_FULL: &str = "250-mx.test Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n\
250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n";
const EHLO_PLAIN: &str = "250-mx.test Hello\r\n250 ENHANCEDSTATUSCODES\r\n";

fn cfg() -> ClientConfig {
    ClientConfig::new("relay.example")
}

fn out(c: &mut Client) -> String {
    let mut s = String::new();
    while let Some(b) = c.poll_transmit() {
        s.push_str(&String::from_utf8(b).unwrap());
    }
    s
}

fn events(c: &mut Client) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn feed(c: &mut Client, s: &str) {
    c.receive(s.as_bytes());
}

fn addr(s: &str) -> MailAddr {
    MailAddr::parse(s).unwrap()
}

fn tx(rcpts: &[&str], content: &[u8]) -> Transaction {
    Transaction {
        sender: Some(addr("alice@example.org")),
        rcpts: rcpts.iter().map(|r| Recipient::new(addr(r))).collect(),
        ret: None,
        envid: None,
        content: Arc::new(content.to_vec()),
    }
}

/// A client past greeting and EHLO with `ehlo` as the server's reply.
fn ready(config: ClientConfig, ehlo: &str) -> Client {
    let mut c = Client::new(config).unwrap();
    feed(&mut c, "220 mx.test ESMTP\r\n");
    let verb = out(&mut c);
    assert!(verb == "EHLO relay.example\r\n" || verb == "LHLO relay.example\r\n");
    feed(&mut c, ehlo);
    assert_eq!(out(&mut c), "");
    assert_eq!(events(&mut c), [Event::Ready]);
    c
}

fn done(c: &mut Client) -> Vec<String> {
    let ev = events(c);
    match ev.as_slice() {
        [Event::Done(r)] => r.rcpts.iter().map(|r| r.reply.to_string()).collect(),
        other => panic!("expected one Done, got {other:?}"),
    }
}

fn failed(c: &mut Client) -> SessionFailure {
    let ev = events(c);
    match ev.last() {
        Some(Event::Failed(f)) => f.clone(),
        other => panic!("expected Failed, got {other:?} in {ev:?}"),
    }
}

#[test]
fn greeting_then_ehlo_and_extensions_even_byte_by_byte() {
    let mut c = Client::new(cfg()).unwrap();
    assert_eq!(out(&mut c), "", "nothing before the greeting");
    let server = format!("220-mx.test ESMTP\r\n220 welcome\r\n{EHLO_FULL}");
    let (greeting, ehlo) = server.split_at(server.find("250").unwrap());
    for b in greeting.bytes() {
        c.receive(&[b]);
    }
    assert_eq!(out(&mut c), "EHLO relay.example\r\n");
    for b in ehlo.bytes() {
        c.receive(&[b]);
    }
    assert_eq!(events(&mut c), [Event::Ready]);
    let e = c.server_extensions();
    assert!(e.pipelining && e.eightbitmime && e.smtputf8 && e.dsn && e.enhancedstatuscodes);
    assert_eq!(e.size, Some(1000));
    assert!(!e.starttls);
}

#[test]
fn lmtp_says_lhlo() {
    let mut c = Client::new(ClientConfig {
        lmtp: true,
        ..cfg()
    })
    .unwrap();
    feed(&mut c, "220 lmtp\r\n");
    assert_eq!(out(&mut c), "LHLO relay.example\r\n");
}

#[test]
fn refused_greetings_fail_by_class() {
    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "554 5.7.1 go away\r\n");
    assert_eq!(out(&mut c), "QUIT\r\n");
    let f = failed(&mut c);
    assert!(f.permanent);
    assert_eq!(f.stage, Stage::Greeting);
    assert_eq!(f.reason.to_string(), "554 5.7.1 go away");
    assert!(c.is_closed());

    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "450 busy\r\n");
    assert_eq!(out(&mut c), "QUIT\r\n");
    assert!(!failed(&mut c).permanent);

    // 421: the server is already closing; no QUIT.
    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "421 4.3.2 shutting down\r\n");
    assert_eq!(out(&mut c), "");
    assert!(!failed(&mut c).permanent);
}

#[test]
fn garbage_is_a_temporary_protocol_error() {
    let long = format!("220 {}\r\n", "x".repeat(5000));
    let many = format!("{}220 end\r\n", "220-x\r\n".repeat(1000));
    let big = format!(
        "{}220 end\r\n",
        format!("220-{}\r\n", "y".repeat(4000)).repeat(20)
    );
    for bad in [
        "SSH-2.0-OpenSSH_9.6\r\n",
        "220-mx.test\r\n250 mixed\r\n",
        long.as_str(),
        many.as_str(),
        big.as_str(),
    ] {
        let mut c = Client::new(cfg()).unwrap();
        feed(&mut c, bad);
        assert_eq!(out(&mut c), "", "no QUIT on a stream out of step");
        let f = failed(&mut c);
        assert!(!f.permanent);
        assert!(f.reason.to_string().starts_with("protocol error"), "{f}");
        // Further input is ignored.
        feed(&mut c, "220 ok\r\n");
        assert_eq!(out(&mut c), "");
        assert!(events(&mut c).is_empty());
    }
}

#[test]
fn refused_ehlo_falls_back_to_helo_without_extensions() {
    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "220 old\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\n");
    feed(&mut c, "502 5.5.2 what?\r\n");
    assert_eq!(out(&mut c), "HELO relay.example\r\n");
    feed(&mut c, "250 old\r\n");
    assert_eq!(events(&mut c), [Event::Ready]);
    assert_eq!(c.server_extensions(), &Extensions::default());

    // No pipelining and no parameters without ESMTP.
    c.send(tx(&["bob@example.net"], b"Hi\r\n")).unwrap();
    assert_eq!(out(&mut c), "MAIL FROM:<alice@example.org>\r\n");

    // A refused HELO too is the end.
    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "220 old\r\n502 no\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\nHELO relay.example\r\n");
    feed(&mut c, "550 really no\r\n");
    assert_eq!(out(&mut c), "QUIT\r\n");
    assert!(failed(&mut c).permanent);
}

#[test]
fn lmtp_has_no_helo_fallback_and_ehlo_4xx_fails() {
    let mut c = Client::new(ClientConfig {
        lmtp: true,
        ..cfg()
    })
    .unwrap();
    feed(&mut c, "220 lmtp\r\n500 no\r\n");
    assert_eq!(out(&mut c), "LHLO relay.example\r\nQUIT\r\n");
    let f = failed(&mut c);
    assert!(f.permanent);
    assert_eq!(f.stage, Stage::Hello);

    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "220 mx\r\n451 later\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\nQUIT\r\n");
    assert!(!failed(&mut c).permanent);
}

#[test]
fn opportunistic_starttls_then_ehlo_again_with_fresh_extensions() {
    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "220 mx\r\n");
    out(&mut c);
    feed(&mut c, "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
    assert_eq!(out(&mut c), "STARTTLS\r\n");
    assert!(events(&mut c).is_empty());
    feed(&mut c, "220 2.0.0 go ahead\r\n");
    assert_eq!(events(&mut c), [Event::StartTls]);
    assert_eq!(c.stage(), Stage::TlsHandshake);
    c.tls_established();
    assert!(c.tls_active());
    assert_eq!(c.server_extensions(), &Extensions::default());
    assert_eq!(out(&mut c), "EHLO relay.example\r\n");
    feed(&mut c, "250-mx\r\n250 SIZE 5\r\n");
    assert_eq!(events(&mut c), [Event::Ready]);
    assert!(
        !c.server_extensions().pipelining,
        "pre-TLS extensions forgotten"
    );
    assert_eq!(c.server_extensions().size, Some(5));
    assert_eq!(out(&mut c), "", "no second STARTTLS");
}

#[test]
fn plain_text_pipelined_behind_starttls_reply_is_refused() {
    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    out(&mut c);
    feed(&mut c, "220 go ahead\r\n250-injected\r\n");
    let ev = events(&mut c);
    assert!(!ev.contains(&Event::StartTls));
    assert!(matches!(ev.last(), Some(Event::Failed(_))));
}

#[test]
fn starttls_policies() {
    // Refused with Opportunistic: on in plain text.
    let mut c = Client::new(cfg()).unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\nSTARTTLS\r\n");
    feed(&mut c, "454 4.7.0 TLS not available\r\n");
    assert_eq!(events(&mut c), [Event::Ready]);
    assert!(!c.tls_active());

    // Refused with Required.
    let required = ClientConfig {
        tls: TlsPolicy::Required,
        ..cfg()
    };
    let mut c = Client::new(required.clone()).unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    out(&mut c);
    feed(&mut c, "454 4.7.0 TLS not available\r\n");
    assert_eq!(out(&mut c), "QUIT\r\n");
    let f = failed(&mut c);
    assert!(!f.permanent);
    assert!(f.reason.to_string().starts_with("TLS required"), "{f}");

    // Not offered with Required.
    let mut c = Client::new(required.clone()).unwrap();
    feed(&mut c, "220 mx\r\n250 mx\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\nQUIT\r\n");
    assert_eq!(
        failed(&mut c).reason,
        FailureReason::Local("TLS required but not offered by the server".into())
    );

    // Never: no STARTTLS even when offered.
    let mut c = Client::new(ClientConfig {
        tls: TlsPolicy::Never,
        ..cfg()
    })
    .unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\n");
    assert_eq!(events(&mut c), [Event::Ready]);

    // Already TLS (smtps): Required is met, no STARTTLS.
    let mut c = Client::new(ClientConfig {
        tls_active: true,
        ..required
    })
    .unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\n");
    assert_eq!(events(&mut c), [Event::Ready]);
}

fn with_auth() -> ClientConfig {
    ClientConfig {
        tls_active: true,
        auth: Some(Credentials::new("user", "pass")),
        ..cfg()
    }
}

#[test]
fn auth_plain_preferred() {
    let mut c = Client::new(with_auth()).unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 AUTH LOGIN PLAIN\r\n");
    assert_eq!(
        out(&mut c),
        "EHLO relay.example\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n"
    );
    assert!(events(&mut c).is_empty());
    feed(&mut c, "235 2.7.0 ok\r\n");
    assert_eq!(events(&mut c), [Event::Ready]);
}

#[test]
fn auth_login_answers_challenges() {
    let mut c = Client::new(with_auth()).unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 AUTH=LOGIN\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\nAUTH LOGIN\r\n");
    feed(&mut c, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(out(&mut c), "dXNlcg==\r\n");
    feed(&mut c, "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(out(&mut c), "cGFzcw==\r\n");
    feed(&mut c, "235 ok\r\n");
    assert_eq!(events(&mut c), [Event::Ready]);
}

#[test]
fn auth_after_starttls() {
    let mut c = Client::new(ClientConfig {
        tls_active: false,
        ..with_auth()
    })
    .unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\nSTARTTLS\r\n");
    assert_eq!(events(&mut c), [Event::StartTls]);
    c.tls_established();
    feed(&mut c, "250-mx\r\n250 AUTH PLAIN\r\n");
    assert_eq!(
        out(&mut c),
        "EHLO relay.example\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n"
    );
}

#[test]
fn auth_failures_are_temporary() {
    // Without TLS: never send the password.
    let mut c = Client::new(ClientConfig {
        tls_active: false,
        ..with_auth()
    })
    .unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 AUTH PLAIN\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\nQUIT\r\n");
    let f = failed(&mut c);
    assert_eq!(
        f.reason,
        FailureReason::Local("authentication requires TLS".into())
    );
    assert!(!f.permanent);

    // Refused credentials.
    let mut c = Client::new(with_auth()).unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 AUTH PLAIN\r\n");
    out(&mut c);
    feed(&mut c, "535 5.7.8 bad credentials\r\n");
    assert_eq!(out(&mut c), "QUIT\r\n");
    let f = failed(&mut c);
    assert!(!f.permanent);
    assert_eq!(f.stage, Stage::Auth);
    assert_eq!(f.reason.to_string(), "535 5.7.8 bad credentials");

    // No usable mechanism.
    let mut c = Client::new(with_auth()).unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 AUTH CRAM-MD5\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\nQUIT\r\n");
    assert!(!failed(&mut c).permanent);
}

#[test]
fn password_never_in_debug_output() {
    let mut c = Client::new(with_auth()).unwrap();
    feed(&mut c, "220 mx\r\n250-mx\r\n250 AUTH PLAIN\r\n");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("AHVzZXIAcGFzcw"), "{dbg}");
    let dbg = format!("{c:?} {:?}", with_auth());
    assert!(dbg.contains("user") && !dbg.contains("pass\""), "{dbg}");
    assert!(!dbg.contains("\"pass"));
}

#[test]
fn one_command_at_a_time_without_pipelining() {
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.send(tx(
        &["bob@example.net", "nobody@example.net"],
        b"Subject: hi\r\n\r\nHi\r\n",
    ))
    .unwrap();
    assert_eq!(out(&mut c), "MAIL FROM:<alice@example.org>\r\n");
    feed(&mut c, "250 2.1.0 Ok\r\n");
    assert_eq!(out(&mut c), "RCPT TO:<bob@example.net>\r\n");
    feed(&mut c, "250 2.1.5 Ok\r\n");
    assert_eq!(out(&mut c), "RCPT TO:<nobody@example.net>\r\n");
    feed(&mut c, "550 5.1.1 User unknown\r\n");
    assert_eq!(out(&mut c), "DATA\r\n");
    feed(&mut c, "354 go\r\n");
    assert_eq!(out(&mut c), "Subject: hi\r\n\r\nHi\r\n.\r\n");
    assert_eq!(c.stage(), Stage::Content);
    feed(&mut c, "250 2.0.0 queued as X\r\n");
    assert_eq!(
        done(&mut c),
        ["250 2.0.0 queued as X", "550 5.1.1 User unknown"]
    );

    // Connection reuse: the next transaction on the same session.
    assert!(c.is_idle());
    c.send(tx(&["carol@example.net"], b"x\r\n")).unwrap();
    assert_eq!(out(&mut c), "MAIL FROM:<alice@example.org>\r\n");
}

#[test]
fn pipelined_transaction_in_one_write() {
    let mut c = ready(cfg(), EHLO_FULL);
    c.send(tx(&["a@x.net", "b@x.net", "c@x.net"], b"Hi\r\n"))
        .unwrap();
    assert_eq!(
        c.poll_transmit().unwrap(),
        b"MAIL FROM:<alice@example.org> SIZE=4\r\nRCPT TO:<a@x.net>\r\n\
RCPT TO:<b@x.net>\r\nRCPT TO:<c@x.net>\r\nDATA\r\n"
    );
    assert_eq!(c.poll_transmit(), None);
    feed(
        &mut c,
        "250 2.1.0 ok\r\n250 2.1.5 ok\r\n450 4.2.0 greylisted\r\n250 ok\r\n354 go\r\n",
    );
    assert_eq!(out(&mut c), "Hi\r\n.\r\n");
    feed(&mut c, "250 2.0.0 sent\r\n");
    assert_eq!(
        done(&mut c),
        ["250 2.0.0 sent", "450 4.2.0 greylisted", "250 2.0.0 sent"]
    );
    assert!(c.is_idle());
}

#[test]
fn mail_parameters_follow_the_extensions() {
    let mut t = tx(&["bøb@exämple.net"], "Grüße\r\n".as_bytes());
    t.ret = Some("HDRS".into());
    t.envid = Some("QQ314159".into());
    t.rcpts[0].notify = Some("FAILURE,DELAY".into());
    t.rcpts[0].orcpt = Some("rfc822;b+F8b@x".into());
    let mut c = ready(cfg(), EHLO_FULL);
    c.send(t.clone()).unwrap();
    assert_eq!(
        out(&mut c),
        "MAIL FROM:<alice@example.org> SIZE=9 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159\r\n\
RCPT TO:<bøb@exämple.net> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b+F8b@x\r\nDATA\r\n"
    );

    // Without DSN or 8BITMIME: no such parameters, 8-bit content sent anyway.
    let mut c = ready(cfg(), "250-mx\r\n250 SMTPUTF8\r\n");
    c.send(t).unwrap();
    assert_eq!(out(&mut c), "MAIL FROM:<alice@example.org> SMTPUTF8\r\n");
    feed(&mut c, "250 ok\r\n");
    assert_eq!(out(&mut c), "RCPT TO:<bøb@exämple.net>\r\n");
    feed(&mut c, "250 ok\r\n354 go\r\n");
    assert_eq!(out(&mut c), "DATA\r\nGrüße\r\n.\r\n");

    // The null sender.
    let mut c = ready(cfg(), EHLO_PLAIN);
    let mut bounce = tx(&["a@x.net"], b"x\r\n");
    bounce.sender = None;
    c.send(bounce).unwrap();
    assert_eq!(out(&mut c), "MAIL FROM:<>\r\n");
}

#[test]
fn prechecks_refuse_without_sending() {
    let mut c = ready(cfg(), EHLO_FULL);
    c.send(tx(&["a@x.net", "b@x.net"], &[b'x'; 1001])).unwrap();
    assert_eq!(out(&mut c), "");
    let ev = events(&mut c);
    let [Event::Done(r)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(r.rcpts.len(), 2);
    assert!(r.rcpts.iter().all(|r| r.reply.code == 552
        && r.reply.enhanced == Some(EnhancedCode::new(5, 3, 4))
        && r.stage == Stage::Precheck
        && r.reply.is_permanent()));
    assert!(c.is_idle());

    let mut c = ready(cfg(), EHLO_PLAIN);
    let mut t = tx(&["a@x.net"], b"x\r\n");
    t.sender = Some(addr("jösé@example.org"));
    c.send(t).unwrap();
    assert_eq!(out(&mut c), "");
    let replies = done(&mut c);
    assert!(replies[0].starts_with("553 5.6.7 "), "{replies:?}");
    assert!(c.is_idle());
}

#[test]
fn refused_mail_from_settles_every_recipient_then_rset() {
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.send(tx(&["a@x.net", "b@x.net"], b"x\r\n")).unwrap();
    out(&mut c);
    feed(&mut c, "550 5.7.1 sender rejected\r\n");
    assert_eq!(out(&mut c), "RSET\r\n");
    assert_eq!(
        done(&mut c),
        ["550 5.7.1 sender rejected", "550 5.7.1 sender rejected"]
    );
    // The next transaction may be handed over before the RSET reply.
    c.send(tx(&["c@x.net"], b"x\r\n")).unwrap();
    assert_eq!(out(&mut c), "");
    feed(&mut c, "250 ok\r\n");
    assert_eq!(out(&mut c), "MAIL FROM:<alice@example.org>\r\n");

    // Pipelined: the RCPT and DATA replies after a refused MAIL mean nothing.
    let mut c = ready(cfg(), EHLO_FULL);
    c.send(tx(&["a@x.net"], b"x\r\n")).unwrap();
    out(&mut c);
    feed(
        &mut c,
        "451 4.3.0 try later\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no\r\n",
    );
    assert_eq!(out(&mut c), "RSET\r\n");
    assert_eq!(done(&mut c), ["451 4.3.0 try later"]);
}

#[test]
fn no_recipient_accepted() {
    // Pipelined DATA got 354 anyway: an empty message, its reply ignored.
    let mut c = ready(cfg(), EHLO_FULL);
    c.send(tx(&["a@x.net", "b@x.net"], b"x\r\n")).unwrap();
    out(&mut c);
    feed(
        &mut c,
        "250 ok\r\n550 5.1.1 no a\r\n551 5.1.6 no b\r\n354 go\r\n",
    );
    assert_eq!(out(&mut c), ".\r\n");
    assert!(events(&mut c).is_empty());
    feed(&mut c, "554 5.5.1 no valid recipients\r\n");
    assert_eq!(out(&mut c), "RSET\r\n");
    assert_eq!(done(&mut c), ["550 5.1.1 no a", "551 5.1.6 no b"]);
    feed(&mut c, "250 ok\r\n");
    assert!(c.is_idle());
    assert!(events(&mut c).is_empty(), "Ready is not repeated");

    // Without pipelining DATA is never sent.
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.send(tx(&["a@x.net"], b"x\r\n")).unwrap();
    feed(&mut c, "250 ok\r\n550 no\r\n");
    assert_eq!(
        out(&mut c),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<a@x.net>\r\nRSET\r\n"
    );
    assert_eq!(done(&mut c), ["550 no"]);
}

#[test]
fn refused_data_settles_accepted_recipients() {
    let mut c = ready(cfg(), EHLO_FULL);
    c.send(tx(&["a@x.net", "b@x.net"], b"x\r\n")).unwrap();
    out(&mut c);
    feed(&mut c, "250 ok\r\n250 ok\r\n550 5.1.1 no b\r\n");
    assert_eq!(out(&mut c), "");
    feed(&mut c, "451 4.3.0 no DATA now\r\n");
    assert_eq!(out(&mut c), "RSET\r\n");
    let ev = events(&mut c);
    let [Event::Done(r)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(r.rcpts[0].reply.to_string(), "451 4.3.0 no DATA now");
    assert_eq!(r.rcpts[0].stage, Stage::Data);
    assert_eq!(r.rcpts[1].reply.to_string(), "550 5.1.1 no b");
    assert_eq!(r.rcpts[1].stage, Stage::Rcpt);
}

#[test]
fn content_is_dot_stuffed_and_terminated() {
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.send(tx(&["a@x.net"], b".hidden\r\nmid\n.\nlast"))
        .unwrap();
    feed(&mut c, "250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(
        out(&mut c),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<a@x.net>\r\nDATA\r\n\
..hidden\r\nmid\r\n..\r\nlast\r\n.\r\n"
    );
}

#[test]
fn lmtp_gives_one_final_reply_per_accepted_recipient() {
    let lmtp = ClientConfig {
        lmtp: true,
        ..cfg()
    };
    let mut c = ready(
        lmtp,
        "250-lmtp\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
    );
    c.send(tx(&["a@x.net", "b@x.net", "c@x.net"], b"x\r\n"))
        .unwrap();
    out(&mut c);
    feed(
        &mut c,
        "250 ok\r\n250 ok\r\n550 5.1.1 no b\r\n250 ok\r\n354 go\r\n",
    );
    assert_eq!(out(&mut c), "x\r\n.\r\n");
    feed(&mut c, "250 2.0.0 a saved\r\n");
    assert!(
        events(&mut c).is_empty(),
        "one reply per accepted recipient"
    );
    feed(&mut c, "452 4.2.2 c over quota\r\n");
    assert_eq!(
        done(&mut c),
        [
            "250 2.0.0 a saved",
            "550 5.1.1 no b",
            "452 4.2.2 c over quota"
        ]
    );
    assert!(c.is_idle());
}

#[test]
fn quit_then_closed() {
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.quit();
    assert_eq!(out(&mut c), "QUIT\r\n");
    assert_eq!(c.send(tx(&["a@x.net"], b"")), Err(ClientError::Closed));
    feed(&mut c, "221 2.0.0 bye\r\n");
    assert_eq!(events(&mut c), [Event::Closed]);
    assert!(c.is_closed());

    // quit() during a transaction waits for its end.
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.send(tx(&["a@x.net"], b"x\r\n")).unwrap();
    out(&mut c);
    c.quit();
    feed(&mut c, "250 ok\r\n250 ok\r\n354 go\r\n250 sent\r\n");
    assert_eq!(
        out(&mut c),
        "RCPT TO:<a@x.net>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"
    );
    assert_eq!(done(&mut c), ["250 sent"]);
    // The connection closing instead of a QUIT reply is just as good.
    c.abort("connection closed");
    assert_eq!(events(&mut c), [Event::Closed]);
}

#[test]
fn quit_before_ready_skips_the_rest_of_the_setup() {
    let mut c = Client::new(with_auth()).unwrap();
    feed(&mut c, "220 mx\r\n");
    assert_eq!(out(&mut c), "EHLO relay.example\r\n");
    c.quit();
    feed(&mut c, "250-mx\r\n250 AUTH PLAIN\r\n");
    assert_eq!(out(&mut c), "QUIT\r\n", "no AUTH on the way out");
    assert!(events(&mut c).is_empty(), "no Ready");
    feed(&mut c, "221 bye\r\n");
    assert_eq!(events(&mut c), [Event::Closed]);
}

#[test]
fn a_421_mid_transaction_settles_the_rest_temporarily() {
    let mut c = ready(cfg(), EHLO_FULL);
    c.send(tx(&["a@x.net", "b@x.net", "c@x.net"], b"x\r\n"))
        .unwrap();
    out(&mut c);
    feed(
        &mut c,
        "250 ok\r\n550 5.1.1 no a\r\n421 4.3.2 shutting down\r\n",
    );
    assert_eq!(out(&mut c), "", "no QUIT after 421");
    let ev = events(&mut c);
    let [Event::Done(r), Event::Failed(f)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let texts: Vec<String> = r.rcpts.iter().map(|r| r.reply.to_string()).collect();
    assert_eq!(
        texts,
        [
            "550 5.1.1 no a",
            "421 4.3.2 shutting down",
            "421 4.3.2 shutting down"
        ]
    );
    assert!(!f.permanent);
    assert_eq!(f.stage, Stage::Rcpt);
    assert!(c.is_closed());
    assert_eq!(c.send(tx(&["a@x.net"], b"")), Err(ClientError::Closed));
}

#[test]
fn abort_mid_transaction_settles_it_and_fails() {
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.send(tx(&["a@x.net"], b"x\r\n")).unwrap();
    feed(&mut c, "250 ok\r\n250 ok\r\n354 go\r\n");
    out(&mut c);
    c.abort("timeout waiting for the final reply");
    let ev = events(&mut c);
    let [Event::Done(r), Event::Failed(f)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(r.rcpts[0].reply.code, 421);
    assert_eq!(r.rcpts[0].stage, Stage::Content);
    assert!(!r.rcpts[0].reply.is_permanent());
    assert_eq!(
        f.reason,
        FailureReason::Local("timeout waiting for the final reply".into())
    );
}

#[test]
fn misuse_is_refused() {
    let mut c = Client::new(cfg()).unwrap();
    assert_eq!(
        c.send(tx(&["a@x.net"], b"")),
        Err(ClientError::Busy(Stage::Greeting))
    );
    let mut c = ready(cfg(), EHLO_PLAIN);
    assert_eq!(c.send(tx(&[], b"")), Err(ClientError::NoRecipients));
    let mut t = tx(&["a@x.net"], b"");
    t.rcpts[0].notify = Some("NEVER\r\nRCPT TO:<evil@x>".into());
    assert_eq!(c.send(t), Err(ClientError::BadParameter("NOTIFY")));
    let mut t = tx(&["a@x.net"], b"");
    t.rcpts[0].addr.domain = "x\r\nDATA".into();
    assert_eq!(c.send(t), Err(ClientError::BadParameter("recipient")));
    c.send(tx(&["a@x.net"], b"")).unwrap();
    assert_eq!(
        c.send(tx(&["a@x.net"], b"")),
        Err(ClientError::Busy(Stage::Mail))
    );
    assert!(Client::new(ClientConfig::new("bad name")).is_err());
    assert!(Client::new(ClientConfig::new("a\r\nQUIT")).is_err());
}

#[test]
fn unexpected_replies_are_protocol_errors() {
    // A reply nobody asked for.
    let mut c = ready(cfg(), EHLO_PLAIN);
    feed(&mut c, "250 surprise\r\n");
    assert!(failed(&mut c).reason.to_string().contains("unexpected"));

    // 250 to DATA would pass for a delivery: refuse it.
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.send(tx(&["a@x.net"], b"x\r\n")).unwrap();
    feed(&mut c, "250 ok\r\n250 ok\r\n250 ok\r\n");
    let ev = events(&mut c);
    let [Event::Done(r), Event::Failed(_)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert!(r.rcpts[0].reply.is_transient());
}

#[test]
fn refused_rset_ends_the_session_and_settles_the_queued_transaction() {
    let mut c = ready(cfg(), EHLO_PLAIN);
    c.send(tx(&["a@x.net"], b"x\r\n")).unwrap();
    feed(&mut c, "550 no sender\r\n");
    assert_eq!(done(&mut c), ["550 no sender"]);
    c.send(tx(&["b@x.net"], b"x\r\n")).unwrap();
    assert_eq!(
        c.send(tx(&["c@x.net"], b"x\r\n")),
        Err(ClientError::Busy(Stage::Rset))
    );
    feed(&mut c, "500 what RSET\r\n");
    assert_eq!(
        out(&mut c),
        "MAIL FROM:<alice@example.org>\r\nRSET\r\nQUIT\r\n"
    );
    let ev = events(&mut c);
    let [Event::Done(r), Event::Failed(f)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert!(r.rcpts[0].reply.is_transient(), "nothing was sent for it");
    assert_eq!(f.stage, Stage::Rset);
    assert!(!f.permanent);
}

/// Random server bytes at every stage (CVE-2020-8794 was an
/// out-of-bounds read in OpenSMTPD's client reply parser): the client
/// never panics, never buffers more than a reply's limit, and every
/// transaction it accepted ends in exactly one `Done` with one reply per
/// recipient.
#[test]
fn random_server_bytes_never_break_the_client() {
    // xorshift64*: deterministic, so a failure can be replayed.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    const ALPHABET: &[u8] = b"0123456789 -.\r\n\r\n250354221421550ABCDEFGHIJ\x00\xff";
    for round in 0..2000 {
        let mut c = if round % 2 == 0 {
            Client::new(cfg()).unwrap()
        } else {
            ready(cfg(), EHLO_FULL)
        };
        let mut sent = 0;
        let mut done_events = 0;
        for step in 0..40 {
            if step % 7 == 3
                && c.is_idle()
                && c.send(tx(&["a@x.org", "b@x.org"], b"hi\r\n")).is_ok()
            {
                sent += 1;
            }
            let len = (next() % 64) as usize;
            let chunk: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 5 == 0 {
                        (r >> 8) as u8
                    } else {
                        ALPHABET[(r >> 16) as usize % ALPHABET.len()]
                    }
                })
                .collect();
            c.receive(&chunk);
            while let Some(bytes) = c.poll_transmit() {
                assert!(bytes.len() <= 1 << 20);
            }
            while let Some(ev) = c.poll_event() {
                if let Event::Done(result) = ev {
                    assert_eq!(result.rcpts.len(), 2, "round {round}");
                    done_events += 1;
                }
            }
        }
        c.abort("end of test");
        while let Some(ev) = c.poll_event() {
            if let Event::Done(result) = ev {
                assert_eq!(result.rcpts.len(), 2, "round {round}");
                done_events += 1;
            }
        }
        assert_eq!(
            done_events, sent,
            "round {round}: every transaction ends once"
        );
    }
}
