//! Started as root, wasmtpd serves SMTP as an unprivileged user and
//! delivers as the recipient's user; root itself never runs a command.

mod common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

const MSG: &[u8] = b"Subject: privsep\r\n\r\nhello bob\r\n";
const NOBODY: u32 = 65534;

/// The uid the daemon drops to: the first account wasmtpd looks for.
fn daemon_uid() -> u32 {
    ["_wasmtpd", "wasmtpd", "nobody"]
        .iter()
        .find_map(|n| nix::unistd::User::from_name(n).ok().flatten())
        .map(|u| u.uid.as_raw())
        .unwrap()
}

#[test]
fn root_start_serves_unprivileged_and_delivers_as_the_user() {
    if !is_root() {
        eprintln!("skipped: privilege separation needs a root start");
        return;
    }
    let site = Site::new();
    std::fs::set_permissions(site.tmp.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let home = site.path("home/bob");
    std::fs::create_dir_all(&home).unwrap();
    nix::unistd::chown(&home, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    site.write(
        "users",
        "bob 65534:65534:{dir}/home/bob\nroot 0:0:{dir}/home/root\n",
    );
    site.config(
        r#"
table users file:{dir}/users
listen on 127.0.0.1 port {port}
action "md" maildir userbase <users>
action "cmd" mda "/bin/touch {dir}/pwned" userbase <users>
match from any for domain "cmd.example" action "cmd"
match from any for local action "md"
"#,
    );
    let d = site.start(&[]);

    // The spawned process stays root as the broker; SMTP runs in its child.
    let broker = d.child.id();
    let smtp = d.smtp_pid();
    assert_ne!(smtp, broker, "no daemon child under {broker}:\n{}", d.log());
    assert_eq!(proc_status(broker, "Uid:").as_deref(), Some("0"));
    assert_eq!(
        proc_status(smtp, "Uid:"),
        Some(daemon_uid().to_string()),
        "the SMTP side must not run as root"
    );
    let spool = std::fs::metadata(site.path("spool")).unwrap();
    assert_eq!((spool.uid(), spool.mode() & 0o777), (daemon_uid(), 0o700));

    let out = smtplib_send(d.port, "alice@example.org", &["bob@localhost"], MSG);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let maildir = home.join("Maildir");
    wait_maildir(&maildir, 1);
    for path in [
        maildir.clone(),
        maildir.join("new"),
        maildir_new(&maildir)[0].clone(),
    ] {
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!((m.uid(), m.gid()), (NOBODY, NOBODY), "{}", path.display());
    }

    // A command for root is refused by the broker, never run.
    let out = smtplib_send(d.port, "alice@example.org", &["root@cmd.example"], MSG);
    assert!(out.status.success());
    d.wait_log("not delivering as root");
    assert!(!site.path("pwned").exists());

    // Stopping the broker stops the daemon.
    let mut d = d;
    d.kill9();
    assert!(!is_alive(smtp));
}
