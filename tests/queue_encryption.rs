//! `queue compression` + `queue encryption KEY`: nothing readable on
//! disk, delivered after a restart with the key, reported (never
//! delivered as garbage) with the wrong key.

mod common;

use common::*;

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const SECRET: &str = "TOPSECRET-BODY-LINE";

/// A site whose MDA defers (exit 75) until the file `open` exists.
fn site(key: &str) -> Site {
    let site = Site::new();
    site.unprivileged(&["out"]);
    site.script(
        "deliver.sh",
        "#!/bin/sh\n[ -e \"{dir}/open\" ] || exit 75\ncat > \"{dir}/out/msg\"\n",
    );
    write_config(&site, key);
    site
}

fn write_config(site: &Site, key: &str) {
    site.config(&format!(
        r#"
queue compression
queue encryption "{key}"
table users file:{{dir}}/users
listen on 127.0.0.1 port {{port}}
action "cmd" mda "{{dir}}/deliver.sh" userbase <users>
match from any for local action "cmd"
"#
    ));
}

fn queue_one_deferred(site: &Site) -> Daemon {
    let d = site.start(&["--retry-min", "1"]);
    let msg = format!("Subject: s\r\n\r\n{SECRET}\r\n");
    let out = smtplib_send(
        d.port,
        "alice@example.org",
        &["bob@localhost"],
        msg.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_log("delivery: TempFail for ");
    d
}

fn spool_contains(site: &Site, needle: &[u8]) -> bool {
    fn walk(dir: &std::path::Path, needle: &[u8]) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, needle)
                } else {
                    std::fs::read(&p).is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
                }
            })
    }
    walk(&site.path("spool"), needle)
}

#[test]
fn encrypted_queue_survives_restart_with_its_key() {
    let site = site(KEY);
    let mut d = queue_one_deferred(&site);
    assert!(
        !spool_contains(&site, SECRET.as_bytes()),
        "message readable in the spool"
    );
    assert!(
        !spool_contains(&site, b"alice@example.org"),
        "envelope readable in the spool"
    );
    d.kill9();
    std::fs::write(site.path("open"), "").unwrap();
    let _d = site.start(&["--retry-min", "1"]);
    wait_for("delivery after restart", || {
        std::fs::read_to_string(site.path("out/msg")).is_ok_and(|m| m.contains(SECRET))
    });
}

#[test]
fn wrong_key_is_reported_and_nothing_is_delivered() {
    let site = site(KEY);
    let mut d = queue_one_deferred(&site);
    d.kill9();
    write_config(&site, "another key entirely");
    std::fs::write(site.path("open"), "").unwrap();
    let d = site.start(&["--retry-min", "1"]);
    d.wait_log("corrupt");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        !site.path("out/msg").exists(),
        "delivered with the wrong key"
    );
}
