//! SMTP sessions of the local enqueue (`sendmail`, like OpenSMTPD's
//! `smtpctl enqueue`): the control socket hands over a connected stream
//! and the peer's credentials, and the same sans-IO session and event
//! handler as TCP sessions run over it.
//!
//! Such a session is `from local` and `from socket` for the rules, has no
//! peer address (`[local]` in logs and the Received header, af `local`
//! in `show queue`), and needs neither STARTTLS nor AUTH: the kernel
//! already said who the peer is, and the connect log line names it.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use crate::smtp::inbound::{Inbound, ListenerInfo};
use crate::smtp::proto::{Session, SessionConfig};
use crate::smtp::server::{close, converse, Ended};
use crate::smtp::Services;

/// Who is on the other end of the local socket (SO_PEERCRED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPeer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// The login name of `uid`, or the number when it has none.
    pub user: String,
}

/// Runs one local SMTP session to its end. The greeting is the first
/// thing written, so the caller must already have sent its own answer
/// (`{"ok":true}`) on the stream.
pub async fn serve_local<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut stream: S,
    peer: LocalPeer,
    services: Arc<Services>,
    session_cfg: Arc<SessionConfig>,
    info: Arc<ListenerInfo>,
) {
    let session_id = format!("{:016x}", rand::random::<u64>());
    let span = tracing::info_span!("session", id = %session_id);
    async move {
        let mut inbound = Inbound::new_local(services, info, session_id, peer);
        let mut session = Session::new(local_config(session_cfg), false);
        let timed_out = match converse(&mut stream, &mut session, &mut inbound).await {
            Ended::Closed { timed_out } => timed_out,
            // Never offered (see `local_config`); a session that still
            // gets there has nothing to upgrade to.
            Ended::StartTls => false,
        };
        close(stream, &session, &mut inbound, timed_out).await;
    }
    .instrument(span)
    .await
}

/// The listener's settings without TLS or AUTH: the socket is local and
/// its peer known, so neither may be demanded of it.
fn local_config(cfg: Arc<SessionConfig>) -> Arc<SessionConfig> {
    if !(cfg.starttls || cfg.tls_required || cfg.auth || cfg.auth_required) {
        return cfg;
    }
    Arc::new(SessionConfig {
        starttls: false,
        tls_required: false,
        auth: false,
        auth_required: false,
        ..(*cfg).clone()
    })
}

#[cfg(test)]
#[path = "local_tests.rs"]
pub(crate) mod tests;
