//! `wasmtpctl` against a running daemon with mail in its queue: what an
//! operator sees and steers (smtpctl's verbs and output).

mod common;

use common::*;

const MSG: &[u8] = b"Subject: queued\r\n\r\nwaiting for the operator\r\n";

/// `show queue` lines split on `|`.
fn queue(d: &Daemon) -> Vec<Vec<String>> {
    d.ctl_ok(&["show", "queue"])
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

#[test]
fn the_queue_is_shown_and_steered_envelope_by_envelope() {
    let site = Site::new();
    site.maildir_config();
    let d = site.start(&[]);
    assert_eq!(d.ctl_ok(&["pause", "mda"]), "mda paused\n");
    let out = smtplib_send(
        site.port,
        "alice@example.org",
        &["bob@localhost", "carol@localhost"],
        MSG,
    );
    assert!(out.status.success(), "{out:?}");
    smtplib_send(site.port, "dave@example.org", &["erin@localhost"], MSG);
    wait_for("three envelopes queued", || queue(&d).len() == 3);

    // evpid|af|type|flags|sender|rcpt|dest|ctime|expire|last-try|tries|runstate|delay|error
    let lines = queue(&d);
    for l in &lines {
        assert_eq!(l.len(), 14, "{l:?}");
        assert_eq!(l[0].len(), 16);
        assert_eq!((l[1].as_str(), l[2].as_str()), ("inet4", "mda"));
        assert_eq!(l[11], "pending");
    }
    let carol = lines.iter().find(|l| l[5] == "carol@localhost").unwrap();
    let carol_id = carol[0].clone();
    assert_eq!(carol[4], "alice@example.org");

    let env = d.ctl_ok(&["show", "envelope", &carol_id]);
    assert!(env.contains(&format!("evpid: {carol_id}\n")), "{env}");
    assert!(env.contains("rcpt: carol@localhost\n"), "{env}");
    let msg = d.ctl_ok(&["show", "message", &carol_id]);
    assert!(msg.contains("waiting for the operator"), "{msg}");
    assert!(msg.starts_with("Received: "), "{msg}");

    // --json: one object per envelope.
    let json = d.ctl_ok(&["--json", "show", "queue"]);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "mda");
    assert_eq!(json.lines().count(), 3);

    // `remove ID` removes exactly that envelope.
    assert_eq!(d.ctl_ok(&["remove", &carol_id]), "1 envelope(s) removed\n");
    let left: Vec<String> = queue(&d).iter().map(|l| l[5].clone()).collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&"carol@localhost".to_string()), "{left:?}");
    let gone = d.ctl(&["show", "envelope", &carol_id]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no such envelope"));

    // A suspended envelope stays when the rest goes.
    let erin = queue(&d)
        .into_iter()
        .find(|l| l[5] == "erin@localhost")
        .unwrap();
    d.ctl_ok(&["pause", "envelope", &erin[0]]);
    let erin_line = queue(&d)
        .into_iter()
        .find(|l| l[5] == "erin@localhost")
        .unwrap();
    assert_eq!(erin_line[3], "suspend");

    assert_eq!(d.ctl_ok(&["resume", "mda"]), "mda resumed\n");
    wait_maildir(&site.path("mail/bob/Maildir"), 1);
    wait_for("only erin left", || queue(&d).len() == 1);
    assert!(maildir_new(&site.path("mail/carol/Maildir")).is_empty());
    assert!(maildir_new(&site.path("mail/erin/Maildir")).is_empty());
    d.ctl_ok(&["resume", "envelope", &erin[0]]);
    d.ctl_ok(&["schedule", "all"]);
    wait_maildir(&site.path("mail/erin/Maildir"), 1);
    d.wait_log(&format!("control: envelope {carol_id} removed"));
}

