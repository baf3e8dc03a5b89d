//! Relaying out, end to end and all on loopback: a dnsmasq serves a
//! test zone (MX, A, AAAA, null MX, missing domains) on 127.0.0.53, the
//! "remote" MX hosts and smarthosts are further wasmtpd instances on
//! their own 127.0.0.x addresses, and the sender is a wasmtpd whose
//! resolver and MX port point at them. Nothing leaves the machine.

mod common;

use common::*;
use std::process::{Command, Stdio};

/// The test zone: everything under `.test` is ours, from `records`.
struct Zone {
    dns: Dnsmasq,
    /// Holds dnsmasq's log.
    _dir: Site,
}

impl Zone {
    fn start(records: &[String]) -> Zone {
        let dir = Site::new();
        let mut args = vec!["--local=/test/".to_string()];
        args.extend_from_slice(records);
        Zone {
            dns: Dnsmasq::start(&dir, &args),
            _dir: dir,
        }
    }

    fn arg(&self) -> String {
        self.dns.arg()
    }
}

fn mx(domain: &str, host: &str, pref: u16) -> String {
    format!("--mx-host={domain},{host},{pref}")
}

fn a(name: &str, addr: &str) -> String {
    format!("--host-record={name},{addr}")
}

/// A receiving wasmtpd: listens on 127.0.0.1:{port} (for the harness)
/// and on `addr`:`mx_port`; mail for alice, bob and carol (any domain)
/// goes to `mail/USER/Maildir`, other recipients are refused (550).
fn mx_host(addr: &str, mx_port: u16) -> (Site, Daemon) {
    let site = Site::new();
    site.config(&format!(
        r#"
table users {{ "@" = "root" }}
listen on 127.0.0.1 port {{port}}
listen on {addr} port {mx_port}
action "md" maildir "{{dir}}/mail/%{{dest.user:lowercase}}/Maildir" virtual <users>
match from any for rcpt-to regex "^(alice|bob|carol)@" action "md"
"#
    ));
    let daemon = site.start(&[]);
    (site, daemon)
}

