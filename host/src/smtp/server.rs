//! The tokio driver of inbound SMTP: accepts connections, feeds bytes to
//! the sans-IO [`Session`], writes its replies and hands its events to
//! [`Inbound`]. Nothing protocol-related is decided here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn, Instrument};

use crate::smtp::inbound::{Inbound, ListenerInfo};
use crate::smtp::limits::PerClient;
use crate::smtp::proto::{Output, Session, SessionConfig};
use crate::smtp::Services;
use crate::tls::{self, Stream};

/// How long a TLS handshake may take before the session is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a reply may take to leave: RFC 5321 §4.5.3.2's 5 minutes.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Everything one listening socket needs.
pub struct Listener {
    pub socket: TcpListener,
    pub session: Arc<SessionConfig>,
    pub info: Arc<ListenerInfo>,
    /// For `tls`, `tls-require` and `smtps` listeners.
    pub tls: Option<TlsAcceptor>,
    /// `smtps`: the handshake comes first, before the greeting.
    pub smtps: bool,
}

/// Accepts connections forever; each runs as its own task. `sessions`
/// bounds the sessions across all listeners.
pub async fn serve(
    listener: Listener,
    services: Arc<Services>,
    sessions: Arc<Semaphore>,
    per_client: Arc<PerClient>,
) {
    loop {
        services.intake.open().await;
        // A pause takes effect at once, not after the next client.
        let accepted = tokio::select! {
            conn = listener.socket.accept() => conn,
            () = services.intake.closed() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("smtp-in: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(client_slot) = per_client.try_acquire(peer.ip()) else {
            tokio::spawn(refuse(stream, TOO_MANY_FROM_YOU));
            continue;
        };
        let permit = match sessions.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tokio::spawn(refuse(stream, TOO_MANY));
                continue;
            }
        };
        let (services, session_cfg, info) = (
            services.clone(),
            listener.session.clone(),
            listener.info.clone(),
        );
        let tls = Tls {
            acceptor: listener.tls.clone(),
            smtps: listener.smtps,
        };
        tokio::spawn(async move {
            let _permit = (permit, client_slot);
            let session_id = format!("{:016x}", rand::random::<u64>());
            let span = tracing::info_span!("session", id = %session_id);
            run(stream, peer, services, session_cfg, info, tls, session_id)
                .instrument(span)
                .await;
        });
    }
}

const TOO_MANY: &[u8] = b"421 4.3.2 Too many connections, try again later\r\n";
const TOO_MANY_FROM_YOU: &[u8] = b"421 4.7.0 Too many connections from your address\r\n";

async fn refuse(mut stream: TcpStream, reply: &'static [u8]) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(reply)).await;
}

/// A listener's TLS side, as one session sees it.
struct Tls {
    acceptor: Option<TlsAcceptor>,
    smtps: bool,
}

async fn run(
    tcp: TcpStream,
    peer: SocketAddr,
    services: Arc<Services>,
    session_cfg: Arc<SessionConfig>,
    info: Arc<ListenerInfo>,
    tls: Tls,
    session_id: String,
) {
    // Replies are small and the client waits for each batch.
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().unwrap_or(peer);
    let mut stream = Stream::Plain(tcp);
    if tls.smtps {
        stream = match upgrade(stream, tls.acceptor.as_ref(), &session_id).await {
            Some(s) => s,
            None => return,
        };
    }
    let peer_name = peer_name(peer);
    let mut inbound = Inbound::new(services, info, session_id.clone(), (peer, local), peer_name);
    let mut session = Session::new(session_cfg, tls.smtps);
    if let (true, Stream::Tls(tls_stream)) = (tls.smtps, &stream) {
        inbound
            .tls_started(&session, tls::describe(tls_stream.as_ref()))
            .await;
    }
    let timed_out = loop {
        match converse(&mut stream, &mut session, &mut inbound).await {
            Ended::Closed { timed_out } => break timed_out,
            Ended::StartTls => {
                // Whatever the client pipelined after STARTTLS was fed to
                // the session, which dropped it (CVE-2011-0411); nothing
                // of it is kept here, so the handshake reads only fresh
                // bytes.
                stream = match upgrade(stream, tls.acceptor.as_ref(), &session_id).await {
                    Some(s) => s,
                    None => return,
                };
                session.tls_established();
                if let Stream::Tls(tls_stream) = &stream {
                    inbound
                        .tls_started(&session, tls::describe(tls_stream.as_ref()))
                        .await;
                }
            }
        }
    };
    close(stream, &session, &mut inbound, timed_out).await;
}

