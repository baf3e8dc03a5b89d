//! The tokio driver of inbound SMTP: accepts connections, feeds bytes to
//! the sans-IO [`Session`], writes its replies and hands its events to
//! [`Inbound`]. Nothing protocol-related is decided here.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{info, warn, Instrument};

use crate::smtp::inbound::{Inbound, ListenerInfo};
use crate::smtp::proto::{Output, Session, SessionConfig};
use crate::smtp::Services;

/// Everything one listening socket needs.
pub struct Listener {
    pub socket: TcpListener,
    pub session: Arc<SessionConfig>,
    pub info: Arc<ListenerInfo>,
}

/// Accepts connections forever; each runs as its own task. `sessions`
/// bounds the sessions across all listeners.
pub async fn serve(listener: Listener, services: Arc<Services>, sessions: Arc<Semaphore>) {
    loop {
        let (stream, peer) = match listener.socket.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("smtp-in: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match sessions.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tokio::spawn(refuse_busy(stream));
                continue;
            }
        };
        let (services, session_cfg, info) = (
            services.clone(),
            listener.session.clone(),
            listener.info.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let session_id = format!("{:016x}", rand::random::<u64>());
            let span = tracing::info_span!("session", id = %session_id);
            run(stream, peer, services, session_cfg, info, session_id)
                .instrument(span)
                .await;
        });
    }
}

async fn refuse_busy(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"421 4.3.2 Too many connections, try again later\r\n")
        .await;
}

async fn run(
    mut stream: TcpStream,
    peer: SocketAddr,
    services: Arc<Services>,
    session_cfg: Arc<SessionConfig>,
    info: Arc<ListenerInfo>,
    session_id: String,
) {
    // Replies are small and the client waits for each batch.
    let _ = stream.set_nodelay(true);
    let peer_name = peer_name(peer);
    let mut inbound = Inbound::new(services, info, session_id.clone(), peer, peer_name);
    let mut session = Session::new(session_cfg, false);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    let mut buf = vec![0u8; 64 * 1024];
    let mut closing = false;
    loop {
        while let Some(output) = session.poll() {
            match output {
                Output::Write(bytes) => out.extend_from_slice(&bytes),
                Output::Event(event) => {
                    let decision = inbound.on_event(event, &session).await;
                    session.decide(decision);
                }
                // STARTTLS is not offered until TLS support lands, so the
                // session never asks for it.
                Output::StartTls => closing = true,
                Output::Close => closing = true,
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if closing {
            break;
        }
        match tokio::time::timeout(session.idle_timeout(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => session.feed(&buf[..n]),
            Err(_) => {
                info!("smtp-in: session {session_id}: timeout");
                session.timed_out();
            }
        }
    }
    let _ = stream.shutdown().await;
    info!("smtp-in: Closing session {session_id}");
}

/// The client's name for logs until reverse DNS lands with the resolver.
fn peer_name(peer: SocketAddr) -> String {
    if peer.ip().is_loopback() {
        "localhost".to_string()
    } else {
        "<unknown>".to_string()
    }
}
