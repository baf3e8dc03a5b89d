//! `show envelope ID`: the envelope as `key: value` lines, in the spirit
//! of OpenSMTPD's envelope file (which smtpctl prints as is).
//!
//! Keys, in order; a key whose value is empty is left out, as OpenSMTPD
//! does:
//!
//! `version` (of this text form, 1), `evpid`, `dispatcher` (the action),
//! `tag`, `type`, `smtpname` (our listener's hostname), `helo`,
//! `hostname` (the client's resolved name), `username` (authenticated
//! user), `errorline`, `sockaddr` (`local`, `192.0.2.1` or
//! `[2001:db8::1]`), `sender`, `rcpt`, `dest`, `ctime`, `last-try`,
//! `next-try`, `expire`, `ttl` (expire − ctime), `retry`, `flags`
//! (`authenticated`, `bounce`, `junk`), `warnings`, `dsn-notify`,
//! `dsn-ret`, `dsn-envid`, `dsn-orcpt`, then by target `mda-user`,
//! `mda-file`, `mda-exec`, and for bounces `bounce-reason`.
//!
//! OpenSMTPD's `last-bounce`, `esc-class`/`esc-code` and `mda-subaddress`
//! have no counterpart in our envelope and are not printed.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::queue::kind_word;
use super::sanitize::escape_field;
use crate::envelope::{Envelope, EnvelopeKind, LocalTarget};
use crate::mailaddr::MailAddr;

/// Version of this text form, bumped if keys change meaning.
pub const ENVELOPE_TEXT_VERSION: u32 = 1;

