//! `lmtp` delivery to a real Dovecot LMTP server, over its unix socket
//! and over TCP; per-recipient LMTP replies are honoured.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

/// A private Dovecot (LMTP only) that knows one user, bob; its mail
/// lands in `dir/dovecot-mail/bob/Maildir`.
struct Dovecot {
    conf: std::path::PathBuf,
    child: Child,
}

impl Dovecot {
    fn start(site: &Site, port: u16) -> Dovecot {
        std::fs::set_permissions(site.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mail = site.path("dovecot-mail");
        std::fs::create_dir_all(&mail).unwrap();
        nix::unistd::chown(&mail, Some(65534.into()), Some(65534.into())).unwrap();
        site.write(
            "dovecot-users",
            "bob:{PLAIN}x:65534:65534::{dir}/dovecot-mail/bob\n",
        );
        let conf = site.write(
            "dovecot.conf",
            &format!(
                r#"
base_dir = {{dir}}/dv
state_dir = {{dir}}/dv-state
log_path = {{dir}}/dovecot.log
protocols = lmtp
ssl = no
listen = 127.0.0.1
mail_location = maildir:~/Maildir
first_valid_uid = 1
userdb {{
  driver = passwd-file
  args = username_format=%n {{dir}}/dovecot-users
}}
passdb {{
  driver = passwd-file
  args = username_format=%n {{dir}}/dovecot-users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"#
            ),
        );
        // In the foreground (-F), so the test owns the process.
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot is installed by .ci/run");
        let log = site.path("dovecot.log");
        wait_for("dovecot's lmtp socket", || site.path("dv/lmtp").exists());
        wait_for("dovecot to start", || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("starting up"))
        });
        Dovecot { conf, child }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_case(dest: &str, site: &Site, lmtp_port: u16) {
    let _dovecot = Dovecot::start(site, lmtp_port);
    site.config(&format!(
        r#"
table users {{ "@" = "root" }}
listen on 127.0.0.1 port {{port}}
action "lmtp" lmtp "{dest}" virtual <users>
action "md" maildir "{{dir}}/mail/%{{dest.user:lowercase}}/Maildir" virtual <users>
match from any for domain "example.org" action "md"
match from any for local action "lmtp"
"#
    ));
    let d = site.start(&["--retry-min", "1"]);
    let msg = b"Subject: via lmtp\r\n\r\nhello dovecot\r\n";
    let out = smtplib_send(
        d.port,
        "alice@example.org",
        &["bob@localhost", "carol@localhost"],
        msg,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = wait_maildir(&site.path("dovecot-mail/bob/Maildir"), 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Subject: via lmtp"), "{text}");
    assert!(text.contains("hello dovecot"), "{text}");
    // Dovecot refuses carol (unknown user): a permanent failure bounces
    // back to alice, who is local here.
    let bounces = wait_maildir(&site.path("mail/alice/Maildir"), 1);
    let bounce = String::from_utf8_lossy(&bounces[0]);
    assert!(bounce.contains("carol@localhost"), "{bounce}");
    assert!(bounce.contains("multipart/report"), "{bounce}");
    d.wait_log("method=lmtp");
}

#[test]
fn lmtp_over_unix_socket_to_dovecot() {
    let site = Site::new();
    let dest = format!("{}/dv/lmtp", site.tmp.path().display());
    run_case(&dest, &site, free_port());
}

#[test]
fn lmtp_over_tcp_to_dovecot() {
    let site = Site::new();
    let port = free_port();
    run_case(&format!("127.0.0.1:{port}"), &site, port);
}
