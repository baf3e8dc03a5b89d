//! TLS end to end: STARTTLS and smtps with real clients (Python's
//! smtplib and ssl, `openssl s_client`), certificate choice by SNI, the
//! STARTTLS injection attack (CVE-2011-0411), `tls-require`, client
//! certificates, and bad certificates or handshakes. Certificates are
//! made per test with the openssl command line tool.

mod common;

use common::*;
use std::process::{Command, Output, Stdio};

/// A site delivering every local recipient to `mail/USER/Maildir`, with
/// one `localhost` pki and the given listener options.
fn tls_site(listen: &str) -> (Site, Daemon) {
    let site = Site::new();
    make_cert(&site, "localhost", "ec");
    site.config(&format!(
        "{}table users {{ \"@\" = \"root\" }}\n\
         listen on 127.0.0.1 port {{port}} hostname localhost {listen}\n\
         action \"md\" maildir \"{{dir}}/mail/%{{dest.user:lowercase}}/Maildir\" virtual <users>\n\
         match from any for local action \"md\"\n",
        pki_lines(&["localhost"])
    ));
    let d = site.start(&[]);
    (site, d)
}

fn run_python(script: &str, args: &[&str]) -> String {
    let out = python(script, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python failed:\n{text}");
    text
}

const INSECURE: &str = r#"
import smtplib, ssl, sys, socket
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
"#;

#[test]
fn starttls_then_mail_is_delivered() {
    let (site, d) = tls_site("tls pki localhost");
    let script = format!(
        "{INSECURE}
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    s.ehlo('client.example')
    assert s.has_extn('starttls'), s.esmtp_features
    s.starttls(context=ctx)
    s.ehlo('client.example')
    assert not s.has_extn('starttls')
    print(s.sock.version())
    s.sendmail('alice@example.org', ['bob@localhost'], b'Subject: tls\\r\\n\\r\\nover tls\\r\\n')
"
    );
    let out = run_python(&script, &[&d.port.to_string()]);
    assert!(out.contains("TLSv1.3"), "{out}");
    let msgs = wait_maildir(&site.path("mail/bob/Maildir"), 1);
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(text.contains("with ESMTPS"), "{text}");
    assert!(text.contains("over tls"), "{text}");
    d.wait_log("smtp-in: Started TLS on session ");
    assert!(
        d.log().contains("version=TLSv1.3, cipher=TLS13_"),
        "{}",
        d.log()
    );
}

#[test]
fn smtps_listener_delivers() {
    let (site, d) = tls_site("smtps pki localhost");
    let script = format!(
        "{INSECURE}
with smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[1]), context=ctx) as s:
    s.ehlo('client.example')
    assert not s.has_extn('starttls')
    s.sendmail('alice@example.org', ['bob@localhost'], b'Subject: smtps\\r\\n\\r\\nimplicit\\r\\n')
"
    );
    run_python(&script, &[&d.port.to_string()]);
    let msgs = wait_maildir(&site.path("mail/bob/Maildir"), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains("implicit"));
}

/// The subject of the certificate the server presents.
fn presented_subject(port: u16, sni: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    cmd.args(["-starttls", "smtp"]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out: Output = cmd.stdin(Stdio::null()).output().expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).replace(' ', "");
    text.lines()
        .find_map(|l| l.strip_prefix("subject=").map(String::from))
        .unwrap_or_else(|| panic!("no subject in:\n{text}"))
}

#[test]
fn certificate_is_chosen_by_sni_and_hostname_without_it() {
    let site = Site::new();
    make_cert(&site, "a.example", "rsa:2048");
    make_cert(&site, "b.example", "ed25519");
    site.config(&format!(
        "{}listen on 127.0.0.1 port {{port}} hostname b.example tls pki a.example pki b.example\n\
         action \"md\" maildir \"{{dir}}/mail\"\n\
         match from any for local action \"md\"\n",
        pki_lines(&["a.example", "b.example"])
    ));
    let d = site.start(&[]);
    assert_eq!(presented_subject(d.port, Some("a.example")), "CN=a.example");
    assert_eq!(presented_subject(d.port, Some("b.example")), "CN=b.example");
    // No SNI (a client that connected by address): the hostname's pki.
    assert_eq!(presented_subject(d.port, None), "CN=b.example");
}

#[test]
fn commands_pipelined_after_starttls_are_not_executed() {
    let (_site, d) = tls_site("tls pki localhost");
    // One packet: STARTTLS and a MAIL that an attacker in the middle
    // injected in plaintext. The MAIL must not survive into TLS.
    let script = format!(
        "{INSECURE}
sock = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
f = sock.makefile('rb')
def reply():
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line)
        if len(line) < 4 or line[3] == ' ':
            return ''.join(lines)
reply()
sock.sendall(b'EHLO client.example\\r\\n'); reply()
sock.sendall(b'STARTTLS\\r\\nMAIL FROM:<evil@x>\\r\\n')
print('starttls', reply().strip())
tls = ctx.wrap_socket(sock)
f = tls.makefile('rb')
tls.sendall(b'EHLO client.example\\r\\n'); reply()
tls.sendall(b'RCPT TO:<bob@localhost>\\r\\n')
print('rcpt', reply().strip())
"
    );
    let out = run_python(&script, &[&d.port.to_string()]);
    assert!(out.contains("starttls 220"), "{out}");
    assert!(out.contains("rcpt 503"), "{out}");
    assert!(!d.log().contains("evil@x"), "{}", d.log());
}

