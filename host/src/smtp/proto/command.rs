//! The command parser: one command line (CRLF already removed) in, a
//! typed [`Command`] or the error reply out. Pure: whether the command is
//! allowed now is the session's business; a parse error still names the
//! verb so the session can report a sequencing error first, as Postfix
//! does ("send HELO first" beats "bad syntax").

use crate::mailaddr::MailAddr;

use super::params::{parse_mail_params, parse_rcpt_params, MailParams, RcptParams};
use super::path::{split_path, RawPath};
use super::reply::Reply;

/// Longest HELO/EHLO argument we take (a domain is at most 255 octets).
const MAX_HELO: usize = 255;

/// The known verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
}

/// A forward-path: `<postmaster>` has no domain and stands for the
/// postmaster of this host (RFC 5321 §4.5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptPath {
    Postmaster,
    Addr(MailAddr),
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail {
        sender: Option<MailAddr>,
        params: MailParams,
    },
    Rcpt {
        rcpt: RcptPath,
        params: RcptParams,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954), parsed for the
    /// coming AUTH support.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// Why a line is not a valid command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid command: {} {}", reply.code, reply.text)]
pub struct ParseError {
    /// The verb, when it was recognised.
    pub verb: Option<Verb>,
    pub reply: Reply,
}

impl Command {
    pub fn verb(&self) -> Verb {
        match self {
            Command::Helo(_) => Verb::Helo,
            Command::Ehlo(_) => Verb::Ehlo,
            Command::Mail { .. } => Verb::Mail,
            Command::Rcpt { .. } => Verb::Rcpt,
            Command::Data => Verb::Data,
            Command::Bdat { .. } => Verb::Bdat,
            Command::Rset => Verb::Rset,
            Command::Noop => Verb::Noop,
            Command::Quit => Verb::Quit,
            Command::Vrfy => Verb::Vrfy,
            Command::Expn => Verb::Expn,
            Command::Help => Verb::Help,
            Command::StartTls => Verb::StartTls,
            Command::Auth { .. } => Verb::Auth,
        }
    }
}

fn verb_of(word: &[u8]) -> Option<Verb> {
    const VERBS: [(&[u8], Verb); 14] = [
        (b"HELO", Verb::Helo),
        (b"EHLO", Verb::Ehlo),
        (b"MAIL", Verb::Mail),
        (b"RCPT", Verb::Rcpt),
        (b"DATA", Verb::Data),
        (b"BDAT", Verb::Bdat),
        (b"RSET", Verb::Rset),
        (b"NOOP", Verb::Noop),
        (b"QUIT", Verb::Quit),
        (b"VRFY", Verb::Vrfy),
        (b"EXPN", Verb::Expn),
        (b"HELP", Verb::Help),
        (b"STARTTLS", Verb::StartTls),
        (b"AUTH", Verb::Auth),
    ];
    VERBS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|(_, v)| *v)
}

/// Web and proxy requests sent to an SMTP port: Postfix's
/// `smtpd_forbidden_commands`. The session hangs up on them.
pub fn is_forbidden(line: &[u8]) -> bool {
    let word = line.split(|&b| b == b' ').next().unwrap_or_default();
    [&b"GET"[..], b"POST", b"CONNECT", b"HEAD", b"PUT"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(word))
}