/// The sending wasmtpd: mail for `sender.test` is local (bounces land in
/// `mail/alice/Maildir`); `rules` route the rest.
fn sender(zone: &Zone, mx_port: u16, rules: &str, extra: &[&str]) -> (Site, Daemon) {
    let site = Site::new();
    site.config(&format!(
        r#"
table users {{ "@" = "root" }}
listen on 127.0.0.1 port {{port}} hostname out.sender.test
action "md" maildir "{{dir}}/mail/%{{dest.user:lowercase}}/Maildir" virtual <users>
match from any for domain "sender.test" action "md"
{rules}
"#
    ));
    let mut args = vec![
        zone.arg(),
        format!("--mx-port={mx_port}"),
        "--retry-min=1".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = site.start(&args);
    (site, daemon)
}

fn send(port: u16, to: &[&str], subject: &str) {
    let msg =
        format!("From: alice@sender.test\r\nSubject: {subject}\r\n\r\nHello over the wire.\r\n");
    let out = smtplib_send(port, "alice@sender.test", to, msg.as_bytes());
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

#[test]
fn primary_mx_down_the_secondary_takes_the_mail() {
    let mx_port = free_port();
    let zone = Zone::start(&[
        mx("one.test", "mx1.one.test", 10),
        mx("one.test", "mx2.one.test", 20),
        // Nothing listens on .21.
        a("mx1.one.test", "127.0.0.21"),
        a("mx2.one.test", "127.0.0.22"),
    ]);
    let (mx2, mx2d) = mx_host("127.0.0.22", mx_port);
    let (_s, out) = sender(
        &zone,
        mx_port,
        "action \"out\" relay\nmatch from any for domain \"one.test\" action \"out\"",
        &[],
    );
    send(
        out.port,
        &["bob@one.test", "carol@one.test"],
        "via secondary",
    );
    let bob = wait_maildir(&mx2.path("mail/bob/Maildir"), 1);
    let carol = wait_maildir(&mx2.path("mail/carol/Maildir"), 1);
    assert!(text(&bob[0]).contains("Subject: via secondary"));
    assert!(text(&carol[0]).contains("Hello over the wire."));
    out.wait_log("relay: Ok for");
    let log = out.log();
    assert!(
        log.contains("smtp-out: Connecting to smtp://127.0.0.21:"),
        "{log}"
    );
    let ok: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("relay: Ok for"))
        .collect();
    assert_eq!(ok.len(), 2, "{log}");
    for line in &ok {
        assert!(line.contains("relay=127.0.0.22 (mx2.one.test)"), "{line}");
        assert!(line.contains("from=<alice@sender.test>"), "{line}");
        assert!(line.contains("stat=250 "), "{line}");
    }
    // Both recipients went in one transaction: one session on mx2.
    let mx2_log = mx2d.log();
    assert_eq!(
        mx2_log.matches("smtp-in: Accepted message").count(),
        1,
        "{mx2_log}"
    );
}

#[test]
fn unreachable_mail_is_retried_warned_about_then_bounced_after_expiry() {
    let mx_port = free_port();
    let zone = Zone::start(&[
        mx("down.test", "mx.down.test", 10),
        a("mx.down.test", "127.0.0.31"),
    ]);
    let (s, out) = sender(
        &zone,
        mx_port,
        "queue ttl 6s\nbounce warn-interval 2s\naction \"out\" relay\nmatch from any for domain \"down.test\" action \"out\"",
        &[],
    );
    send(out.port, &["bob@down.test"], "never arrives");
    let notes = wait_maildir(&s.path("mail/alice/Maildir"), 2);
    let (warning, bounce) = (text(&notes[0]), text(&notes[1]));
    assert!(
        warning.contains("Subject: Delivery status notification: delay"),
        "{warning}"
    );
    assert!(warning.contains("Action: delayed"), "{warning}");
    assert!(
        bounce.contains("Subject: Delivery status notification: error"),
        "{bounce}"
    );
    assert!(bounce.contains("Content-Type: multipart/report; report-type=delivery-status"));
    assert!(bounce.contains("Action: failed"), "{bounce}");
    assert!(
        bounce.contains("Final-Recipient: rfc822; bob@down.test"),
        "{bounce}"
    );
    assert!(
        bounce.contains("Subject: never arrives"),
        "original headers: {bounce}"
    );
    let log = out.log();
    assert!(log.contains("relay: TempFail for"), "{log}");
    assert!(log.contains("Envelope expired"), "{log}");
}

#[test]
fn a_permanent_refusal_bounces_only_the_refused_recipient() {
    let mx_port = free_port();
    let zone = Zone::start(&[
        mx("perm.test", "mx.perm.test", 10),
        a("mx.perm.test", "127.0.0.32"),
    ]);
    let (mx, _mxd) = mx_host("127.0.0.32", mx_port);
    let (s, out) = sender(
        &zone,
        mx_port,
        "action \"out\" relay\nmatch from any for domain \"perm.test\" action \"out\"",
        &[],
    );
    send(
        out.port,
        &["bob@perm.test", "nobody@perm.test"],
        "half of it",
    );
    wait_maildir(&mx.path("mail/bob/Maildir"), 1);
    let bounce = text(&wait_maildir(&s.path("mail/alice/Maildir"), 1)[0]);
    assert!(
        bounce.contains("Final-Recipient: rfc822; nobody@perm.test"),
        "{bounce}"
    );
    assert!(
        !bounce.contains("Final-Recipient: rfc822; bob@perm.test"),
        "{bounce}"
    );
    assert!(bounce.contains("Status: 5."), "{bounce}");
    assert!(bounce.contains("Diagnostic-Code: smtp; 550"), "{bounce}");
    assert!(out.log().contains("relay: PermFail for"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(maildir_new(&s.path("mail/alice/Maildir")).len(), 1);
}

#[test]
fn null_mx_and_missing_domains_bounce_at_once() {
    let zone = Zone::start(&[mx("nullmx.test", ".", 0)]);
    let (s, out) = sender(
        &zone,
        free_port(),
        "action \"out\" relay\nmatch from any for domain \"nullmx.test\" action \"out\"\nmatch from any for domain \"missing.test\" action \"out\"",
        &[],
    );
    send(out.port, &["bob@nullmx.test"], "null");
    send(out.port, &["bob@missing.test"], "missing");
    let notes = wait_maildir(&s.path("mail/alice/Maildir"), 2);
    let all = notes.iter().map(|n| text(n)).collect::<Vec<_>>().join("\n");
    assert!(all.contains("Domain does not accept mail"), "{all}");
    assert!(all.contains("Status: 5.1.10"), "{all}");
    assert!(all.contains("Status: 5.1.2"), "{all}");
}

/// A smarthost as users run one: STARTTLS required and AUTH, the
/// receiving side a wasmtpd with a submission listener.
#[test]
fn smarthost_with_starttls_and_auth() {
    let smart = Site::new();
    make_cert(&smart, "smart.test", "ec");
    let hash = Command::new(BIN)
        .args(["encrypt", "s3cret"])
        .output()
        .unwrap();
    smart.write("creds", &format!("relayuser {}", text(&hash.stdout)));
    smart.config(&format!(
        "{}table creds file:{{dir}}/creds\n\
         table users {{ \"@\" = \"root\" }}\n\
         listen on 127.0.0.1 port {{port}} hostname smart.test tls-require pki smart.test auth <creds>\n\
         action \"md\" maildir \"{{dir}}/mail/%{{dest.user:lowercase}}/Maildir\" virtual <users>\n\
         match from any auth for any action \"md\"\n",
        pki_lines(&["smart.test"])
    ));
    let smart_d = smart.start(&[]);
    let zone = Zone::start(&[]);
    let (_s, out) = sender(
        &zone,
        free_port(),
        &format!(
            "table secrets {{ \"label\" = \"relayuser:s3cret\" }}\n\
             action \"out\" relay host \"smtp+tls://label@127.0.0.1:{}\" auth <secrets>\n\
             match from any for domain \"far.test\" action \"out\"",
            smart_d.port
        ),
        &[],
    );
    send(out.port, &["bob@far.test"], "through the smarthost");
    let got = text(&wait_maildir(&smart.path("mail/bob/Maildir"), 1)[0]);
    assert!(got.contains("Subject: through the smarthost"));
    out.wait_log("relay: Ok for");
    let log = out.log();
    assert!(log.contains("smtp-out: Started TLS on session"), "{log}");
    // Self-signed: opportunistic verification fails, and says so.
    assert!(
        log.contains("smtp-out: Server certificate verification failed"),
        "{log}"
    );
    assert!(
        smart_d
            .log()
            .contains("Authentication succeeded for user \"relayuser\""),
        "{}",
        smart_d.log()
    );
}

/// OpenSMTPD 5.x rules with the seed's `relay via` URL, and `as` to
/// masquerade the envelope sender.
#[test]
fn legacy_relay_via_with_masquerade() {
    let (peer, peer_d) = mx_host("127.0.0.33", free_port());
    let zone = Zone::start(&[]);
    let (_s, out) = sender(
        &zone,
        free_port(),
        &format!(
            "accept from any for domain \"far.test\" relay via \"smtp://127.0.0.1:{}\" as \"@masq.test\"",
            peer_d.port
        ),
        &[],
    );
    send(out.port, &["carol@far.test"], "masqueraded");
    wait_maildir(&peer.path("mail/carol/Maildir"), 1);
    let log = peer_d.log();
    assert!(log.contains("from=<alice@masq.test>"), "{log}");
}

/// We are the backup MX of bk.test: mail waits while the primary is
/// down and goes to it once it is back.
#[test]
fn backup_mx_holds_mail_until_the_primary_returns() {
    let mx_port = free_port();
    let zone = Zone::start(&[
        mx("bk.test", "primary.bk.test", 10),
        mx("bk.test", "out.sender.test", 20),
        mx("bk.test", "worse.bk.test", 30),
        a("primary.bk.test", "127.0.0.41"),
        a("out.sender.test", "127.0.0.42"),
        a("worse.bk.test", "127.0.0.43"),
    ]);
    // Our own entry and a worse MX answer, and must never be used.
    let (_ours, ours_d) = mx_host("127.0.0.42", mx_port);
    let (_worse, worse_d) = mx_host("127.0.0.43", mx_port);
    let (_s, out) = sender(
        &zone,
        mx_port,
        "action \"backup\" relay backup mx \"out.sender.test\"\nmatch from any for domain \"bk.test\" action \"backup\"",
        &[],
    );
    send(out.port, &["alice@bk.test"], "held for the primary");
    out.wait_log("relay: TempFail for");
    let (primary, _pd) = mx_host("127.0.0.41", mx_port);
    let got = text(&wait_maildir(&primary.path("mail/alice/Maildir"), 1)[0]);
    assert!(got.contains("Subject: held for the primary"));
    assert!(out.log().contains("relay=127.0.0.41 (primary.bk.test)"));
    let log = out.log();
    assert!(
        !log.contains("127.0.0.42") && !log.contains("127.0.0.43"),
        "{log}"
    );
    for d in [&ours_d, &worse_d] {
        assert!(!d.log().contains("Accepted message"), "{}", d.log());
    }
}

/// An MX reachable over IPv6 only (AAAA ::1), reached from a source
/// address and with a HELO name taken from the action.
#[test]
fn ipv6_mx_with_source_address_and_helo() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine: skipped");
        return;
    }
    let mx_port = free_port();
    let zone = Zone::start(&[mx("six.test", "mx.six.test", 10), a("mx.six.test", "::1")]);
    let (mx6, mx6d) = mx_host("::1", mx_port);
    let (_s, out) = sender(
        &zone,
        mx_port,
        "table sources { \"::1\" }\n\
         table helos { \"::1\" = \"six-out.sender.test\" }\n\
         action \"out\" relay src <sources> helo-src <helos> helo \"fallback.sender.test\"\n\
         match from any for domain \"six.test\" action \"out\"",
        &[],
    );
    send(out.port, &["bob@six.test"], "over six");
    let got = text(&wait_maildir(&mx6.path("mail/bob/Maildir"), 1)[0]);
    assert!(
        got.contains("six-out.sender.test"),
        "HELO from helo-src: {got}"
    );
    assert!(mx6d.log().contains("[::1]"), "{}", mx6d.log());
    assert!(
        out.log().contains("relay=::1 (mx.six.test)"),
        "{}",
        out.log()
    );
}

/// A smarthost `smart.test` (on 127.0.0.1, STARTTLS with a self-signed
/// certificate `smart.test.crt` in its site) taking mail for far.test,
/// and a zone where its name resolves.
fn tls_smarthost() -> (Site, Daemon, Zone) {
    let smart = Site::new();
    make_cert(&smart, "smart.test", "ec");
    smart.config(&format!(
        "{}table users {{ \"@\" = \"root\" }}\n\
         listen on 127.0.0.1 port {{port}} hostname smart.test tls pki smart.test\n\
         action \"md\" maildir \"{{dir}}/mail/%{{dest.user:lowercase}}/Maildir\" virtual <users>\n\
         match from any for domain \"far.test\" action \"md\"\n",
        pki_lines(&["smart.test"])
    ));
    let smart_d = smart.start(&[]);
    let zone = Zone::start(&[a("smart.test", "127.0.0.1")]);
    (smart, smart_d, zone)
}

/// `tls` (verify): the smarthost's certificate is checked against the
/// action's `ca`, and the log says it succeeded.
#[test]
fn smarthost_certificate_verified_against_the_ca() {
    let (smart, smart_d, zone) = tls_smarthost();
    let (_s, out) = sender(
        &zone,
        free_port(),
        &format!(
            "ca smartca cert \"{}\"\n\
             action \"out\" relay host \"smtp+tls://smart.test:{}\" tls ca smartca\n\
             match from any for domain \"far.test\" action \"out\"",
            smart.path("smart.test.crt").display(),
            smart_d.port
        ),
        &[],
    );
    send(out.port, &["bob@far.test"], "verified");
    wait_maildir(&smart.path("mail/bob/Maildir"), 1);
    let log = out.log();
    assert!(
        log.contains("smtp-out: Server certificate verification succeeded"),
        "{log}"
    );
}

/// `tls` with a `ca` that did not sign the smarthost's certificate: the
/// handshake is refused and the mail waits; nothing is delivered.
#[test]
fn strict_verification_refuses_a_certificate_the_ca_did_not_sign() {
    let (smart, smart_d, zone) = tls_smarthost();
    make_cert(&smart, "other.test", "ec");
    let (_s, out) = sender(
        &zone,
        free_port(),
        &format!(
            "ca wrongca cert \"{}\"\n\
             action \"out\" relay host \"smtp+tls://smart.test:{}\" tls ca wrongca\n\
             match from any for domain \"far.test\" action \"out\"",
            smart.path("other.test.crt").display(),
            smart_d.port
        ),
        &[],
    );
    send(out.port, &["bob@far.test"], "must not go");
    out.wait_log("relay: TempFail for");
    assert!(maildir_new(&smart.path("mail/bob/Maildir")).is_empty());
    assert!(!smart_d.log().contains("Accepted message"));
}

/// A server that offers STARTTLS and then cannot do TLS (as old ones
/// that speak only TLS 1.0 cannot with us): opportunistic TLS retries the
/// host in plain text, as OpenSMTPD and Postfix do.
#[test]
fn opportunistic_tls_falls_back_to_plain_text() {
    let mx_port = free_port();
    let zone = Zone::start(&[
        mx("old.test", "mx.old.test", 10),
        a("mx.old.test", "127.0.0.44"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got");
    let _server = Killed(
        Command::new("python3")
            .args(["-c", BROKEN_TLS_SERVER, "127.0.0.44", &mx_port.to_string()])
            .arg(&got)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("the old server", || {
        std::net::TcpStream::connect(("127.0.0.44", mx_port)).is_ok()
    });
    let (_s, out) = sender(
        &zone,
        mx_port,
        "action \"out\" relay\nmatch from any for domain \"old.test\" action \"out\"",
        &[],
    );
    send(out.port, &["bob@old.test"], "in the clear");
    out.wait_log("relay: Ok for");
    let data = std::fs::read_to_string(&got).unwrap();
    assert!(data.contains("Subject: in the clear"), "{data}");
    assert!(out.log().contains("without TLS"), "{}", out.log());
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Offers STARTTLS, answers 220, then sends garbage instead of a TLS
/// handshake; in a plain session it takes the message and writes it to
/// the file named by argv[3].
const BROKEN_TLS_SERVER: &str = r#"
import socket, sys, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(8)
while True:
    c, _ = srv.accept()
    f = c.makefile("rb")
    c.sendall(b"220 old.test ESMTP\r\n")
    data = None
    for line in f:
        cmd = line.strip().upper()
        if data is not None:
            if line == b".\r\n":
                open(sys.argv[3], "ab").write(b"".join(data))
                data = None
                c.sendall(b"250 2.0.0 queued\r\n")
            else:
                data.append(line)
        elif cmd.startswith(b"EHLO"):
            c.sendall(b"250-old.test\r\n250 STARTTLS\r\n")
        elif cmd == b"STARTTLS":
            c.sendall(b"220 go ahead\r\n")
            time.sleep(0.2)
            c.sendall(b"this is not TLS at all\r\n")
            break
        elif cmd == b"DATA":
            data = []
            c.sendall(b"354 go on\r\n")
        elif cmd == b"QUIT":
            c.sendall(b"221 bye\r\n")
            break
        else:
            c.sendall(b"250 ok\r\n")
    c.close()
"#;

/// A message that went round more than 100 hosts is refused at DATA.
#[test]
fn a_looping_message_is_refused() {
    let zone = Zone::start(&[]);
    let (_s, out) = sender(&zone, free_port(), "", &[]);
    let mut msg = String::new();
    for i in 0..101 {
        msg += &format!(
            "Received: from hop{i}.test by hop{}.test; Tue, 24 Nov 2026 10:00:00 +0000\r\n",
            i + 1
        );
    }
    msg += "Subject: round and round\r\n\r\nagain\r\n";
    let out_ = smtplib_send(
        out.port,
        "bob@sender.test",
        &["alice@sender.test"],
        msg.as_bytes(),
    );
    let err = String::from_utf8_lossy(&out_.stderr);
    assert!(
        err.contains("554") && err.contains("Too many hops"),
        "{err}"
    );
}
