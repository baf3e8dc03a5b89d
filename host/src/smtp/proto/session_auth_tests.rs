//! AUTH (RFC 4954) as a client sees it: when it is offered, the PLAIN
//! and LOGIN exchanges, the decision replies and the failure limit.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::*;

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn auth_config() -> SessionConfig {
    SessionConfig {
        auth: true,
        ..config()
    }
}

/// Accepts joe/s3cret only, as the daemon's credentials check would.
fn check_joe() -> Policy {
    Box::new(|e| match e {
        Event::Auth { user, password, .. } if user == "joe" && password.expose() == "s3cret" => {
            Decision::Accept(None)
        }
        Event::Auth { .. } => Decision::Reject(Reply::new(535, "5.7.8", "Authentication failed")),
        _ => Decision::Accept(None),
    })
}

/// A session after EHLO, over TLS when `tls`.
fn authc(cfg: SessionConfig, tls: bool) -> Client {
    let mut c = Client::with(cfg, tls, check_joe());
    c.send(b"EHLO client.example.net\r\n");
    c
}

fn auths(c: &Client) -> Vec<(Mechanism, String, String)> {
    c.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Auth {
                mechanism,
                user,
                password,
            } => Some((mechanism, user, password.expose().to_string())),
            _ => None,
        })
        .collect()
}

const OK: &str = "235 2.7.0 Authentication succeeded\r\n";
const FAILED: &str = "535 5.7.8 Authentication failed\r\n";
const NEED_TLS: &str = "538 5.7.11 Encryption required for requested authentication mechanism\r\n";

