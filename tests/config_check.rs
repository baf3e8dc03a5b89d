//! `wasmtpd -n -f FILE`: like `smtpd -n`, a configuration check that
//! names file:line for each problem and exits non-zero.

mod common;

use common::*;
use std::process::Command;

#[test]
fn good_file_prints_configuration_ok() {
    let site = Site::new();
    let conf = site.config(
        "listen on 127.0.0.1 port 2525\naction \"l\" maildir\nmatch for local action \"l\"\n",
    );
    let out = Command::new(BIN)
        .args(["-n", "-f"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration OK"
    );
}

#[test]
fn bad_line_names_file_and_line() {
    let site = Site::new();
    let conf = site
        .config("listen on 127.0.0.1\n\naction \"l\" maildir\nmatch for local action \"nope\"\n");
    let out = Command::new(BIN)
        .args(["-n", "-f"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4:", conf.display())), "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn daemon_refuses_to_start_on_a_bad_file() {
    let site = Site::new();
    site.config("listen on 127.0.0.1 port {port}\nfrobnicate everything\n");
    let err = site.refused_start();
    assert!(err.contains("smtpd.conf:2:"), "{err}");
}

#[test]
fn example_configs_load() {
    let etc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc");
    for entry in std::fs::read_dir(&etc).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            let out = Command::new(BIN)
                .args(["-n", "-f"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
