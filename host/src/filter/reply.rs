//! Checks a reply a filter asked for before it reaches the client: a
//! 4xx/5xx code, a well-formed enhanced status of the same class, one
//! short line of printable text.

use crate::smtp::proto::Reply;

use super::bindings;

/// Longest reply text passed on; the rest is cut.
const MAX_TEXT: usize = 400;

/// The reply to send, or why it was refused.
pub fn checked(r: &bindings::Reply) -> Result<Reply, String> {
    if !(400..600).contains(&r.code) {
        return Err(format!("reply code {} is not 4xx or 5xx", r.code));
    }
    let class = char::from(b'0' + (r.code / 100) as u8);
    let enhanced = r
        .enhanced
        .as_deref()
        .filter(|e| valid_enhanced(e) && e.starts_with(class))
        .map(str::to_string)
        .or_else(|| Some(format!("{class}.7.1")));
    let text: String = r
        .text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect();
    let text = if text.trim().is_empty() {
        "Rejected by filter".to_string()
    } else {
        text
    };
    Ok(Reply {
        code: r.code,
        enhanced,
        text,
    })
}

fn valid_enhanced(e: &str) -> bool {
    let parts: Vec<&str> = e.split('.').collect();
    parts.len() == 3
        && parts[0].len() == 1
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(code: u16, enhanced: Option<&str>, text: &str) -> bindings::Reply {
        bindings::Reply {
            code,
            enhanced: enhanced.map(str::to_string),
            text: text.to_string(),
        }
    }

    #[test]
    fn replies_are_made_safe() {
        let ok = checked(&r(550, Some("5.7.1"), "no\r\n250 ok")).unwrap();
        assert_eq!((ok.code, ok.enhanced.as_deref()), (550, Some("5.7.1")));
        assert_eq!(ok.text, "no250 ok");
        // A mismatched class or a malformed code is replaced.
        assert_eq!(
            checked(&r(451, Some("5.7.1"), "x"))
                .unwrap()
                .enhanced
                .as_deref(),
            Some("4.7.1")
        );
        assert_eq!(
            checked(&r(550, None, "")).unwrap().text,
            "Rejected by filter"
        );
        assert_eq!(
            checked(&r(550, None, &"x".repeat(10_000)))
                .unwrap()
                .text
                .len(),
            MAX_TEXT
        );
        assert!(checked(&r(250, None, "ok")).is_err());
        assert!(checked(&r(354, None, "go")).is_err());
    }
}
