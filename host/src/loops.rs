//! Mail loop detection, on the message's own trace: the number of
//! `Received:` headers (RFC 5321 §6.3; OpenSMTPD refuses more than 100
//! with `554 5.4.6 Too many hops`) and a `Delivered-To:` header naming the
//! recipient being delivered (Postfix's local(8) check).

/// More `Received:` headers than this and a message is looping.
pub const MAX_HOPS: usize = 100;

/// The header fields of `message` (up to the first empty line), each
/// as (name, unfolded value).
fn fields(message: &[u8]) -> impl Iterator<Item = (&[u8], Vec<u8>)> {
    let end = header_end(message);
    let mut lines = message[..end].split(|&b| b == b'\n').peekable();
    std::iter::from_fn(move || loop {
        let line = trim_cr(lines.next()?);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line.first().is_some_and(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) =
            lines.next_if(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
        {
            value.extend_from_slice(trim_cr(next));
        }
        return Some((&line[..colon], value));
    })
}

fn header_end(message: &[u8]) -> usize {
    let mut at = 0;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if trim_cr(line.strip_suffix(b"\n").unwrap_or(line)).is_empty() {
            return at;
        }
        at += line.len();
    }
    message.len()
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// True when the message has been through more than [`MAX_HOPS`] hosts.
pub fn too_many_hops(message: &[u8]) -> bool {
    fields(message)
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"Received"))
        .nth(MAX_HOPS)
        .is_some()
}

/// True when the message already went to `recipient` here once.
pub fn delivered_to(message: &[u8], recipient: &str) -> bool {
    fields(message).any(|(name, value)| {
        name.eq_ignore_ascii_case(b"Delivered-To")
            && String::from_utf8_lossy(&value)
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .eq_ignore_ascii_case(recipient)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_received(n: usize) -> Vec<u8> {
        let mut m = Vec::new();
        for i in 0..n {
            m.extend_from_slice(format!("Received: from h{i}\r\n\tby x;\r\n").as_bytes());
        }
        m.extend_from_slice(b"Subject: hi\r\n\r\nReceived: in the body\r\n");
        m
    }

    #[test]
    fn counts_received_headers_only() {
        assert!(!too_many_hops(&with_received(MAX_HOPS)));
        assert!(too_many_hops(&with_received(MAX_HOPS + 1)));
        // Body lines do not count.
        let mut m = b"Subject: x\r\n\r\n".to_vec();
        for _ in 0..200 {
            m.extend_from_slice(b"Received: fake\r\n");
        }
        assert!(!too_many_hops(&m));
    }

    #[test]
    fn finds_delivered_to_folded_and_in_brackets() {
        let m = b"Delivered-To:\r\n <Bob@Example.org>\r\nSubject: x\r\n\r\nDelivered-To: carol@example.org\r\n";
        assert!(delivered_to(m, "bob@example.org"));
        assert!(!delivered_to(m, "carol@example.org"));
        assert!(!delivered_to(b"Subject: x\r\n\r\n", "bob@example.org"));
    }
}
