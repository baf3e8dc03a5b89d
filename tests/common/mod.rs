//! Shared harness for the end-to-end tests: start a real `wasmtpd` on a
//! free loopback port with a config written by the test, talk to it with
//! real clients (Python's smtplib, swaks, raw sockets), and look at what
//! lands on disk.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_wasmtpd");
pub const CTL: &str = env!("CARGO_BIN_EXE_wasmtpctl");

/// A port nobody uses right now, below Linux's ephemeral range
/// (32768–60999): a port the kernel picked could be taken a moment later
/// as the source port of some test's client connection, and then the
/// daemon's bind fails.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread over processes (each test binary is one) and calls.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10_000 + (std::process::id() % 200) as u16 * 100;
    for _ in 0..2000 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 20_000;
        let port = 10_000 + (base - 10_000 + offset) % 22_000;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub log: Arc<Mutex<String>>,
}

/// A test's private folder with a config, a spool and mail folders.
pub struct Site {
    pub tmp: tempfile::TempDir,
    pub port: u16,
}

impl Site {
    pub fn new() -> Site {
        Site {
            tmp: tempfile::tempdir().unwrap(),
            port: free_port(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Writes `smtpd.conf`; `{port}` and `{dir}` are replaced.
    pub fn config(&self, text: &str) -> PathBuf {
        let text = text
            .replace("{port}", &self.port.to_string())
            .replace("{dir}", &self.tmp.path().display().to_string());
        let p = self.path("smtpd.conf");
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(
            &p,
            text.replace("{dir}", &self.tmp.path().display().to_string()),
        )
        .unwrap();
        p
    }

    /// The common test setup: a loopback listener and every local
    /// recipient delivered to `mail/USER/Maildir` in this site.
    pub fn maildir_config(&self) {
        self.config(
            r#"
table users { "@" = "root" }
listen on 127.0.0.1 port {port}
action "md" maildir "{dir}/mail/%{dest.user:lowercase}/Maildir" virtual <users>
match from any for local action "md"
"#,
        );
    }

    /// Folders the unprivileged test user (uid/gid 65534, who mda commands
    /// and `/path` aliases run as when the daemon is root) may write, and
    /// a `users` userbase file naming that user `bob` with its home in
    /// `home/bob`.
    pub fn unprivileged(&self, dirs: &[&str]) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in dirs.iter().chain(&["home/bob"]) {
            std::fs::create_dir_all(self.path(d)).unwrap();
            if is_root() {
                nix::unistd::chown(&self.path(d), Some(65534.into()), Some(65534.into())).unwrap();
            }
        }
        self.write("users", "bob 65534:65534:{dir}/home/bob\n");
    }

    /// Writes an executable script.
    pub fn script(&self, rel: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.write(rel, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Starts the daemon expecting it to refuse; returns its stderr.
    pub fn refused_start(&self) -> String {
        let out = Command::new(BIN)
            .args(["-d", "-f"])
            .arg(self.path("smtpd.conf"))
            .arg("--spool")
            .arg(self.path("spool"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "the daemon started");
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// Starts the daemon with this site's config and spool.
    pub fn start(&self, extra: &[&str]) -> Daemon {
        let mut args: Vec<String> = vec![
            "-d".into(),
            "-f".into(),
            self.path("smtpd.conf").display().to_string(),
            "--spool".into(),
            self.path("spool").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        start_daemon(&args, self.tmp.path(), self.port)
    }
}

pub fn start_daemon(args: &[String], cwd: &Path, port: u16) -> Daemon {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wasmtpd");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let d = Daemon {
        child,
        port,
        dir: cwd.to_path_buf(),
        log,
    };
    d.wait_ready();
    d
}

impl Daemon {
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // Ports are bound before privileges are dropped, so a connect
            // can succeed before the daemon runs: wait for its word too.
            if self.log().contains("wasmtpd: ready")
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "wasmtpd did not start listening on {}:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (or fails the test).
    /// Waits up to 30 s for `needle` in the log; the failure shows the log.
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for log line {needle:?}:\n{}", self.log());
    }

    /// Kills the daemon as a crash would, and waits until its processes
    /// are gone: started as root, the SMTP side is a child of the process
    /// we spawned, and it must have let go of the port before a restart.
    pub fn kill9(&mut self) {
        let children = children_of(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_for("the daemon's processes to end", || {
            children.iter().all(|&pid| !is_alive(pid))
        });
    }

    /// The process serving SMTP: the spawned one, or when that one stayed
    /// root as the delivery broker, its daemon child.
    pub fn smtp_pid(&self) -> u32 {
        let me = self.child.id();
        children_of(me)
            .into_iter()
            .find(|&pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| !String::from_utf8_lossy(&c).contains("mda-deliver"))
                    .unwrap_or(false)
            })
            .unwrap_or(me)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The control socket of a daemon started by [`Site::start`]: beside
    /// its spool.
    pub fn control(&self) -> PathBuf {
        self.dir.join("run/wasmtpd.sock")
    }

    /// Runs `wasmtpctl ARGS` against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(CTL)
            .arg("-s")
            .arg(self.control())
            .args(args)
            .output()
            .expect("wasmtpctl")
    }

    /// `wasmtpctl ARGS`, which must succeed; its standard output.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "wasmtpctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` for up to 30 s.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// Files in a maildir's `new/`, sorted by name.
pub fn maildir_new(maildir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
        .map(|rd| rd.map_while(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Waits for `n` messages in a maildir and returns their contents.
pub fn wait_maildir(maildir: &Path, n: usize) -> Vec<Vec<u8>> {
    wait_for(&format!("{n} message(s) in {}", maildir.display()), || {
        maildir_new(maildir).len() >= n
    });
    maildir_new(maildir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Splits a delivered message into (Received: header block we added, rest).
pub fn strip_received(msg: &[u8]) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(msg);
    assert!(
        text.starts_with("Received: "),
        "no Received: header first:\n{text}"
    );
    // The header ends at the first line not starting with whitespace.
    let mut end = 0;
    for (i, line) in text.split_inclusive("\r\n").enumerate() {
        if i > 0 && !line.starts_with('\t') && !line.starts_with(' ') {
            break;
        }
        end += line.len();
    }
    (text[..end].to_string(), msg[end..].to_vec())
}

/// Runs a Python snippet (smtplib is in the standard library).
pub fn python(script: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3")
}

/// Sends one message with Python's smtplib; returns stdout+stderr.
pub fn smtplib_send(port: u16, from: &str, to: &[&str], msg: &[u8]) -> Output {
    let script = r#"
import smtplib, sys
port, sender, rcpts = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(',')
msg = sys.stdin.buffer.read()
with smtplib.SMTP('127.0.0.1', port) as s:
    s.ehlo('client.example')
    refused = s.sendmail(sender, rcpts, msg)
    print('refused', refused)
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(from)
        .arg(to.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(msg).unwrap();
    child.wait_with_output().unwrap()
}

/// A raw SMTP conversation: write bytes, read what comes back.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut r = Raw { stream };
        let greeting = r.read_reply();
        assert!(greeting.starts_with("220"), "greeting: {greeting}");
        r
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one (possibly multi-line) reply.
    pub fn read_reply(&mut self) -> String {
        let mut out = String::new();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => return out,
                Ok(_) => {}
                Err(e) => panic!("reading reply: {e}; so far {out:?}"),
            }
            line.push(byte[0]);
            if line.ends_with(b"\r\n") {
                let l = String::from_utf8_lossy(&line).to_string();
                out.push_str(&l);
                line.clear();
                if l.len() < 4 || l.as_bytes()[3] == b' ' {
                    return out;
                }
            }
        }
    }

    /// Sends a command line and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }
}

/// Processes whose parent is `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| proc_status(p, "PPid:").as_deref() == Some(pid.to_string().as_str()))
        .collect()
}

/// The first field of a line of /proc/PID/status (`Uid:` gives the real uid).
pub fn proc_status(pid: u32, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .split_whitespace()
        .next()
        .map(String::from)
}

/// Running (a zombie holds no sockets and counts as gone).
pub fn is_alive(pid: u32) -> bool {
    proc_status(pid, "State:").is_some_and(|s| s != "Z")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Makes `NAME.crt`/`NAME.key` in the site: self-signed, CN and
/// subjectAltName NAME. `alg` is `rsa:2048`, `ec` or `ed25519`.
pub fn make_cert(site: &Site, name: &str, alg: &str) {
    let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-newkey"];
    match alg {
        "ec" => args.extend(["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]),
        other => args.push(other),
    }
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let (subj, san) = (format!("/CN={name}"), format!("subjectAltName=DNS:{name}"));
    args.extend([
        "-keyout", &key, "-out", &crt, "-subj", &subj, "-addext", &san,
    ]);
    openssl(site, &args);
}

/// Runs the openssl command line tool in the site's folder; it must succeed.
pub fn openssl(site: &Site, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(site.path(""))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn pki_lines(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("pki {n} cert \"{{dir}}/{n}.crt\"\npki {n} key \"{{dir}}/{n}.key\"\n"))
        .collect()
}

/// dnsmasq on 127.0.0.53 (a free port), serving what `args` (its own
/// command-line options: `--local=/zone/`, `--host-record=…`,
/// `--mx-host=…`) say, logging every query; killed when dropped.
pub struct Dnsmasq {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Dnsmasq {
    pub fn start(site: &Site, args: &[String]) -> Dnsmasq {
        let port = free_port();
        let log = site.path("dns.log");
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "-k",
            "--conf-file=/dev/null",
            &format!("--port={port}"),
            "--listen-address=127.0.0.53",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--log-queries",
            &format!("--log-facility={}", log.display()),
        ]);
        cmd.args(args);
        if is_root() {
            cmd.arg("--user=root");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)");
        let dns = Dnsmasq { child, port, log };
        wait_for("dnsmasq to start", || {
            std::fs::read_to_string(&dns.log).is_ok_and(|l| l.contains("cleared cache"))
        });
        dns
    }

    /// The daemon's flag pointing its resolver here.
    pub fn arg(&self) -> String {
        format!("--nameserver=127.0.0.53:{}", self.port)
    }

    /// How many queries for names ending in `suffix` it answered.
    pub fn queries(&self, suffix: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("query[") && l.contains(suffix))
            .count()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