/// Parses one command line, CRLF removed.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    // Trailing spaces are common in the wild and harmless.
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let line = &line[..end];
    if line.is_empty() {
        return Err(ParseError {
            verb: None,
            reply: Reply::new(500, "5.5.2", "Error: bad syntax"),
        });
    }
    let (word, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let Some(verb) = verb_of(word) else {
        return Err(ParseError {
            verb: None,
            reply: Reply::new(500, "5.5.1", "Command unrecognized"),
        });
    };
    let fail = |reply: Reply| ParseError {
        verb: Some(verb),
        reply,
    };
    // VRFY/EXPN/HELP/NOOP/QUIT ignore their arguments, whatever the bytes.
    let lenient = match verb {
        Verb::Vrfy => Some(Command::Vrfy),
        Verb::Expn => Some(Command::Expn),
        Verb::Help => Some(Command::Help),
        Verb::Noop => Some(Command::Noop),
        Verb::Quit => Some(Command::Quit),
        _ => None,
    };
    if let Some(cmd) = lenient {
        return Ok(cmd);
    }
    let rest = std::str::from_utf8(rest).map_err(|_| {
        fail(Reply::new(
            501,
            "5.5.2",
            "Syntax error: invalid UTF-8 in arguments",
        ))
    })?;
    match verb {
        Verb::Helo | Verb::Ehlo => parse_helo(verb, rest).map_err(fail),
        Verb::Mail => parse_mail(rest).map_err(fail),
        Verb::Rcpt => parse_rcpt(rest).map_err(fail),
        Verb::Bdat => parse_bdat(rest).map_err(fail),
        Verb::Auth => parse_auth(rest).map_err(fail),
        Verb::Data => no_args(rest, "DATA", Command::Data).map_err(fail),
        Verb::Rset => no_args(rest, "RSET", Command::Rset).map_err(fail),
        Verb::StartTls => no_args(rest, "STARTTLS", Command::StartTls).map_err(fail),
        Verb::Vrfy => Ok(Command::Vrfy),
        Verb::Expn => Ok(Command::Expn),
        Verb::Help => Ok(Command::Help),
        Verb::Noop => Ok(Command::Noop),
        Verb::Quit => Ok(Command::Quit),
    }
}

fn no_args(rest: &str, name: &str, cmd: Command) -> Result<Command, Reply> {
    if rest.trim().is_empty() {
        Ok(cmd)
    } else {
        Err(Reply::new(501, "5.5.4", format!("Syntax: {name}")))
    }
}

fn parse_helo(verb: Verb, rest: &str) -> Result<Command, Reply> {
    let name = rest.trim();
    let cmd = if verb == Verb::Ehlo { "EHLO" } else { "HELO" };
    // No enhanced code before EHLO: the client has not learnt about them.
    if name.is_empty() || name.len() > MAX_HELO || name.chars().any(char::is_control) {
        return Err(Reply::plain(501, format!("Syntax: {cmd} hostname")));
    }
    // HELO cannot negotiate SMTPUTF8 (RFC 6531 needs EHLO); an EHLO
    // client may use U-labels since we advertise it (§3.7.1).
    if verb == Verb::Helo && !name.is_ascii() {
        return Err(Reply::new(
            553,
            "5.6.7",
            "Non-ASCII HELO argument requires EHLO and SMTPUTF8",
        ));
    }
    Ok(if verb == Verb::Ehlo {
        Command::Ehlo(name.to_string())
    } else {
        Command::Helo(name.to_string())
    })
}

/// `prefix` (FROM: / TO:) case-insensitively, then what follows.
fn after_prefix<'a>(rest: &'a str, prefix: &str) -> Option<&'a str> {
    let head = rest.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &rest[prefix.len()..])
}

fn utf8_required() -> Reply {
    Reply::new(
        553,
        "5.6.7",
        "Must declare SMTPUTF8 to send non-ASCII addresses",
    )
}

fn parse_mail(rest: &str) -> Result<Command, Reply> {
    let syntax = || Reply::new(501, "5.5.4", "Syntax: MAIL FROM:<address>");
    let bad_addr = || Reply::new(501, "5.1.7", "Bad sender address syntax");
    let arg = after_prefix(rest, "FROM:").ok_or_else(syntax)?;
    let (path, params) = split_path(arg).ok_or_else(bad_addr)?;
    let params = parse_mail_params(params)?;
    let sender = match path {
        RawPath::Null => None,
        RawPath::Addr(a) => {
            if !a.is_ascii() && !params.smtputf8 {
                return Err(utf8_required());
            }
            Some(MailAddr::parse(a).map_err(|_| bad_addr())?)
        }
    };
    Ok(Command::Mail { sender, params })
}