#[test]
fn not_advertised_in_clear_and_forced_auth_gets_538() {
    let mut c = Client::with(auth_config(), false, check_joe());
    let r = c.send(b"EHLO x\r\n");
    assert!(!r.contains("AUTH"), "{r}");
    assert!(r.contains("STARTTLS"), "{r}");
    let plain = format!("AUTH PLAIN {}\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(plain.as_bytes()), NEED_TLS);
    assert_eq!(c.send(b"AUTH LOGIN\r\n"), NEED_TLS);
    assert!(auths(&c).is_empty(), "credentials never reach the policy");
    // The AUTH= MAIL parameter is refused while AUTH is not offered.
    assert_eq!(
        c.send(b"MAIL FROM:<a@b.org> AUTH=<>\r\n"),
        "555 5.5.4 Unsupported parameter AUTH\r\n"
    );
}

#[test]
fn advertised_after_starttls() {
    let mut c = Client::with(auth_config(), false, check_joe());
    c.send(b"EHLO x\r\n");
    assert_eq!(c.send(b"STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
    c.s.tls_established();
    let r = c.send(b"EHLO x\r\n");
    assert!(r.contains("250-AUTH PLAIN LOGIN\r\n"), "{r}");
    assert!(!r.contains("STARTTLS"), "{r}");
    let plain = format!("AUTH PLAIN {}\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(plain.as_bytes()), OK);
    assert_eq!(c.s.auth_user(), Some("joe"));
}

#[test]
fn advertised_on_smtps_and_not_without_auth() {
    let mut c = Client::with(auth_config(), true, check_joe());
    assert!(c.send(b"EHLO x\r\n").contains("250-AUTH PLAIN LOGIN\r\n"));
    let mut c = Client::with(config(), true, check_joe());
    assert!(!c.send(b"EHLO x\r\n").contains("AUTH"));
    assert_eq!(
        c.send(b"AUTH PLAIN\r\n"),
        "502 5.5.1 AUTH not available\r\n"
    );
}

#[test]
fn plaintext_listener_offers_auth_in_clear() {
    let cfg = SessionConfig {
        auth_plaintext: true,
        ..auth_config()
    };
    let mut c = Client::with(cfg, false, check_joe());
    assert!(c.send(b"EHLO x\r\n").contains("250-AUTH PLAIN LOGIN\r\n"));
    let plain = format!("AUTH PLAIN {}\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(plain.as_bytes()), OK);
    assert_eq!(c.s.protocol(), "ESMTPA");
}

#[test]
fn plain_with_initial_response() {
    let mut c = authc(auth_config(), true);
    let plain = format!("AUTH PLAIN {}\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(plain.as_bytes()), OK);
    assert_eq!(
        auths(&c),
        vec![(Mechanism::Plain, "joe".into(), "s3cret".into())]
    );
    assert_eq!(c.s.protocol(), "ESMTPSA");
    // Once authenticated, AUTH is neither offered nor accepted again.
    assert!(!c.send(b"EHLO x\r\n").contains("AUTH"));
    assert_eq!(
        c.send(plain.as_bytes()),
        "503 5.5.1 Error: already authenticated\r\n"
    );
    assert_eq!(
        c.send(b"MAIL FROM:<joe@example.org> AUTH=<>\r\n"),
        "250 2.1.0 Sender ok\r\n"
    );
}

#[test]
fn plain_with_challenge_and_lowercase_mechanism() {
    let mut c = authc(auth_config(), true);
    assert_eq!(c.send(b"auth plain\r\n"), "334 \r\n");
    let resp = format!("{}\r\n", b64("joe\0joe\0s3cret"));
    assert_eq!(c.send(resp.as_bytes()), OK);
    assert_eq!(c.s.auth_user(), Some("joe"));
}

#[test]
fn login_exchange() {
    let mut c = authc(auth_config(), true);
    assert_eq!(c.send(b"AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        c.send(format!("{}\r\n", b64("joe")).as_bytes()),
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(c.send(format!("{}\r\n", b64("s3cret")).as_bytes()), OK);
    assert_eq!(
        auths(&c),
        vec![(Mechanism::Login, "joe".into(), "s3cret".into())]
    );
}

#[test]
fn login_with_initial_user_and_bytewise_input() {
    let mut c = authc(auth_config(), true);
    let input = format!("AUTH LOGIN {}\r\n{}\r\n", b64("joe"), b64("s3cret"));
    let r = c.send_bytewise(input.as_bytes());
    assert_eq!(r, format!("334 UGFzc3dvcmQ6\r\n{OK}"));
}

#[test]
fn wrong_password_or_user_get_the_same_535() {
    let mut c = authc(auth_config(), true);
    let bad_pw = format!("AUTH PLAIN {}\r\n", b64("\0joe\0wrong"));
    let bad_user = format!("AUTH PLAIN {}\r\n", b64("\0bob\0s3cret"));
    assert_eq!(c.send(bad_pw.as_bytes()), FAILED);
    assert_eq!(c.send(bad_user.as_bytes()), FAILED);
    assert_eq!(c.s.auth_user(), None);
    assert_eq!(c.s.protocol(), "ESMTPS");
    // Still usable: the third try succeeds.
    let good = format!("AUTH PLAIN {}\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(good.as_bytes()), OK);
}

#[test]
fn too_many_failures_close_the_session() {
    let mut c = authc(auth_config(), true);
    let bad = format!("AUTH PLAIN {}\r\n", b64("\0joe\0wrong"));
    assert_eq!(c.send(bad.as_bytes()), FAILED);
    assert_eq!(c.send(bad.as_bytes()), FAILED);
    assert_eq!(
        c.send(bad.as_bytes()),
        format!("{FAILED}421 4.7.0 Too many authentication failures\r\n")
    );
    assert!(c.closed());
    assert_eq!(auths(&c).len(), 3);
}

#[test]
fn cancel_and_bad_base64() {
    let mut c = authc(auth_config(), true);
    assert_eq!(c.send(b"AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(c.send(b"*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
    assert_eq!(c.send(b"AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.send(b"am9l\r\n"), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(c.send(b"*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
    assert_eq!(
        c.send(b"AUTH PLAIN !!notbase64\r\n"),
        "501 5.5.2 Invalid base64 data\r\n"
    );
    assert_eq!(c.send(b"AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(c.send(b"%%%\r\n"), "501 5.5.2 Invalid base64 data\r\n");
    assert!(auths(&c).is_empty());
    // Back to commands after each.
    assert_eq!(c.send(b"NOOP\r\n"), "250 2.0.0 Ok\r\n");
}

#[test]
fn malformed_plain_and_unknown_mechanism() {
    let mut c = authc(auth_config(), true);
    let other = format!("AUTH PLAIN {}\r\n", b64("root\0joe\0s3cret"));
    assert_eq!(c.send(other.as_bytes()), FAILED);
    assert_eq!(
        c.send(b"AUTH CRAM-MD5\r\n"),
        "504 5.5.4 Unrecognized authentication type\r\n"
    );
    assert_eq!(c.send(b"AUTH\r\n"), "501 5.5.4 Syntax: AUTH mechanism\r\n");
    assert!(auths(&c).is_empty());
}

#[test]
fn sequence_rules() {
    // Before EHLO.
    let mut c = Client::with(auth_config(), true, check_joe());
    assert_eq!(
        c.send(b"AUTH PLAIN\r\n"),
        "503 5.5.1 Error: send EHLO first\r\n"
    );
    // After HELO.
    c.send(b"HELO x\r\n");
    assert_eq!(
        c.send(b"AUTH PLAIN\r\n"),
        "503 5.5.1 Error: send EHLO first\r\n"
    );
    // During a transaction.
    let mut c = authc(auth_config(), true);
    c.send(b"MAIL FROM:<a@example.org>\r\n");
    assert_eq!(
        c.send(b"AUTH PLAIN\r\n"),
        "503 5.5.1 Error: AUTH not allowed during a mail transaction\r\n"
    );
}

#[test]
fn auth_required_before_mail() {
    let cfg = SessionConfig {
        auth_required: true,
        ..auth_config()
    };
    let mut c = authc(cfg, true);
    assert_eq!(
        c.send(b"MAIL FROM:<joe@example.org>\r\n"),
        "530 5.7.0 Authentication required\r\n"
    );
    let good = format!("AUTH PLAIN {}\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(good.as_bytes()), OK);
    assert_eq!(
        c.send(b"MAIL FROM:<joe@example.org>\r\n"),
        "250 2.1.0 Sender ok\r\n"
    );
}

#[test]
fn auth_optional_lets_mail_through() {
    let mut c = authc(auth_config(), true);
    assert_eq!(
        c.send(b"MAIL FROM:<a@example.org>\r\n"),
        "250 2.1.0 Sender ok\r\n"
    );
}

#[test]
fn pipelined_input_waits_for_the_auth_decision() {
    let mut c = authc(auth_config(), true);
    c.manual = true;
    let good = format!("AUTH PLAIN {}\r\nNOOP\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(good.as_bytes()), "");
    assert!(c.s.awaiting_decision());
    c.s.decide(Decision::Accept(None));
    c.manual = false;
    c.run();
    assert!(c.transcript().ends_with(&format!("{OK}250 2.0.0 Ok\r\n")));
}

#[test]
fn policy_421_closes_at_once() {
    let mut c = Client::with(
        auth_config(),
        true,
        Box::new(|e| match e {
            Event::Auth { .. } => Decision::Reject(Reply::new(421, "4.7.0", "Go away")),
            _ => Decision::Accept(None),
        }),
    );
    c.send(b"EHLO x\r\n");
    let plain = format!("AUTH PLAIN {}\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(plain.as_bytes()), "421 4.7.0 Go away\r\n");
    assert!(c.closed());
}

#[test]
fn starttls_forgets_the_authentication() {
    let cfg = SessionConfig {
        auth_plaintext: true,
        ..auth_config()
    };
    let mut c = authc(cfg, false);
    let good = format!("AUTH PLAIN {}\r\n", b64("\0joe\0s3cret"));
    assert_eq!(c.send(good.as_bytes()), OK);
    c.send(b"STARTTLS\r\n");
    c.s.tls_established();
    assert_eq!(c.s.auth_user(), None);
}

#[test]
fn event_debug_hides_the_password() {
    let mut c = authc(auth_config(), true);
    let plain = format!("AUTH PLAIN {}\r\n", b64("\0joe\0hunter2"));
    c.send(plain.as_bytes());
    let dbg = format!("{:?}", c.events());
    assert!(dbg.contains("joe") && !dbg.contains("hunter2"), "{dbg}");
}
