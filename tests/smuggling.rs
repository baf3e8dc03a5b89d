//! SMTP smuggling: only CRLF.CRLF ends DATA. Every bare-LF/bare-CR end
//! of data variant must either be rejected or stay inside one message;
//! none may start a second, smuggled transaction.

mod common;

use common::*;

fn site() -> (Site, Daemon) {
    let site = Site::new();
    site.maildir_config();
    let d = site.start(&[]);
    (site, d)
}

const VECTORS: &[&[u8]] = &[
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\n.\r", b"\r.\n", b"\r.\r\n", b"\r\n.\r",
];

#[test]
fn smuggled_end_of_data_never_splits_a_message() {
    let (site, d) = site();
    for (i, vector) in VECTORS.iter().enumerate() {
        let mut s = Raw::connect(d.port);
        assert!(s.cmd("EHLO attacker.example").starts_with("250"));
        assert!(s.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
        assert!(s.cmd("RCPT TO:<bob@localhost>").starts_with("250"));
        assert!(s.cmd("DATA").starts_with("354"));
        let mut payload = format!("Subject: vector {i}\r\n\r\nhello").into_bytes();
        payload.extend_from_slice(vector);
        payload.extend_from_slice(
            b"MAIL FROM:<admin@localhost>\r\nRCPT TO:<smuggled@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
        );
        s.send(&payload);
        let reply = s.read_reply();
        assert!(
            reply.starts_with("550 5.5.2") || reply.starts_with("250"),
            "vector {i}: unexpected reply {reply:?}"
        );
        // Whatever followed the vector is data, not commands: the next
        // command is answered as the first one after the message.
        let r = s.cmd("NOOP");
        assert!(r.starts_with("250"), "vector {i}: {r}");
    }
    // Give delivery a moment, then check no smuggled mail exists.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        maildir_new(&site.path("mail/smuggled/Maildir")).is_empty(),
        "a message was smuggled"
    );
    for msg in maildir_new(&site.path("mail/bob/Maildir")) {
        let text = std::fs::read(&msg).unwrap();
        assert!(
            !text.windows(6).any(|w| w == b"\n.\r\n\r\n"),
            "message was split"
        );
    }
    assert!(!d.log().contains("to=<smuggled@localhost>"));
}

#[test]
fn bare_lf_in_commands_is_refused() {
    let (_site, d) = site();
    let mut s = Raw::connect(d.port);
    s.send(b"EHLO x\n");
    let r = s.read_reply();
    assert!(r.starts_with("521 5.5.2"), "{r}");
}
