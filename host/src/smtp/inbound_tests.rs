//! AUTH and `senders` as a submission client sees them, through the
//! real event handler and the sans-IO session (AUTH offered in clear
//! here so no TLS is needed): relaying only once authenticated, the
//! same 535 for any wrong part, slowed failures, owned senders only.

use std::time::Instant;

use super::*;
use crate::smtp::proto::{Output, SessionConfig};

const DELAY: Duration = Duration::from_millis(100);

struct Submission {
    session: Session,
    inbound: Inbound,
    _spool: tempfile::TempDir,
}

impl Submission {
    fn new(senders: bool) -> Submission {
        Submission::with(senders, false)
    }

    fn with(senders: bool, masquerade: bool) -> Submission {
        let hash = auth::encrypt("s3cret").unwrap();
        let text = format!(
            "table creds {{ \"joe\" = \"{hash}\" }}\n\
             table owned {{ \"joe\" = \"joe@example.org, @joe.example.net\" }}\n\
             listen on 127.0.0.1 port 2587 auth <creds>\n\
             action \"out\" relay\n\
             action \"md\" maildir \"/nonexistent/%{{dest.user}}\"\n\
             match from any for local action \"md\"\n\
             match auth from any for any action \"out\"\n"
        );
        let spool = tempfile::tempdir().unwrap();
        let services = crate::smtp::testkit::services(&text, spool.path());
        let listener = ListenerInfo {
            auth_table: Some("creds".into()),
            senders: senders.then(|| "owned".into()),
            masquerade,
            auth_failure_delay: DELAY,
            ..ListenerInfo::new("mx.example.org")
        };
        let session_cfg = SessionConfig {
            auth: true,
            auth_required: false,
            auth_plaintext: true,
            ..SessionConfig::new("mx.example.org")
        };
        Submission {
            session: Session::new(Arc::new(session_cfg), false),
            inbound: Inbound::new(
                services,
                Arc::new(listener),
                "0123456789abcdef".into(),
                (
                    "192.0.2.7:41000".parse().unwrap(),
                    "192.0.2.1:587".parse().unwrap(),
                ),
                "client.example.net".into(),
            ),
            _spool: spool,
        }
    }

    /// Sends `line` and returns every reply written until input is needed.
    async fn cmd(&mut self, line: &str) -> String {
        self.session.feed(format!("{line}\r\n").as_bytes());
        self.run().await
    }

    async fn run(&mut self) -> String {
        let mut out = String::new();
        while let Some(o) = self.session.poll() {
            match o {
                Output::Write(w) => out.push_str(&String::from_utf8_lossy(&w)),
                Output::Event(e) => {
                    let d = self.inbound.on_event(e, &self.session).await;
                    self.session.decide(d);
                }
                Output::StartTls | Output::Close => {}
            }
        }
        out
    }

    async fn ready() -> Submission {
        let mut s = Submission::new(true);
        s.run().await;
        assert!(s
            .cmd("EHLO client.example.net")
            .await
            .contains("AUTH PLAIN LOGIN"));
        s
    }
}

fn plain(user: &str, pass: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
    format!("AUTH PLAIN {b}")
}

const OK: &str = "235 2.7.0 Authentication succeeded\r\n";
const FAILED: &str = "535 5.7.8 Authentication failed\r\n";

#[tokio::test]
async fn relays_only_for_an_authenticated_client() {
    let mut s = Submission::ready().await;
    assert!(s
        .cmd("MAIL FROM:<joe@example.org>")
        .await
        .starts_with("250"));
    let r = s.cmd("RCPT TO:<someone@example.com>").await;
    assert!(r.starts_with("550"), "unauthenticated relay: {r}");
    assert!(s.cmd("RSET").await.starts_with("250"));
    assert_eq!(s.cmd(&plain("joe", "s3cret")).await, OK);
    assert_eq!(s.session.auth_user(), Some("joe"));
    assert!(s
        .cmd("MAIL FROM:<joe@example.org>")
        .await
        .starts_with("250"));
    let r = s.cmd("RCPT TO:<someone@example.com>").await;
    assert!(r.starts_with("250"), "authenticated relay: {r}");
    assert!(s.cmd("DATA").await.starts_with("354"));
    let r = s.cmd("Subject: hi\r\n\r\nhello\r\n.").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let tx_env = s.inbound.services.queue.load_all().unwrap().envelopes;
    assert_eq!(tx_env.len(), 1);
    assert_eq!(tx_env[0].auth_user.as_deref(), Some("joe"));
}

#[tokio::test]
async fn wrong_user_or_password_same_reply_and_slowed() {
    let mut s = Submission::ready().await;
    let start = Instant::now();
    assert_eq!(s.cmd(&plain("joe", "wrong")).await, FAILED);
    assert!(start.elapsed() >= DELAY, "first failure waits the delay");
    let start = Instant::now();
    assert_eq!(s.cmd(&plain("nobody", "s3cret")).await, FAILED);
    assert!(start.elapsed() >= DELAY * 2, "the delay grows");
    assert_eq!(s.session.auth_user(), None);
    assert_eq!(s.cmd(&plain("joe", "s3cret")).await, OK);
}

