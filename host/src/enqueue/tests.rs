//! sendmail against a real local session: a stand-in for the control
//! socket answers the handshake and hands the stream to `serve_local`,
//! as the daemon does.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::*;
use crate::smtp::inbound::ListenerInfo;
use crate::smtp::local::{serve_local, tests::services, LocalPeer};
use crate::smtp::proto::SessionConfig;
use crate::smtp::Services;

/// A control socket that accepts one connection and answers `answer`;
/// after `{"ok":true}` the session is served.
fn control(dir: &std::path::Path, svc: Arc<Services>, answer: &'static str) -> PathBuf {
    let path = dir.join("control.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        assert_eq!(line, "{\"verb\":\"enqueue\"}\n");
        stream.get_mut().write_all(answer.as_bytes()).await.unwrap();
        if answer.contains("true") {
            let peer = LocalPeer {
                uid: 0,
                gid: 0,
                pid: None,
                user: "root".into(),
            };
            let cfg = Arc::new(SessionConfig::new("mx.example.org"));
            let info = Arc::new(ListenerInfo::new("mx.example.org"));
            serve_local(stream.into_inner(), peer, svc, cfg, info).await;
        }
    });
    path
}

async fn send(args: &[&str], input: &'static str, socket: PathBuf) -> Result<Reply, EnqueueError> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let opts = args::parse("sendmail", &args).unwrap();
    tokio::task::spawn_blocking(move || enqueue(&opts, input.as_bytes(), &socket, None))
        .await
        .unwrap()
}

#[tokio::test]
async fn t_message_is_queued_from_local_without_bcc() {
    let dir = tempfile::tempdir().unwrap();
    let svc = services("match from local for any action \"out\"\n", dir.path());
    let socket = control(dir.path(), svc.clone(), "{\"ok\":true}\n");
    let input =
        "To: Bob <bob@example.net>\nBcc: hidden@example.org\nSubject: cron\n\n.leading dot\nbody\n";
    let reply = send(&["-t", "-i", "-f", "cron@example.org"], input, socket)
        .await
        .unwrap();
    assert_eq!(reply.code, 250);
    let mut envs = svc.queue.load_all().unwrap().envelopes;
    envs.sort_by_key(|e| e.rcpt.to_string());
    let rcpts: Vec<String> = envs.iter().map(|e| e.rcpt.to_string()).collect();
    assert_eq!(rcpts, ["bob@example.net", "hidden@example.org"]);
    assert!(envs.iter().all(|e| e.peer.is_none()), "source is local");
    assert_eq!(
        envs[0].sender.as_ref().unwrap().to_string(),
        "cron@example.org"
    );
    let msg = svc.queue.read_message(envs[0].id.msgid()).await.unwrap();
    let text = String::from_utf8(msg).unwrap();
    assert!(
        text.starts_with("Received: from localhost (localhost [local])"),
        "{text}"
    );
    assert!(!text.contains("hidden@"), "{text}");
    assert!(
        text.contains("\r\nFrom: cron@example.org\r\nDate: "),
        "{text}"
    );
    assert!(text.contains("\r\nMessage-ID: <"), "{text}");
    assert!(text.ends_with("\r\n\r\n.leading dot\r\nbody\r\n"), "{text}");
}

#[tokio::test]
async fn a_daemon_that_is_down_is_a_temporary_failure() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody-listens.sock");
    let err = send(&["bob@example.net"], "hi\n", socket.clone())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), error::EX_TEMPFAIL);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot reach wasmtpd at {}: ", socket.display())),
        "{text}"
    );
    assert!(text.ends_with("; nothing was sent"), "{text}");
}

#[tokio::test]
async fn a_refused_handshake_is_a_temporary_failure() {
    let dir = tempfile::tempdir().unwrap();
    let svc = services("match from local for any action \"out\"\n", dir.path());
    let socket = control(
        dir.path(),
        svc,
        "{\"ok\":false,\"error\":\"shutting down\"}\n",
    );
    let err = send(&["bob@example.net"], "hi\n", socket)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), error::EX_TEMPFAIL);
    assert!(
        err.to_string()
            .contains("refused the enqueue: shutting down"),
        "{err}"
    );
}

#[tokio::test]
async fn a_recipient_the_rules_refuse_fails_the_whole_message() {
    let dir = tempfile::tempdir().unwrap();
    let svc = services(
        "match from local for domain \"ok.example\" action \"out\"\n",
        dir.path(),
    );
    let socket = control(dir.path(), svc.clone(), "{\"ok\":true}\n");
    let err = send(&["a@ok.example", "b@no.example"], "hi\n", socket)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), error::EX_NOUSER, "{err}");
    assert!(svc.queue.load_all().unwrap().envelopes.is_empty());
}
