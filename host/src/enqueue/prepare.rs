//! From the command line and the text read to what goes over SMTP: the
//! envelope sender, the recipients (command line and, with `-t`, the
//! headers), qualified with the mail name and checked, and the message
//! with its missing headers added.

use crate::enqueue::args::Options;
use crate::enqueue::compose::{compose, list_addresses, Compose};
use crate::enqueue::error::EnqueueError;
use crate::mailaddr::MailAddr;

/// Facts about the sender's environment, given so this stays pure.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub login: &'a str,
    /// GECOS full name (or `$NAME`), used when neither `-F` nor `-f` is.
    pub full_name: Option<&'a str>,
    /// Completes unqualified addresses.
    pub mail_name: &'a str,
    pub date: &'a str,
    pub message_id: &'a str,
}

/// The envelope and content of one enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// `None` is the null sender (`-f ''` or `-f '<>'`).
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    pub content: Vec<u8>,
}

/// Builds the envelope and the message from `raw` (CRLF lines).
pub fn prepare(opts: &Options, raw: &[u8], ctx: &Context<'_>) -> Result<Prepared, EnqueueError> {
    let sender = match opts.sender.as_deref().map(str::trim) {
        Some(s) => {
            let bare = s.trim_start_matches('<').trim_end_matches('>');
            match bare.is_empty() {
                true => None,
                false => Some(checked(bare, ctx.mail_name)?),
            }
        }
        None => Some(checked(ctx.login, ctx.mail_name)?),
    };
    let own = format!("{}@{}", ctx.login, ctx.mail_name);
    // Another -f is someone else's address: the user's own name would
    // not belong on it.
    let full_name = match (&opts.full_name, &opts.sender) {
        (Some(name), _) => Some(name.as_str()),
        (None, None) => ctx.full_name,
        (None, Some(_)) => None,
    };
    let composed = compose(
        raw,
        &Compose {
            from: sender.as_deref().unwrap_or(&own),
            full_name,
            extract: opts.extract,
            date: ctx.date,
            message_id: ctx.message_id,
        },
    );
    let mut recipients: Vec<String> = Vec::new();
    let named = opts.recipients.iter().flat_map(|r| list_addresses(r));
    for r in named.chain(composed.extracted) {
        let r = checked(&r, ctx.mail_name)?;
        if !recipients.iter().any(|k| k.eq_ignore_ascii_case(&r)) {
            recipients.push(r);
        }
    }
    if recipients.is_empty() {
        return Err(EnqueueError::NoRecipients);
    }
    Ok(Prepared {
        sender,
        recipients,
        content: composed.content,
    })
}

/// `addr` completed with `@mail_name` when it has no domain, and valid.
fn checked(addr: &str, mail_name: &str) -> Result<String, EnqueueError> {
    let full = match addr.contains('@') {
        true => addr.to_string(),
        false => format!("{addr}@{mail_name}"),
    };
    let bad = full
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "<>".contains(c));
    if bad || MailAddr::parse(&full).is_err() {
        return Err(EnqueueError::BadAddress(addr.to_string()));
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enqueue::args::parse;

    const CTX: Context<'static> = Context {
        login: "joe",
        full_name: Some("Joe Public"),
        mail_name: "host.example",
        date: "Thu, 26 Nov 2026 01:30:00 +0000",
        message_id: "<1.a@host.example>",
    };

    fn prep(args: &[&str], raw: &str) -> Result<Prepared, EnqueueError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        prepare(&parse("sendmail", &args).unwrap(), raw.as_bytes(), &CTX)
    }

    #[test]
    fn defaults_are_the_login_and_gecos_name() {
        let p = prep(&["bob"], "Subject: x\r\n\r\nhi\r\n").unwrap();
        assert_eq!(p.sender.as_deref(), Some("joe@host.example"));
        assert_eq!(p.recipients, ["bob@host.example"]);
        let text = String::from_utf8(p.content).unwrap();
        assert!(
            text.contains("From: Joe Public <joe@host.example>\r\n"),
            "{text}"
        );
    }

    #[test]
    fn f_sets_sender_and_from_and_may_be_null() {
        let p = prep(&["-f", "app@example.org", "bob@example.net"], "\r\nhi\r\n").unwrap();
        assert_eq!(p.sender.as_deref(), Some("app@example.org"));
        let text = String::from_utf8(p.content).unwrap();
        assert!(text.starts_with("From: app@example.org\r\n"), "{text}");
        let p = prep(&["-f<>", "-F", "Mailer", "bob"], "\r\nhi\r\n").unwrap();
        assert_eq!(p.sender, None);
        let text = String::from_utf8(p.content).unwrap();
        assert!(
            text.starts_with("From: Mailer <joe@host.example>\r\n"),
            "{text}"
        );
    }

    #[test]
    fn t_adds_header_recipients_to_the_command_line_ones() {
        let raw = "To: Ann <ann@example.org>, bob\r\nBcc: BOB@host.example\r\n\r\nx\r\n";
        let p = prep(&["-t", "carl@example.org"], raw).unwrap();
        assert_eq!(
            p.recipients,
            ["carl@example.org", "ann@example.org", "bob@host.example"]
        );
        assert!(!String::from_utf8(p.content).unwrap().contains("Bcc"));
    }

    #[test]
    fn no_or_bad_recipients() {
        assert!(matches!(
            prep(&[], "x\r\n"),
            Err(EnqueueError::NoRecipients)
        ));
        assert!(matches!(
            prep(&["-t"], "Subject: x\r\n\r\n"),
            Err(EnqueueError::NoRecipients)
        ));
        let bad = prep(&["a@b@c"], "x\r\n").unwrap_err();
        assert!(matches!(bad, EnqueueError::BadAddress(_)), "{bad}");
        assert_eq!(bad.exit_code(), 65);
    }
}
