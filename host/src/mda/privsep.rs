//! Delivering as the recipient's user.
//!
//! When wasmtpd runs as root, a local delivery for another user happens
//! in a short-lived child — `wasmtpd mda-deliver` — started with that
//! user's uid and gid, so mailboxes are written, and commands run, with
//! exactly the user's rights. The job travels as one JSON line on the
//! child's stdin, followed by the message; the child answers with a
//! result line on stdout and a sysexits-style exit code. When not root
//! (tests, an unprivileged embedded daemon) delivery happens in-process.

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::time::timeout;

use super::command::{run_command, COMMAND_TIMEOUT};
use super::{deliver_maildir_with, deliver_mbox, DirSyncer, Outcome};
use crate::mailaddr::MailAddr;

/// The hidden sub-command the daemon re-executes itself with.
pub const CHILD_ARG: &str = "mda-deliver";
/// Prefix of the child's result line (other stdout lines are ignored).
pub(crate) const RESULT_PREFIX: &str = "wasmtpd-mda-result: ";
const EXIT_OK: i32 = 0;
const EXIT_PERMFAIL: i32 = 1;
const EXIT_TEMPFAIL: i32 = 75;
/// Longest job line the child accepts.
pub(crate) const MAX_JOB_LINE: u64 = 1024 * 1024;
/// The child's own deadline covers a command timing out inside it.
pub(crate) const CHILD_TIMEOUT: Duration = Duration::from_secs(COMMAND_TIMEOUT.as_secs() + 120);

/// How a local delivery is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobMethod {
    Maildir {
        path: PathBuf,
        junk: bool,
    },
    Mbox {
        path: PathBuf,
    },
    Command {
        argv: Vec<String>,
        env: Vec<(String, String)>,
        /// Working directory, usually the user's home (as OpenSMTPD
        /// does); `None` keeps the current one.
        #[serde(default)]
        cwd: Option<PathBuf>,
    },
}

/// One local delivery, to be performed as `uid`/`gid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalJob {
    pub method: JobMethod,
    pub uid: u32,
    pub gid: u32,
    pub sender: Option<MailAddr>,
}

/// What to execute for a privilege-dropped delivery; tests substitute
/// their own binary.
#[derive(Clone, Debug)]
pub(crate) struct ChildProgram {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
}

/// Performs `job`, as its user when we are root.
pub async fn run_local_job(job: LocalJob, content: Arc<Vec<u8>>) -> Outcome {
    if nix::unistd::geteuid().is_root() && job.uid != 0 {
        let program = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return Outcome::TempFail(format!("cannot find own executable: {e}")),
        };
        let child = ChildProgram {
            program,
            args: vec![CHILD_ARG.into()],
            env: Vec::new(),
        };
        run_in_child(&child, job, &content).await
    } else {
        deliver_here(job, content).await
    }
}

/// Delivers with the current process's rights.
pub(crate) async fn deliver_here(job: LocalJob, content: Arc<Vec<u8>>) -> Outcome {
    deliver_here_with(job, content, Arc::new(DirSyncer::new())).await
}

/// [`deliver_here`], sharing maildir directory fsyncs through `syncer`
/// with the other deliveries of this process.
pub(crate) async fn deliver_here_with(
    job: LocalJob,
    content: Arc<Vec<u8>>,
    syncer: Arc<DirSyncer>,
) -> Outcome {
    let joined = |r: Result<Outcome, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Outcome::TempFail(format!("delivery task failed: {e}")))
    };
    match job.method {
        JobMethod::Maildir { path, junk } => joined(
            tokio::task::spawn_blocking(move || {
                match deliver_maildir_with(&path, junk, &content, &syncer) {
                    Ok(file) => Outcome::Ok(format!("delivered to {}", file.display())),
                    Err(e) => Outcome::from_error(&e),
                }
            })
            .await,
        ),
        JobMethod::Mbox { path } => joined(
            tokio::task::spawn_blocking(move || {
                match deliver_mbox(&path, job.sender.as_ref(), &content, SystemTime::now()) {
                    Ok(()) => Outcome::Ok(format!("delivered to {}", path.display())),
                    Err(e) => Outcome::from_error(&e),
                }
            })
            .await,
        ),
        JobMethod::Command { argv, env, cwd } => {
            run_command(&argv, &env, cwd.as_deref(), &content, COMMAND_TIMEOUT).await
        }
    }
}

