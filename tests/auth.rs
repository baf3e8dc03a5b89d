//! SMTP AUTH end to end without TLS: `wasmtpd encrypt` makes hashes that
//! crypt(3) agrees with, an `auth` listener never offers AUTH in clear
//! and refuses a forced one with 538, and MAIL needs AUTH first.
//! AUTH over TLS (success, 535, the failure delay, relaying for an
//! authenticated client) is covered by the session and auth unit tests
//! until STARTTLS lands in the daemon.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn encrypt_arg(password: &str) -> String {
    let out = Command::new(BIN)
        .args(["encrypt", password])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// crypt(3) through Python 3.11's `crypt` module, when it exists.
fn system_crypt(password: &str, hash: &str) -> Option<String> {
    let out = python(
        "import sys\ntry:\n import crypt\nexcept ImportError:\n sys.exit(3)\nprint(crypt.crypt(sys.argv[1], sys.argv[2]))",
        &[password, hash],
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

#[test]
fn encrypt_prints_a_sha512_crypt_hash() {
    let hash = encrypt_arg("correct horse");
    assert!(hash.starts_with("$6$"), "{hash}");
    assert!(wasmtpd::auth::verify(&hash, "correct horse"));
    assert!(!wasmtpd::auth::verify(&hash, "wrong horse"));
    if let Some(again) = system_crypt("correct horse", &hash) {
        assert_eq!(again, hash, "the system's crypt(3) agrees");
    }
}

#[test]
fn encrypt_reads_passwords_from_stdin() {
    let mut child = Command::new(BIN)
        .arg("encrypt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first\nsecond\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let hashes: Vec<&str> = text.lines().collect();
    assert_eq!(hashes.len(), 2, "{text}");
    assert!(wasmtpd::auth::verify(hashes[0], "first"));
    assert!(wasmtpd::auth::verify(hashes[1], "second"));
}

fn auth_site(mode: &str) -> (Site, Daemon) {
    let site = Site::new();
    site.write("creds", &format!("joe {}\n", encrypt_arg("s3cret")));
    site.config(&format!(
        r#"
table creds file:{{dir}}/creds
table users {{ "@" = "root" }}
listen on 127.0.0.1 port {{port}} {mode} <creds>
action "md" maildir "{{dir}}/mail/%{{dest.user:lowercase}}/Maildir" virtual <users>
action "out" relay
match from any for local action "md"
match auth from any for any action "out"
"#
    ));
    let d = site.start(&[]);
    (site, d)
}

#[test]
fn auth_is_never_offered_in_clear() {
    let (_site, d) = auth_site("auth");
    let mut s = Raw::connect(d.port);
    let ehlo = s.cmd("EHLO client.example.net");
    assert!(ehlo.starts_with("250"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    // "\0joe\0s3cret": the right password, sent in clear anyway.
    let r = s.cmd("AUTH PLAIN AGpvZQBzM2NyZXQ=");
    assert_eq!(
        r,
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    assert_eq!(
        s.cmd("AUTH LOGIN"),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    assert_eq!(
        s.cmd("MAIL FROM:<joe@example.org>"),
        "530 5.7.0 Authentication required\r\n"
    );
    assert!(s.cmd("QUIT").starts_with("221"));
    let log = d.log();
    assert!(
        !log.contains("s3cret") && !log.contains("AGpvZQBzM2NyZXQ="),
        "{log}"
    );
    assert!(!log.contains("Authentication succeeded"), "{log}");
}

#[test]
fn auth_optional_listener_takes_unauthenticated_mail_without_relaying() {
    let (site, d) = auth_site("auth-optional");
    let mut s = Raw::connect(d.port);
    assert!(!s.cmd("EHLO client.example.net").contains("AUTH"));
    assert!(s.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
    // Not authenticated: `match auth` does not apply, so no relaying.
    let relay = s.cmd("RCPT TO:<someone@example.com>");
    assert!(relay.starts_with("550"), "{relay}");
    assert!(s.cmd("RCPT TO:<bob@localhost>").starts_with("250"));
    assert!(s.cmd("DATA").starts_with("354"));
    assert!(s.cmd("Subject: hi\r\n\r\nhello\r\n.").starts_with("250"));
    let got = wait_maildir(&site.path("mail/bob/Maildir"), 1);
    let text = String::from_utf8_lossy(&got[0]).to_string();
    assert!(text.contains("with ESMTP id"), "{text}");
}
