//! LMTP delivery (RFC 2033) to a local mail store such as Dovecot or
//! Cyrus, over a unix socket or TCP.
//!
//! Unlike SMTP, the server answers DATA once per accepted recipient, so
//! each recipient gets its own [`Outcome`].

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;

use super::reply::{read_reply, Reply};
use super::{MdaError, Outcome};
use crate::mailaddr::MailAddr;

const DEFAULT_PORT: u16 = 24;

/// Timeouts of one session; tests shorten them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    /// Per reply, and per command or message written.
    pub reply: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            reply: Duration::from_secs(300),
        }
    }
}

/// Delivers `content` to `rcpts` over LMTP at `dest` (`/unix/socket`,
/// `host:port`, `[v6]:port`, or a host alone for port 24). Returns one
/// outcome per recipient, in order. `Err` means no recipient got a
/// definite answer; the caller treats that as a temporary failure for all
/// (or permanent, per [`MdaError::is_temporary`]).
pub async fn deliver_lmtp(
    dest: &str,
    lhlo: &str,
    sender: Option<&MailAddr>,
    rcpts: &[MailAddr],
    content: &[u8],
) -> Result<Vec<Outcome>, MdaError> {
    deliver_lmtp_with(dest, lhlo, sender, rcpts, content, Timeouts::default()).await
}