/// Runs the delivery in `child` as the job's uid/gid. Setting a uid makes
/// the standard library call `setgroups(0, NULL)` before `setuid`, so the
/// child keeps no supplementary group: its only group is the job's gid.
pub(crate) async fn run_in_child(child: &ChildProgram, job: LocalJob, content: &[u8]) -> Outcome {
    let mut input = match serde_json::to_vec(&job) {
        Ok(v) => v,
        Err(e) => return Outcome::TempFail(format!("cannot encode mda job: {e}")),
    };
    input.push(b'\n');
    input.extend_from_slice(content);

    let mut cmd = Command::new(&child.program);
    cmd.args(&child.args)
        .env_clear()
        .envs(child.env.iter().map(|(k, v)| (k, v)))
        .uid(job.uid)
        .gid(job.gid)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut proc = match cmd.spawn() {
        Ok(p) => p,
        Err(e) => {
            return Outcome::TempFail(format!(
                "cannot start mda child {}: {e}",
                child.program.display()
            ))
        }
    };
    let writer = proc.stdin.take().map(|mut stdin| {
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        })
    });
    let reader = proc.stdout.take().map(|mut out| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = (&mut out).take(64 * 1024).read_to_end(&mut buf).await;
            buf
        })
    });
    let status = match timeout(CHILD_TIMEOUT, proc.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Outcome::TempFail(format!("waiting for mda child: {e}")),
        Err(_) => {
            let _ = proc.kill().await;
            return Outcome::TempFail("mda child timed out".into());
        }
    };
    if let Some(w) = writer {
        w.abort();
    }
    let output = match reader {
        Some(r) => timeout(Duration::from_secs(2), r)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    match parse_result(&output) {
        Some(o) => o,
        // No verdict: the message may or may not be delivered; retrying
        // risks a duplicate, not a loss.
        None => Outcome::TempFail(format!("mda child ended ({status}) without a result")),
    }
}

pub(crate) fn parse_result(output: &[u8]) -> Option<Outcome> {
    let text = String::from_utf8_lossy(output);
    // Searched within lines, not only at their start: a test harness
    // re-entered as the child may print before it on the same line.
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.find(RESULT_PREFIX).map(|i| &l[i + RESULT_PREFIX.len()..]))?;
    let (tag, detail) = line.split_once(' ').unwrap_or((line, ""));
    let detail = detail.to_string();
    match tag {
        "ok" => Some(Outcome::Ok(detail)),
        "tempfail" => Some(Outcome::TempFail(detail)),
        "permfail" => Some(Outcome::PermFail(detail)),
        _ => None,
    }
}

