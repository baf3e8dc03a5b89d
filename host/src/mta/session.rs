//! The tokio driver of one outgoing SMTP/LMTP connection: it connects
//! (from a chosen source address), moves bytes between the socket and the
//! sans-IO [`Client`], upgrades to TLS when the client asks, and times
//! every wait out. All protocol decisions are the client's.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tracing::{info, warn};

use super::client::{
    Client, ClientConfig, Event, FailureReason, SessionFailure, Stage, Transaction, TxResult,
};
use super::route::Hop;
use super::tls::{self as client_tls, ClientTls};
use super::url::Scheme;

/// How long each wait may last (Postfix's smtp_*_timeout defaults are
/// of this order).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// A reply, a TLS handshake, or a write.
    pub reply: Duration,
    /// The reply to the final dot, which may wait for the server's own
    /// queue.
    pub data_done: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            reply: Duration::from_secs(300),
            data_done: Duration::from_secs(600),
        }
    }
}

/// The relay's side of a connection.
type Stream = crate::tls::stream::Stream<TlsStream<TcpStream>>;

/// Bytes written under one write timeout.
const WRITE_CHUNK: usize = 64 * 1024;

/// Where and how to connect.
pub struct Target<'a> {
    pub hop: &'a Hop,
    pub scheme: Scheme,
    pub source: Option<IpAddr>,
    pub tls: Arc<ClientTls>,
}

/// One open connection, ready for transactions.
pub struct Connection {
    stream: Stream,
    client: Client,
    tls: Arc<ClientTls>,
    buf: Vec<u8>,
    timeouts: Timeouts,
    /// Failed or closed: never to be reused.
    broken: bool,
    pub session_id: String,
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
    pub server_name: String,
    pub messages: u32,
}

/// A failure of ours (connect, TLS, I/O), not the server's reply.
pub fn local_failure(stage: Stage, text: impl Into<String>) -> SessionFailure {
    SessionFailure {
        reason: FailureReason::Local(text.into()),
        permanent: false,
        stage,
    }
}

