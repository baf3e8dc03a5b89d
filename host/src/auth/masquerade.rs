//! `senders <t> masquerade`: the message's From header is rewritten to
//! the envelope sender the user was allowed to use (OpenSMTPD rewrites
//! the address of the DATA From header; the display name stays).

use crate::mailaddr::MailAddr;

/// The message with its first From header's address replaced by
/// `sender`, or `None` when there is nothing to change (no From header,
/// or it already names `sender`). `content` is CRLF text, headers first.
pub fn rewrite_from(content: &[u8], sender: &MailAddr) -> Option<Vec<u8>> {
    let header_end = find(content, b"\r\n\r\n").map_or(content.len(), |i| i + 2);
    let mut start = 0;
    while start < header_end {
        let line_end =
            find(&content[start..header_end], b"\r\n").map_or(header_end, |i| start + i + 2);
        if content[start..line_end]
            .get(..5)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"from:"))
        {
            // Continuation lines belong to the field.
            let mut end = line_end;
            while end < header_end && matches!(content[end], b' ' | b'\t') {
                end = find(&content[end..header_end], b"\r\n").map_or(header_end, |i| end + i + 2);
            }
            let value = String::from_utf8_lossy(&content[start + 5..end]);
            let value = value.replace("\r\n", "");
            let new = new_value(&value, &sender.to_string())?;
            let mut out = Vec::with_capacity(content.len() + 64);
            out.extend_from_slice(&content[..start]);
            out.extend_from_slice(format!("From:{new}\r\n").as_bytes());
            out.extend_from_slice(&content[end..]);
            return Some(out);
        }
        start = line_end;
    }
    None
}

/// The From value with its address replaced; `None` if unchanged.
fn new_value(value: &str, sender: &str) -> Option<String> {
    if let (Some(lt), Some(gt)) = (value.rfind('<'), value.rfind('>')) {
        if lt < gt {
            let old = value[lt + 1..gt].trim();
            if old.eq_ignore_ascii_case(sender) {
                return None;
            }
            return Some(format!("{}<{sender}>{}", &value[..lt], &value[gt + 1..]));
        }
    }
    if value.trim().eq_ignore_ascii_case(sender) {
        return None;
    }
    Some(format!(" <{sender}>"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(msg: &str) -> Option<String> {
        let sender = MailAddr::parse("joe@example.org").unwrap();
        rewrite_from(msg.as_bytes(), &sender).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn keeps_display_name_and_other_headers() {
        assert_eq!(
            rw("Subject: x\r\nFrom: \"Joe\" <boss@example.org>\r\nTo: a@b\r\n\r\nFrom: body\r\n")
                .as_deref(),
            Some("Subject: x\r\nFrom: \"Joe\" <joe@example.org>\r\nTo: a@b\r\n\r\nFrom: body\r\n")
        );
    }

    #[test]
    fn bare_and_folded_addresses() {
        assert_eq!(
            rw("from: boss@example.org\r\n\r\nhi\r\n").as_deref(),
            Some("From: <joe@example.org>\r\n\r\nhi\r\n")
        );
        assert_eq!(
            rw("From: Joe\r\n <boss@example.org>\r\nTo: a@b\r\n\r\n").as_deref(),
            Some("From: Joe <joe@example.org>\r\nTo: a@b\r\n\r\n")
        );
    }

    #[test]
    fn unchanged_when_already_right_or_absent() {
        assert_eq!(rw("From: Joe <JOE@example.org>\r\n\r\nx\r\n"), None);
        assert_eq!(rw("Subject: x\r\n\r\nFrom: <boss@example.org>\r\n"), None);
    }
}
