//! Mail sent by real clients lands where a user expects it: maildir,
//! mbox, an MDA command; relaying is refused unless configured.

mod common;

use common::*;
use std::process::Command;

const MSG: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@localhost\r\nSubject: hello\r\n\r\nHi Bob,\r\n.leading dot\r\nbye\r\n";

fn maildir_site() -> Site {
    let site = Site::new();
    site.maildir_config();
    site
}

#[test]
fn smtplib_message_lands_byte_exact_in_maildir() {
    let site = maildir_site();
    let d = site.start(&[]);
    let out = smtplib_send(d.port, "alice@example.org", &["bob@localhost"], MSG);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = wait_maildir(&site.path("mail/bob/Maildir"), 1);
    let (received, rest) = strip_received(&msgs[0]);
    assert_eq!(rest, MSG, "content changed in transit");
    assert!(
        received.contains("from client.example (localhost [127.0.0.1])"),
        "{received}"
    );
    assert!(received.contains("for <bob@localhost>"), "{received}");
    d.wait_log("delivery: Ok for ");
    let log = d.log();
    assert!(log.contains("smtp-in: New session "), "{log}");
    assert!(
        log.contains("from=<alice@example.org>, to=<bob@localhost>"),
        "{log}"
    );
    assert!(log.contains("method=maildir"), "{log}");
}

#[test]
fn one_envelope_per_recipient() {
    let site = maildir_site();
    let d = site.start(&[]);
    let out = smtplib_send(
        d.port,
        "alice@example.org",
        &["bob@localhost", "carol@localhost"],
        MSG,
    );
    assert!(out.status.success());
    wait_maildir(&site.path("mail/bob/Maildir"), 1);
    wait_maildir(&site.path("mail/carol/Maildir"), 1);
    assert!(d.log().contains("ndest=2"), "{}", d.log());
}

