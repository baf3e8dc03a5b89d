//! `sendmail` as cron, mail(1) and PHP's mail() run it: a message on
//! standard input, handed to the running daemon through its control
//! socket as a session "from local".

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

const SENDMAIL: &str = env!("CARGO_BIN_EXE_sendmail");

fn sendmail(d: &Daemon, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(SENDMAIL)
        .arg(format!("--control={}", d.control().display()))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sendmail");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Local mail goes to maildirs; mail through the enqueue socket for
/// far.test too (`from socket`: loopback clients are `from local`),
/// which a network client may not send there.
fn site() -> Site {
    let site = Site::new();
    site.config(
        r#"
table users { "@" = "root" }
listen on 127.0.0.1 port {port}
action "md" maildir "{dir}/mail/%{dest.user:lowercase}/Maildir" virtual <users>
match from any for local action "md"
match from socket for domain "far.test" action "md"
"#,
    );
    site
}

#[test]
fn sendmail_t_delivers_to_the_header_recipients_without_bcc() {
    let site = site();
    let d = site.start(&[]);
    let msg = b"To: Bob <bob@localhost>, carol@localhost\n\
                Bcc: dave@far.test\n\
                Subject: nightly report\n\
                \n\
                all is well\n\
                .\n\
                this line is still in the message with -i\n";
    let out = sendmail(&d, &["-t", "-i", "-F", "Cron Daemon"], msg);
    assert!(out.status.success(), "{out:?}");
    for user in ["bob", "carol", "dave"] {
        let got = wait_maildir(&site.path(&format!("mail/{user}/Maildir")), 1);
        let text = String::from_utf8_lossy(&got[0]).to_string();
        assert!(text.contains("Subject: nightly report\r\n"), "{text}");
        assert!(!text.contains("Bcc:"), "Bcc leaked to {user}:\n{text}");
        assert!(
            text.contains("From: \"Cron Daemon\" <") || text.contains("From: Cron Daemon <"),
            "{text}"
        );
        assert!(text.contains("\r\nDate: "), "{text}");
        assert!(text.contains("\r\nMessage-ID: <"), "{text}");
        assert!(text.contains("\r\n.\r\nthis line is still"), "{text}");
        // A local session: no network address in the trace header.
        assert!(
            text.starts_with("Received: from localhost (localhost [local])"),
            "{text}"
        );
        assert!(text.contains("\r\n\t(from userid 0)"), "{text}");
    }
    d.wait_log("[local] uid=0 user=root");
}

#[test]
fn a_lone_dot_ends_the_message_without_i_and_f_sets_the_sender() {
    let site = site();
    let d = site.start(&[]);
    let out = sendmail(
        &d,
        &["-f", "backup@example.org", "bob@localhost"],
        b"Subject: done\n\nfinished\n.\nnot part of it\n",
    );
    assert!(out.status.success(), "{out:?}");
    let got = wait_maildir(&site.path("mail/bob/Maildir"), 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("finished\r\n"), "{text}");
    assert!(!text.contains("not part of it"), "{text}");
    d.wait_log("from=<backup@example.org>");
}

#[test]
fn local_rules_apply_to_sendmail_only() {
    let site = site();
    let d = site.start(&[]);
    // Over the network, far.test is not ours to relay.
    let out = smtplib_send(
        site.port,
        "eve@example.org",
        &["dave@far.test"],
        b"Subject: x\r\n\r\nx\r\n",
    );
    assert!(!out.status.success(), "relayed for a network client");
    let out = sendmail(&d, &["dave@far.test"], b"Subject: from cron\n\nhello\n");
    assert!(out.status.success(), "{out:?}");
    wait_maildir(&site.path("mail/dave/Maildir"), 1);
}

#[test]
fn mailq_lists_the_queue_and_a_down_daemon_is_a_temporary_failure() {
    let site = site();
    let mut d = site.start(&[]);
    d.ctl_ok(&["pause", "mda"]);
    let out = sendmail(&d, &["bob@localhost"], b"Subject: waiting\n\nzzz\n");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(SENDMAIL)
        .arg(format!("--control={}", d.control().display()))
        .arg("-bp")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = listing.trim_end().split('|').collect();
    assert_eq!(fields.len(), 14, "{listing}");
    assert_eq!(
        (fields[1], fields[5]),
        ("local", "bob@localhost"),
        "{listing}"
    );

    d.kill9();
    let out = sendmail(&d, &["bob@localhost"], b"Subject: lost?\n\nno\n");
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach wasmtpd") && err.contains("nothing was sent"),
        "{err}"
    );
}

#[test]
fn any_local_user_may_send_and_is_named_in_the_log() {
    if !is_root() {
        eprintln!("skipped: needs root to run a command as another user");
        return;
    }
    use std::os::unix::process::CommandExt;
    let site = site();
    site.unprivileged(&[]);
    let d = site.start(&[]);
    let bin = site.path("sendmail");
    std::fs::copy(SENDMAIL, &bin).unwrap();
    let mut child = Command::new(&bin)
        .arg(format!("--control={}", d.control().display()))
        .arg("bob@localhost")
        .uid(4242)
        .gid(4242)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Subject: from a stranger\n\nhi\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_maildir(&site.path("mail/bob/Maildir"), 1);
    d.wait_log("uid=4242 user=4242");
}
