//! The SMTP client side of an enqueue: greeting, EHLO, MAIL, one RCPT
//! per recipient, DATA and QUIT over any reader and writer. A refused
//! recipient ends the whole submission before DATA, so a message is
//! either queued for every recipient or for none.

use std::fmt;
use std::io::{self, BufRead, Write};

use crate::enqueue::error::EnqueueError;
use crate::enqueue::input::dot_stuff;

/// Where in the dialogue a reply or a failure came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Ehlo,
    MailFrom,
    RcptTo,
    Data,
    EndOfData,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "at the greeting",
            Stage::Ehlo => "to EHLO",
            Stage::MailFrom => "to MAIL FROM",
            Stage::RcptTo => "to RCPT TO",
            Stage::Data => "to DATA",
            Stage::EndOfData => "at the end of the message",
        })
    }
}

/// One SMTP reply; `lines` without their code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// What to send.
#[derive(Clone, Debug)]
pub struct Submission<'a> {
    /// `None` is the null sender `<>`.
    pub sender: Option<&'a str>,
    pub recipients: &'a [String],
    /// CRLF lines, not yet dot-stuffed.
    pub content: &'a [u8],
}

/// Runs the dialogue; returns the reply that accepted the message.
/// `trace` gets the dialogue (`-v`).
pub fn submit(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    sub: &Submission<'_>,
    trace: Option<&mut dyn Write>,
) -> Result<Reply, EnqueueError> {
    let mut c = Client {
        reader,
        writer,
        trace,
    };
    c.expect(Stage::Greeting, 220)?;
    c.send(Stage::Ehlo, b"EHLO localhost\r\n")?;
    let ehlo = c.expect(Stage::Ehlo, 250)?;
    let offers = |kw: &str| {
        ehlo.lines.iter().any(|l| {
            l.split(' ')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(kw))
        })
    };
    let mut mail = format!("MAIL FROM:<{}>", sub.sender.unwrap_or(""));
    if !sub.content.is_ascii() && offers("8BITMIME") {
        mail.push_str(" BODY=8BITMIME");
    }
    let utf8 = !sub.sender.unwrap_or("").is_ascii() || sub.recipients.iter().any(|r| !r.is_ascii());
    if utf8 && offers("SMTPUTF8") {
        mail.push_str(" SMTPUTF8");
    }
    mail.push_str("\r\n");
    c.send(Stage::MailFrom, mail.as_bytes())?;
    c.expect(Stage::MailFrom, 250)?;
    for rcpt in sub.recipients {
        c.send(Stage::RcptTo, format!("RCPT TO:<{rcpt}>\r\n").as_bytes())?;
        let reply = c.read(Stage::RcptTo)?;
        if reply.code / 100 != 2 {
            c.quit();
            return Err(EnqueueError::Recipient {
                rcpt: rcpt.clone(),
                reply,
            });
        }
    }
    c.send(Stage::Data, b"DATA\r\n")?;
    c.expect(Stage::Data, 354)?;
    c.send_content(&dot_stuff(sub.content))?;
    let accepted = c.expect(Stage::EndOfData, 250)?;
    c.quit();
    Ok(accepted)
}

struct Client<'a, 't, R, W> {
    reader: &'a mut R,
    writer: &'a mut W,
    trace: Option<&'a mut (dyn Write + 't)>,
}

impl<R: BufRead, W: Write> Client<'_, '_, R, W> {
    fn send(&mut self, stage: Stage, line: &[u8]) -> Result<(), EnqueueError> {
        if let Some(t) = self.trace.as_mut() {
            let _ = write!(t, ">>> {}", String::from_utf8_lossy(line));
        }
        self.write(stage, line)
    }

    fn send_content(&mut self, data: &[u8]) -> Result<(), EnqueueError> {
        if let Some(t) = self.trace.as_mut() {
            let _ = writeln!(t, ">>> [{} octets of message]\r\n>>> .", data.len());
        }
        self.write(Stage::EndOfData, data)
    }

    fn write(&mut self, stage: Stage, data: &[u8]) -> Result<(), EnqueueError> {
        self.writer
            .write_all(data)
            .and_then(|()| self.writer.flush())
            .map_err(|source| EnqueueError::Lost { stage, source })
    }

    /// Reads a reply; anything but `code` ends the dialogue with it.
    fn expect(&mut self, stage: Stage, code: u16) -> Result<Reply, EnqueueError> {
        let reply = self.read(stage)?;
        if reply.code != code {
            self.quit();
            return Err(EnqueueError::Rejected { stage, reply });
        }
        Ok(reply)
    }