/// The `(key, value)` pairs of `show envelope`, in order, unescaped,
/// empty values left out.
pub fn envelope_fields(env: &Envelope) -> Vec<(&'static str, String)> {
    let mut f: Vec<(&'static str, String)> = Vec::with_capacity(32);
    let addr = |a: Option<&MailAddr>| a.map(MailAddr::to_string).unwrap_or_default();
    f.push(("version", ENVELOPE_TEXT_VERSION.to_string()));
    f.push(("evpid", env.id.to_string()));
    f.push(("dispatcher", env.action.clone()));
    f.push(("tag", env.tag.clone().unwrap_or_default()));
    f.push(("type", kind_word(env.kind).to_string()));
    f.push(("smtpname", env.hostname.clone()));
    f.push(("helo", env.helo.clone()));
    f.push(("hostname", env.peer_name.clone()));
    f.push(("username", env.auth_user.clone().unwrap_or_default()));
    f.push(("errorline", env.last_error.clone().unwrap_or_default()));
    f.push((
        "sockaddr",
        match env.peer {
            None => "local".to_string(),
            Some(p) if p.is_ipv4() => p.ip().to_string(),
            Some(p) => format!("[{}]", p.ip()),
        },
    ));
    f.push(("sender", addr(env.sender.as_ref())));
    f.push(("rcpt", env.rcpt.to_string()));
    f.push(("dest", env.dest.to_string()));
    f.push(("ctime", env.created.to_string()));
    f.push(("last-try", env.last_try.to_string()));
    f.push(("next-try", env.next_try.to_string()));
    f.push(("expire", env.expire.to_string()));
    f.push(("ttl", env.expire.saturating_sub(env.created).to_string()));
    f.push(("retry", env.tries.to_string()));
    let mut flags = Vec::new();
    if env.auth_user.is_some() {
        flags.push("authenticated");
    }
    if env.kind == EnvelopeKind::Bounce {
        flags.push("bounce");
    }
    if env.junk {
        flags.push("junk");
    }
    f.push(("flags", flags.join(" ")));
    if env.warnings > 0 {
        f.push(("warnings", env.warnings.to_string()));
    }
    f.push(("dsn-notify", env.dsn.notify.clone().unwrap_or_default()));
    f.push(("dsn-ret", env.dsn.ret.clone().unwrap_or_default()));
    f.push(("dsn-envid", env.dsn.envid.clone().unwrap_or_default()));
    f.push(("dsn-orcpt", env.dsn.orcpt.clone().unwrap_or_default()));
    match &env.target {
        Some(LocalTarget::User { username, .. }) => f.push(("mda-user", username.clone())),
        Some(LocalTarget::File { path, user, .. }) => {
            f.push(("mda-user", user.clone()));
            f.push(("mda-file", path.clone()));
        }
        Some(LocalTarget::Command { command, user, .. }) => {
            f.push(("mda-user", user.clone()));
            f.push(("mda-exec", command.clone()));
        }
        None => {}
    }
    if env.kind == EnvelopeKind::Bounce {
        f.push((
            "bounce-reason",
            env.bounce_reason.clone().unwrap_or_default(),
        ));
    }
    f.retain(|(_, v)| !v.is_empty());
    f
}

/// `show envelope ID` text: one `key: value` line each, values escaped
/// with [`escape_field`] so client text cannot add lines; ends with a
/// newline.
pub fn envelope_text(env: &Envelope) -> String {
    envelope_fields(env)
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", escape_field(v)))
        .collect()
}

/// `show envelope ID --json`: a JSON object with the same keys in the same
/// order as the text, values unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeDoc(pub Vec<(&'static str, String)>);

impl EnvelopeDoc {
    pub fn new(env: &Envelope) -> EnvelopeDoc {
        EnvelopeDoc(envelope_fields(env))
    }
}

impl Serialize for EnvelopeDoc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::format::testutil::sample;

    #[test]
    fn sample_envelope_text() {
        assert_eq!(
            envelope_text(&sample()),
            "version: 1\n\
             evpid: 1a2b3c4d00000001\n\
             dispatcher: relay\n\
             type: mta\n\
             smtpname: mx.example.com\n\
             helo: client.example.org\n\
             hostname: client.example.org\n\
             errorline: 421 4.7.0 Try again later\n\
             sockaddr: 192.0.2.7\n\
             sender: alice@example.org\n\
             rcpt: bob@example.net\n\
             dest: robert@example.net\n\
             ctime: 1700000000\n\
             last-try: 1700000600\n\
             next-try: 1700001500\n\
             expire: 1700345600\n\
             ttl: 345600\n\
             retry: 2\n"
        );
    }

    #[test]
    fn local_bounce_with_target_and_dsn() {
        let mut env = sample();
        env.kind = EnvelopeKind::Bounce;
        env.peer = None;
        env.auth_user = Some("alice".into());
        env.dsn.notify = Some("FAILURE".into());
        env.dsn.ret = Some("HDRS".into());
        env.bounce_reason = Some("550 5.1.1 no such user".into());
        env.target = Some(LocalTarget::Command {
            command: "/usr/bin/procmail".into(),
            user: "bob".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/bob".into(),
        });
        let text = envelope_text(&env);
        for line in [
            "type: bounce\n",
            "username: alice\n",
            "sockaddr: local\n",
            "flags: authenticated bounce\n",
            "dsn-notify: FAILURE\n",
            "dsn-ret: HDRS\n",
            "mda-user: bob\n",
            "mda-exec: /usr/bin/procmail\n",
            "bounce-reason: 550 5.1.1 no such user\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let mut v6 = sample();
        v6.peer = Some("[2001:db8::1]:25".parse().unwrap());
        assert!(envelope_text(&v6).contains("sockaddr: [2001:db8::1]\n"));
    }

    #[test]
    fn hostile_helo_cannot_forge_a_line() {
        let mut env = sample();
        env.helo = "evil\r\nsender: ceo@bank.example".into();
        let text = envelope_text(&env);
        assert!(text.contains("helo: evil\\r\\nsender: ceo@bank.example\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("sender:")).count(), 1);
    }

    #[test]
    fn json_keeps_order_and_keys() {
        let json = serde_json::to_string(&EnvelopeDoc::new(&sample())).unwrap();
        assert!(
            json.starts_with(r#"{"version":"1","evpid":"1a2b3c4d00000001","#),
            "{json}"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["rcpt"], "bob@example.net");
        assert_eq!(v["last-try"], "1700000600");
        assert!(v.get("tag").is_none());
    }
}
