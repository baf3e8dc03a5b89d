//! Filters as a mail operator meets them, over real SMTP: the bundled
//! regex, spamscore and dnsbl components (dnsbl against a real DNS server,
//! dnsmasq, on loopback), hostile filters that are stopped while other
//! sessions keep flowing, and a reload under load that drops no session.

mod common;

use common::*;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

const HOSTILE: &str = concat!(env!("WASMTPD_FILTERS_DIR"), "/hostile.wasm");

/// A site whose listener runs `filter_lines`' filter `f`; local mail
/// goes to `mail/USER/Maildir` (junk into `.Junk`).
fn site_with(filter_lines: &str) -> Site {
    let site = Site::new();
    site.config(&format!(
        r#"
table users {{ "@" = "root" }}
{filter_lines}
listen on 127.0.0.1 port {{port}} filter "f"
action "md" maildir "{{dir}}/mail/%{{dest.user:lowercase}}/Maildir" junk virtual <users>
match from any for local action "md"
"#
    ));
    site
}

/// Sends with smtplib; returns the exception's text or "ok".
fn send(port: u16, from: &str, subject: &str, body: &str) -> String {
    let script = r#"
import smtplib, sys
port, sender, subject, body = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
msg = f"From: {sender}\r\nTo: bob@localhost\r\nSubject: {subject}\r\n\r\n{body}\r\n"
try:
    with smtplib.SMTP('127.0.0.1', port, timeout=30) as s:
        s.sendmail(sender, ['bob@localhost'], msg.encode())
    print('ok')
except Exception as e:
    print(type(e).__name__, e)
"#;
    let out = python(script, &[&port.to_string(), from, subject, body]);
    String::from_utf8_lossy(&out.stdout).trim().to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn instance_memory_is_reset_page_by_page_after_the_privilege_drop() {
    // Where this process cannot use PAGEMAP_SCAN (Linux < 6.7), the
    // daemon cannot either, and says so; nothing to check then.
    if !wasmtpd::filter::engine::page_map_available() {
        eprintln!("skipped: no PAGEMAP_SCAN on this kernel");
        return;
    }
    let site = site_with(r#"filter "f" regex mail-from "^spammer@""#);
    let d = site.start(&[]);
    assert_eq!(send(d.port, "alice@example.org", "hi", "lunch?"), "ok");
    wait_maildir(&site.path("mail/bob/Maildir"), 1);
    let log = d.log();
    assert!(log.contains("filter f: loaded"), "{log}");
    assert!(!log.contains("no PAGEMAP_SCAN"), "{log}");
}

#[test]
fn regex_refuses_senders_and_bodies_that_match() {
    let site = site_with(
        r#"filter "f" regex mail-from "^spammer@" body "(?i)buy cheap pills" message "No thanks""#,
    );
    let d = site.start(&[]);
    let mut raw = Raw::connect(d.port);
    raw.cmd("EHLO client.example");
    let reply = raw.cmd("MAIL FROM:<spammer@evil.example>");
    assert!(reply.starts_with("550 5.7.1 No thanks"), "{reply}");
    // The session goes on: another sender is fine.
    assert!(raw.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
    let refused = send(
        d.port,
        "alice@example.org",
        "offer",
        "BUY CHEAP PILLS today",
    );
    assert!(
        refused.contains("550") && refused.contains("No thanks"),
        "{refused}"
    );
    assert_eq!(send(d.port, "alice@example.org", "hi", "lunch?"), "ok");
    let msgs = wait_maildir(&site.path("mail/bob/Maildir"), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains("lunch?"));
    assert!(
        d.log().contains("smtp-in: Filter refused mail-from"),
        "{}",
        d.log()
    );
}

#[test]
fn spamscore_adds_its_headers_and_junk_goes_to_the_junk_folder() {
    let site = site_with(
        r#"filter "f" spamscore rule "PILLS 4 header ^Subject:.*(?i)pills" rule "CHEAP 2 body (?i)cheap" threshold 5"#,
    );
    let d = site.start(&[]);
    assert_eq!(
        send(d.port, "alice@example.org", "cheap pills", "so cheap"),
        "ok"
    );
    assert_eq!(send(d.port, "alice@example.org", "lunch", "at noon?"), "ok");
    let junk = wait_maildir(&site.path("mail/bob/Maildir/.Junk"), 1);
    let junk = String::from_utf8_lossy(&junk[0]).to_string();
    assert!(junk.contains("X-Spam-Score: 6"), "{junk}");
    assert!(junk.contains("X-Spam-Status: Yes, score=6"), "{junk}");
    assert!(junk.contains("tests=PILLS,CHEAP"), "{junk}");
    assert!(junk.contains("X-Spam: yes"), "{junk}");
    let ham = wait_maildir(&site.path("mail/bob/Maildir"), 1);
    let ham = String::from_utf8_lossy(&ham[0]).to_string();
    assert!(ham.contains("X-Spam-Status: No, score=0"), "{ham}");
    assert!(!ham.contains("X-Spam: yes"), "{ham}");
    // Headers go on top: the message itself is untouched below them.
    assert!(ham.ends_with("Subject: lunch\r\n\r\nat noon?\r\n"), "{ham}");
}

/// dnsmasq serving a DNSBL test zone on 127.0.0.53: 127.0.0.2 is listed
/// (with a reason), every other name in the zone does not exist.
fn dnsbl_zone(site: &Site) -> Dnsmasq {
    let args = [
        "--local=/zen.test/",
        "--local=/flood.test/",
        "--host-record=2.0.0.127.zen.test,127.0.0.2",
        "--txt-record=2.0.0.127.zen.test,listed for testing",
    ];
    Dnsmasq::start(site, &args.map(String::from))
}

/// The greeting a client gets when it connects from `src`.
fn greeting_from(port: u16, src: &str) -> String {
    let script = r#"
import socket, sys
s = socket.socket()
s.bind((sys.argv[2], 0))
s.settimeout(30)
s.connect(('127.0.0.1', int(sys.argv[1])))
print(s.recv(1000).decode().strip())
"#;
    let out = python(script, &[&port.to_string(), src]);
    String::from_utf8_lossy(&out.stdout).trim().to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn dnsbl_refuses_listed_clients_with_the_lists_reason() {
    let site = site_with(r#"filter "f" dnsbl zone zen.test check-local yes allow dns"#);
    let dns = dnsbl_zone(&site);
    let d = site.start(&[&dns.arg()]);
    let listed = greeting_from(d.port, "127.0.0.2");
    assert_eq!(
        listed,
        "554 5.7.1 Client address listed at zen.test: listed for testing"
    );
    assert!(greeting_from(d.port, "127.0.0.3").starts_with("220 "));
    assert!(dns.queries("2.0.0.127.zen.test") >= 1);
}

#[test]
fn a_filter_flooding_dns_is_stopped_at_its_query_budget() {
    let site = site_with(&format!(
        r#"filter "f" wasm "{HOSTILE}" mode dns-flood allow dns dns-queries 20"#
    ));
    let dns = dnsbl_zone(&site);
    let d = site.start(&[&dns.arg()]);
    let refused = send(d.port, "alice@example.org", "hi", "hello");
    assert!(refused.contains("421"), "{refused}");
    d.wait_log("DNS query budget exhausted");
    assert!(
        dns.queries("flood.test") <= 20,
        "{}",
        dns.queries("flood.test")
    );
}

#[test]
fn a_filter_cannot_open_files_or_sockets() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let addr = target.local_addr().unwrap();
    // The test filter built against WASI, as a user's filter may be: it
    // gets the empty WASI, where there is nothing to open.
    let hostile_wasi = concat!(env!("WASMTPD_FILTERS_DIR"), "/hostile-wasip2.wasm");
    for mode in ["file", "socket"] {
        let site = site_with(&format!(
            r#"filter "f" wasm "{hostile_wasi}" mode {mode} target "{addr}""#
        ));
        let d = site.start(&[]);
        let refused = send(d.port, "alice@example.org", "hi", "hello");
        assert!(
            refused.contains("550") && refused.contains(&format!("{mode}: ERR")),
            "{mode}: {refused}"
        );
        assert!(!refused.contains("root:"), "{refused}");
    }
    assert!(target.accept().is_err(), "the filter reached the socket");
}

/// Two tenants on one host: tenant A's filter spins or hoards memory;
/// A's sessions get the policy reply while B's mail keeps flowing.
#[test]
fn a_hostile_filter_costs_only_its_own_sessions() {
    for mode in ["loop", "memory", "recurse", "trap"] {
        let site = Site::new();
        let port_b = free_port();
        site.config(&format!(
            r#"
table users {{ "@" = "root" }}
filter "bad" wasm "{HOSTILE}" mode {mode} timeout 500ms
filter "good" wasm "{HOSTILE}" mode proceed
listen on 127.0.0.1 port {{port}} tag "a" filter "bad"
listen on 127.0.0.1 port {port_b} tag "b" filter "good"
action "md" maildir "{{dir}}/mail/%{{dest.user:lowercase}}/Maildir" virtual <users>
match from any for local action "md"
"#
        ));
        let d = site.start(&[]);
        let bad: Vec<_> = (0..4)
            .map(|_| {
                let port = d.port;
                std::thread::spawn(move || send(port, "a@example.org", "a", "from tenant a"))
            })
            .collect();
        let t = Instant::now();
        let good: Vec<_> = (0..10)
            .map(|i| {
                std::thread::spawn(move || {
                    send(port_b, "b@example.org", &format!("b{i}"), "from tenant b")
                })
            })
            .collect();
        for g in good {
            assert_eq!(g.join().unwrap(), "ok", "{mode}");
        }
        let elapsed = t.elapsed();
        for b in bad {
            let r = b.join().unwrap();
            assert!(r.contains("421"), "{mode}: {r}");
        }
        wait_maildir(&site.path("mail/bob/Maildir"), 10);
        assert!(elapsed < Duration::from_secs(20), "{mode}: {elapsed:?}");
        assert!(d.log().contains("filter bad: session"), "{}", d.log());
        // The daemon is still there and serving.
        assert_eq!(
            send(port_b, "b@example.org", "after", "still up"),
            "ok",
            "{mode}"
        );
    }
}

/// Long sessions keep sending through a reload: none is dropped, those
/// that began before it keep the old filter, new ones get the new one;
/// a broken component does not replace the running one.
#[test]
fn reload_under_load_drops_no_session() {
    let site = Site::new();
    let filter = site.path("f.wasm");
    std::fs::copy(HOSTILE, &filter).unwrap();
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
    // 8 sessions, each sending 15 messages with "Subject: after", one every
    // 100 ms: they span the reload.
    let script = r#"
import smtplib, sys, time, threading
port = int(sys.argv[1])
results = []
def run(n):
    try:
        with smtplib.SMTP('127.0.0.1', port, timeout=30) as s:
            for i in range(15):
                msg = f"From: a@example.org\r\nTo: bob@localhost\r\nSubject: after\r\n\r\n{n}-{i}\r\n"
                s.sendmail('a@example.org', ['bob@localhost'], msg.encode())
                time.sleep(0.1)
        results.append('ok')
    except Exception as e:
        results.append(f'{type(e).__name__} {e}')
threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print('\n'.join(results))
"#;
    let port = d.port.to_string();
    let load = std::thread::spawn(move || python(script, &[&port]));
    // Every session has begun (and so holds the filter it started with)
    // before the first reload.
    wait_for("8 sessions under way", || {
        d.log().matches("smtp-in: Accepted message").count() >= 8
            && d.log().matches("smtp-in: New session").count() >= 8
    });
    // A broken file first: the running filter stays.
    std::fs::write(&filter, b"\0asm garbage").unwrap();
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    hup(d.child.id());
    d.wait_log("keeping the running version");
    // Then the regex filter under the same name: it refuses "after".
    let regex_wasm = concat!(env!("WASMTPD_FILTERS_DIR"), "/regex.wasm");
    std::fs::copy(regex_wasm, &filter).unwrap();
    hup(d.child.id());
    d.wait_log("filter f: reloaded");
    let out = load.join().unwrap();
    let results = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        results.lines().filter(|l| *l == "ok").count(),
        8,
        "{results}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    wait_maildir(&site.path("mail/bob/Maildir"), 120);
    // A session that starts now runs the new filter.
    let refused = send(d.port, "a@example.org", "after", "new session");
    assert!(refused.contains("550"), "{refused}");
    assert_eq!(send(d.port, "a@example.org", "before", "fine"), "ok");
}

/// OpenSMTPD's builtin filters, chained with a wasm one: the host rule
/// refuses what its table lists, and `bypass` skips the rest of the chain.
#[test]
fn builtin_phase_filters_run_in_a_chain_with_wasm_ones() {
    let site = site_with(
        r#"table badhelo { "evil.example" }
table vip { "boss@example.org" }
filter "nohelo" phase helo match helo <badhelo> disconnect "421 4.7.0 go away"
filter "vip" phase mail-from match mail-from <vip> bypass
filter "nomail" wasm "@HOSTILE@" mode reject
filter "f" chain { "nohelo", "vip", "nomail" }"#
            .replace("@HOSTILE@", HOSTILE)
            .as_str(),
    );
    let d = site.start(&[]);
    let mut raw = Raw::connect(d.port);
    let reply = raw.cmd("EHLO evil.example");
    assert!(reply.starts_with("421 4.7.0 go away"), "{reply}");
    let mut raw = Raw::connect(d.port);
    assert!(raw.cmd("EHLO client.example").starts_with("250"));
    // Not a VIP: the wasm filter refuses.
    let r = raw.cmd("MAIL FROM:<joe@example.org>");
    assert!(r.starts_with("550 5.7.1 hostile says no"), "{r}");
    // The VIP bypasses it.
    assert!(raw.cmd("MAIL FROM:<boss@example.org>").starts_with("250"));
}
