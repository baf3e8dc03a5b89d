//! Reading SMTP/LMTP replies (RFC 5321 §4.2) from an untrusted server.
//!
//! Everything is bounded — line length, lines per reply — and every
//! field is checked before use: OpenSMTPD's CVE-2020-8794 was an
//! out-of-bounds read in exactly this kind of parser.

use std::fmt;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::MdaError;

/// Longest reply line accepted (RFC 5321 asks for 512; be lenient).
const MAX_LINE: usize = 4096;
/// Most lines in one multi-line reply.
const MAX_LINES: usize = 64;

/// One complete reply: its code and the text of each line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn class(&self) -> u16 {
        self.code / 100
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for l in &self.lines {
            if !l.is_empty() {
                write!(f, " {l}")?;
            }
        }
        Ok(())
    }
}

/// One parsed line: code, whether more lines follow, text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    pub code: u16,
    pub more: bool,
    pub text: &'a str,
}

/// Parses `DDD[ -]text` or a bare `DDD`.
pub(crate) fn parse_line(line: &str) -> Result<Line<'_>, String> {
    let bytes = line.as_bytes();
    let digits = bytes
        .get(..3)
        .ok_or_else(|| format!("reply too short: {line:?}"))?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return Err(format!("malformed reply code: {line:?}"));
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let (more, text) = match bytes.get(3) {
        None => (false, ""),
        Some(b' ') => (false, line.get(4..).unwrap_or("")),
        Some(b'-') => (true, line.get(4..).unwrap_or("")),
        Some(_) => return Err(format!("malformed reply separator: {line:?}")),
    };
    Ok(Line { code, more, text })
}

/// Reads one full reply. EOF and malformed input are protocol errors.
pub(crate) async fn read_reply<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Reply, MdaError> {
    let mut lines = Vec::new();
    let mut code = None;
    loop {
        let raw = read_line(r).await?;
        let line = parse_line(&raw).map_err(MdaError::Protocol)?;
        match code {
            None => code = Some(line.code),
            Some(c) if c != line.code => {
                return Err(MdaError::Protocol(format!(
                    "inconsistent codes in multi-line reply: {c} then {}",
                    line.code
                )))
            }
            Some(_) => {}
        }
        lines.push(line.text.to_string());
        if !line.more {
            break;
        }
        if lines.len() >= MAX_LINES {
            return Err(MdaError::Protocol("multi-line reply too long".into()));
        }
    }
    Ok(Reply {
        code: code.unwrap_or(0),
        lines,
    })
}

/// Reads a CRLF- (or LF-) terminated line of at most `MAX_LINE` bytes
/// without ever buffering more than that.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<String, MdaError> {
    let mut buf = Vec::new();
    loop {
        let avail = r
            .fill_buf()
            .await
            .map_err(|e| MdaError::Protocol(format!("reading reply: {e}")))?;
        if avail.is_empty() {
            return Err(MdaError::Protocol("connection closed by server".into()));
        }
        let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        if buf.len() + chunk.len() > MAX_LINE {
            return Err(MdaError::Protocol("reply line too long".into()));
        }
        buf.extend_from_slice(chunk);
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    // Some servers send Latin-1 text; the code digits are what matter.
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse_all(input: &[u8]) -> Result<Reply, MdaError> {
        let mut r = tokio::io::BufReader::new(input);
        read_reply(&mut r).await
    }

    #[tokio::test]
    async fn single_and_multi_line() {
        let r = parse_all(b"250 2.1.5 Ok\r\n").await.unwrap();
        assert_eq!(
            (r.code, r.lines.clone()),
            (250, vec!["2.1.5 Ok".to_string()])
        );
        let r = parse_all(b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            .await
            .unwrap();
        assert_eq!(r.lines.len(), 3);
        assert_eq!(r.to_string(), "250 mx.example PIPELINING 8BITMIME");
        assert_eq!(parse_all(b"354\n").await.unwrap().code, 354);
    }

    #[tokio::test]
    async fn garbage_is_an_error() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"",
            b"2x0 ok\r\n",
            b"250_ok\r\n",
            b"650 no\r\n",
            b"250-a\r\n251 b\r\n",
            b"250-a\r\n",
            b"\xff\xfe0 x\r\n",
        ] {
            assert!(
                matches!(parse_all(bad).await, Err(MdaError::Protocol(_))),
                "{bad:?}"
            );
        }
        let long = vec![b'2'; MAX_LINE + 10];
        assert!(parse_all(&long).await.is_err());
        let many = "250-x\r\n".repeat(MAX_LINES + 5);
        assert!(parse_all(many.as_bytes()).await.is_err());
    }
}
