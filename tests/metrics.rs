//! `--metrics ADDR`: a Prometheus scraper sees what the daemon did —
//! sessions, queued and delivered envelopes, the delivery delay as a
//! histogram — in the text exposition format, and nothing but /metrics
//! is served.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const MSG: &[u8] = b"From: Alice <alice@example.org>\r\nSubject: hi\r\n\r\nHello\r\n";

/// One HTTP/1.1 request over a raw socket; the whole answer (the
/// server closes the connection).
fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn get(port: u16, path: &str) -> String {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n"),
    )
}

/// The text format's samples by series (`name{labels}`), and each
/// family's `# TYPE`. Enough of the format for these assertions: no
/// timestamps, no escaped spaces in label values.
struct Exposition {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

fn parse(body: &str) -> Exposition {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE NAME KIND");
            types.insert(name.to_string(), kind.to_string());
        } else if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        } else {
            assert!(!line.starts_with('#'), "unknown comment line: {line}");
            let (series, value) = line.rsplit_once(' ').expect("SERIES VALUE");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line:?}"
            );
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "series twice: {series}"
            );
        }
    }
    Exposition { samples, types }
}

impl Exposition {
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series}: {:?}", self.samples.keys()))
    }
}

#[test]
fn prometheus_scrape_shows_sessions_deliveries_and_delays() {
    let site = Site::new();
    site.maildir_config();
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let d = site.start(&["--metrics", &maddr]);
    d.wait_log(&format!("metrics: listening on {maddr}"));

    for to in [
        &["bob@localhost"][..],
        &["carol@localhost", "dave@localhost"],
    ] {
        let out = smtplib_send(d.port, "alice@example.org", to, MSG);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for user in ["bob", "carol", "dave"] {
        wait_maildir(&site.path(&format!("mail/{user}/Maildir")), 1);
    }
    // The counters move after the maildir write: wait for the last one.
    let mut scrape = String::new();
    wait_for("three deliveries counted", || {
        scrape = get(mport, "/metrics");
        scrape.contains("wasmtpd_queue_envelope_dequeued_total 3\n")
    });

    let (head, body) = scrape.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head}"
    );
    let m = parse(body);

    assert!(m.value("wasmtpd_smtp_session_connect_total") >= 2.0);
    assert!(m.value("wasmtpd_smtp_session_inet4_total") >= 2.0);
    assert_eq!(m.value("wasmtpd_queue_envelope_enqueued_total"), 3.0);
    assert_eq!(m.value("wasmtpd_scheduler_delivery_ok_total"), 3.0);
    assert!(m.value("wasmtpd_uptime_seconds") >= 0.0);
    // Both smtplib sessions have ended by now.
    wait_for("both sessions closed", || {
        parse(get(mport, "/metrics").split_once("\r\n\r\n").unwrap().1)
            .value("wasmtpd_smtp_session")
            == 0.0
    });

    for (name, kind) in [
        ("wasmtpd_smtp_session_connect_total", "counter"),
        ("wasmtpd_scheduler_delivery_ok_total", "counter"),
        ("wasmtpd_smtp_session", "gauge"),
        ("wasmtpd_uptime_seconds", "gauge"),
        ("wasmtpd_scheduler_delivery_delay", "histogram"),
    ] {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    let h = "wasmtpd_scheduler_delivery_delay";
    assert_eq!(m.value(&format!("{h}_count")), 3.0);
    assert_eq!(m.value(&format!("{h}_bucket{{le=\"+Inf\"}}")), 3.0);
    assert!(m.value(&format!("{h}_sum")) >= 0.0);
    // Local deliveries of a fresh message take well under a minute.
    assert_eq!(m.value(&format!("{h}_bucket{{le=\"60\"}}")), 3.0);

    let other = get(mport, "/other");
    assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
    let post = http(mport, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let junk = http(mport, "EHLO nonsense\r\n\r\n");
    assert!(junk.starts_with("HTTP/1.1 400 "), "{junk}");
    // Still serving after all that.
    assert!(get(mport, "/metrics").starts_with("HTTP/1.1 200 "));
}

#[test]
fn metrics_address_in_use_stops_the_start_and_says_where() {
    let site = Site::new();
    site.maildir_config();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["-d", "-f"])
        .arg(site.path("smtpd.conf"))
        .arg("--spool")
        .arg(site.path("spool"))
        .args(["--metrics", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the daemon started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("metrics: cannot listen on {addr}")),
        "{err}"
    );
}

#[test]
fn the_flag_is_in_the_help() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--metrics <IP:PORT>"), "{help}");
    assert!(help.contains("Prometheus metrics"), "{help}");
}