pub(crate) async fn deliver_lmtp_with(
    dest: &str,
    lhlo: &str,
    sender: Option<&MailAddr>,
    rcpts: &[MailAddr],
    content: &[u8],
    t: Timeouts,
) -> Result<Vec<Outcome>, MdaError> {
    if rcpts.is_empty() {
        return Ok(Vec::new());
    }
    if lhlo.is_empty() || !lhlo.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MdaError::BadDestination(format!("LHLO name {lhlo:?}")));
    }
    let connect_err = |source| MdaError::Connect {
        dest: dest.to_string(),
        source,
    };
    let connect_timeout = || MdaError::Timeout(format!("connecting to LMTP server {dest}"));
    match parse_dest(dest)? {
        Dest::Unix(path) => {
            let s = timeout(t.connect, UnixStream::connect(path))
                .await
                .map_err(|_| connect_timeout())?
                .map_err(connect_err)?;
            session(s, lhlo, sender, rcpts, content, t).await
        }
        Dest::Tcp(host, port) => {
            let s = timeout(t.connect, TcpStream::connect((host.as_str(), port)))
                .await
                .map_err(|_| connect_timeout())?
                .map_err(connect_err)?;
            session(s, lhlo, sender, rcpts, content, t).await
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Dest<'a> {
    Unix(&'a Path),
    Tcp(String, u16),
}

fn parse_dest(dest: &str) -> Result<Dest<'_>, MdaError> {
    let bad = || MdaError::BadDestination(dest.to_string());
    if dest.starts_with('/') {
        return Ok(Dest::Unix(Path::new(dest)));
    }
    let (host, port) = if let Some(rest) = dest.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if dest.matches(':').count() > 1 {
        // A bare IPv6 literal: no port can be told apart.
        (dest, None)
    } else {
        match dest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (dest, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?,
    };
    Ok(Dest::Tcp(host.to_string(), port))
}

/// Angle-bracketed path for MAIL/RCPT, refusing anything that could
/// inject a command line.
fn path_of(addr: Option<&MailAddr>) -> Result<String, MdaError> {
    let s = addr.map(|a| a.to_string()).unwrap_or_default();
    if s.bytes()
        .any(|b| b.is_ascii_control() || b == b'<' || b == b'>')
    {
        return Err(MdaError::BadAddress(s));
    }
    Ok(format!("<{s}>"))
}

fn outcome_of(reply: &Reply) -> Outcome {
    match reply.class() {
        2 => Outcome::Ok(reply.to_string()),
        4 => Outcome::TempFail(reply.to_string()),
        _ => Outcome::PermFail(reply.to_string()),
    }
}

struct Conn<S> {
    io: BufReader<S>,
    t: Timeouts,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn reply(&mut self, what: &str) -> Result<Reply, MdaError> {
        timeout(self.t.reply, read_reply(&mut self.io))
            .await
            .map_err(|_| MdaError::Timeout(format!("waiting for reply to {what}")))?
    }

    async fn send(&mut self, data: &[u8], what: &str) -> Result<(), MdaError> {
        let w = self.io.get_mut();
        let io = async {
            w.write_all(data).await?;
            w.flush().await
        };
        timeout(self.t.reply, io)
            .await
            .map_err(|_| MdaError::Timeout(format!("sending {what}")))?
            .map_err(|e| MdaError::Protocol(format!("sending {what}: {e}")))
    }

    async fn command(&mut self, line: &str, what: &str) -> Result<Reply, MdaError> {
        self.send(format!("{line}\r\n").as_bytes(), what).await?;
        self.reply(what).await
    }
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    lhlo: &str,
    sender: Option<&MailAddr>,
    rcpts: &[MailAddr],
    content: &[u8],
    t: Timeouts,
) -> Result<Vec<Outcome>, MdaError> {
    let mut c = Conn {
        io: BufReader::new(stream),
        t,
    };
    let greeting = c.reply("connect").await?;
    if greeting.class() != 2 {
        return Err(MdaError::Refused(greeting.to_string()));
    }
    let r = c.command(&format!("LHLO {lhlo}"), "LHLO").await?;
    if r.class() != 2 {
        return Err(MdaError::Refused(r.to_string()));
    }
    let r = c
        .command(&format!("MAIL FROM:{}", path_of(sender)?), "MAIL FROM")
        .await?;
    if r.class() != 2 {
        let o = outcome_of(&r);
        quit(&mut c).await;
        return Ok(vec![o; rcpts.len()]);
    }

    let mut outcomes: Vec<Option<Outcome>> = vec![None; rcpts.len()];
    for (i, rcpt) in rcpts.iter().enumerate() {
        let path = match path_of(Some(rcpt)) {
            Ok(p) => p,
            Err(e) => {
                outcomes[i] = Some(Outcome::PermFail(e.to_string()));
                continue;
            }
        };
        let r = c.command(&format!("RCPT TO:{path}"), "RCPT TO").await?;
        if r.class() != 2 {
            outcomes[i] = Some(outcome_of(&r));
        }
    }
    let accepted: Vec<usize> = (0..rcpts.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();
    if accepted.is_empty() {
        quit(&mut c).await;
        return Ok(outcomes.into_iter().flatten().collect());
    }

    let r = c.command("DATA", "DATA").await?;
    if r.class() != 3 {
        let o = outcome_of(&r);
        for &i in &accepted {
            outcomes[i] = Some(o.clone());
        }
        quit(&mut c).await;
        return Ok(outcomes.into_iter().flatten().collect());
    }
    c.send(&dot_stuff(content), "message").await?;

    // From here on some recipients may already be delivered: a broken
    // session must not turn into an error that retries them all.
    let mut broken = None;
    for &i in &accepted {
        let o = match &broken {
            Some(why) => Outcome::TempFail(format!("no reply after DATA: {why}")),
            None => match c.reply("end of DATA").await {
                Ok(r) => outcome_of(&r),
                Err(e) => {
                    tracing::warn!(error = %e, "LMTP session broke after DATA");
                    let o = Outcome::TempFail(format!("no reply after DATA: {e}"));
                    broken = Some(e.to_string());
                    o
                }
            },
        };
        outcomes[i] = Some(o);
    }
    if broken.is_none() {
        quit(&mut c).await;
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::TempFail("no reply".into())))
        .collect())
}

/// Best effort: the outcomes are already known.
async fn quit<S: AsyncRead + AsyncWrite + Unpin>(c: &mut Conn<S>) {
    if c.send(b"QUIT\r\n", "QUIT").await.is_ok() {
        let _ = timeout(Duration::from_secs(5), read_reply(&mut c.io)).await;
    }
}

/// The message with CRLF line ends, leading dots doubled and the final
/// `.` line (RFC 5321 §4.5.2).
fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 40 + 5);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in content {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite};
    use tokio::net::{TcpListener, UnixListener};

    /// What the fake server answers at each step.
    #[derive(Clone)]
    struct Script {
        greeting: &'static str,
        rcpt: Vec<&'static str>,
        after_data: Vec<&'static str>,
    }

    fn fast() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            reply: Duration::from_secs(5),
        }
    }

    /// A tiny LMTP server; returns the lines it received (message
    /// included, still dot-stuffed).
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(s: S, script: Script) -> Vec<String> {
        let mut io = BufReader::new(s);
        let mut seen = Vec::new();
        io.get_mut()
            .write_all(script.greeting.as_bytes())
            .await
            .unwrap();
        let mut rcpt = script.rcpt.iter();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            seen.push(line.clone());
            let answer: String = if in_data {
                if line != "." {
                    continue;
                }
                in_data = false;
                script.after_data.concat()
            } else if line.starts_with("LHLO") {
                "250-localhost\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n".into()
            } else if line.starts_with("MAIL FROM:") {
                "250 2.1.0 Ok\r\n".into()
            } else if line.starts_with("RCPT TO:") {
                rcpt.next().unwrap().to_string()
            } else if line == "DATA" {
                in_data = true;
                "354 go ahead\r\n".into()
            } else if line == "QUIT" {
                io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await.unwrap();
                break;
            } else {
                "500 what\r\n".into()
            };
            if io.get_mut().write_all(answer.as_bytes()).await.is_err() {
                break;
            }
        }
        seen
    }

    fn rcpts(n: usize) -> Vec<MailAddr> {
        (0..n)
            .map(|i| MailAddr::new(format!("u{i}"), "example.org"))
            .collect()
    }

    fn mixed() -> Script {
        Script {
            greeting: "220 lmtp ready\r\n",
            rcpt: vec![
                "250 2.1.5 Ok\r\n",
                "550 5.1.1 No such user\r\n",
                "250 2.1.5 Ok\r\n",
                "250 2.1.5 Ok\r\n",
            ],
            after_data: vec![
                "250 2.0.0 Saved\r\n",
                "452-4.2.2 Mailbox\r\n452 4.2.2 full\r\n",
                "552 5.2.2 Over quota\r\n",
            ],
        }
    }

    fn check_mixed(out: &[Outcome]) {
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], Outcome::Ok("250 2.0.0 Saved".into()));
        assert_eq!(out[1], Outcome::PermFail("550 5.1.1 No such user".into()));
        assert_eq!(
            out[2],
            Outcome::TempFail("452 4.2.2 Mailbox 4.2.2 full".into())
        );
        assert!(matches!(out[3], Outcome::PermFail(_)));
    }

    const MSG: &[u8] = b"Subject: t\r\n\r\n.hidden\nlast line";

    #[tokio::test]
    async fn per_recipient_outcomes_over_tcp() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = l.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move { serve(l.accept().await.unwrap().0, mixed()).await });
        let sender = MailAddr::new("s", "example.net");
        let out = deliver_lmtp_with(&dest, "mx.test", Some(&sender), &rcpts(4), MSG, fast())
            .await
            .unwrap();
        check_mixed(&out);
        let seen = server.await.unwrap();
        assert_eq!(seen[0], "LHLO mx.test");
        assert_eq!(seen[1], "MAIL FROM:<s@example.net>");
        assert_eq!(seen[2], "RCPT TO:<u0@example.org>");
        let data = seen.iter().position(|l| l == "DATA").unwrap();
        assert_eq!(
            &seen[data + 1..data + 6],
            ["Subject: t", "", "..hidden", "last line", "."]
        );
        assert_eq!(seen.last().unwrap(), "QUIT");
    }

    #[tokio::test]
    async fn per_recipient_outcomes_over_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lmtp.sock");
        let l = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move { serve(l.accept().await.unwrap().0, mixed()).await });
        let dest = path.to_str().unwrap().to_string();
        let out = deliver_lmtp_with(&dest, "mx.test", None, &rcpts(4), MSG, fast())
            .await
            .unwrap();
        check_mixed(&out);
        assert_eq!(server.await.unwrap()[1], "MAIL FROM:<>");
    }

    #[tokio::test]
    async fn all_rejected_skips_data() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = l.local_addr().unwrap().to_string();
        let script = Script {
            greeting: "220 hi\r\n",
            rcpt: vec!["550 5.1.1 unknown\r\n", "451 4.3.0 try later\r\n"],
            after_data: vec![],
        };
        let server = tokio::spawn(async move { serve(l.accept().await.unwrap().0, script).await });
        let out = deliver_lmtp_with(&dest, "h", None, &rcpts(2), MSG, fast())
            .await
            .unwrap();
        assert!(matches!(out[0], Outcome::PermFail(_)));
        assert!(matches!(out[1], Outcome::TempFail(_)));
        let seen = server.await.unwrap();
        assert!(!seen.iter().any(|l| l == "DATA"));
        assert_eq!(seen.last().unwrap(), "QUIT");
    }

    #[tokio::test]
    async fn no_recipients_no_connection() {
        let out = deliver_lmtp("/nonexistent/socket", "h", None, &[], MSG)
            .await
            .unwrap();
        assert!(out.is_empty());
        let err = deliver_lmtp("/nonexistent/socket", "h", None, &rcpts(1), MSG)
            .await
            .unwrap_err();
        assert!(matches!(err, MdaError::Connect { .. }) && err.is_temporary());
    }

    #[tokio::test]
    async fn garbage_greeting_is_an_error() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = l.local_addr().unwrap().to_string();
        let script = Script {
            greeting: "SSH-2.0-OpenSSH\r\n",
            rcpt: vec![],
            after_data: vec![],
        };
        let server = tokio::spawn(async move { serve(l.accept().await.unwrap().0, script).await });
        let err = deliver_lmtp_with(&dest, "h", None, &rcpts(1), MSG, fast())
            .await
            .unwrap_err();
        assert!(matches!(err, MdaError::Protocol(_)), "{err:?}");
        assert!(err.is_temporary());
        drop(server);
    }

    #[tokio::test]
    async fn garbage_after_data_tempfails_the_rest() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = l.local_addr().unwrap().to_string();
        let script = Script {
            greeting: "220 hi\r\n",
            rcpt: vec!["250 ok\r\n", "250 ok\r\n"],
            after_data: vec!["250 ok\r\n", "2\x00\x00garbage\r\n"],
        };
        tokio::spawn(async move { serve(l.accept().await.unwrap().0, script).await });
        let out = deliver_lmtp_with(&dest, "h", None, &rcpts(2), MSG, fast())
            .await
            .unwrap();
        assert!(out[0].is_ok());
        assert!(matches!(out[1], Outcome::TempFail(_)));
    }

    #[tokio::test]
    async fn connection_refused_is_temporary() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = l.local_addr().unwrap().to_string();
        drop(l);
        let err = deliver_lmtp_with(&dest, "h", None, &rcpts(1), MSG, fast())
            .await
            .unwrap_err();
        assert!(matches!(err, MdaError::Connect { .. }));
        assert!(err.is_temporary());
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = l.local_addr().unwrap().to_string();
        let hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let t = Timeouts {
            connect: Duration::from_secs(5),
            reply: Duration::from_millis(200),
        };
        let err = deliver_lmtp_with(&dest, "h", None, &rcpts(1), MSG, t)
            .await
            .unwrap_err();
        assert!(matches!(err, MdaError::Timeout(_)), "{err:?}");
        hold.abort();
    }

    #[test]
    fn destinations() {
        assert_eq!(
            parse_dest("/run/dovecot/lmtp").unwrap(),
            Dest::Unix(Path::new("/run/dovecot/lmtp"))
        );
        assert_eq!(
            parse_dest("127.0.0.1:24").unwrap(),
            Dest::Tcp("127.0.0.1".into(), 24)
        );
        assert_eq!(
            parse_dest("[::1]:2424").unwrap(),
            Dest::Tcp("::1".into(), 2424)
        );
        assert_eq!(parse_dest("[::1]").unwrap(), Dest::Tcp("::1".into(), 24));
        assert_eq!(parse_dest("::1").unwrap(), Dest::Tcp("::1".into(), 24));
        assert_eq!(
            parse_dest("mail.local").unwrap(),
            Dest::Tcp("mail.local".into(), 24)
        );
        for bad in ["", "host:", "host:x", "host:0", "[::1", "[::1]x", "a b:24"] {
            assert!(parse_dest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(
            dot_stuff(b".a\n..b\r\nc"),
            b"..a\r\n...b\r\nc\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b""), b".\r\n".to_vec());
    }
}