/// Entry point of `wasmtpd mda-deliver`: reads the job line and the
/// message from stdin, delivers, prints the result line and returns the
/// process exit code.
pub fn child_main() -> i32 {
    let outcome = child_deliver();
    let code = match &outcome {
        Outcome::Ok(_) => EXIT_OK,
        Outcome::TempFail(_) => EXIT_TEMPFAIL,
        Outcome::PermFail(_) => EXIT_PERMFAIL,
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{}", result_line(&outcome))
        .and_then(|()| out.flush())
        .is_err()
    {
        return EXIT_TEMPFAIL;
    }
    code
}

/// The one line a child or worker reports an outcome with.
pub(crate) fn result_line(outcome: &Outcome) -> String {
    let tag = match outcome {
        Outcome::Ok(_) => "ok",
        Outcome::TempFail(_) => "tempfail",
        Outcome::PermFail(_) => "permfail",
    };
    let detail = outcome.detail().replace(['\r', '\n'], " ");
    format!("{RESULT_PREFIX}{tag} {detail}")
}

fn child_deliver() -> Outcome {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    if let Err(e) = (&mut stdin).take(MAX_JOB_LINE).read_until(b'\n', &mut line) {
        return Outcome::TempFail(format!("reading mda job: {e}"));
    }
    let job: LocalJob = match serde_json::from_slice(&line) {
        Ok(j) => j,
        Err(e) => return Outcome::TempFail(format!("invalid mda job: {e}")),
    };
    let mut content = Vec::new();
    if let Err(e) = stdin.read_to_end(&mut content) {
        return Outcome::TempFail(format!("reading message: {e}"));
    }
    // Never deliver with other rights than the job asks for.
    let euid = nix::unistd::geteuid().as_raw();
    if euid != job.uid {
        return Outcome::TempFail(format!(
            "mda-deliver runs as uid {euid}, job is for uid {}",
            job.uid
        ));
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Outcome::TempFail(format!("starting runtime: {e}")),
    };
    rt.block_on(deliver_here(job, Arc::new(content)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const NOBODY: u32 = 65534;
    const CHILD_ENV: &str = "WASMTPD_MDA_TEST_CHILD";

    /// Not a real test: the entry point when this test binary is started
    /// as the mda child by the tests below.
    #[test]
    fn child_entry() {
        if std::env::var_os(CHILD_ENV).is_some() {
            std::process::exit(child_main());
        }
    }

    /// The test binary itself, re-entered through `child_entry`.
    fn test_child() -> ChildProgram {
        ChildProgram {
            program: std::env::current_exe().unwrap(),
            args: [
                "--exact",
                "mda::privsep::tests::child_entry",
                "--nocapture",
                "--test-threads=1",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
            env: vec![(CHILD_ENV.to_string(), "1".to_string())],
        }
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// A temp dir the unprivileged child may write into.
    fn nobody_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        dir
    }

    fn job(method: JobMethod, uid: u32) -> LocalJob {
        LocalJob {
            method,
            uid,
            gid: uid,
            sender: Some(MailAddr::new("s", "example.org")),
        }
    }

    #[tokio::test]
    async fn in_process_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let content = Arc::new(b"Subject: x\r\n\r\nFrom me\r\n".to_vec());
        let md = JobMethod::Maildir {
            path: dir.path().join("Maildir"),
            junk: false,
        };
        let o = deliver_here(job(md, me), content.clone()).await;
        assert!(o.is_ok(), "{o:?}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("Maildir/new"))
                .unwrap()
                .count(),
            1
        );

        let mbox = dir.path().join("mbox");
        let o = deliver_here(
            job(JobMethod::Mbox { path: mbox.clone() }, me),
            content.clone(),
        )
        .await;
        assert!(o.is_ok(), "{o:?}");
        assert!(std::fs::read_to_string(&mbox)
            .unwrap()
            .starts_with("From s@example.org "));

        let blocked = dir.path().join("file");
        std::fs::write(&blocked, b"").unwrap();
        let md = JobMethod::Maildir {
            path: blocked,
            junk: false,
        };
        assert!(matches!(
            deliver_here(job(md, me), content).await,
            Outcome::PermFail(_)
        ));
    }

    #[tokio::test]
    async fn root_delivers_as_the_user() {
        if !is_root() {
            eprintln!("skipped: needs root to switch users");
            return;
        }
        let dir = nobody_dir();
        let md = dir.path().join("Maildir");
        let content = b"Subject: privsep\r\n\r\nhello\r\n";
        let o = run_in_child(
            &test_child(),
            job(
                JobMethod::Maildir {
                    path: md.clone(),
                    junk: true,
                },
                NOBODY,
            ),
            content,
        )
        .await;
        assert!(o.is_ok(), "{o:?}");
        let file = std::fs::read_dir(md.join(".Junk/new"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(std::fs::read(&file).unwrap(), content);
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));

        let mbox = dir.path().join("mbox");
        let o = run_in_child(
            &test_child(),
            job(JobMethod::Mbox { path: mbox.clone() }, NOBODY),
            content,
        )
        .await;
        assert!(o.is_ok(), "{o:?}");
        assert_eq!(std::fs::metadata(&mbox).unwrap().uid(), NOBODY);
    }

    #[tokio::test]
    async fn root_runs_commands_as_the_user_without_extra_groups() {
        if !is_root() {
            eprintln!("skipped: needs root to switch users");
            return;
        }
        let dir = nobody_dir();
        let out = dir.path().join("id");
        let body = format!(
            "cat >/dev/null; (id -u; id -g; id -G) > '{}'; exit 75",
            out.display()
        );
        let script = crate::mda::command::tests::script(dir.path(), "who", &body);
        let method = JobMethod::Command {
            argv: vec![script],
            env: vec![],
            cwd: Some(dir.path().to_path_buf()),
        };
        let mut o = Outcome::Ok(String::new());
        for _ in 0..20 {
            o = run_in_child(&test_child(), job(method.clone(), NOBODY), b"x").await;
            if !o.detail().contains("Text file busy") {
                break;
            }
        }
        assert!(
            matches!(o, Outcome::TempFail(ref s) if s.contains("exited 75")),
            "{o:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "65534\n65534\n65534\n"
        );
    }

    #[tokio::test]
    async fn child_refuses_what_the_user_cannot_do() {
        if !is_root() {
            eprintln!("skipped: needs root to switch users");
            return;
        }
        // A root-only directory: permission denied, retried later.
        let dir = tempfile::tempdir().unwrap();
        let md = JobMethod::Maildir {
            path: dir.path().join("Maildir"),
            junk: false,
        };
        let o = run_in_child(&test_child(), job(md, NOBODY), b"x").await;
        assert!(
            matches!(o, Outcome::TempFail(ref s) if s.contains("ermission denied")),
            "{o:?}"
        );
        assert!(!dir.path().join("Maildir").exists());
    }

    #[tokio::test]
    async fn broken_child_is_a_temporary_failure() {
        if !is_root() {
            eprintln!("skipped: needs root to switch users");
            return;
        }
        let child = ChildProgram {
            program: "/bin/false".into(),
            args: vec![],
            env: vec![],
        };
        let md = JobMethod::Maildir {
            path: "/nonexistent".into(),
            junk: false,
        };
        assert!(matches!(
            run_in_child(&child, job(md, NOBODY), b"x").await,
            Outcome::TempFail(_)
        ));
    }

    /// The real binary, once `mda-deliver` is wired: WASMTPD_BIN=path.
    #[tokio::test]
    async fn wasmtpd_binary_as_child() {
        let Some(bin) = std::env::var_os("WASMTPD_BIN") else {
            eprintln!("skipped: set WASMTPD_BIN to a built wasmtpd to test `wasmtpd mda-deliver`");
            return;
        };
        if !is_root() {
            eprintln!("skipped: needs root to switch users");
            return;
        }
        let dir = nobody_dir();
        let child = ChildProgram {
            program: bin.into(),
            args: vec![CHILD_ARG.into()],
            env: vec![],
        };
        let md = JobMethod::Maildir {
            path: dir.path().join("Maildir"),
            junk: false,
        };
        let o = run_in_child(&child, job(md, NOBODY), b"Subject: bin\r\n\r\n").await;
        assert!(o.is_ok(), "{o:?}");
    }

    #[test]
    fn result_lines() {
        assert_eq!(
            parse_result(b"running 1 test\nwasmtpd-mda-result: ok delivered to /x\n"),
            Some(Outcome::Ok("delivered to /x".into()))
        );
        assert_eq!(
            parse_result(b"wasmtpd-mda-result: permfail a b\n"),
            Some(Outcome::PermFail("a b".into()))
        );
        assert_eq!(parse_result(b"wasmtpd-mda-result: maybe\n"), None);
        assert_eq!(parse_result(b""), None);
    }

    #[test]
    fn job_round_trips_as_one_json_line() {
        let j = job(
            JobMethod::Command {
                argv: vec!["a\nb".into()],
                env: vec![("K".into(), "v\n".into())],
                cwd: None,
            },
            7,
        );
        let s = serde_json::to_string(&j).unwrap();
        assert!(!s.contains('\n'));
        assert_eq!(serde_json::from_str::<LocalJob>(&s).unwrap(), j);
    }
}
