//! Long-lived delivery workers, one small pool per (uid, gid).
//!
//! Spawning a process per delivery is what holds OpenSMTPD's maildir
//! delivery to ~200 messages/s; Postfix's virtual(8) avoids it by staying
//! resident. A root daemon here starts `wasmtpd mda-worker` children as the
//! recipient's user on first use and keeps them: each takes jobs one at a
//! time on stdin and answers one result line per job on stdout, exactly
//! the line `mda-deliver` prints. A worker that fails, times out or
//! answers garbage is killed and replaced.
//!
//! Frame on the worker's stdin: the job as one JSON line, the content
//! length in decimal on the next line, then the content bytes.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::privsep::{
    deliver_here, parse_result, result_line, LocalJob, CHILD_TIMEOUT, MAX_JOB_LINE,
};
use super::Outcome;

/// Hidden argument that starts a worker.
pub const WORKER_ARG: &str = "mda-worker";

/// Idle workers kept per user; more may run at once under load.
const MAX_IDLE_PER_USER: usize = 64;

/// The largest content a worker accepts in one frame.
const MAX_CONTENT: usize = 1 << 31;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Workers by (uid, gid), reused across deliveries.
pub struct WorkerPool {
    program: PathBuf,
    args: Vec<String>,
    idle: Mutex<HashMap<(u32, u32), Vec<Worker>>>,
}

impl WorkerPool {
    /// A pool whose workers are this executable run as `mda-worker`.
    pub fn new() -> std::io::Result<WorkerPool> {
        Ok(WorkerPool::with_program(
            std::env::current_exe()?,
            vec![WORKER_ARG.to_string()],
        ))
    }

    pub(crate) fn with_program(program: PathBuf, args: Vec<String>) -> WorkerPool {
        WorkerPool {
            program,
            args,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one job in a worker running as the job's uid/gid.
    pub async fn run(&self, job: &LocalJob, content: &[u8]) -> Outcome {
        let key = (job.uid, job.gid);
        let mut worker = match self.checkout(key) {
            Some(w) => w,
            None => match self.spawn(key) {
                Ok(w) => w,
                Err(e) => return Outcome::TempFail(format!("cannot start mda worker: {e}")),
            },
        };
        match tokio::time::timeout(CHILD_TIMEOUT, exchange(&mut worker, job, content)).await {
            Ok(Ok(outcome)) => {
                self.checkin(key, worker);
                outcome
            }
            Ok(Err(e)) => {
                let _ = worker.child.start_kill();
                Outcome::TempFail(format!("mda worker failed: {e}"))
            }
            Err(_) => {
                let _ = worker.child.start_kill();
                Outcome::TempFail("mda worker timed out".into())
            }
        }
    }

    fn checkout(&self, key: (u32, u32)) -> Option<Worker> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&key)?;
        while let Some(mut w) = list.pop() {
            // A worker that died while idle is dropped here.
            if matches!(w.child.try_wait(), Ok(None)) {
                return Some(w);
            }
        }
        None
    }

    fn checkin(&self, key: (u32, u32), worker: Worker) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_USER {
            list.push(worker);
        }
        // else dropped: kill_on_drop ends it.
    }

    fn spawn(&self, (uid, gid): (u32, u32)) -> std::io::Result<Worker> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .uid(uid)
            .gid(gid)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("worker pipes missing"));
        };
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }
}

async fn exchange(w: &mut Worker, job: &LocalJob, content: &[u8]) -> std::io::Result<Outcome> {
    let mut head = serde_json::to_vec(job).map_err(std::io::Error::other)?;
    head.push(b'\n');
    head.extend_from_slice(format!("{}\n", content.len()).as_bytes());
    w.stdin.write_all(&head).await?;
    w.stdin.write_all(content).await?;
    w.stdin.flush().await?;
    let mut line = String::new();
    let n = w.stdout.read_line(&mut line).await?;
    if n == 0 {
        return Err(std::io::Error::other("worker exited"));
    }
    parse_result(line.as_bytes()).ok_or_else(|| std::io::Error::other("worker sent no result"))
}

/// What `wasmtpd mda-worker` runs: deliver framed jobs until stdin closes.
pub fn worker_main() -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return 75,
    };
    let euid = nix::unistd::geteuid().as_raw();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    loop {
        let outcome = match read_frame(&mut input) {
            Ok(None) => return 0,
            Ok(Some((job, _))) if job.uid != euid => Outcome::TempFail(format!(
                "mda worker runs as uid {euid}, job is for uid {}",
                job.uid
            )),
            Ok(Some((job, content))) => rt.block_on(deliver_here(job, Arc::new(content))),
            // The stream is out of step: say so and stop.
            Err(e) => {
                let _ = writeln!(out, "{}", result_line(&Outcome::TempFail(e)));
                return 75;
            }
        };
        if writeln!(out, "{}", result_line(&outcome))
            .and_then(|()| out.flush())
            .is_err()
        {
            return 75;
        }
    }
}

fn read_frame(input: &mut impl BufRead) -> Result<Option<(LocalJob, Vec<u8>)>, String> {
    let mut line = Vec::new();
    let n = input
        .take(MAX_JOB_LINE)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    let job: LocalJob =
        serde_json::from_slice(&line).map_err(|e| format!("invalid mda job: {e}"))?;
    let mut len_line = String::new();
    input
        .take(32)
        .read_line(&mut len_line)
        .map_err(|e| e.to_string())?;
    let len: usize = len_line
        .trim()
        .parse()
        .map_err(|_| "invalid content length".to_string())?;
    if len > MAX_CONTENT {
        return Err("content too large".into());
    }
    let mut content = vec![0u8; len];
    input.read_exact(&mut content).map_err(|e| e.to_string())?;
    Ok(Some((job, content)))
}

/// Kept idle for `_idle`; reserved for a reaper of idle workers.
#[allow(dead_code)]
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs local jobs as their user: in this process when it already is
/// that user (or cannot switch), in a pooled worker when running as root.
pub struct LocalRunner {
    pool: Option<WorkerPool>,
}

impl LocalRunner {
    pub fn new() -> LocalRunner {
        let pool = if nix::unistd::geteuid().is_root() {
            WorkerPool::new().ok()
        } else {
            None
        };
        LocalRunner { pool }
    }

    pub async fn run(&self, job: LocalJob, content: Arc<Vec<u8>>) -> Outcome {
        match &self.pool {
            Some(pool) if job.uid != nix::unistd::geteuid().as_raw() => {
                pool.run(&job, &content).await
            }
            _ => deliver_here(job, content).await,
        }
    }
}

impl Default for LocalRunner {
    fn default() -> Self {
        LocalRunner::new()
    }
}