#[test]
fn pause_mta_holds_relayed_mail_until_resume() {
    // The smarthost: another wasmtpd delivering to maildirs.
    let far = Site::new();
    far.config(
        r#"
table users { "@" = "root" }
listen on 127.0.0.1 port {port}
action "md" maildir "{dir}/mail/%{dest.user:lowercase}/Maildir" virtual <users>
match from any for domain "far.test" action "md"
"#,
    );
    let smarthost = far.start(&[]);

    let site = Site::new();
    site.config(&format!(
        r#"
listen on 127.0.0.1 port {{port}}
action "out" relay host "smtp+notls://127.0.0.1:{}"
match from any for domain "far.test" action "out"
"#,
        smarthost.port
    ));
    let d = site.start(&[]);
    d.ctl_ok(&["pause", "mta"]);
    let status = d.ctl_ok(&["show", "status"]);
    assert!(status.contains("MTA paused\n"), "{status}");
    smtplib_send(site.port, "alice@example.org", &["bob@far.test"], MSG);
    wait_for("the relayed envelope queued", || queue(&d).len() == 1);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let held = queue(&d);
    assert_eq!(
        (held[0][2].as_str(), held[0][11].as_str()),
        ("mta", "pending")
    );
    assert!(maildir_new(&far.path("mail/bob/Maildir")).is_empty());

    d.ctl_ok(&["resume", "mta"]);
    wait_maildir(&far.path("mail/bob/Maildir"), 1);
    wait_for("the queue emptied", || queue(&d).is_empty());

    // The connection waits a few seconds for the next message.
    let routes = d.ctl_ok(&["show", "routes"]);
    let smarthost_url = format!("smtp+notls://127.0.0.1:{}", smarthost.port);
    assert!(routes.starts_with(&smarthost_url), "{routes}");
    assert!(routes.contains("idle=1"), "{routes}");
    let relays = d.ctl_ok(&["show", "relays"]);
    assert!(relays.contains("connections=0/20"), "{relays}");
    let hosts = d.ctl_ok(&["show", "hosts"]);
    assert!(hosts.starts_with("127.0.0.1 "), "{hosts}");
}

