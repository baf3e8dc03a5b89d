//! Local enqueue sessions over a socket pair, against real services: what
//! a `sendmail` client sees, and what the queue keeps.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::*;

/// Services whose config is `action "out" relay` and `rules`, queue in `spool`.
pub(crate) fn services(rules: &str, spool: &Path) -> Arc<Services> {
    crate::smtp::testkit::services(&format!("action \"out\" relay\n{rules}"), spool)
}

fn joe() -> LocalPeer {
    LocalPeer {
        uid: 1000,
        gid: 1000,
        pid: Some(4242),
        user: "joe".into(),
    }
}

/// The client end of a local session.
struct Client {
    lines: BufReader<UnixStream>,
}

impl Client {
    fn start(services: Arc<Services>, cfg: SessionConfig) -> Client {
        let (ours, theirs) = UnixStream::pair().unwrap();
        tokio::spawn(serve_local(
            theirs,
            joe(),
            services,
            Arc::new(cfg),
            Arc::new(ListenerInfo::new("mx.example.org")),
        ));
        Client {
            lines: BufReader::new(ours),
        }
    }

    /// One whole reply, continuation lines included.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).await.unwrap();
            assert!(n > 0, "closed after {all:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        let wire = format!("{line}\r\n");
        self.lines
            .get_mut()
            .write_all(wire.as_bytes())
            .await
            .unwrap();
        self.reply().await
    }
}

/// Greeting through DATA's end, for one recipient; returns the last reply.
async fn send(client: &mut Client, from: &str, to: &str) -> String {
    assert!(client.reply().await.starts_with("220 "));
    let ehlo = client.cmd("EHLO localhost").await;
    assert!(ehlo.starts_with("250"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    let r = client.cmd(&format!("MAIL FROM:<{from}>")).await;
    assert!(r.starts_with("250"), "{r}");
    let r = client.cmd(&format!("RCPT TO:<{to}>")).await;
    if !r.starts_with("250") {
        return r;
    }
    assert!(client.cmd("DATA").await.starts_with("354"));
    client.cmd("Subject: hi\r\n\r\nhello\r\n.").await
}

#[tokio::test]
async fn a_local_message_is_queued_with_a_local_source() {
    let spool = tempfile::tempdir().unwrap();
    let svc = services("match from local for any action \"out\"\n", spool.path());
    let mut client = Client::start(svc.clone(), SessionConfig::new("mx.example.org"));
    let r = send(&mut client, "anyone@example.com", "bob@example.net").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert!(client.cmd("QUIT").await.starts_with("221"));

    let envs = svc.queue.load_all().unwrap().envelopes;
    assert_eq!(envs.len(), 1);
    assert_eq!(envs[0].peer, None, "no peer address: af local");
    assert_eq!(envs[0].peer_name, "localhost");
    assert_eq!(
        envs[0].sender.as_ref().unwrap().to_string(),
        "anyone@example.com"
    );
    let msg = svc.queue.read_message(envs[0].id.msgid()).await.unwrap();
    let text = String::from_utf8_lossy(&msg);
    assert!(
        text.starts_with("Received: from localhost (localhost [local])\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn from_socket_matches_and_from_src_does_not() {
    let spool = tempfile::tempdir().unwrap();
    let rules = "match from src 127.0.0.1 for domain \"a.example\" action \"out\"\n\
                 match from socket for domain \"b.example\" action \"out\"\n";
    let svc = services(rules, spool.path());
    let mut client = Client::start(svc.clone(), SessionConfig::new("mx.example.org"));
    let r = send(&mut client, "joe@localhost", "x@a.example").await;
    assert!(
        r.starts_with("550"),
        "a local session has no source address: {r}"
    );
    let r = client.cmd("RCPT TO:<x@b.example>").await;
    assert!(r.starts_with("250"), "{r}");
}

#[tokio::test]
async fn neither_tls_nor_auth_is_demanded() {
    let spool = tempfile::tempdir().unwrap();
    let svc = services("match from local for any action \"out\"\n", spool.path());
    let cfg = SessionConfig {
        starttls: true,
        tls_required: true,
        auth: true,
        auth_required: true,
        ..SessionConfig::new("mx.example.org")
    };
    let mut client = Client::start(svc, cfg);
    let r = send(&mut client, "joe@localhost", "bob@example.net").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
}

#[tokio::test]
async fn mail_a_rule_refuses_is_refused() {
    let spool = tempfile::tempdir().unwrap();
    let svc = services("match from local for local action \"out\"\n", spool.path());
    let mut client = Client::start(svc.clone(), SessionConfig::new("mx.example.org"));
    let r = send(&mut client, "joe@localhost", "bob@example.net").await;
    assert!(r.starts_with("550"), "{r}");
    assert!(svc.queue.load_all().unwrap().envelopes.is_empty());
}