    fn read(&mut self, stage: Stage) -> Result<Reply, EnqueueError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|source| EnqueueError::Lost { stage, source })?;
            if n == 0 {
                let source = io::Error::new(io::ErrorKind::UnexpectedEof, "closed by wasmtpd");
                return Err(EnqueueError::Lost { stage, source });
            }
            if let Some(t) = self.trace.as_mut() {
                let _ = write!(t, "<<< {line}");
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c));
            let sep = line.as_bytes().get(3).copied();
            let (Some(code), Some(b' ' | b'-') | None) = (code, sep) else {
                return Err(EnqueueError::Protocol {
                    stage,
                    line: line.to_string(),
                });
            };
            lines.push(line.get(4..).unwrap_or("").to_string());
            if sep != Some(b'-') {
                return Ok(Reply { code, lines });
            }
        }
    }

    /// Ends the session politely; its outcome no longer matters.
    fn quit(&mut self) {
        if self.send(Stage::Data, b"QUIT\r\n").is_ok() {
            let _ = self.read(Stage::Data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays `server` replies and records what the client wrote.
    fn run(server: &str, sub: &Submission<'_>) -> (Result<Reply, EnqueueError>, String) {
        let mut reader = server.as_bytes();
        let mut written = Vec::new();
        let r = submit(&mut reader, &mut written, sub, None);
        (r, String::from_utf8(written).unwrap())
    }

    const EHLO: &str = "220 mx ESMTP\r\n250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";

    fn rcpts() -> Vec<String> {
        vec!["bob@example.org".into(), "ann@example.org".into()]
    }

    #[test]
    fn a_whole_dialogue() {
        let server = format!("{EHLO}250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 abc Message accepted\r\n221 bye\r\n");
        let rcpts = rcpts();
        let sub = Submission {
            sender: Some("joe@host"),
            recipients: &rcpts,
            content: "Subject: é\r\n\r\n.hidden\r\n".as_bytes(),
        };
        let (r, wire) = run(&server, &sub);
        assert_eq!(r.unwrap().lines, ["2.0.0 abc Message accepted"]);
        assert_eq!(
            wire,
            "EHLO localhost\r\nMAIL FROM:<joe@host> BODY=8BITMIME\r\n\
             RCPT TO:<bob@example.org>\r\nRCPT TO:<ann@example.org>\r\nDATA\r\n\
             Subject: é\r\n\r\n..hidden\r\n.\r\nQUIT\r\n"
        );
    }

    #[test]
    fn a_refused_recipient_sends_nothing() {
        let server = format!("{EHLO}250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n221 bye\r\n");
        let rcpts = rcpts();
        let sub = Submission {
            sender: None,
            recipients: &rcpts,
            content: b"x\r\n",
        };
        let (r, wire) = run(&server, &sub);
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), crate::enqueue::error::EX_NOUSER);
        assert!(
            err.to_string()
                .contains("<ann@example.org>: 550 5.1.1 no such user"),
            "{err}"
        );
        assert!(wire.starts_with("EHLO localhost\r\nMAIL FROM:<>\r\n"));
        assert!(!wire.contains("DATA"), "{wire}");
    }

    #[test]
    fn temporary_and_permanent_failures_map_to_exit_codes() {
        let rcpts = rcpts();
        let sub = Submission {
            sender: Some("joe@host"),
            recipients: &rcpts[..1],
            content: b"x\r\n",
        };
        let (r, _) = run(&format!("{EHLO}451 4.3.0 try later\r\n"), &sub);
        assert_eq!(r.unwrap_err().exit_code(), 75);
        let tail = "250 ok\r\n250 ok\r\n354 go\r\n554 5.7.1 spam\r\n";
        let (r, _) = run(&format!("{EHLO}{tail}"), &sub);
        assert_eq!(r.unwrap_err().exit_code(), 65);
        let (r, _) = run("220 mx\r\n250 mx\r\n250 ok\r\n", &sub);
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 75, "{err}");
        let (r, _) = run("HTTP/1.0 400\r\n", &sub);
        assert_eq!(r.unwrap_err().exit_code(), 76);
    }

    #[test]
    fn smtputf8_only_when_offered_and_needed() {
        let rcpts = vec!["jösé@example.org".to_string()];
        let sub = Submission {
            sender: Some("joe@host"),
            recipients: &rcpts,
            content: b"x\r\n",
        };
        let (_, wire) = run(&format!("{EHLO}250 ok\r\n"), &sub);
        assert!(wire.contains("MAIL FROM:<joe@host> SMTPUTF8\r\n"), "{wire}");
        let (_, wire) = run("220 mx\r\n250 mx\r\n250 ok\r\n", &sub);
        assert!(wire.contains("MAIL FROM:<joe@host>\r\n"), "{wire}");
    }
}