/// Why [`converse`] returned.
pub(crate) enum Ended {
    /// The session is over: closed by either side, or idle too long.
    Closed { timed_out: bool },
    /// The client asked for STARTTLS and got its 220: the caller upgrades
    /// the stream (or ends the session) and calls `converse` again.
    StartTls,
}

/// The per-connection loop over any byte stream (TCP, TLS, the local
/// enqueue socket): feeds the session, writes its replies and hands its
/// events to `inbound`.
pub(crate) async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    session: &mut Session,
    inbound: &mut Inbound,
) -> Ended {
    let mut out: Vec<u8> = Vec::with_capacity(512);
    let mut buf = vec![0u8; 64 * 1024];
    let mut closing = false;
    let mut timed_out = false;
    loop {
        let mut starttls = false;
        while let Some(output) = session.poll() {
            match output {
                Output::Write(bytes) => out.extend_from_slice(&bytes),
                Output::Event(event) => {
                    let decision = inbound.on_event(event, session).await;
                    session.decide(decision);
                }
                Output::StartTls => starttls = true,
                Output::Close => closing = true,
            }
        }
        if !out.is_empty() {
            // A client that stops reading must not hold its slot forever.
            let written = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&out)).await;
            if !matches!(written, Ok(Ok(()))) {
                return Ended::Closed { timed_out };
            }
            out.clear();
        }
        if closing {
            return Ended::Closed { timed_out };
        }
        if starttls {
            return Ended::StartTls;
        }
        match tokio::time::timeout(session.idle_timeout(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ended::Closed { timed_out },
            Ok(Ok(n)) => session.feed(&buf[..n]),
            Err(_) => {
                info!("smtp-in: session {}: timeout", inbound.session_id);
                // The session writes its 421 and closes on the next turn.
                timed_out = true;
                session.timed_out();
            }
        }
    }
}

/// The end of a session, whatever the stream: shutdown, the filters'
/// last reports, the log line.
pub(crate) async fn close<S: AsyncWrite + Unpin>(
    mut stream: S,
    session: &Session,
    inbound: &mut Inbound,
    timed_out: bool,
) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.shutdown()).await;
    inbound.finish(session, timed_out).await;
    info!("smtp-in: Closing session {}", inbound.session_id);
}

/// The TLS handshake on a plain stream. A failure ends this session only:
/// it is logged and the connection dropped.
async fn upgrade(
    stream: Stream,
    acceptor: Option<&TlsAcceptor>,
    session_id: &str,
) -> Option<Stream> {
    let tcp = match stream {
        Stream::Plain(tcp) => tcp,
        already @ Stream::Tls(_) => return Some(already),
        Stream::Upgrading => return None,
    };
    let Some(acceptor) = acceptor else {
        // The session offers STARTTLS only on listeners with TLS set up.
        warn!("smtp-in: session {session_id}: STARTTLS on a listener without TLS");
        return None;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls_stream)) => {
            info!(
                "smtp-in: Started TLS on session {session_id}: {}",
                tls::describe(&tls_stream)
            );
            Some(Stream::Tls(Box::new(tls_stream)))
        }
        Ok(Err(err)) => {
            info!("smtp-in: TLS handshake failed on session {session_id}: {err}");
            None
        }
        Err(_) => {
            info!("smtp-in: TLS handshake failed on session {session_id}: timeout");
            None
        }
    }
}

/// The client's name for logs until reverse DNS lands with the resolver.
fn peer_name(peer: SocketAddr) -> String {
    if peer.ip().is_loopback() {
        "localhost".to_string()
    } else {
        "<unknown>".to_string()
    }
}
