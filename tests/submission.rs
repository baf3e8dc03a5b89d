//! A submission setup as users run it: STARTTLS + AUTH on one port and
//! implicit TLS + AUTH on another, with real clients (Python's smtplib,
//! swaks). Authenticated users may relay; nobody else may; wrong
//! passwords get one answer whatever was wrong, ever more slowly.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

struct Submission {
    site: Site,
    daemon: Daemon,
    smtps_port: u16,
}

/// Port `{port}`: `tls-require auth`; another port: `smtps auth`. Mail
/// from authenticated users to other domains goes to the "outbound"
/// maildir (standing in for relaying until relay-out lands).
fn submission() -> Submission {
    let site = Site::new();
    make_cert(&site, "localhost", "ec");
    let hash = Command::new(BIN)
        .args(["encrypt", "s3cret"])
        .output()
        .unwrap();
    assert!(hash.status.success());
    site.write(
        "creds",
        &format!("alice {}", String::from_utf8_lossy(&hash.stdout)),
    );
    let smtps_port = free_port();
    site.config(&format!(
        "{}table creds file:{{dir}}/creds\n\
         table users {{ \"@\" = \"root\" }}\n\
         listen on 127.0.0.1 port {{port}} hostname localhost tls-require pki localhost auth <creds>\n\
         listen on 127.0.0.1 port {smtps_port} hostname localhost smtps pki localhost auth <creds>\n\
         action \"md\" maildir \"{{dir}}/mail/%{{dest.user:lowercase}}/Maildir\" virtual <users>\n\
         action \"outbound\" maildir \"{{dir}}/outbound/Maildir\" virtual <users>\n\
         match from any for local action \"md\"\n\
         match from any auth for any action \"outbound\"\n",
        pki_lines(&["localhost"])
    ));
    let daemon = site.start(&[]);
    Submission {
        site,
        daemon,
        smtps_port,
    }
}

const CLIENT: &str = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
mode, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if mode == "smtps":
    s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx)
    s.ehlo("client.example")
else:
    s = smtplib.SMTP("127.0.0.1", port)
    s.ehlo("client.example")
    print("before-tls-auth", s.has_extn("auth"))
    s.starttls(context=ctx)
    s.ehlo("client.example")
print("auth-offered", s.has_extn("auth"))
try:
    s.login(user, password)
    print("login ok")
except smtplib.SMTPAuthenticationError as e:
    print("login refused", e.smtp_code, e.smtp_error.decode())
    sys.exit(0)
s.sendmail("alice@localhost", ["friend@elsewhere.example"], b"Subject: via " + mode.encode() + b"\r\n\r\nhi\r\n")
print("sent")
s.quit()
"#;

fn client(mode: &str, port: u16, user: &str, password: &str) -> String {
    let out = python(CLIENT, &[mode, &port.to_string(), user, password]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn starttls_then_login_relays() {
    let s = submission();
    let out = client("starttls", s.daemon.port, "alice", "s3cret");
    assert!(
        out.contains("before-tls-auth False"),
        "AUTH offered in clear:\n{out}"
    );
    assert!(
        out.contains("auth-offered True") && out.contains("sent"),
        "{out}"
    );
    let got = wait_maildir(&s.site.path("outbound/Maildir"), 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("with ESMTPSA"), "{text}");
    s.daemon
        .wait_log("smtp-in: Authentication succeeded for user \"alice\"");
    assert!(
        !s.daemon.log().contains("s3cret"),
        "a password reached the log"
    );
}

#[test]
fn smtps_login_relays() {
    let s = submission();
    let out = client("smtps", s.smtps_port, "alice", "s3cret");
    assert!(out.contains("sent"), "{out}");
    wait_maildir(&s.site.path("outbound/Maildir"), 1);
}

#[test]
fn swaks_tls_auth_relays() {
    let s = submission();
    let out = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &s.daemon.port.to_string(),
        ])
        .args([
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "s3cret",
        ])
        .args([
            "--from",
            "alice@localhost",
            "--to",
            "someone@elsewhere.example",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("235 2.7.0"), "{text}");
    wait_maildir(&s.site.path("outbound/Maildir"), 1);
}

#[test]
fn unauthenticated_clients_cannot_send_through_submission() {
    let s = submission();
    let out = python(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.starttls(context=ctx)
s.ehlo("client.example")
print(s.mail("alice@localhost"))
"#,
        &[&s.daemon.port.to_string()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("530"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn wrong_credentials_get_one_answer_and_slow_down() {
    let s = submission();
    let started = Instant::now();
    let wrong_password = client("smtps", s.smtps_port, "alice", "guess");
    let wrong_user = client("smtps", s.smtps_port, "mallory", "s3cret");
    for out in [&wrong_password, &wrong_user] {
        assert!(
            out.contains("login refused 535 5.7.8 Authentication failed"),
            "{out}"
        );
    }
    // Each failure waits before its answer.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "failures are not delayed"
    );
    assert!(
        !s.daemon.log().contains("guess"),
        "a password reached the log"
    );
    assert!(maildir_new(&s.site.path("outbound/Maildir")).is_empty());
}