fn parse_rcpt(rest: &str) -> Result<Command, Reply> {
    let syntax = || Reply::new(501, "5.5.4", "Syntax: RCPT TO:<address>");
    let bad_addr = || Reply::new(501, "5.1.3", "Bad recipient address syntax");
    let arg = after_prefix(rest, "TO:").ok_or_else(syntax)?;
    let (path, params) = split_path(arg).ok_or_else(bad_addr)?;
    let params = parse_rcpt_params(params)?;
    let rcpt = match path {
        RawPath::Null => return Err(bad_addr()),
        RawPath::Addr(a) if a.eq_ignore_ascii_case("postmaster") => RcptPath::Postmaster,
        RawPath::Addr(a) => RcptPath::Addr(MailAddr::parse(a).map_err(|_| bad_addr())?),
    };
    Ok(Command::Rcpt { rcpt, params })
}

fn parse_bdat(rest: &str) -> Result<Command, Reply> {
    let syntax = || Reply::new(501, "5.5.4", "Syntax: BDAT count [LAST]");
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let size = words.next().ok_or_else(syntax)?;
    if size.len() > 20 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let size: u64 = size.parse().map_err(|_| syntax())?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(syntax()),
    };
    if words.next().is_some() {
        return Err(syntax());
    }
    Ok(Command::Bdat { size, last })
}