impl Connection {
    /// Connects and runs the client up to the point where it may send a
    /// message (greeting, EHLO, STARTTLS, AUTH).
    pub async fn open(
        target: Target<'_>,
        config: ClientConfig,
        timeouts: Timeouts,
    ) -> Result<Connection, SessionFailure> {
        let peer = SocketAddr::new(target.hop.addr, target.hop.port);
        let session_id = format!("{:016x}", rand::random::<u64>());
        info!(
            "smtp-out: Connecting to {}://{} ({}) on session {session_id}",
            target.scheme,
            display_addr(peer),
            target.hop.name
        );
        let client =
            Client::new(config).map_err(|e| local_failure(Stage::Greeting, e.to_string()))?;
        let tcp = timeout(timeouts.connect, connect(peer, target.source))
            .await
            .map_err(|_| local_failure(Stage::Greeting, "Connection timeout"))?
            .map_err(|e| local_failure(Stage::Greeting, format!("Connection failed: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().ok();
        let stream = if target.scheme == Scheme::Smtps {
            let (tls, outcome) = timeout(
                timeouts.reply,
                client_tls::connect(tcp, &target.hop.name, &target.tls),
            )
            .await
            .map_err(|_| local_failure(Stage::TlsHandshake, "TLS handshake timeout"))?
            .map_err(|e| {
                local_failure(Stage::TlsHandshake, format!("TLS handshake failed: {e}"))
            })?;
            log_tls(&session_id, &tls, &outcome);
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        let mut conn = Connection {
            stream,
            client,
            tls: target.tls.clone(),
            buf: vec![0; 16 * 1024],
            timeouts,
            broken: false,
            session_id,
            peer,
            local,
            server_name: target.hop.name.clone(),
            messages: 0,
        };
        match conn.drive(timeouts.reply).await {
            Ok(Event::Ready) => Ok(conn),
            Ok(_) => Err(local_failure(
                conn.client.stage(),
                "unexpected client state",
            )),
            Err(failure) => {
                conn.finish().await;
                Err(failure)
            }
        }
    }

    /// Sends one message. The result holds each recipient's reply, also
    /// when the connection failed halfway (then with temporary replies);
    /// `Err` only when the transaction never started.
    pub async fn send(&mut self, tx: Transaction) -> Result<TxResult, SessionFailure> {
        let stage = self.client.stage();
        self.client
            .send(tx)
            .map_err(|e| local_failure(stage, e.to_string()))?;
        loop {
            match self.drive(self.timeouts.data_done).await {
                Ok(Event::Done(result)) => {
                    self.messages += 1;
                    return Ok(result);
                }
                Ok(_) => continue,
                Err(failure) => return Err(failure),
            }
        }
    }

    /// Whether the connection may carry another message.
    pub fn is_usable(&self) -> bool {
        !self.broken && self.client.is_idle()
    }

    /// Says QUIT (waiting briefly for the reply) and closes.
    pub async fn close(mut self) {
        if !self.broken {
            self.client.quit();
            let _ = timeout(Duration::from_secs(5), self.drive(Duration::from_secs(5))).await;
        }
        self.finish().await;
    }

    async fn finish(&mut self) {
        // What the client still has to say (a QUIT after a refusal).
        while let Some(bytes) = self.client.poll_transmit() {
            if timeout(Duration::from_secs(5), self.stream.write_all(&bytes))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = timeout(Duration::from_secs(5), self.stream.shutdown()).await;
        info!(
            "smtp-out: Closing session {}: {} message{} sent.",
            self.session_id,
            self.messages,
            if self.messages == 1 { "" } else { "s" }
        );
    }

    /// Runs the client until it reports Ready, Done or Closed; a session
    /// failure is the error. I/O trouble is handed to the client
    /// (`abort`), which settles a transaction in flight before failing.
    async fn drive(&mut self, wait: Duration) -> Result<Event, SessionFailure> {
        // One deadline per reply awaited: it starts again whenever a
        // command goes out, so a server dribbling a reply cannot hold
        // the session for ever.
        let mut deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.flush().await {
                Ok(true) => deadline = tokio::time::Instant::now() + wait,
                Ok(false) => {}
                Err(why) => self.client.abort(&why),
            }
            let mut upgraded = false;
            while let Some(event) = self.client.poll_event() {
                match event {
                    Event::StartTls => {
                        if let Err(why) = self.start_tls().await {
                            self.client.abort(&why);
                        }
                        upgraded = true;
                    }
                    Event::Failed(failure) => {
                        self.broken = true;
                        return Err(failure);
                    }
                    Event::Closed => {
                        self.broken = true;
                        return Ok(Event::Closed);
                    }
                    other => return Ok(other),
                }
            }
            if upgraded {
                continue;
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)).await {
                Err(_) => self.client.abort("Read timeout"),
                Ok(Err(e)) => self.client.abort(&format!("Read failed: {e}")),
                Ok(Ok(0)) => self.client.abort("Connection closed by the server"),
                Ok(Ok(n)) => self.client.receive(&self.buf[..n]),
            }
        }
    }

    /// Writes what the client has to say; true when it said something.
    /// Each chunk has its own timeout: a large message on a slow link
    /// takes as long as it takes, a stalled one does not.
    async fn flush(&mut self) -> Result<bool, String> {
        let mut wrote = false;
        while let Some(bytes) = self.client.poll_transmit() {
            for chunk in bytes.chunks(WRITE_CHUNK) {
                timeout(self.timeouts.reply, self.stream.write_all(chunk))
                    .await
                    .map_err(|_| "Write timeout".to_string())?
                    .map_err(|e| format!("Write failed: {e}"))?;
            }
            wrote = true;
        }
        timeout(self.timeouts.reply, self.stream.flush())
            .await
            .map_err(|_| "Write timeout".to_string())?
            .map_err(|e| format!("Write failed: {e}"))?;
        Ok(wrote)
    }

    async fn start_tls(&mut self) -> Result<(), String> {
        let tls = self.tls.clone();
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err("STARTTLS on a TLS connection".into());
        };
        let (stream, outcome) = timeout(
            self.timeouts.reply,
            client_tls::connect(tcp, &self.server_name, &tls),
        )
        .await
        .map_err(|_| "TLS handshake timeout".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
        log_tls(&self.session_id, &stream, &outcome);
        self.stream = Stream::Tls(Box::new(stream));
        self.client.tls_established();
        Ok(())
    }

    /// Whether the server closed an idle connection meanwhile (a pooled
    /// connection is checked before reuse).
    pub fn is_stale(&self) -> bool {
        match &self.stream {
            Stream::Plain(tcp) => peer_closed(tcp),
            Stream::Tls(s) => peer_closed(s.get_ref().0),
            Stream::Upgrading => true,
        }
    }
}

fn peer_closed(tcp: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    // Readable with no data pending means EOF (or junk we did not ask
    // for): either way the connection is not reusable.
    match tcp.try_read(&mut probe) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

async fn connect(peer: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(src) = source {
        if src.is_ipv4() == peer.is_ipv4() {
            socket.bind(SocketAddr::new(src, 0))?;
        }
    }
    socket.connect(peer).await
}

fn log_tls(session: &str, stream: &TlsStream<TcpStream>, outcome: &client_tls::TlsOutcome) {
    info!(
        "smtp-out: Started TLS on session {session}: {}",
        client_tls::describe(stream.get_ref().1)
    );
    match &outcome.error {
        None if outcome.verified => {
            info!("smtp-out: Server certificate verification succeeded on session {session}")
        }
        Some(why) => {
            warn!("smtp-out: Server certificate verification failed on session {session}: {why}")
        }
        None => warn!("smtp-out: Server certificate verification failed on session {session}"),
    }
}

/// `1.2.3.4:25`, `[::1]:25`.
pub fn display_addr(a: SocketAddr) -> String {
    a.to_string()
}