#[test]
fn tls_require_refuses_mail_before_starttls() {
    let (_site, d) = tls_site("tls-require pki localhost");
    let mut s = Raw::connect(d.port);
    let ehlo = s.cmd("EHLO client.example");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    let r = s.cmd("MAIL FROM:<a@example.org>");
    assert!(r.starts_with("530 5.7.0"), "{r}");
}

#[test]
fn garbage_handshake_closes_only_that_session() {
    let (site, d) = tls_site("tls pki localhost");
    let mut bad = Raw::connect(d.port);
    assert!(bad.cmd("EHLO client.example").starts_with("250"));
    assert!(bad.cmd("STARTTLS").starts_with("220"));
    bad.send(b"this is not a TLS client hello\r\n\r\n");
    assert_eq!(bad.read_reply(), "", "the bad session is closed");
    d.wait_log("smtp-in: TLS handshake failed on session ");
    // Another session still works, TLS included.
    let script = format!(
        "{INSECURE}
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    s.starttls(context=ctx)
    s.sendmail('alice@example.org', ['bob@localhost'], b'Subject: after\\r\\n\\r\\nstill fine\\r\\n')
"
    );
    run_python(&script, &[&d.port.to_string()]);
    wait_maildir(&site.path("mail/bob/Maildir"), 1);
}

/// A CA and a client certificate it signed: `ca.crt`, `client.crt/.key`.
fn make_client_ca(site: &Site) {
    make_cert(site, "ca", "ec");
    openssl(
        site,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=client.example",
        ],
    );
    site.write(
        "client.ext",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    openssl(
        site,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "client.crt",
            "-extfile",
            "client.ext",
        ],
    );
}

#[test]
fn tls_require_verify_wants_a_client_certificate_from_the_ca() {
    let site = Site::new();
    make_cert(&site, "localhost", "ec");
    make_client_ca(&site);
    site.config(&format!(
        "{}ca clients cert \"{{dir}}/ca.crt\"\n\
         table users {{ \"@\" = \"root\" }}\n\
         listen on 127.0.0.1 port {{port}} hostname localhost smtps verify pki localhost ca clients\n\
         action \"md\" maildir \"{{dir}}/mail/%{{dest.user:lowercase}}/Maildir\" virtual <users>\n\
         match from any for local action \"md\"\n",
        pki_lines(&["localhost"])
    ));
    let d = site.start(&[]);
    let script = format!(
        "{INSECURE}
if sys.argv[2] == 'cert':
    ctx.load_cert_chain(sys.argv[3] + '/client.crt', sys.argv[3] + '/client.key')
try:
    with smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[1]), context=ctx) as s:
        s.sendmail('alice@example.org', ['bob@localhost'], b'Subject: verified\\r\\n\\r\\nclient cert\\r\\n')
    print('sent')
except (ssl.SSLError, smtplib.SMTPException, OSError) as e:
    print('refused', e)
"
    );
    let dir = site.path("").display().to_string();
    let without = run_python(&script, &[&d.port.to_string(), "none", &dir]);
    assert!(without.contains("refused"), "{without}");
    let with = run_python(&script, &[&d.port.to_string(), "cert", &dir]);
    assert!(with.contains("sent"), "{with}");
    wait_maildir(&site.path("mail/bob/Maildir"), 1);
}

#[test]
fn missing_key_file_stops_startup_naming_the_pki() {
    let site = Site::new();
    make_cert(&site, "localhost", "ec");
    std::fs::remove_file(site.path("localhost.key")).unwrap();
    site.config(&format!(
        "listen on 127.0.0.1 port {{port}} tls pki localhost\n{}",
        pki_lines(&["localhost"])
    ));
    let err = site.refused_start();
    assert!(err.contains("smtpd.conf:2: pki \"localhost\""), "{err}");
    assert!(err.contains("localhost.key"), "{err}");
}

#[test]
fn mismatched_key_stops_startup() {
    let site = Site::new();
    make_cert(&site, "localhost", "ec");
    make_cert(&site, "other", "ec");
    site.config(
        "pki localhost cert \"{dir}/localhost.crt\"\npki localhost key \"{dir}/other.key\"\n\
         listen on 127.0.0.1 port {port} smtps pki localhost\n",
    );
    let err = site.refused_start();
    assert!(err.contains("smtpd.conf:1: pki \"localhost\""), "{err}");
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn protocols_option_limits_the_version() {
    let (_site, d) = tls_site("tls pki localhost protocols \"tlsv1.2\"");
    let script = format!(
        "{INSECURE}
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    s.starttls(context=ctx)
    print(s.sock.version())
"
    );
    let out = run_python(&script, &[&d.port.to_string()]);
    assert!(out.contains("TLSv1.2"), "{out}");
    d.wait_log("version=TLSv1.2, cipher=TLS_ECDHE_");
}