#[test]
fn relaying_is_denied_by_default() {
    let site = maildir_site();
    let d = site.start(&[]);
    let mut s = Raw::connect(d.port);
    assert!(s.cmd("EHLO client.example").starts_with("250"));
    assert!(s.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
    let r = s.cmd("RCPT TO:<victim@elsewhere.example>");
    assert!(r.starts_with("550 5.7.1"), "{r}");
    let r = s.cmd("RCPT TO:<bob@localhost>");
    assert!(r.starts_with("250"), "{r}");
}

#[test]
fn swaks_message_lands_in_mbox() {
    if Command::new("swaks").arg("--version").output().is_err() {
        panic!("swaks is not installed: .ci/run installs it");
    }
    let site = Site::new();
    // A `/path` alias is written as an unprivileged user (never root), so
    // give that user a folder it may write.
    let boxes = site.path("boxes");
    std::fs::create_dir(&boxes).unwrap();
    std::fs::set_permissions(
        site.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    nix::unistd::chown(&boxes, Some(65534.into()), Some(65534.into())).unwrap();
    site.write("aliases", "bob: {dir}/boxes/bob.mbox\n");
    site.config(
        r#"
table aliases file:{dir}/aliases
listen on 127.0.0.1 port {port}
action "local" mbox alias <aliases>
match from any for local action "local"
"#,
    );
    let d = site.start(&[]);
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &d.port.to_string()])
        .args(["--from", "alice@example.org", "--to", "bob@localhost"])
        .args([
            "--header",
            "Subject: swaks test",
            "--body",
            "From the start\nline two",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mbox = site.path("boxes/bob.mbox");
    wait_for("mbox", || {
        std::fs::read(&mbox)
            .map(|m| m.ends_with(b"\n\n"))
            .unwrap_or(false)
    });
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert!(text.starts_with("From alice@example.org "), "{text}");
    assert!(text.contains("Subject: swaks test\n"), "{text}");
    assert!(
        text.contains("\n>From the start\n"),
        "From quoting missing:\n{text}"
    );
    assert!(!text.contains('\r'), "mbox must use LF line ends");
}

#[test]
fn mda_command_gets_the_message_and_never_a_shell_line() {
    let site = Site::new();
    // Started as root, the command runs as bob (never as root, which is
    // refused): give bob a home and a folder for the script's output.
    site.unprivileged(&["out"]);
    site.script(
        "deliver.sh",
        "#!/bin/sh\nprintf '%s\\n' \"$1\" > \"{dir}/out/arg\"\nenv > \"{dir}/out/env\"\ncat > \"{dir}/out/msg\"\n",
    );
    site.config(
        r#"
table users file:{dir}/users
listen on 127.0.0.1 port {port}
action "cmd" mda "{dir}/deliver.sh %{sender:raw}" userbase <users>
match from any for local action "cmd"
"#,
    );
    let d = site.start(&[]);
    // CVE-2020-7247's payload: a sender that a shell would execute.
    let sender = "\"x;touch pwned;$(touch pwned2)\"@example.org";
    let mut s = Raw::connect(d.port);
    s.cmd("EHLO client.example");
    let r = s.cmd(&format!("MAIL FROM:<{sender}>"));
    assert!(r.starts_with("250"), "a quoted local part is valid: {r}");
    {
        assert!(s.cmd("RCPT TO:<bob@localhost>").starts_with("250"));
        assert!(s.cmd("DATA").starts_with("354"));
        let r = s.cmd("Subject: x\r\n\r\nbody\r\n.");
        assert!(r.starts_with("250"), "{r}");
        wait_for("mda output", || {
            site.path("out/msg").exists() && site.path("out/arg").exists()
        });
        let arg = std::fs::read_to_string(site.path("out/arg")).unwrap();
        assert_eq!(
            arg.trim_end(),
            sender,
            "the sender must arrive as one argument"
        );
        let env = std::fs::read_to_string(site.path("out/env")).unwrap();
        assert!(env.contains("RECIPIENT=bob@localhost"), "{env}");
    }
    for f in ["pwned", "pwned2"] {
        assert!(!site.path(f).exists() && !std::path::Path::new(f).exists());
        assert!(!site.path("home/bob").join(f).exists());
    }
}

#[test]
fn aliases_expand_to_several_mailboxes() {
    let site = Site::new();
    site.write("aliases", "# team\nteam: bob, carol\npostmaster: bob\n");
    site.write(
        "users",
        "bob 0:0:{dir}/home/bob\ncarol 0:0:{dir}/home/carol\n",
    );
    site.config(
        r#"
table aliases file:{dir}/aliases
table users file:{dir}/users
listen on 127.0.0.1 port {port}
action "local" maildir alias <aliases> userbase <users>
match from any for local action "local"
"#,
    );
    let d = site.start(&[]);
    let out = smtplib_send(d.port, "alice@example.org", &["team@localhost"], MSG);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_maildir(&site.path("home/bob/Maildir"), 1);
    wait_maildir(&site.path("home/carol/Maildir"), 1);
    let mut s = Raw::connect(d.port);
    s.cmd("EHLO client.example");
    s.cmd("MAIL FROM:<alice@example.org>");
    let r = s.cmd("RCPT TO:<nobody-here@localhost>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
}

#[test]
fn embedded_default_needs_no_config() {
    let tmp = tempfile::tempdir().unwrap();
    // The embedded default listens on 2525; skip if something else holds it.
    if std::net::TcpListener::bind("127.0.0.1:2525").is_err() {
        eprintln!("port 2525 busy; skipping");
        return;
    }
    let d = start_daemon(&[], tmp.path(), 2525);
    let out = smtplib_send(2525, "alice@example.org", &["Bob@localhost"], MSG);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_maildir(&tmp.path().join("var/mail/bob/Maildir"), 1);
    // The bundled filters run: spamscore files GTUBE under .Junk, regex
    // refuses the EICAR marker.
    let gtube = b"Subject: test\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
    let out = smtplib_send(2525, "alice@example.org", &["bob@localhost"], gtube);
    assert!(out.status.success());
    let junk = wait_maildir(&tmp.path().join("var/mail/bob/Maildir/.Junk"), 1);
    assert!(String::from_utf8_lossy(&junk[0]).contains("X-Spam-Status: Yes, score=1000"));
    let eicar = b"Subject: av\r\n\r\nEICAR-STANDARD-ANTIVIRUS-TEST-FILE\r\n";
    let out = smtplib_send(2525, "alice@example.org", &["bob@localhost"], eicar);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Virus test file rejected"));
    drop(d);
}

#[test]
fn temporary_failures_retry_then_bounce_at_expiry_and_bounces_never_bounce() {
    let site = Site::new();
    site.unprivileged(&[]);
    site.script(
        "defer.sh",
        "#!/bin/sh\necho 'mailbox locked' >&2\nexit 75\n",
    );
    site.config(
        r#"
queue ttl 3s
table users file:{dir}/users
table everyone { "@" = "root" }
listen on 127.0.0.1 port {port}
action "defer" mda "{dir}/defer.sh" userbase <users>
action "md" maildir "{dir}/mail/%{dest.user:lowercase}/Maildir" virtual <everyone>
match from any for rcpt-to "bob@localhost" action "defer"
match from any for local action "md"
"#,
    );
    let d = site.start(&["--retry-min", "1"]);
    let out = smtplib_send(d.port, "alice@localhost", &["bob@localhost"], MSG);
    assert!(out.status.success());
    d.wait_log("delivery: TempFail for ");
    let bounces = wait_maildir(&site.path("mail/alice/Maildir"), 1);
    let bounce = String::from_utf8_lossy(&bounces[0]);
    assert!(bounce.contains("Envelope expired"), "{bounce}");
    assert!(
        bounce.contains("mailbox locked"),
        "the last error is reported:\n{bounce}"
    );
    assert!(
        bounce.contains("Subject: hello"),
        "the original message comes back:\n{bounce}"
    );
    // A bounce that itself fails is dropped, not bounced again.
    let out = python(
        r#"
import smtplib, sys
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    s.sendmail('', ['bob@localhost'], b'Subject: a bounce\r\n\r\nx\r\n')
"#,
        &[&d.port.to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the failed bounce to expire", || {
        d.log().lines().any(|l| {
            l.starts_with("delivery: PermFail") && l.contains("from=<>, to=<bob@localhost>")
        })
    });
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(maildir_new(&site.path("mail/alice/Maildir")).len(), 1);
    assert_eq!(
        d.log().matches("bounce: Queued bounce").count(),
        1,
        "{}",
        d.log()
    );
}