fn parse_auth(rest: &str) -> Result<Command, Reply> {
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let mechanism = words
        .next()
        .ok_or_else(|| Reply::new(501, "5.5.4", "Syntax: AUTH mechanism"))?;
    let initial = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(Reply::new(
            501,
            "5.5.4",
            "Syntax: AUTH mechanism [initial-response]",
        ));
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> ParseError {
        parse(line.as_bytes()).unwrap_err()
    }

    #[test]
    fn verbs_are_case_insensitive_and_trailing_space_tolerated() {
        assert_eq!(parse(b"noop").unwrap(), Command::Noop);
        assert_eq!(parse(b"QuIt   ").unwrap(), Command::Quit);
        assert_eq!(parse(b"rset \t").unwrap(), Command::Rset);
        assert_eq!(parse(b"StartTLS").unwrap(), Command::StartTls);
        assert_eq!(
            parse(b"ehlo client.example.org ").unwrap(),
            Command::Ehlo("client.example.org".into())
        );
    }

    #[test]
    fn unknown_and_empty() {
        let e = err("FOO bar");
        assert_eq!(
            (e.verb, e.reply.code, e.reply.enhanced.as_deref()),
            (None, 500, Some("5.5.1"))
        );
        assert_eq!(err("").reply.code, 500);
        assert_eq!(err("MAILFROM:<a@b>").reply.code, 500);
    }

    #[test]
    fn helo_needs_argument() {
        assert_eq!(
            err("EHLO").reply,
            Reply::plain(501, "Syntax: EHLO hostname")
        );
        assert_eq!(err("HELO   ").reply.code, 501);
        assert_eq!(err("HELO héllo").reply.code, 553);
        assert_eq!(
            parse("EHLO héllo".as_bytes()).unwrap(),
            Command::Ehlo("héllo".into())
        );
    }

    #[test]
    fn mail_from() {
        assert_eq!(
            parse(b"MAIL FROM:<a@b.org> SIZE=10").unwrap(),
            Command::Mail {
                sender: Some(MailAddr::new("a", "b.org")),
                params: MailParams {
                    size: Some(10),
                    ..Default::default()
                }
            }
        );
        assert_eq!(
            parse(b"mail from:<>").unwrap(),
            Command::Mail {
                sender: None,
                params: MailParams::default()
            }
        );
        assert_eq!(parse(b"MAIL FROM: <a@b.org>").unwrap().verb(), Verb::Mail);
        let e = err("MAIL FROM:<a@@b>");
        assert_eq!(
            (e.verb, e.reply.code, e.reply.enhanced.as_deref()),
            (Some(Verb::Mail), 501, Some("5.1.7"))
        );
        assert_eq!(
            err("MAIL TO:<a@b.org>").reply.enhanced.as_deref(),
            Some("5.5.4")
        );
        assert_eq!(err("MAIL FROM:<a@b.org> FOO=1").reply.code, 555);
        assert_eq!(err("MAIL FROM:<user>").reply.code, 501);
    }

    #[test]
    fn mail_smtputf8() {
        assert_eq!(err("MAIL FROM:<jösé@b.org>").reply.code, 553);
        assert_eq!(
            err("MAIL FROM:<jösé@b.org>").reply.enhanced.as_deref(),
            Some("5.6.7")
        );
        assert!(parse("MAIL FROM:<jösé@b.org> SMTPUTF8".as_bytes()).is_ok());
        assert_eq!(err("MAIL FROM:<a\u{ff}").reply.code, 501);
        assert_eq!(
            parse(b"MAIL FROM:<\xff@b>")
                .unwrap_err()
                .reply
                .enhanced
                .as_deref(),
            Some("5.5.2")
        );
    }

    #[test]
    fn rcpt_to() {
        assert_eq!(
            parse(b"RCPT TO:<Postmaster>").unwrap(),
            Command::Rcpt {
                rcpt: RcptPath::Postmaster,
                params: RcptParams::default()
            }
        );
        assert_eq!(
            parse(b"RCPT TO:<@relay.org:u@d.org>").unwrap(),
            Command::Rcpt {
                rcpt: RcptPath::Addr(MailAddr::new("u", "d.org")),
                params: RcptParams::default()
            }
        );
        let e = err("RCPT TO:<>");
        assert_eq!(
            (e.reply.code, e.reply.enhanced.as_deref()),
            (501, Some("5.1.3"))
        );
        assert_eq!(
            err("RCPT TO:<user>").reply.enhanced.as_deref(),
            Some("5.1.3")
        );
        assert_eq!(err("RCPT TO:<a@b.org> SIZE=1").reply.code, 555);
    }

    #[test]
    fn bdat_and_no_arg_commands() {
        assert_eq!(
            parse(b"BDAT 100").unwrap(),
            Command::Bdat {
                size: 100,
                last: false
            }
        );
        assert_eq!(
            parse(b"bdat 0 last").unwrap(),
            Command::Bdat {
                size: 0,
                last: true
            }
        );
        assert_eq!(err("BDAT").reply.code, 501);
        assert_eq!(err("BDAT -1").reply.code, 501);
        assert_eq!(err("BDAT 1 FIRST").reply.code, 501);
        assert_eq!(err("BDAT 99999999999999999999").reply.code, 501);
        assert_eq!(
            err("DATA now").reply,
            Reply::new(501, "5.5.4", "Syntax: DATA")
        );
        assert_eq!(err("STARTTLS x").reply.code, 501);
        assert_eq!(parse(b"NOOP anything").unwrap(), Command::Noop);
        assert_eq!(parse(b"VRFY root").unwrap(), Command::Vrfy);
    }

    #[test]
    fn auth_parsed_for_later() {
        assert_eq!(
            parse(b"AUTH plain AGFAYg==").unwrap(),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGFAYg==".into())
            }
        );
        assert_eq!(err("AUTH").verb, Some(Verb::Auth));
    }

    #[test]
    fn forbidden_commands() {
        assert!(is_forbidden(b"GET / HTTP/1.1"));
        assert!(is_forbidden(b"post /x"));
        assert!(!is_forbidden(b"MAIL FROM:<a@b>"));
    }
}
