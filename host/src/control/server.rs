//! The control socket's tokio driver: accepts connections, learns who
//! is calling, reads request lines and writes the [`Controller`]'s
//! answers. What each verb does is in [`super::verbs`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn, Instrument};

use super::peer::{user_name, Owner, Peer};
use super::protocol::{Request, Response, MAX_REQUEST};
use crate::mta::relay::RelayService;
use crate::smtp::Services;

/// How long a connection may sit without a request.
const IDLE: Duration = Duration::from_secs(300);

/// Hands an accepted `enqueue` connection to an SMTP session.
pub type EnqueueHook = Arc<dyn Fn(UnixStream, Peer) + Send + Sync>;

/// Everything the verbs act on.
pub struct Controller {
    pub owner: Owner,
    pub services: Arc<Services>,
    pub relay: Option<Arc<RelayService>>,
    pub enqueue: Option<EnqueueHook>,
}

/// Serves the control socket forever.
pub async fn serve(listener: UnixListener, ctl: Arc<Controller>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let ctl = ctl.clone();
                tokio::spawn(async move {
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
    let steer = ctl.owner.may_steer(&peer);
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
        if !steer && !request.is_public() {
            info!(
                "control: {} refused for uid {} ({}): permission denied",
                request.verb(),
                peer.uid,
                user_name(peer.uid)
            );
            let answer = Response::error("permission denied");
            if write(&mut reader, &answer).await.is_err() {
                return;
            }
            continue;
        }
        if request == Request::Enqueue {
            enqueue(reader, peer, &ctl).await;
            return;
        }
        if !request.steers() {
            debug!("control: {} by uid {}", request.verb(), peer.uid);
        } else {
            info!(
                "control: {} by uid {} ({})",
                request.verb(),
                peer.uid,
                user_name(peer.uid)
            );
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
    hook(reader.into_inner(), peer);
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
    stream.write_all(answer.to_line().as_bytes()).await?;
    stream.flush().await
}
