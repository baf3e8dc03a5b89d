//! Delivery status notifications (RFC 3464): the message a sender gets
//! when one of its recipients failed for good.

use super::Notice;
use crate::envelope::Envelope;

/// How much of the original message a bounce carries back.
const MAX_RETURNED_BODY: usize = 64 * 1024;

/// Builds the DSN for `failed` (all envelopes of one message that failed
/// or are delayed together), from `hostname`'s MAILER-DAEMON. `original`
/// is the queued message; its headers (or more, per RET=FULL) are
/// returned.
pub fn compose(
    hostname: &str,
    notice: Notice,
    failed: &[&Envelope],
    original: &[u8],
    boundary_seed: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let Some(first) = failed.first() else {
        return Vec::new();
    };
    let to = first
        .sender
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let boundary = format!("{boundary_seed:016x}/{hostname}");
    let date = now.to_rfc2822();
    let mut m = String::new();
    m += &format!(
        "Received: from {hostname} (wasmtpd)\r\n\tby {hostname} (wasmtpd);\r\n\t{date}\r\n"
    );
    m += &format!("From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n");
    m += &format!("To: {to}\r\n");
    let (subject, action) = match notice {
        Notice::Failed => ("error", "failed"),
        Notice::Delayed => ("delay", "delayed"),
    };
    m += &format!("Subject: Delivery status notification: {subject}\r\n");
    m += &format!("Date: {date}\r\n");
    m += &format!("Message-ID: <{boundary_seed:016x}.bounce@{hostname}>\r\n");
    m += "MIME-Version: 1.0\r\n";
    m += "Auto-Submitted: auto-replied\r\n";
    m += &format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    );
    m += "This is a MIME-encapsulated message.\r\n\r\n";
    m += &format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    m += "Hi!\r\n\r\nThis is the MAILER-DAEMON, please DO NOT REPLY to this email.\r\n\r\n";
    m += match notice {
        Notice::Failed => "An error has occurred while attempting to deliver a message for\r\nthe following list of recipients:\r\n\r\n",
        Notice::Delayed => "A message is delayed for more than the expected time for\r\nthe following list of recipients; delivery will be tried again:\r\n\r\n",
    };
    for e in failed {
        let reason = failure_reason(e);
        m += &format!("{}: {}\r\n", e.rcpt, one_line(reason));
    }
    m += "\r\nBelow is a copy of the original message:\r\n\r\n";
    m += &format!("--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n");
    m += &format!("Reporting-MTA: dns; {hostname}\r\n");
    if let Some(envid) = &first.dsn.envid {
        m += &format!("Original-Envelope-Id: {envid}\r\n");
    }
    m += &format!("Arrival-Date: {}\r\n", unix_to_rfc2822(first.created));
    for e in failed {
        let reason = failure_reason(e);
        let status = match (notice, enhanced_status(reason)) {
            // An expired envelope keeps its last 4.x.x, as Postfix does.
            (Notice::Failed, Some(s)) => s.to_string(),
            (Notice::Failed, None) => "5.0.0".to_string(),
            (Notice::Delayed, Some(s)) => format!("4{}", &s[1..]),
            (Notice::Delayed, None) => "4.0.0".to_string(),
        };
        m += "\r\n";
        if let Some(orcpt) = &e.dsn.orcpt {
            m += &format!("Original-Recipient: {orcpt}\r\n");
        }
        m += &format!("Final-Recipient: rfc822; {}\r\n", e.dest);
        m += &format!("Action: {action}\r\n");
        m += &format!("Status: {status}\r\n");
        m += &format!("Diagnostic-Code: smtp; {}\r\n", one_line(reason));
        if e.last_try > 0 {
            m += &format!("Last-Attempt-Date: {}\r\n", unix_to_rfc2822(e.last_try));
        }
        if notice == Notice::Delayed {
            m += &format!("Will-Retry-Until: {}\r\n", unix_to_rfc2822(e.expire));
        }
    }
    let headers_only = first
        .dsn
        .ret
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case("HDRS"));
    let (ctype, body) = if headers_only || original.len() > MAX_RETURNED_BODY {
        ("text/rfc822-headers", header_block(original))
    } else {
        ("message/rfc822", original)
    };
    m += &format!("\r\n--{boundary}\r\nContent-Type: {ctype}\r\n\r\n");
    let mut out = m.into_bytes();
    out.extend_from_slice(body);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// Why an envelope failed, as the bounce tells it.
fn failure_reason(e: &Envelope) -> &str {
    e.bounce_reason
        .as_deref()
        .or(e.last_error.as_deref())
        .unwrap_or("delivery failed")
}

fn header_block(msg: &[u8]) -> &[u8] {
    match msg.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &msg[..i + 2],
        None => msg,
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The `x.y.z` code in a reply text like `550 5.1.1 User unknown`.
fn enhanced_status(reason: &str) -> Option<&str> {
    reason.split_whitespace().find(|w| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    })
}

fn unix_to_rfc2822(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.to_rfc2822())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_enhanced_status() {
        assert_eq!(enhanced_status("550 5.1.1 User unknown"), Some("5.1.1"));
        assert_eq!(enhanced_status("mailbox full"), None);
    }

    #[test]
    fn header_block_stops_at_blank_line() {
        assert_eq!(header_block(b"A: b\r\n\r\nbody"), b"A: b\r\n");
    }
}
