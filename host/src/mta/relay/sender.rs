//! The envelope sender the relay sends with.

use crate::config::model::RelayOptions;
use crate::mailaddr::MailAddr;

/// The MAIL FROM to relay with: `mail-from` (or 5.x `as`) rewrites the
/// sender as `user@domain`, `@domain` (keeping the local part) or
/// `user@` (keeping the domain). A bounce keeps its null sender: giving
/// it one could make bounces bounce.
pub(super) fn envelope_sender(sender: Option<&MailAddr>, opts: &RelayOptions) -> Option<MailAddr> {
    let sender = sender?;
    let Some(spec) = opts.mail_from.as_deref() else {
        return Some(sender.clone());
    };
    let rewritten = match spec.split_once('@') {
        Some(("", domain)) => MailAddr::parse(&format!("{}@{domain}", sender.local)),
        Some((local, "")) => MailAddr::parse(&format!("{local}@{}", sender.domain)),
        _ => MailAddr::parse(spec),
    };
    Some(rewritten.unwrap_or_else(|_| sender.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(spec: &str) -> RelayOptions {
        RelayOptions {
            mail_from: Some(spec.into()),
            ..Default::default()
        }
    }

    #[test]
    fn masquerade_forms() {
        let alice = MailAddr::new("alice", "in.example.org");
        let got = |spec: &str| envelope_sender(Some(&alice), &with(spec)).map(|a| a.to_string());
        assert_eq!(
            got("bounces@out.example.org").as_deref(),
            Some("bounces@out.example.org")
        );
        assert_eq!(
            got("@out.example.org").as_deref(),
            Some("alice@out.example.org")
        );
        assert_eq!(got("relay@").as_deref(), Some("relay@in.example.org"));
        // Unusable: the sender goes as it was.
        assert_eq!(
            got("not an address").as_deref(),
            Some("alice@in.example.org")
        );
        assert_eq!(envelope_sender(None, &with("x@y.org")), None);
        assert_eq!(
            envelope_sender(Some(&alice), &RelayOptions::default()),
            Some(alice.clone())
        );
    }
}
