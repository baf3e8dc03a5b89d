//! Piping a message to a command (`action … mda "CMD"`, `|cmd` aliases).
//!
//! The command is executed directly from its argv, never through a
//! shell, with only the environment it is given. Exit codes follow
//! sysexits(3) as OpenSMTPD reads them: 0 delivered, 71 (EX_OSERR) and
//! 75 (EX_TEMPFAIL) retry later, anything else bounces.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::time::timeout;

use super::Outcome;

/// How long a delivery command may run.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Output kept from the command, for the failure message.
const MAX_CAPTURE: usize = 64 * 1024;
/// How long to wait for output once the command exited (a background
/// child may keep the pipes open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
const MAX_DETAIL: usize = 200;

/// Runs `argv` with `content` on stdin and `env` as its whole environment.
pub async fn deliver_command(argv: &[String], env: &[(String, String)], content: &[u8]) -> Outcome {
    run_command(argv, env, None, content, COMMAND_TIMEOUT).await
}

pub(crate) async fn run_command(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&Path>,
    content: &[u8],
    limit: Duration,
) -> Outcome {
    let Some((program, args)) = argv.split_first() else {
        return Outcome::PermFail("empty mda command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills helpers it started.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        // Usually a config or installation problem the admin can fix:
        // retry rather than bounce.
        Err(e) => return Outcome::TempFail(format!("cannot execute {program}: {e}")),
    };

    let stdout = child.stdout.take().map(|s| tokio::spawn(read_capped(s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_capped(s)));
    let writer = child.stdin.take().map(|mut stdin| {
        let content = content.to_vec();
        tokio::spawn(async move {
            match stdin.write_all(&content).await {
                // The command chose not to read everything; its exit
                // status decides.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => tracing::warn!(error = %e, "writing message to mda command"),
                Ok(()) => {}
            }
        })
    });

    let status = match timeout(limit, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            kill_group(&child);
            return Outcome::TempFail(format!("waiting for {program}: {e}"));
        }
        Err(_) => {
            kill_group(&child);
            let _ = child.kill().await;
            if let Some(w) = writer {
                w.abort();
            }
            return Outcome::TempFail(format!("{program} timed out after {}s", limit.as_secs()));
        }
    };
    if let Some(w) = writer {
        w.abort();
    }
    let err_text = collect(stderr).await;
    let out_text = collect(stdout).await;
    let text = first_line(&err_text).or_else(|| first_line(&out_text));
    outcome_of(program, status, text)
}

fn outcome_of(program: &str, status: ExitStatus, text: Option<String>) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let suffix = text.map(|t| format!(": {t}")).unwrap_or_default();
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Ok(format!("{program} exited 0")),
        (Some(c @ (71 | 75)), _) => Outcome::TempFail(format!("{program} exited {c}{suffix}")),
        (Some(c), _) => Outcome::PermFail(format!("{program} exited {c}{suffix}")),
        (None, Some(sig)) => Outcome::TempFail(format!("{program} killed by signal {sig}{suffix}")),
        (None, None) => Outcome::TempFail(format!("{program} ended abnormally{suffix}")),
    }
}

fn kill_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

async fn collect(h: Option<tokio::task::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    let Some(mut h) = h else { return Vec::new() };
    match timeout(DRAIN_GRACE, &mut h).await {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => Vec::new(),
        Err(_) => {
            h.abort();
            Vec::new()
        }
    }
}

/// Reads everything, keeping only the first `MAX_CAPTURE` bytes.
async fn read_capped<R: AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_CAPTURE.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    kept
}

/// The first non-empty line, printable and short enough for a log line.
fn first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(
        line.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .take(MAX_DETAIL)
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Writes an executable /bin/sh script.
    pub(crate) fn script(dir: &Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Another test thread forking while a script is still open for
    /// writing makes exec fail with ETXTBSY; that is a test artefact.
    async fn run(
        argv: &[String],
        env: &[(String, String)],
        content: &[u8],
        limit: Duration,
    ) -> Outcome {
        for _ in 0..20 {
            let o = run_command(argv, env, None, content, limit).await;
            if !o.detail().contains("Text file busy") {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("script stayed busy");
    }

    #[tokio::test]
    async fn exit_codes_map_to_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let ok = script(dir.path(), "ok", "cat >/dev/null; exit 0");
        let temp = script(dir.path(), "temp", "echo 'mailbox busy' >&2; exit 75");
        let oserr = script(dir.path(), "oserr", "exit 71");
        let perm = script(
            dir.path(),
            "perm",
            "echo; echo 'no such user' >&2; echo more >&2; exit 1",
        );
        let sig = script(dir.path(), "sig", "kill -9 $$");
        let t = COMMAND_TIMEOUT;
        assert!(run(&[ok], &[], b"x", t).await.is_ok());
        let o = run(&[temp], &[], b"x", t).await;
        assert_eq!(
            o,
            Outcome::TempFail(format!(
                "{}/temp exited 75: mailbox busy",
                dir.path().display()
            ))
        );
        assert!(matches!(
            run(&[oserr], &[], b"x", t).await,
            Outcome::TempFail(_)
        ));
        match run(&[perm], &[], b"x", t).await {
            Outcome::PermFail(s) => assert!(s.ends_with("exited 1: no such user"), "{s}"),
            o => panic!("{o:?}"),
        }
        match run(&[sig], &[], b"x", t).await {
            Outcome::TempFail(s) => assert!(s.contains("signal 9"), "{s}"),
            o => panic!("{o:?}"),
        }
    }

    #[tokio::test]
    async fn stdin_args_and_clean_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = script(
            dir.path(),
            "save",
            &format!(
                "cat > '{}'; env | sort >> '{}'; echo \"arg=$1\" >> '{}'",
                out.display(),
                out.display(),
                out.display()
            ),
        );
        let env = vec![
            ("RECIPIENT".to_string(), "joe@example.org".to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ];
        let argv = vec![cmd, "a b; $(id)".to_string()];
        let o = run(&argv, &env, b"Subject: hi\n\nbody\n", COMMAND_TIMEOUT).await;
        assert!(o.is_ok(), "{o:?}");
        let got = std::fs::read_to_string(&out).unwrap();
        assert!(got.starts_with("Subject: hi\n\nbody\n"), "{got}");
        assert!(got.contains("RECIPIENT=joe@example.org\n"), "{got}");
        assert!(!got.contains("HOME="), "environment leaked: {got}");
        assert!(got.ends_with("arg=a b; $(id)\n"), "{got}");
    }

    #[tokio::test]
    async fn timeout_is_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let slow = script(dir.path(), "slow", "sleep 30");
        let start = std::time::Instant::now();
        let o = run(&[slow], &[], b"", Duration::from_millis(300)).await;
        assert!(
            matches!(o, Outcome::TempFail(ref s) if s.contains("timed out")),
            "{o:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn missing_program_and_large_input() {
        let o = deliver_command(&["/nonexistent/mda".to_string()], &[], b"x").await;
        assert!(matches!(o, Outcome::TempFail(_)), "{o:?}");
        assert!(matches!(
            deliver_command(&[], &[], b"x").await,
            Outcome::PermFail(_)
        ));
        // A command that ignores a message bigger than a pipe buffer.
        let dir = tempfile::tempdir().unwrap();
        let quick = script(dir.path(), "quick", "exit 0");
        let big = vec![b'x'; 1 << 20];
        assert!(run(&[quick], &[], &big, COMMAND_TIMEOUT).await.is_ok());
    }
}