#[test]
fn stats_and_monitor_follow_the_traffic() {
    let site = Site::new();
    site.maildir_config();
    let d = site.start(&[]);
    // Monitor for six seconds while two messages go through.
    let monitor = std::process::Command::new(CTL)
        .arg("-s")
        .arg(d.control())
        .args(["monitor", "-c", "6"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    for rcpt in ["bob@localhost", "carol@localhost"] {
        smtplib_send(site.port, "alice@example.org", &[rcpt], MSG);
    }
    let out = monitor.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "header (2 lines) and 6 rows:\n{text}");
    assert!(lines[1].starts_with("curr conn disc"), "{text}");
    let rows: Vec<Vec<i64>> = lines[2..]
        .iter()
        .map(|l| {
            l.split_whitespace()
                .map(|n| n.parse().expect("a number"))
                .collect()
        })
        .collect();
    assert!(rows.iter().all(|r| r.len() == 13), "{text}");
    // Columns: curr conn disc curr enq deq ok …
    let total = |col: usize| rows.iter().map(|r| r[col]).sum::<i64>();
    // The harness's readiness probe is a connection too.
    assert!(total(1) >= 2, "connections:\n{text}");
    assert_eq!(total(4), 2, "enqueued:\n{text}");

    wait_maildir(&site.path("mail/carol/Maildir"), 1);
    wait_for("both deliveries counted", || {
        d.ctl_ok(&["show", "stats"])
            .contains("scheduler.delivery.ok=2\n")
    });
    let stats = d.ctl_ok(&["show", "stats"]);
    for key in [
        "smtp.session.connect=",
        "queue.envelope.enqueued=2\n",
        "uptime=",
        "uptime.human=",
    ] {
        assert!(stats.contains(key), "{key} missing:\n{stats}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&d.ctl_ok(&["--json", "show", "stats"])).unwrap();
    assert_eq!(json["scheduler.delivery.ok"], 2);
}

/// A uid that is neither root nor the daemon's user (nobody, here).
const STRANGER: u32 = 4242;

#[test]
fn an_unprivileged_user_reads_but_cannot_steer() {
    if !is_root() {
        eprintln!("skipped: needs root to run a command as another user");
        return;
    }
    use std::os::unix::process::CommandExt;
    let site = Site::new();
    site.unprivileged(&[]);
    site.maildir_config();
    let d = site.start(&[]);
    // A copy the unprivileged user can run, wherever the build is.
    let ctl = site.path("wasmtpctl");
    std::fs::copy(CTL, &ctl).unwrap();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new(&ctl)
            .arg("-s")
            .arg(d.control())
            .args(args)
            .uid(STRANGER)
            .gid(STRANGER)
            .output()
            .unwrap()
    };
    let stats = as_nobody(&["show", "stats"]);
    assert!(stats.status.success(), "{stats:?}");
    assert!(String::from_utf8_lossy(&stats.stdout).contains("uptime="));
    for verb in [
        &["pause", "mda"][..],
        &["show", "queue"],
        &["remove", "all"],
        &["log", "verbose"],
    ] {
        let out = as_nobody(verb);
        assert!(!out.status.success(), "{verb:?} was allowed");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "wasmtpctl: permission denied\n",
            "{verb:?}"
        );
    }
    d.wait_log(&format!("control: pause refused for uid {STRANGER}"));
    // Nothing was paused.
    assert!(d.ctl_ok(&["show", "status"]).contains("MDA running"));
}

#[test]
fn tables_are_updated_and_traces_switched_on_at_run_time() {
    let site = Site::new();
    site.write("aliases", "info: bob\n");
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
    smtplib_send(site.port, "alice@example.org", &["info@localhost"], MSG);
    wait_maildir(&site.path("home/bob/Maildir"), 1);

    site.write("aliases", "info: carol\n");
    assert_eq!(
        d.ctl_ok(&["update", "table", "aliases"]),
        "table \"aliases\" updated\n"
    );
    d.ctl_ok(&["trace", "smtp"]);
    smtplib_send(site.port, "alice@example.org", &["info@localhost"], MSG);
    wait_maildir(&site.path("home/carol/Maildir"), 1);
    // smtplib writes `mail FROM:<…>`; the trace shows the line as sent.
    d.wait_log("FROM:<alice@example.org>");
    assert!(
        d.log()
            .lines()
            .any(|l| l.starts_with("smtp: <<< ") && l.contains("FROM:<alice@example.org>")),
        "{}",
        d.log()
    );
    assert!(d.log().contains("smtp: >>> 250 "), "{}", d.log());
    let bad = d.ctl(&["trace", "imsg"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown subsystem"));
    d.ctl_ok(&["untrace", "all"]);
    assert!(d.ctl_ok(&["show", "status"]).contains("log brief"));
}

#[test]
fn filters_are_shown_and_reloaded_by_name() {
    let site = Site::new();
    let filter = site.path("f.wasm");
    std::fs::copy(
        concat!(env!("WASMTPD_FILTERS_DIR"), "/hostile.wasm"),
        &filter,
    )
    .unwrap();
    site.config(&format!(
        r#"
table users {{ "@" = "root" }}
filter "f" wasm "{}" mode proceed header "^Subject: after"
listen on 127.0.0.1 port {{port}} filter "f"
action "md" maildir "{{dir}}/mail/%{{dest.user:lowercase}}/Maildir" virtual <users>
match from any for local action "md"
"#,
        filter.display()
    ));
    let d = site.start(&[]);
    let after = b"Subject: after\r\n\r\nx\r\n";
    let out = smtplib_send(site.port, "alice@example.org", &["bob@localhost"], after);
    assert!(out.status.success(), "{out:?}");
    let shown = d.ctl_ok(&["show", "filters"]);
    assert!(shown.starts_with("f active "), "{shown}");
    let calls: u64 = shown
        .split_whitespace()
        .find_map(|w| w.strip_prefix("calls="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(calls > 0, "{shown}");

    // The regex filter under the same name refuses "after".
    std::fs::copy(concat!(env!("WASMTPD_FILTERS_DIR"), "/regex.wasm"), &filter).unwrap();
    assert_eq!(
        d.ctl_ok(&["reload", "filter", "f"]),
        "1 filter(s) reloaded\n"
    );
    let out = smtplib_send(site.port, "alice@example.org", &["bob@localhost"], after);
    assert!(!out.status.success(), "{out:?}");
    let bad = d.ctl(&["reload", "filter", "nosuch"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no such filter"));
}

#[test]
fn pause_smtp_stops_taking_sessions_until_resumed() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;
    let site = Site::new();
    site.maildir_config();
    let d = site.start(&[]);
    assert_eq!(d.ctl_ok(&["pause", "smtp"]), "smtp paused\n");
    assert!(d.ctl_ok(&["show", "status"]).contains("SMTP paused\n"));
    // The kernel still completes the handshake (backlog); no greeting comes.
    let stream = std::net::TcpStream::connect(d.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    assert!(reader.read_line(&mut line).is_err(), "greeted: {line}");
    d.ctl_ok(&["resume", "smtp"]);
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("220 "), "{line}");
}

#[test]
fn log_verbose_adds_protocol_lines_and_log_brief_removes_them() {
    let site = Site::new();
    site.maildir_config();
    let d = site.start(&[]);
    smtplib_send(site.port, "alice@example.org", &["bob@localhost"], MSG);
    wait_maildir(&site.path("mail/bob/Maildir"), 1);
    assert!(!d.log().contains("smtp: <<< "), "{}", d.log());
    assert_eq!(d.ctl_ok(&["log", "verbose"]), "logging verbosely\n");
    smtplib_send(site.port, "alice@example.org", &["carol@localhost"], MSG);
    wait_maildir(&site.path("mail/carol/Maildir"), 1);
    d.wait_log("smtp: >>> 354 ");
    d.ctl_ok(&["log", "brief"]);
    let before = d.log().matches("smtp: <<< ").count();
    smtplib_send(site.port, "alice@example.org", &["dave@localhost"], MSG);
    wait_maildir(&site.path("mail/dave/Maildir"), 1);
    assert_eq!(d.log().matches("smtp: <<< ").count(), before);
}

#[test]
fn encrypt_needs_no_daemon_and_prints_a_crypt_hash() {
    let out = std::process::Command::new(CTL)
        .args(["encrypt", "s3cret"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with('$') && hash.ends_with('\n'), "{hash}");
    assert!(!hash.contains("s3cret"));
}