#[tokio::test]
async fn brute_force_is_cut_off() {
    let mut s = Submission::ready().await;
    assert_eq!(s.cmd(&plain("joe", "a")).await, FAILED);
    assert_eq!(s.cmd(&plain("joe", "b")).await, FAILED);
    let r = s.cmd(&plain("joe", "c")).await;
    assert_eq!(
        r,
        format!("{FAILED}421 4.7.0 Too many authentication failures\r\n")
    );
    assert!(s.session.is_closed());
}

#[tokio::test]
async fn senders_table_restricts_mail_from() {
    let mut s = Submission::ready().await;
    assert_eq!(s.cmd(&plain("joe", "s3cret")).await, OK);
    assert_eq!(
        s.cmd("MAIL FROM:<ann@example.org>").await,
        "550 5.7.1 Sender address rejected: not owned by user\r\n"
    );
    assert_eq!(
        s.cmd("MAIL FROM:<>").await,
        "550 5.7.1 Sender address rejected: not owned by user\r\n"
    );
    assert!(s
        .cmd("MAIL FROM:<x@joe.example.net>")
        .await
        .starts_with("250"));
}

#[tokio::test]
async fn senders_not_checked_without_auth() {
    let mut s = Submission::ready().await;
    assert!(s
        .cmd("MAIL FROM:<ann@example.org>")
        .await
        .starts_with("250"));
}

#[tokio::test]
async fn no_credentials_table_is_a_temporary_failure() {
    let mut s = Submission::new(false);
    let listener = ListenerInfo {
        auth_table: None,
        ..(*s.inbound.listener).clone()
    };
    s.inbound.listener = Arc::new(listener);
    s.run().await;
    s.cmd("EHLO x").await;
    assert_eq!(
        s.cmd(&plain("joe", "s3cret")).await,
        "454 4.7.0 Temporary authentication failure\r\n"
    );
}

#[tokio::test]
async fn masquerade_rewrites_the_from_header() {
    let mut s = Submission::with(true, true);
    s.run().await;
    s.cmd("EHLO client.example.net").await;
    assert_eq!(s.cmd(&plain("joe", "s3cret")).await, OK);
    assert!(s
        .cmd("MAIL FROM:<joe@example.org>")
        .await
        .starts_with("250"));
    assert!(s
        .cmd("RCPT TO:<someone@example.com>")
        .await
        .starts_with("250"));
    assert!(s.cmd("DATA").await.starts_with("354"));
    let r = s
        .cmd("From: Joe <ceo@example.org>\r\nSubject: hi\r\n\r\nhello\r\n.")
        .await;
    assert!(r.starts_with("250"), "{r}");
    let envs = s.inbound.services.queue.load_all().unwrap().envelopes;
    let msg = s
        .inbound
        .services
        .queue
        .read_message(envs[0].id.msgid())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&msg);
    assert!(
        text.contains("\r\nFrom: Joe <joe@example.org>\r\n"),
        "{text}"
    );
    assert!(!text.contains("ceo@"), "{text}");
}

#[tokio::test]
async fn a_session_is_counted_from_connect_to_drop() {
    use crate::stats::Value;
    let mut s = Submission::ready().await;
    let stats = s.inbound.services.stats.clone();
    let get = |k: &str| stats.snapshot().get(k).cloned();
    assert_eq!(get("smtp.session.connect"), Some(Value::Counter(1)));
    assert_eq!(get("smtp.session.inet4"), Some(Value::Counter(1)));
    assert_eq!(get("smtp.session"), Some(Value::Gauge(1)));
    assert_eq!(s.cmd(&plain("joe", "wrong")).await, FAILED);
    assert_eq!(s.cmd(&plain("joe", "s3cret")).await, OK);
    assert_eq!(get("smtp.auth.fail"), Some(Value::Counter(1)));
    assert_eq!(get("smtp.auth.ok"), Some(Value::Counter(1)));
    s.cmd("MAIL FROM:<joe@example.org>").await;
    s.cmd("RCPT TO:<someone@example.com>").await;
    s.cmd("RCPT TO:<other@example.com>").await;
    s.cmd("DATA").await;
    let r = s.cmd("Subject: hi\r\n\r\nhello\r\n.").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(get("queue.envelope.enqueued"), Some(Value::Counter(2)));
    // A message with a looping trace is refused.
    s.cmd("MAIL FROM:<joe@example.org>").await;
    s.cmd("RCPT TO:<someone@example.com>").await;
    s.cmd("DATA").await;
    let hops = "Received: from x\r\n".repeat(120);
    let r = s.cmd(&format!("{hops}Subject: hi\r\n\r\nhello\r\n.")).await;
    assert!(r.starts_with("554 5.4.6"), "{r}");
    assert_eq!(get("smtp.message.rejected"), Some(Value::Counter(1)));
    assert_eq!(get("smtp.session.disconnect"), Some(Value::Counter(0)));
    drop(s);
    assert_eq!(get("smtp.session.disconnect"), Some(Value::Counter(1)));
    assert_eq!(get("smtp.session"), Some(Value::Gauge(0)));
}
