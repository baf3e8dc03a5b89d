//! A sample envelope shared by the format tests.

use crate::envelope::{DsnParams, Envelope, EnvelopeKind, EvpId};
use crate::mailaddr::MailAddr;

pub(crate) fn sample() -> Envelope {
    Envelope {
        id: EvpId(0x1a2b3c4d_00000001),
        kind: EnvelopeKind::Mta,
        action: "relay".into(),
        sender: Some(MailAddr::new("alice", "example.org")),
        rcpt: MailAddr::new("bob", "example.net"),
        dest: MailAddr::new("robert", "example.net"),
        target: None,
        dsn: DsnParams::default(),
        tag: None,
        helo: "client.example.org".into(),
        peer: Some("192.0.2.7:40000".parse().unwrap()),
        peer_name: "client.example.org".into(),
        hostname: "mx.example.com".into(),
        auth_user: None,
        created: 1_700_000_000,
        expire: 1_700_345_600,
        tries: 2,
        last_try: 1_700_000_600,
        next_try: 1_700_001_500,
        last_error: Some("421 4.7.0 Try again later".into()),
        bounce_reason: None,
        junk: false,
        warnings: 0,
    }
}
