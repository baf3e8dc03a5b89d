//! The opt-in Prometheus listener (`--metrics ADDR`): `GET /metrics`
//! answers the statistics in the text exposition format 0.0.4.
//!
//! A minimal HTTP/1.1 responder, one request per connection: a scraper
//! sends one small GET and reads until the connection closes. No HTTP
//! crate is in the tree, and a server framework would be far more code
//! than the handful of lines a fixed GET needs. The head is read with a
//! size cap and a deadline, the body of a request is never read, and no
//! input can do more than earn a 4xx.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::stats::Stats;

/// The longest request head read; a scraper's is a few hundred bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its head, and to read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves scrapes until the listener fails for good.
pub async fn serve(listener: TcpListener, stats: Stats) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &stats).await {
                debug!("metrics: {peer}: {e}");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, stats: &Stats) -> std::io::Result<()> {
    let head = match tokio::time::timeout(TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => Head::Incomplete,
    };
    let response = respond(&head, stats);
    let sent = tokio::time::timeout(TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or(Ok(()));
    // Closing with unread input would reset the connection and could
    // destroy the answer before the client read it: read what is left
    // (a little, briefly) first.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    sent
}

/// What was read of a request.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The request line's method and target.
    Request { method: String, target: String },
    /// Not HTTP, too long, or cut off.
    Incomplete,
}

/// Reads up to the blank line ending the head, at most [`MAX_HEAD`]
/// bytes; only the request line matters.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) =
            memchr::memmem::find(&buf, b"\r\n\r\n").or_else(|| memchr::memmem::find(&buf, b"\n\n"))
        {
            return Ok(parse_request_line(&buf[..end]));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Head::Incomplete);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Head::Incomplete);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_request_line(head: &[u8]) -> Head {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Head::Incomplete;
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && version.starts_with("HTTP/1.") =>
        {
            Head::Request {
                method: method.to_string(),
                target: target.to_string(),
            }
        }
        _ => Head::Incomplete,
    }
}

/// The whole response to a request head.
fn respond(head: &Head, stats: &Stats) -> Vec<u8> {
    let (method, target) = match head {
        Head::Request { method, target } => (method.as_str(), target.as_str()),
        Head::Incomplete => return response("400 Bad Request", "text/plain", "bad request\n", &[]),
    };
    // The query string (`?name[]=…` from some scrapers) selects nothing.
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return response("404 Not Found", "text/plain", "try /metrics\n", &[]);
    }
    match method {
        "GET" => response("200 OK", CONTENT_TYPE, &stats.render_prometheus(), &[]),
        "HEAD" => {
            let mut r = response("200 OK", CONTENT_TYPE, &stats.render_prometheus(), &[]);
            if let Some(end) = memchr::memmem::find(&r, b"\r\n\r\n") {
                r.truncate(end + 4);
            }
            r
        }
        _ => response(
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n",
            &["Allow: GET, HEAD"],
        ),
    }
}

fn response(status: &str, content_type: &str, body: &str, extra: &[&str]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn stats() -> Stats {
        let s = Stats::new(Instant::now());
        s.counter("smtp.session.connect").add(3);
        s
    }

    fn text(r: Vec<u8>) -> String {
        String::from_utf8(r).unwrap()
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Head::Request {
                method: "GET".into(),
                target: "/metrics".into()
            }
        );
        for bad in [
            &b""[..],
            b"GET /metrics",
            b"GET /metrics SMTP/1.0",
            b"GET  /metrics HTTP/1.1",
            b"\xff\xfe / HTTP/1.1",
            b"EHLO example.org",
        ] {
            assert_eq!(parse_request_line(bad), Head::Incomplete, "{bad:?}");
        }
    }

    #[test]
    fn metrics_are_served_and_nothing_else() {
        let get = |m: &str, t: &str| {
            text(respond(
                &Head::Request {
                    method: m.into(),
                    target: t.into(),
                },
                &stats(),
            ))
        };
        let ok = get("GET", "/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(ok.contains("Connection: close\r\n"));
        assert!(ok.contains("\r\n\r\n# HELP "), "{ok}");
        assert!(
            ok.contains("wasmtpd_smtp_session_connect_total 3\n"),
            "{ok}"
        );
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));

        assert!(get("GET", "/metrics?x=1").starts_with("HTTP/1.1 200 "));
        let head = get("HEAD", "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 ") && head.ends_with("\r\n\r\n"));
        assert!(get("GET", "/").starts_with("HTTP/1.1 404 "));
        assert!(get("GET", "/metrics/x").starts_with("HTTP/1.1 404 "));
        let post = get("POST", "/metrics");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"));
        assert!(text(respond(&Head::Incomplete, &stats())).starts_with("HTTP/1.1 400 "));
    }

    #[tokio::test]
    async fn a_real_socket_gets_an_answer_and_junk_gets_a_400() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, stats()));
        let ask = |req: Vec<u8>| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&req).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).to_string()
        };
        let ok = ask(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()).await;
        assert!(ok.contains("wasmtpd_smtp_session_connect_total 3"), "{ok}");
        let long = ask(vec![b'A'; MAX_HEAD + 10]).await;
        assert!(long.starts_with("HTTP/1.1 400 "), "{long}");
        let binary = ask(b"\x00\x01\x02\r\n\r\n".to_vec()).await;
        assert!(binary.starts_with("HTTP/1.1 400 "), "{binary}");
    }
}
