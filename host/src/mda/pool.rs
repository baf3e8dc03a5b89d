//! Long-lived delivery workers, one per (uid, gid), each running many
//! deliveries at once.
//!
//! Spawning a process per delivery is what holds OpenSMTPD's maildir
//! delivery to ~200 messages/s; Postfix's virtual(8) avoids it by staying
//! resident. A root daemon here starts `wasmtpd mda-worker` as the
//! recipient's user on first use and keeps it: it takes numbered jobs on
//! stdin, runs them concurrently (so deliveries into one maildir share the
//! fsync of its `new/`, see `dirsync`) and answers each with its number
//! and the result line `mda-deliver` prints. A worker that dies fails its
//! jobs in flight (temporarily: they are retried) and is replaced; one
//! idle for a while is stopped.
//!
//! Frame on the worker's stdin: the job number, the job as one JSON line,
//! the content length in decimal, each on its own line, then the content
//! bytes. Reply on its stdout: `NUMBER RESULT-LINE`.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use super::dirsync::DirSyncer;
use super::privsep::{
    deliver_here_with, parse_result, result_line, LocalJob, CHILD_TIMEOUT, MAX_JOB_LINE,
};
use super::Outcome;

/// Hidden argument that starts a worker.
pub const WORKER_ARG: &str = "mda-worker";

/// A worker with nothing to do for this long is stopped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest content a worker accepts in one frame.
const MAX_CONTENT: usize = 1 << 31;

type Waiting = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Outcome>>>>>;

/// One running worker: its stdin (frames are written whole under the
/// lock) and the jobs waiting for its answers (`None` once it died).
struct Worker {
    child: Mutex<Child>,
    stdin: tokio::sync::Mutex<ChildStdin>,
    waiting: Waiting,
    last_used: Mutex<Instant>,
}

impl Worker {
    fn is_alive(&self) -> bool {
        lock(&self.waiting).is_some()
    }

    fn is_idle_since(&self, cutoff: Instant) -> bool {
        lock(&self.waiting).as_ref().is_some_and(HashMap::is_empty)
            && *lock(&self.last_used) < cutoff
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = lock(&self.child).start_kill();
    }
}

