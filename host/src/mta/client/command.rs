//! The bytes the client writes: commands with their ESMTP parameters,
//! the dot-stuffed message, SASL responses.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::config::{Credentials, Transaction};
use super::event::ClientError;
use super::ext::Extensions;
use crate::mailaddr::MailAddr;

/// `MAIL FROM:<path>` with the parameters the server understands.
pub fn mail_from(tx: &Transaction, ext: &Extensions) -> String {
    let mut cmd = format!("MAIL FROM:<{}>", path(tx.sender.as_ref()));
    if ext.size.is_some() {
        cmd.push_str(&format!(" SIZE={}", wire_len(&tx.content)));
    }
    if ext.eightbitmime && tx.content.iter().any(|&b| b >= 0x80) {
        cmd.push_str(" BODY=8BITMIME");
    }
    if ext.smtputf8 && needs_smtputf8(tx) {
        cmd.push_str(" SMTPUTF8");
    }
    if ext.dsn {
        if let Some(ret) = &tx.ret {
            cmd.push_str(&format!(" RET={ret}"));
        }
        if let Some(envid) = &tx.envid {
            cmd.push_str(&format!(" ENVID={envid}"));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

/// `RCPT TO:<addr>` for recipient `i`, with its DSN parameters.
pub fn rcpt_to(tx: &Transaction, i: usize, ext: &Extensions) -> String {
    let Some(r) = tx.rcpts.get(i) else {
        return String::new();
    };
    let mut cmd = format!("RCPT TO:<{}>", r.addr);
    if ext.dsn {
        if let Some(n) = &r.notify {
            cmd.push_str(&format!(" NOTIFY={n}"));
        }
        if let Some(o) = &r.orcpt {
            cmd.push_str(&format!(" ORCPT={o}"));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

fn path(addr: Option<&MailAddr>) -> String {
    addr.map(ToString::to_string).unwrap_or_default()
}

/// Any address outside ASCII needs SMTPUTF8 (RFC 6531).
pub fn needs_smtputf8(tx: &Transaction) -> bool {
    let non_ascii = |a: &MailAddr| !a.local.is_ascii() || !a.domain.is_ascii();
    tx.sender.as_ref().is_some_and(non_ascii) || tx.rcpts.iter().any(|r| non_ascii(&r.addr))
}

/// Refuses what could smuggle a second command into one line (CR/LF in
/// an address or parameter): fields of the caller's structs are public,
/// so the parser's checks may have been bypassed.
pub fn validate(tx: &Transaction) -> Result<(), ClientError> {
    if tx.rcpts.is_empty() {
        return Err(ClientError::NoRecipients);
    }
    let addr_ok = |a: &MailAddr| !format!("{a}").chars().any(char::is_control);
    if !tx.sender.as_ref().is_none_or(addr_ok) {
        return Err(ClientError::BadParameter("sender"));
    }
    let param_ok = |p: &Option<String>| {
        p.as_deref()
            .is_none_or(|p| !p.is_empty() && !p.chars().any(|c| c.is_control() || c == ' '))
    };
    if !param_ok(&tx.ret) {
        return Err(ClientError::BadParameter("RET"));
    }
    if !param_ok(&tx.envid) {
        return Err(ClientError::BadParameter("ENVID"));
    }
    for r in &tx.rcpts {
        if !addr_ok(&r.addr) {
            return Err(ClientError::BadParameter("recipient"));
        }
        if !param_ok(&r.notify) {
            return Err(ClientError::BadParameter("NOTIFY"));
        }
        if !param_ok(&r.orcpt) {
            return Err(ClientError::BadParameter("ORCPT"));
        }
    }
    Ok(())
}

/// Whether a name is fit for `EHLO name` (one word, printable).
pub fn valid_helo(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// The size the message will have on the wire before dot-stuffing,
/// which is what SIZE= and the server's limit count (RFC 1870).
pub fn wire_len(content: &[u8]) -> u64 {
    let bare_lf = content
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || content[i - 1] != b'\r'))
        .count();
    let missing_eol = usize::from(!content.is_empty() && !content.ends_with(b"\n")) * 2;
    (content.len() + bare_lf + missing_eol) as u64
}

/// The message as DATA carries it: bare LFs become CRLF, a line starting
/// with '.' gets another, the last line is ended, then `.\r\n`.
/// Normalising line ends means no `\n.\n` in the content can end the
/// data early on a lenient server (SMTP smuggling).
pub fn dot_stuffed(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    for line in content.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// `AUTH PLAIN` with its initial response (RFC 4616): `\0user\0password`.
pub fn auth_plain(c: &Credentials) -> Zeroizing<String> {
    let mut raw = Zeroizing::new(Vec::with_capacity(c.user.len() + c.password.len() + 2));
    raw.push(0);
    raw.extend_from_slice(c.user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(c.password.as_bytes());
    let b64 = Zeroizing::new(B64.encode(&*raw));
    Zeroizing::new(format!("AUTH PLAIN {}\r\n", &*b64))
}

/// One line answering an `AUTH LOGIN` challenge.
pub fn auth_login_response(secret: &str) -> Zeroizing<String> {
    let b64 = Zeroizing::new(B64.encode(secret.as_bytes()));
    Zeroizing::new(format!("{}\r\n", &*b64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuffed(b""), b".\r\n");
        assert_eq!(
            dot_stuffed(b"a\r\n.b\r\n..\r\n"),
            b"a\r\n..b\r\n...\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(wire_len(b"a\n.\nb"), 9);
        assert_eq!(wire_len(b"a\r\n"), 3);
    }

    #[test]
    fn auth_plain_encoding() {
        let c = Credentials::new("user", "pass");
        assert_eq!(&*auth_plain(&c), "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
    }
}
