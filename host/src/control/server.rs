//! The control socket's tokio driver: accepts connections, learns who
//! is calling, reads request lines and writes the [`Controller`]'s
//! answers. What each verb does is in [`super::verbs`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn, Instrument};

use super::peer::{Owner, Peer};
use super::protocol::{Request, Response, MAX_REQUEST};
use crate::mta::relay::RelayService;
use crate::smtp::Services;

/// How long a connection may sit without a request.
const IDLE: Duration = Duration::from_secs(300);

/// How long an answer may take to leave: a client that stops reading
/// must not hold its connection forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Control connections open at once (each costs a task and a
/// descriptor; the socket is open to every local user).
const MAX_CONNECTIONS: usize = 128;

/// Hands an accepted `enqueue` connection to an SMTP session, with the
/// session slot it holds.
pub type EnqueueHook = Arc<dyn Fn(UnixStream, Peer, OwnedSemaphorePermit) + Send + Sync>;

/// Everything the verbs act on.
pub struct Controller {
    pub owner: Owner,
    pub services: Arc<Services>,
    pub relay: Option<Arc<RelayService>>,
    pub enqueue: Option<EnqueueHook>,
    /// The daemon's session slots (`smtp max-sessions`): a local enqueue
    /// takes one as a network session does.
    pub sessions: Arc<Semaphore>,
}

/// Serves the control socket forever.
pub async fn serve(listener: UnixListener, ctl: Arc<Controller>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the cap, stop accepting: clients wait in the backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let ctl = ctl.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let peer = match stream.peer_cred() {
                        Ok(c) => Peer {
                            uid: c.uid(),
                            gid: c.gid(),
                            pid: c.pid(),
                        },
                        Err(e) => {
                            warn!("control: cannot learn who connected: {e}");
                            return;
                        }
                    };
                    let span = tracing::info_span!("control", uid = peer.uid);
                    connection(stream, peer, ctl).instrument(span).await;
                });
            }
            Err(e) => {
                warn!("control: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, peer: Peer, ctl: Arc<Controller>) {
    // Asked on the first request that needs it: the user database may
    // be slow (LDAP), and most public requests never need it.
    let mut steer: Option<bool> = None;
    let mut reader = BufReader::new(stream);
    loop {
        let line = match tokio::time::timeout(IDLE, read_line(&mut reader)).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(why)) => {
                let _ = write(&mut reader, &Response::error(why)).await;
                return;
            }
        };
        let request: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                let answer = Response::error(format!("bad request: {e}"));
                if write(&mut reader, &answer).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if !request.is_public() && !*steer.get_or_insert(may_steer(&ctl, peer).await) {
            // One line per refusal, then the connection ends: a loop of
            // refused requests cannot flood the log.
            info!(
                "control: {} refused for uid {}: permission denied",
                request.verb(),
                peer.uid,
            );
            let _ = write(&mut reader, &Response::error("permission denied")).await;
            return;
        }
        if request == Request::Enqueue {
            enqueue(reader, peer, &ctl).await;
            return;
        }
        if !request.steers() {
            debug!("control: {} by uid {}", request.verb(), peer.uid);
        } else {
            info!("control: {} by uid {}", request.verb(), peer.uid);
        }
        let answer = ctl.handle(request).await;
        if write(&mut reader, &answer).await.is_err() {
            return;
        }
    }
}

/// Turns the connection into an SMTP session "from local".
async fn enqueue(mut reader: BufReader<UnixStream>, peer: Peer, ctl: &Controller) {
    let Some(hook) = &ctl.enqueue else {
        let _ = write(
            &mut reader,
            &Response::error("this daemon takes no local mail"),
        )
        .await;
        return;
    };
    let Ok(permit) = ctl.sessions.clone().try_acquire_owned() else {
        let _ = write(
            &mut reader,
            &Response::error("too many sessions, try again later"),
        )
        .await;
        return;
    };
    if !reader.buffer().is_empty() {
        // The SMTP client must wait for the answer (and then the
        // greeting); bytes sent early would be lost to it.
        let _ = write(
            &mut reader,
            &Response::error("data sent before the enqueue answer"),
        )
        .await;
        return;
    }
    if write(&mut reader, &Response::done()).await.is_err() {
        return;
    }
    hook(reader.into_inner(), peer, permit);
}

/// Whether `peer` may steer, asked off the runtime.
async fn may_steer(ctl: &Controller, peer: Peer) -> bool {
    let owner = ctl.owner;
    tokio::task::spawn_blocking(move || owner.may_steer(&peer))
        .await
        .unwrap_or(false)
}

/// One request line without its newline; `None` at a clean end.
async fn read_line(reader: &mut BufReader<UnixStream>) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    loop {
        let buf = reader
            .fill_buf()
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err("request cut short".into())
            };
        }
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > MAX_REQUEST {
            return Err(format!("request longer than {MAX_REQUEST} bytes"));
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(line));
        }
    }
}

async fn write(reader: &mut BufReader<UnixStream>, answer: &Response) -> std::io::Result<()> {
    let stream = reader.get_mut();
    let line = answer.to_line();
    let sent = async {
        stream.write_all(line.as_bytes()).await?;
        stream.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, sent)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}