/// Workers by (uid, gid).
pub struct WorkerPool {
    program: PathBuf,
    args: Vec<String>,
    workers: Mutex<HashMap<(u32, u32), Arc<Worker>>>,
    next_id: AtomicU64,
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
            workers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Runs one job in the worker of the job's uid/gid.
    pub async fn run(&self, job: &LocalJob, content: &[u8]) -> Outcome {
        let worker = match self.worker_for((job.uid, job.gid)) {
            Ok(w) => w,
            Err(e) => return Outcome::TempFail(format!("cannot start mda worker: {e}")),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match lock(&worker.waiting).as_mut() {
            Some(w) => w.insert(id, tx),
            None => return Outcome::TempFail("mda worker exited".into()),
        };
        *lock(&worker.last_used) = Instant::now();
        if let Err(e) = send(&worker, id, job, content).await {
            forget(&worker.waiting, id);
            return Outcome::TempFail(format!("cannot hand the job to the mda worker: {e}"));
        }
        match tokio::time::timeout(CHILD_TIMEOUT, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::TempFail("mda worker exited during the delivery".into()),
            Err(_) => {
                // A late success after this answer would deliver twice:
                // stop the worker (its other jobs are retried).
                forget(&worker.waiting, id);
                let _ = lock(&worker.child).start_kill();
                Outcome::TempFail("mda worker timed out".into())
            }
        }
    }

    /// The live worker for a user, started if needed; idle workers of
    /// other users are stopped on the way.
    fn worker_for(&self, key: (u32, u32)) -> std::io::Result<Arc<Worker>> {
        let mut workers = lock(&self.workers);
        let cutoff = Instant::now().checked_sub(IDLE_TIMEOUT);
        workers.retain(|k, w| {
            *k == key || (w.is_alive() && !cutoff.is_some_and(|c| w.is_idle_since(c)))
        });
        if let Some(w) = workers.get(&key).filter(|w| w.is_alive()) {
            return Ok(w.clone());
        }
        let w = Arc::new(self.spawn(key)?);
        workers.insert(key, w.clone());
        Ok(w)
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
        let waiting: Waiting = Arc::new(Mutex::new(Some(HashMap::new())));
        tokio::spawn(read_replies(BufReader::new(stdout), waiting.clone()));
        Ok(Worker {
            child: Mutex::new(child),
            stdin: tokio::sync::Mutex::new(stdin),
            waiting,
            last_used: Mutex::new(Instant::now()),
        })
    }
}

async fn send(w: &Worker, id: u64, job: &LocalJob, content: &[u8]) -> std::io::Result<()> {
    let mut head = format!("{id}\n").into_bytes();
    serde_json::to_writer(&mut head, job).map_err(std::io::Error::other)?;
    head.extend_from_slice(format!("\n{}\n", content.len()).as_bytes());
    let mut stdin = w.stdin.lock().await;
    stdin.write_all(&head).await?;
    stdin.write_all(content).await?;
    stdin.flush().await
}

/// Hands each answer to its job; when the worker goes away, every job
/// still waiting learns it (its sender is dropped).
async fn read_replies(mut out: BufReader<tokio::process::ChildStdout>, waiting: Waiting) {
    let mut line = String::new();
    loop {
        line.clear();
        match out.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Some((id, rest)) = line.split_once(' ') else {
            break;
        };
        let (Ok(id), Some(outcome)) = (id.parse::<u64>(), parse_result(rest.as_bytes())) else {
            break;
        };
        if let Some(tx) = lock(&waiting).as_mut().and_then(|w| w.remove(&id)) {
            let _ = tx.send(outcome);
        }
    }
    lock(&waiting).take();
}

fn forget(waiting: &Waiting, id: u64) {
    if let Some(w) = lock(waiting).as_mut() {
        w.remove(&id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `wasmtpd mda-worker` runs: deliver framed jobs, concurrently,
/// until stdin closes.
pub fn worker_main() -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return 75,
    };
    let euid = nix::unistd::geteuid().as_raw();
    let syncer = Arc::new(DirSyncer::new());
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let mut input = std::io::stdin().lock();
    loop {
        let (id, job, content) = match read_frame(&mut input) {
            Ok(None) => break,
            Ok(Some(frame)) => frame,
            // The stream is out of step: nothing after this can be trusted.
            Err(_) => return 75,
        };
        let (syncer, out) = (syncer.clone(), out.clone());
        rt.spawn(async move {
            let outcome = if job.uid != euid {
                Outcome::TempFail(format!(
                    "mda worker runs as uid {euid}, job is for uid {}",
                    job.uid
                ))
            } else {
                deliver_here_with(job, Arc::new(content), syncer).await
            };
            let mut out = lock(&out);
            let _ = writeln!(out, "{id} {}", result_line(&outcome)).and_then(|()| out.flush());
        });
    }
    // Let the deliveries in flight finish and answer.
    rt.shutdown_timeout(CHILD_TIMEOUT);
    0
}

fn read_frame(input: &mut impl BufRead) -> Result<Option<(u64, LocalJob, Vec<u8>)>, String> {
    let mut id_line = String::new();
    let n = input
        .take(32)
        .read_line(&mut id_line)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    let id: u64 = id_line
        .trim()
        .parse()
        .map_err(|_| "invalid job number".to_string())?;
    let mut line = Vec::new();
    input
        .take(MAX_JOB_LINE)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
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
    Ok(Some((id, job, content)))
}

/// Runs local jobs as their user: in this process when it already is
/// that user (or cannot switch), in the user's worker when running as root.
pub struct LocalRunner {
    pool: Option<WorkerPool>,
    syncer: Arc<DirSyncer>,
}

impl LocalRunner {
    pub fn new() -> LocalRunner {
        let pool = if nix::unistd::geteuid().is_root() {
            WorkerPool::new().ok()
        } else {
            None
        };
        LocalRunner {
            pool,
            syncer: Arc::new(DirSyncer::new()),
        }
    }

    pub async fn run(&self, job: LocalJob, content: Arc<Vec<u8>>) -> Outcome {
        let euid = nix::unistd::geteuid().as_raw();
        if job.uid == euid {
            return deliver_here_with(job, content, self.syncer.clone()).await;
        }
        match &self.pool {
            Some(pool) => pool.run(&job, &content).await,
            // Root without a way to switch users must never deliver
            // someone else's mail with its own rights.
            None if euid == 0 => Outcome::TempFail(
                "no mda worker pool: cannot switch to the recipient's user".into(),
            ),
            None => deliver_here_with(job, content, self.syncer.clone()).await,
        }
    }
}

impl Default for LocalRunner {
    fn default() -> Self {
        LocalRunner::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mda::JobMethod;

    #[test]
    fn frames_round_trip() {
        let job = LocalJob {
            method: JobMethod::Maildir {
                path: "/x".into(),
                junk: false,
            },
            uid: 1,
            gid: 2,
            sender: None,
        };
        let mut buf = b"7\n".to_vec();
        serde_json::to_writer(&mut buf, &job).unwrap();
        buf.extend_from_slice(b"\n3\nabc");
        let mut r = std::io::Cursor::new(buf);
        let (id, got, content) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((id, got, content), (7, job, b"abc".to_vec()));
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn garbage_frames_are_errors_not_panics() {
        for bad in [&b"x\n{}\n1\na"[..], b"1\nnot json\n1\na", b"1\n{}\n"] {
            assert!(read_frame(&mut std::io::Cursor::new(bad)).is_err());
        }
    }
}
