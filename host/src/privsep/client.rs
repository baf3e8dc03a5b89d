//! The daemon's side: [`JobRunner`] performs a local delivery either in
//! this process (not root: as ourselves) or through the broker (root).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::wire;
use crate::mda::{self, LocalJob, Outcome};

/// How [`crate::daemon::deliver::Delivery`] gets a local job done.
#[derive(Clone)]
pub enum JobRunner {
    /// Deliver here, with this process's rights (today's behaviour when
    /// not started as root).
    InProcess,
    /// Ask the privileged broker, which delivers as the job's user.
    Broker(BrokerClient),
}

impl JobRunner {
    pub async fn run(&self, job: LocalJob, content: Arc<Vec<u8>>) -> Outcome {
        match self {
            JobRunner::InProcess => mda::run_local_job(job, content).await,
            JobRunner::Broker(client) => client.run(job, content).await,
        }
    }
}

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Outcome>>>>>;

struct Outgoing {
    id: u64,
    job: Vec<u8>,
    content: Arc<Vec<u8>>,
}

/// One socket shared by every delivery: a writer task sends requests in
/// turn, a reader task hands each reply to whoever waits for its id.
#[derive(Clone)]
pub struct BrokerClient {
    next_id: Arc<AtomicU64>,
    pending: Pending,
    outgoing: mpsc::Sender<Outgoing>,
}

impl BrokerClient {
    /// Starts the client's tasks; needs a running Tokio runtime.
    pub fn start(socket: std::os::unix::net::UnixStream) -> std::io::Result<BrokerClient> {
        socket.set_nonblocking(true)?;
        let (mut reader, mut writer) = UnixStream::from_std(socket)?.into_split();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (outgoing, mut queue) = mpsc::channel::<Outgoing>(64);

        let for_writer = pending.clone();
        tokio::spawn(async move {
            while let Some(req) = queue.recv().await {
                if let Err(e) =
                    wire::write_request(&mut writer, req.id, &req.job, &req.content).await
                {
                    error!("privsep: cannot reach the delivery broker: {e}");
                    fail_all(&for_writer);
                    return;
                }
            }
        });
        let for_reader = pending.clone();
        tokio::spawn(async move {
            loop {
                match wire::read_reply(&mut reader).await {
                    Ok(Some((id, outcome))) => {
                        let waiter = lock(&for_reader).as_mut().and_then(|m| m.remove(&id));
                        if let Some(tx) = waiter {
                            let _ = tx.send(outcome);
                        }
                    }
                    Ok(None) => {
                        error!("privsep: the delivery broker went away");
                        break;
                    }
                    Err(e) => {
                        error!("privsep: bad reply from the delivery broker: {e}");
                        break;
                    }
                }
            }
            fail_all(&for_reader);
        });
        Ok(BrokerClient {
            next_id: Arc::new(AtomicU64::new(1)),
            pending,
            outgoing,
        })
    }

    pub async fn run(&self, job: LocalJob, content: Arc<Vec<u8>>) -> Outcome {
        let job = match serde_json::to_vec(&job) {
            Ok(j) => j,
            Err(e) => return Outcome::TempFail(format!("cannot encode mda job: {e}")),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match lock(&self.pending).as_mut() {
            Some(map) => {
                map.insert(id, tx);
            }
            None => return gone(),
        }
        if self
            .outgoing
            .send(Outgoing { id, job, content })
            .await
            .is_err()
        {
            if let Some(map) = lock(&self.pending).as_mut() {
                map.remove(&id);
            }
            return gone();
        }
        // A dropped sender means the connection failed with the job in
        // flight: it may or may not be delivered; retrying risks a
        // duplicate, never a loss.
        rx.await.unwrap_or_else(|_| gone())
    }
}

fn gone() -> Outcome {
    Outcome::TempFail("the delivery broker is not available".into())
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, Option<HashMap<u64, oneshot::Sender<Outcome>>>> {
    // A panic while holding this lock leaves a map that is still valid.
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes the client: every waiter gets a temporary failure (by dropping
/// its sender) and later requests fail at once.
fn fail_all(p: &Pending) {
    lock(p).take();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mda::JobMethod;

    fn job(path: std::path::PathBuf, uid: u32) -> LocalJob {
        LocalJob {
            method: JobMethod::Maildir { path, junk: false },
            uid,
            gid: uid,
            sender: None,
        }
    }

    #[tokio::test]
    async fn client_and_broker_deliver_concurrently() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let broker = tokio::spawn(super::super::broker::serve(
            UnixStream::from_std(b).unwrap(),
            1 << 20,
        ));
        let client = JobRunner::Broker(BrokerClient::start(a).unwrap());
        let me = nix::unistd::geteuid().as_raw();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let client = client.clone();
            let path = dir.path().join(format!("u{}/Maildir", i % 3));
            tasks.push(tokio::spawn(async move {
                client
                    .run(
                        job(path, me),
                        Arc::new(format!("Subject: {i}\r\n\r\n").into_bytes()),
                    )
                    .await
            }));
        }
        for t in tasks {
            let o = t.await.unwrap();
            assert!(o.is_ok(), "{o:?}");
        }
        let delivered: usize = (0..3)
            .map(|u| {
                std::fs::read_dir(dir.path().join(format!("u{u}/Maildir/new")))
                    .unwrap()
                    .count()
            })
            .sum();
        assert_eq!(delivered, 20);
        // Policy answers travel back like outcomes.
        let cmd = LocalJob {
            method: JobMethod::Command {
                argv: vec!["/bin/true".into()],
                env: vec![],
                cwd: None,
            },
            uid: 0,
            gid: 0,
            sender: None,
        };
        let o = client.run(cmd, Arc::new(Vec::new())).await;
        assert!(
            matches!(o, Outcome::PermFail(ref s) if s.contains("root")),
            "{o:?}"
        );
        drop(client);
        broker.abort();
    }

    #[tokio::test]
    async fn a_vanished_broker_is_a_temporary_failure() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(b);
        let client = BrokerClient::start(a).unwrap();
        let o = client
            .run(job("/nonexistent".into(), 1), Arc::new(Vec::new()))
            .await;
        assert!(matches!(o, Outcome::TempFail(_)), "{o:?}");
    }
}
