//! End-to-end tests of the configuration loader: text in, model or
//! located errors out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Config {
    match parse_str(text, Path::new("test.conf")) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

/// Every error line, rendered.
fn errors(text: &str) -> Vec<String> {
    match parse_str(text, Path::new("t.conf")) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn cond(negated: bool, cond: Cond) -> Condition {
    Condition { negated, cond }
}

fn lit(s: &str) -> Pattern {
    Pattern::Literal(s.into())
}

fn table(s: &str) -> Pattern {
    Pattern::Table(s.into())
}

#[test]
fn tables_all_forms() {
    let c = parse(
        "table a file:/etc/mail/aliases\n\
         table b /etc/mail/b\n\
         table c db:/etc/mail/c.db\n\
         table d getpwnam:\n\
         table e { one, two\n  three }\n\
         table f { k1 = v1, \"k 2\" = \"v 2\" }\n",
    );
    let src = |n: &str| c.tables[n].source.clone();
    assert_eq!(
        src("a"),
        TableSource::File {
            backend: "file".into(),
            path: "/etc/mail/aliases".into()
        }
    );
    assert_eq!(
        src("b"),
        TableSource::File {
            backend: "file".into(),
            path: "/etc/mail/b".into()
        }
    );
    assert_eq!(
        src("c"),
        TableSource::File {
            backend: "db".into(),
            path: "/etc/mail/c.db".into()
        }
    );
    assert_eq!(
        src("d"),
        TableSource::Backend {
            backend: "getpwnam".into(),
            config: "".into()
        }
    );
    assert_eq!(
        src("e"),
        TableSource::InlineList(vec!["one".into(), "two".into(), "three".into()])
    );
    assert_eq!(
        src("f"),
        TableSource::InlineMap(vec![
            ("k1".into(), "v1".into()),
            ("k 2".into(), "v 2".into())
        ])
    );
    assert_eq!(c.tables["e"].origin.line, 5);
}

#[test]
fn pki_and_ca() {
    let c = parse(
        "pki mx cert \"/etc/ssl/mx.crt\"\npki mx key \"/etc/ssl/mx.key\"\npki mx dhe auto\n\
         ca myca cert \"/etc/ssl/ca.pem\"\n",
    );
    let p = &c.pki["mx"];
    assert_eq!(p.cert.as_deref(), Some(Path::new("/etc/ssl/mx.crt")));
    assert_eq!(p.key.as_deref(), Some(Path::new("/etc/ssl/mx.key")));
    assert_eq!(p.dhe.as_deref(), Some("auto"));
    assert_eq!(c.ca["myca"].cert, PathBuf::from("/etc/ssl/ca.pem"));
}

#[test]
fn listen_with_every_option() {
    let c = parse(
        "pki a cert a.crt\npki a key a.key\npki b cert b.crt\npki b key b.key\nca c cert c.pem\n\
         table creds { u = p }\ntable names { mx.example.org }\ntable snd { u = u@x.org }\n\
         filter f regex helo \"^bad$\"\n\
         listen on eth0 inet6 port 10025 tls-require verify pki a pki b ca c auth <creds> \
         tag IN hostname mx.example.org hostnames <names> filter f mask-src no-dsn proxy-v2 \
         received-auth senders <snd> masquerade protocols \"tlsv1.3\" ciphers \"HIGH\"\n\
         listen on 127.0.0.1 port smtps smtps\n\
         listen on ::1 port submission tls auth-optional <creds>\n\
         listen on socket\n\
         listen on mail.example.org inet4 smtps verify\n",
    );
    let l = &c.listeners[0];
    assert_eq!(l.target, ListenTarget::Interface("eth0".into()));
    assert_eq!(l.family, AddressFamily::Inet6);
    assert_eq!(l.port, Some(10025));
    assert_eq!(l.tls, TlsMode::StartTlsRequire);
    assert!(l.tls_verify);
    assert_eq!(l.pki, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(l.ca.as_deref(), Some("c"));
    assert_eq!(l.auth, AuthMode::Required(Some("creds".into())));
    assert_eq!(l.tag.as_deref(), Some("IN"));
    assert_eq!(l.hostname.as_deref(), Some("mx.example.org"));
    assert_eq!(l.hostnames.as_deref(), Some("names"));
    assert_eq!(l.filter.as_deref(), Some("f"));
    assert!(l.mask_src && l.no_dsn && l.proxy_v2 && l.received_auth && l.masquerade);
    assert_eq!(l.senders.as_deref(), Some("snd"));
    assert_eq!(l.protocols.as_deref(), Some("tlsv1.3"));
    assert_eq!(l.ciphers.as_deref(), Some("HIGH"));
    assert_eq!(l.origin.line, 10);

    let l = &c.listeners[1];
    assert_eq!(l.target, ListenTarget::Addr("127.0.0.1".parse().unwrap()));
    assert_eq!(
        (l.port, l.tls, l.tls_verify),
        (Some(465), TlsMode::Smtps, false)
    );
    let l = &c.listeners[2];
    assert_eq!(l.target, ListenTarget::Addr("::1".parse().unwrap()));
    assert_eq!((l.port, l.tls), (Some(587), TlsMode::StartTls));
    assert_eq!(l.auth, AuthMode::Optional(Some("creds".into())));
    assert_eq!(c.listeners[3].target, ListenTarget::Socket);
    assert_eq!(c.listeners[3].port, None);
    let l = &c.listeners[4];
    assert_eq!(l.target, ListenTarget::Host("mail.example.org".into()));
    assert_eq!(
        (l.family, l.tls, l.tls_verify),
        (AddressFamily::Inet4, TlsMode::Smtps, true)
    );
}

#[test]
fn listen_inline_filter_chain() {
    let c = parse("filter a dnsbl\nfilter b regex\nlisten on lo filter { a, b }\n");
    let name = c.listeners[0].filter.clone().unwrap();
    assert_eq!(
        c.filters[&name].kind,
        FilterKind::Chain(vec!["a".into(), "b".into()])
    );
}

#[test]
fn local_actions() {
    let c = parse(
        "table aliases { root = alice }\ntable v { a@x.org = alice }\ntable users { alice = 1000:1000:/home/alice }\n\
         mda wrapper w \"/usr/bin/wrap %{mda}\"\n\
         action mb mbox alias <aliases> ttl 2d\n\
         action md maildir \"/var/mail/%{rcpt.user:lowercase}\" junk virtual <v> userbase <users> user vmail\n\
         action md2 maildir\n\
         action md3 maildir junk\n\
         action lm lmtp \"/var/run/dovecot/lmtp\" rcpt-to\n\
         action lm2 lmtp 127.0.0.1:24\n\
         action m mda \"/usr/local/bin/procmail -f %{sender}\" wrapper w\n\
         action fo forward-only alias <aliases>\n\
         action eo expand-only\n",
    );
    let a = &c.actions["mb"];
    assert_eq!(a.method, Method::Mbox);
    assert_eq!(a.alias.as_deref(), Some("aliases"));
    assert_eq!(a.ttl, Some(Duration::from_secs(2 * 86_400)));
    let a = &c.actions["md"];
    assert_eq!(
        a.method,
        Method::Maildir {
            path: Some("/var/mail/%{rcpt.user:lowercase}".into()),
            junk: true
        }
    );
    assert_eq!(a.virtual_.as_deref(), Some("v"));
    assert_eq!(a.userbase.as_deref(), Some("users"));
    assert_eq!(a.user.as_deref(), Some("vmail"));
    assert_eq!(
        c.actions["md2"].method,
        Method::Maildir {
            path: None,
            junk: false
        }
    );
    assert_eq!(
        c.actions["md3"].method,
        Method::Maildir {
            path: None,
            junk: true
        }
    );
    assert_eq!(
        c.actions["lm"].method,
        Method::Lmtp {
            dest: "/var/run/dovecot/lmtp".into(),
            rcpt_to: true
        }
    );
    assert_eq!(
        c.actions["lm2"].method,
        Method::Lmtp {
            dest: "127.0.0.1:24".into(),
            rcpt_to: false
        }
    );
    assert_eq!(
        c.actions["m"].method,
        Method::Mda {
            command: "/usr/local/bin/procmail -f %{sender}".into()
        }
    );
    assert_eq!(c.actions["m"].wrapper.as_deref(), Some("w"));
    assert_eq!(c.mda_wrappers["w"], "/usr/bin/wrap %{mda}");
    assert_eq!(c.actions["fo"].method, Method::ForwardOnly);
    assert_eq!(c.actions["eo"].method, Method::ExpandOnly);
}

#[test]
fn relay_action_options() {
    let c = parse(
        "table h { 10.0.0.1 = mx.example.org }\ntable d { example.org }\ntable s { label = u:p }\ntable src { 10.0.0.1 }\n\
         pki p cert c\npki p key k\nca c cert ca.pem\n\
         action r relay helo out.example.org helo-src <h> domain <d> \
         host \"smtp+tls://label@smarthost:587\" tls no-verify auth <s> mail-from \"bounce@example.org\" \
         src <src> pki p ca c srs protocols all ciphers secure ttl 1h\n\
         action r2 relay backup tls src 192.0.2.1\n\
         action r3 relay\n\
         action r4 relay backup mx \"mx1.example.org\"\n",
    );
    let Method::Relay(r) = &c.actions["r"].method else {
        panic!()
    };
    assert_eq!(
        **r,
        RelayOptions {
            helo: Some("out.example.org".into()),
            helo_src: Some("h".into()),
            domain: Some("d".into()),
            host: Some("smtp+tls://label@smarthost:587".into()),
            tls: Some(RelayTls::NoVerify),
            auth: Some("s".into()),
            mail_from: Some("bounce@example.org".into()),
            src: Some("<src>".into()),
            pki: Some("p".into()),
            ca: Some("c".into()),
            srs: true,
            protocols: Some("all".into()),
            ciphers: Some("secure".into()),
            ..Default::default()
        }
    );
    assert_eq!(c.actions["r"].ttl, Some(Duration::from_secs(3600)));
    let Method::Relay(r) = &c.actions["r2"].method else {
        panic!()
    };
    assert!(r.backup && r.backup_mx.is_none());
    assert_eq!(r.tls, Some(RelayTls::Verify));
    assert_eq!(r.src.as_deref(), Some("192.0.2.1"));
    assert_eq!(c.actions["r3"].method, Method::Relay(Box::default()));
    let Method::Relay(r) = &c.actions["r4"].method else {
        panic!()
    };
    assert!(r.backup && r.backup_mx.as_deref() == Some("mx1.example.org"));
}

#[test]
fn relay_actions_that_cannot_work_are_refused() {
    assert_eq!(
        errors(
            "table s { label = u:p }\n\
             action a relay host \"smtpx://mx.example.org\"\n\
             action b relay backup host \"smtp://mx.example.org\"\n\
             action c relay host \"smtp+tls://mx.example.org:0\"\n\
             action d relay host \"smtp+tls://mx.example.org\" auth <s>\n\
             action e relay auth <s>\n"
        ),
        vec![
            "t.conf:2: action \"a\": relay host: unknown scheme \"smtpx\" (smtp, smtp+tls, smtp+notls, smtps, lmtp)",
            "t.conf:3: action \"b\": backup and host are mutually exclusive",
            "t.conf:4: action \"c\": relay host: bad port \"0\"",
            "t.conf:5: action \"d\": auth needs a credentials label in the host (smtp+tls://label@host)",
            "t.conf:6: action \"e\": auth needs a credentials label in the host (smtp+tls://label@host)",
        ]
    );
}

#[test]
fn match_conditions_and_defaults() {
    let c = parse(
        "table t { a }\naction a mbox\n\
         match from any for any action a\n\
         match for domain example.org action a\n\
         match from local action a\n\
         match from socket for local reject\n",
    );
    let m = &c.matches;
    assert_eq!(
        m[0].conditions,
        vec![
            cond(false, Cond::From(FromCond::Any)),
            cond(false, Cond::For(ForCond::Any))
        ]
    );
    assert_eq!(m[0].verdict, Verdict::Action("a".into()));
    assert_eq!(m[0].origin.line, 3);
    // Missing `from` means `from local`, missing `for` means `for local`.
    assert_eq!(
        m[1].conditions,
        vec![
            cond(false, Cond::For(ForCond::Domain(lit("example.org")))),
            cond(false, Cond::From(FromCond::Local)),
        ]
    );
    assert_eq!(
        m[2].conditions,
        vec![
            cond(false, Cond::From(FromCond::Local)),
            cond(false, Cond::For(ForCond::Local))
        ]
    );
    assert_eq!(m[3].verdict, Verdict::Reject);
    assert_eq!(
        m[3].conditions[0],
        cond(false, Cond::From(FromCond::Socket))
    );
}

#[test]
fn every_match_condition_with_negation() {
    let c = parse(
        "table t { a }\ntable creds { u = p }\naction a mbox\n\
         match from auth for any action a\n\
         match from auth <creds> for any action a\n\
         match from mail-from regex \"^bob@\" for any action a\n\
         match from mail-from <t> for any action a\n\
         match from rdns for any action a\n\
         match from rdns regex <t> for any action a\n\
         match ! from src 192.168.0.0/16 for any action a\n\
         match from src { 10.0.0.1, 10.0.0.2 } for any action a\n\
         match from any for rcpt-to regex <t> action a\n\
         match from any ! for domain regex \".*\\.example\\.org$\" action a\n\
         match from any for any auth action a\n\
         match from any for any ! auth <creds> action a\n\
         match from any for any helo mx.example.org mail-from <t> rcpt-to bob@x.org tag regex \"^IN\" ! tls action a\n",
    );
    let first = |i: usize| c.matches[i].conditions[0].clone();
    assert_eq!(first(0), cond(false, Cond::From(FromCond::Auth(None))));
    assert_eq!(
        first(1),
        cond(false, Cond::From(FromCond::Auth(Some(table("creds")))))
    );
    assert_eq!(
        first(2),
        cond(
            false,
            Cond::From(FromCond::MailFrom(Pattern::Regex("^bob@".into())))
        )
    );
    assert_eq!(
        first(3),
        cond(false, Cond::From(FromCond::MailFrom(table("t"))))
    );
    assert_eq!(first(4), cond(false, Cond::From(FromCond::Rdns(None))));
    assert_eq!(
        first(5),
        cond(
            false,
            Cond::From(FromCond::Rdns(Some(Pattern::RegexTable("t".into()))))
        )
    );
    assert_eq!(
        first(6),
        cond(true, Cond::From(FromCond::Src(lit("192.168.0.0/16"))))
    );
    // An inline list becomes an anonymous table.
    let Cond::From(FromCond::Src(Pattern::Table(anon))) = first(7).cond else {
        panic!()
    };
    assert_eq!(
        c.tables[&anon].source,
        TableSource::InlineList(vec!["10.0.0.1".into(), "10.0.0.2".into()])
    );
    assert_eq!(
        c.matches[8].conditions[1],
        cond(
            false,
            Cond::For(ForCond::RcptTo(Pattern::RegexTable("t".into())))
        )
    );
    assert_eq!(
        c.matches[9].conditions[1],
        cond(
            true,
            Cond::For(ForCond::Domain(Pattern::Regex(
                ".*\\.example\\.org$".into()
            )))
        )
    );
    assert_eq!(c.matches[10].conditions[2], cond(false, Cond::Auth(None)));
    assert_eq!(
        c.matches[11].conditions[2],
        cond(true, Cond::Auth(Some(table("creds"))))
    );
    assert_eq!(
        c.matches[12].conditions[2..],
        [
            cond(false, Cond::Helo(lit("mx.example.org"))),
            cond(false, Cond::MailFrom(table("t"))),
            cond(false, Cond::RcptTo(lit("bob@x.org"))),
            cond(false, Cond::Tag(Pattern::Regex("^IN".into()))),
            cond(true, Cond::Tls),
        ]
    );
}

#[test]
fn filters() {
    let c = parse(
        "table bad { 192.0.2.1 }\n\
         filter rdns phase connect match !rdns disconnect \"550 no rDNS\"\n\
         filter spam spamscore threshold 6\n\
         filter blk phase connect match src <bad> reject \"550 go away\"\n\
         filter all chain { rdns, spam, blk }\n",
    );
    assert!(matches!(c.filters["rdns"].kind, FilterKind::Builtin(_)));
    assert!(matches!(c.filters["spam"].kind, FilterKind::Wasm(_)));
    assert_eq!(
        c.filters["all"].kind,
        FilterKind::Chain(vec!["rdns".into(), "spam".into(), "blk".into()])
    );
}

#[test]
fn global_options() {
    let c = parse(
        "queue compression\nqueue encryption \"s3cr3t\"\nqueue ttl 3d\n\
         smtp max-message-size 50M\nsmtp limit max-rcpt 500\nsmtp limit max-mails 20 max-sessions 64\n\
         smtp limit max-commands 300\nsmtp sub-addr-delim \"-\"\nsmtp ciphers \"HIGH:!aNULL\"\n\
         bounce warn-interval 1h, 6h,2d\nmta max-deferred 100\nsrs key \"k\"\nsrs key backup \"k2\"\nsrs ttl 5d\n\
         admd example.org\n",
    );
    assert!(c.queue.compression);
    assert_eq!(c.queue.encryption, Some(Some("s3cr3t".into())));
    assert_eq!(c.queue.ttl, Some(Duration::from_secs(3 * 86_400)));
    assert_eq!(c.smtp.max_message_size, 50 << 20);
    assert_eq!(c.smtp.max_rcpt, 500);
    assert_eq!(c.smtp.max_mails, 20);
    assert_eq!(c.smtp.max_sessions, 64);
    assert_eq!(c.smtp.max_commands, 300);
    assert_eq!(c.smtp.sub_addr_delim, '-');
    assert_eq!(c.smtp.ciphers.as_deref(), Some("HIGH:!aNULL"));
    assert_eq!(
        c.bounce_warn_interval,
        vec![
            Duration::from_secs(3600),
            Duration::from_secs(6 * 3600),
            Duration::from_secs(2 * 86_400)
        ]
    );
    assert_eq!(parse("queue encryption\n").queue.encryption, Some(None));
    let d = parse("");
    assert_eq!(d.smtp, SmtpOptions::default());
    assert!(d.listeners.is_empty() && d.matches.is_empty());
}

#[test]
fn macros_expand_outside_quotes_only() {
    let c = parse(
        "ifc = \"lo0\"\nport = 2525\nmbox_path = \"/var/mail\"\n\
         listen on $ifc port $port tag \"$ifc\"\n\
         action a maildir $mbox_path\n",
    );
    assert_eq!(c.listeners[0].target, ListenTarget::Interface("lo0".into()));
    assert_eq!(c.listeners[0].port, Some(2525));
    assert_eq!(c.listeners[0].tag.as_deref(), Some("$ifc"));
    assert_eq!(
        c.actions["a"].method,
        Method::Maildir {
            path: Some("/var/mail".into()),
            junk: false
        }
    );
    // A macro value may hold several tokens, e.g. a whole option list.
    let c = parse("opts = \"port 26 tls\"\nlisten on lo $opts\n");
    assert_eq!(
        (c.listeners[0].port, c.listeners[0].tls),
        (Some(26), TlsMode::StartTls)
    );
    assert_eq!(
        errors("listen on $nope\n"),
        vec!["t.conf:1: macro \"nope\" is not defined"]
    );
}

#[test]
fn include_relative_to_including_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("smtpd.conf"),
        "include \"conf.d/tables.conf\"\nlisten on lo\naction a mbox alias <aliases>\nmatch for local action a\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf.d/tables.conf"),
        "# tables\ntable aliases file:aliases\ninclude \"more.conf\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("conf.d/more.conf"), "queue compression\n").unwrap();
    let c = load(&dir.path().join("smtpd.conf")).unwrap();
    assert!(c.queue.compression);
    // Table paths are resolved like includes: next to the file naming them.
    assert_eq!(
        c.tables["aliases"].source,
        TableSource::File {
            backend: "file".into(),
            path: dir.path().join("conf.d/aliases")
        }
    );
    assert_eq!(
        c.tables["aliases"].origin.file,
        dir.path().join("conf.d/tables.conf")
    );
    assert_eq!(c.tables["aliases"].origin.line, 2);
}

#[test]
fn include_errors_name_the_included_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.conf");
    std::fs::write(
        &main,
        "include \"sub.conf\"\ninclude \"missing.conf\"\ninclude \"main.conf\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("sub.conf"), "\n\nbogus directive\n").unwrap();
    let errs: Vec<String> = load(&main)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert_eq!(
        errs[0],
        format!(
            "{}: syntax error near \"bogus\"",
            dir.path().join("sub.conf:3").display()
        )
    );
    assert!(
        errs[1].starts_with(&format!("{}:2: cannot read file", main.display())),
        "{}",
        errs[1]
    );
    assert!(errs[2].starts_with(&format!(
        "{}:3: include nested too deeply or looping",
        main.display()
    )));
}

#[test]
fn parse_str_includes_relative_to_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("inc.conf");
    std::fs::write(&inc, "queue compression\n").unwrap();
    let c = parse(&format!("include \"{}\"\n", inc.display()));
    assert!(c.queue.compression);
    let errs = errors("include \"no/such/file.conf\"\n");
    assert!(
        errs[0].starts_with("t.conf:1: cannot read file"),
        "{errs:?}"
    );
}

#[test]
fn load_reports_missing_file() {
    let e = load(Path::new("/nonexistent/smtpd.conf")).unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(e
        .to_string()
        .starts_with("/nonexistent/smtpd.conf: cannot read file"));
}

#[test]
fn legacy_local_and_relay() {
    let c = parse(
        "listen on lo0\n\
         table aliases file:/etc/mail/aliases\n\
         accept for local alias <aliases> deliver to mbox\n\
         accept from local for any relay\n",
    );
    assert_eq!(c.listeners[0].target, ListenTarget::Interface("lo0".into()));
    let a = &c.actions["legacy-rule-3"];
    assert_eq!(a.method, Method::Mbox);
    assert_eq!(a.alias.as_deref(), Some("aliases"));
    assert_eq!(
        c.matches[0].verdict,
        Verdict::Action("legacy-rule-3".into())
    );
    assert_eq!(
        c.matches[0].conditions,
        vec![
            cond(false, Cond::For(ForCond::Local)),
            cond(false, Cond::From(FromCond::Local))
        ]
    );
    assert_eq!(
        c.actions["legacy-rule-4"].method,
        Method::Relay(Box::default())
    );
    assert_eq!(
        c.matches[1].conditions,
        vec![
            cond(false, Cond::From(FromCond::Local)),
            cond(false, Cond::For(ForCond::Any))
        ]
    );
}

#[test]
fn legacy_virtual_lmtp_and_relay_via() {
    let c = parse(
        "table vdomains { example.org }\ntable vusers { vmail = 2000:2000:/var/vmail }\n\
         table valiasess { a@example.org = vmail }\n\
         accept tagged Filtered for domain <vdomains> userbase <vusers> virtual <valiasess> deliver to lmtp \"/var/dovecot/lmtp\"\n\
         accept from any for domain <vdomains> relay via \"smtp://127.0.0.1:10024\"\n\
         accept for any relay via \"smtp://127.0.0.1:10026\"\n",
    );
    let a = &c.actions["legacy-rule-4"];
    assert_eq!(
        a.method,
        Method::Lmtp {
            dest: "/var/dovecot/lmtp".into(),
            rcpt_to: false
        }
    );
    assert_eq!(a.userbase.as_deref(), Some("vusers"));
    assert_eq!(a.virtual_.as_deref(), Some("valiasess"));
    assert_eq!(
        c.matches[0].conditions,
        vec![
            cond(false, Cond::Tag(lit("Filtered"))),
            cond(false, Cond::For(ForCond::Domain(table("vdomains")))),
            cond(false, Cond::From(FromCond::Local)),
        ]
    );
    let Method::Relay(r) = &c.actions["legacy-rule-5"].method else {
        panic!()
    };
    assert_eq!(r.host.as_deref(), Some("smtp://127.0.0.1:10024"));
    assert_eq!(
        c.matches[1].conditions,
        vec![
            cond(false, Cond::From(FromCond::Any)),
            cond(false, Cond::For(ForCond::Domain(table("vdomains"))))
        ]
    );
    let Method::Relay(r) = &c.actions["legacy-rule-6"].method else {
        panic!()
    };
    assert_eq!(r.host.as_deref(), Some("smtp://127.0.0.1:10026"));
    assert_eq!(
        c.matches[2].conditions,
        vec![
            cond(false, Cond::For(ForCond::Any)),
            cond(false, Cond::From(FromCond::Local))
        ]
    );
}

#[test]
fn auth_without_a_credentials_table_is_refused() {
    let errs = errors("listen on lo auth\nlisten on lo port 587 auth-optional\n");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("t.conf:1: auth needs a credentials table"),
        "{errs:?}"
    );
}

#[test]
fn legacy_other_forms() {
    let c = parse(
        "table src { 10.0.0.0/8 }\ntable snd { a@b.org }\ntable rcpt { c@d.org }\ntable creds { l = u:p }\n\
         pki mx certificate mx.crt\npki mx key mx.key\n\
         expire 3d\nmax-message-size 10M\nlimit mta inet4\nbounce-warn 1h, 4h\n\
         queue encryption key \"k\"\n\
         listen on lo0 port 25 tls certificate mx auth <creds> mask-source\n\
         accept tagged ! Filtered from source <src> sender <snd> for recipient <rcpt> forward-only\n\
         accept from <src> for domain example.org deliver to maildir \"/var/mail/%{rcpt.user}\"\n\
         accept from \"192.0.2.1\" for ! local deliver to mda \"/usr/bin/procmail\" expire 1d\n\
         accept from any for any relay via \"smtp+tls://l@smart:587\" tls verify \
         auth <creds> as \"@example.org\" source <src> hostname out.example.org pki mx\n\
         accept for any relay backup mx1.example.org tls\n\
         accept for local deliver to maildir\n\
         accept for local deliver to lmtp 127.0.0.1:24 rcpt-to\n\
         reject from any for any\n",
    );
    assert_eq!(c.queue.ttl, Some(Duration::from_secs(3 * 86_400)));
    assert_eq!(c.smtp.max_message_size, 10 << 20);
    assert_eq!(
        c.bounce_warn_interval,
        vec![Duration::from_secs(3600), Duration::from_secs(4 * 3600)]
    );
    assert_eq!(c.queue.encryption, Some(Some("k".into())));
    let l = &c.listeners[0];
    assert_eq!(
        (l.tls, l.pki.clone(), l.mask_src),
        (TlsMode::StartTls, vec!["mx".to_string()], true)
    );
    assert_eq!(l.auth, AuthMode::Required(Some("creds".into())));

    assert_eq!(c.actions["legacy-rule-13"].method, Method::ForwardOnly);
    assert_eq!(
        c.matches[0].conditions,
        vec![
            cond(true, Cond::Tag(lit("Filtered"))),
            cond(false, Cond::From(FromCond::Src(table("src")))),
            cond(false, Cond::MailFrom(table("snd"))),
            cond(false, Cond::For(ForCond::RcptTo(table("rcpt")))),
        ]
    );
    assert_eq!(
        c.actions["legacy-rule-14"].method,
        Method::Maildir {
            path: Some("/var/mail/%{rcpt.user}".into()),
            junk: false
        }
    );
    assert_eq!(
        c.matches[2].conditions[0],
        cond(false, Cond::From(FromCond::Src(lit("192.0.2.1"))))
    );
    assert_eq!(
        c.matches[2].conditions[1],
        cond(true, Cond::For(ForCond::Local))
    );
    assert_eq!(
        c.actions["legacy-rule-15"].ttl,
        Some(Duration::from_secs(86_400))
    );
    let Method::Relay(r) = &c.actions["legacy-rule-16"].method else {
        panic!()
    };
    assert_eq!(
        **r,
        RelayOptions {
            host: Some("smtp+tls://l@smart:587".into()),
            tls: Some(RelayTls::Verify),
            auth: Some("creds".into()),
            mail_from: Some("@example.org".into()),
            src: Some("<src>".into()),
            helo: Some("out.example.org".into()),
            pki: Some("mx".into()),
            ..RelayOptions::default()
        }
    );
    let Method::Relay(r) = &c.actions["legacy-rule-17"].method else {
        panic!()
    };
    assert!(r.backup && r.backup_mx.as_deref() == Some("mx1.example.org"));
    assert_eq!(r.tls, Some(RelayTls::NoVerify));
    assert_eq!(
        c.actions["legacy-rule-18"].method,
        Method::Maildir {
            path: None,
            junk: false
        }
    );
    assert_eq!(
        c.actions["legacy-rule-19"].method,
        Method::Lmtp {
            dest: "127.0.0.1:24".into(),
            rcpt_to: true
        }
    );
    assert_eq!(c.matches.last().unwrap().verdict, Verdict::Reject);
}

#[test]
fn legacy_undefined_table_is_an_error() {
    assert_eq!(
        errors("accept for local alias <aliases> deliver to mbox\n"),
        vec!["t.conf:1: table \"aliases\" is not defined"]
    );
}

#[test]
fn error_messages_with_lines() {
    let text = "\
listen on lo
action local mbox
match for local action deliver
match for domain <domains> action local
action r relay alias <x>
action l mbox host \"smtp://x\"
action bad deliver
frobnicate the thing
table t { a }
table t { b }
action local maildir
pki p cert \"p.crt\"
pki p cert \"other.crt\"
listen on lo pki nope ca nope2 filter nofilter
filter c chain { ghost }
action w mda \"/bin/x %{nope}\"
smtp max-message-size 12Q
queue ttl forever
listen on lo port 99999
action m mbox wrapper nowrap
listen on lo tls bogus-option
";
    assert_eq!(
        errors(text),
        vec![
            "t.conf:5: option \"alias\" is not valid for relay actions",
            "t.conf:6: option \"host\" is only valid for relay actions",
            "t.conf:7: unknown delivery method \"deliver\"",
            "t.conf:8: syntax error near \"frobnicate\"",
            "t.conf:10: table \"t\" is already defined at t.conf:9",
            "t.conf:11: action \"local\" is already defined at t.conf:2",
            "t.conf:13: pki \"p\" already has a certificate",
            "t.conf:16: invalid format \"/bin/x %{nope}\": unknown specifier %{nope}",
            "t.conf:17: invalid size \"12Q\"",
            "t.conf:18: invalid duration \"forever\"",
            "t.conf:19: invalid port \"99999\"",
            "t.conf:21: syntax error near \"bogus-option\"",
            "t.conf:3: unknown action \"deliver\"",
            "t.conf:4: table \"domains\" is not defined",
            "t.conf:14: pki \"nope\" is not defined",
            "t.conf:14: ca \"nope2\" is not defined",
            "t.conf:14: filter \"nofilter\" is not defined",
            "t.conf:20: mda wrapper \"nowrap\" is not defined",
            "t.conf:12: pki \"p\" has no key",
            "t.conf:15: filter chain \"c\" refers to unknown filter \"ghost\"",
        ]
    );
}

#[test]
fn more_error_kinds() {
    assert_eq!(
        errors("filter a dnsbl\nfilter c2 chain { a }\nfilter c chain { a, a, c2 }\n"),
        vec![
            "t.conf:3: filter \"a\" appears twice in chain \"c\"",
            "t.conf:3: filter chain \"c\" cannot contain the chain \"c2\"",
        ]
    );
    assert_eq!(
        errors("filter spam proc-exec \"/usr/local/bin/spamfilter -q\" user _filter\n"),
        vec!["t.conf:1: filter \"spam\": \"proc-exec\" filters (external processes) are not supported; wasmtpd runs wasm components (filter NAME wasm \"/path/filter.wasm\") and builtin phase filters"]
    );
    assert_eq!(
        errors("pki p key k\n"),
        vec!["t.conf:1: pki \"p\" has no certificate"]
    );
    assert_eq!(
        errors("listen\n"),
        vec!["t.conf:1: syntax error at end of line (expected on)"]
    );
    assert_eq!(
        errors("action a mbox\nmatch from any for any\n"),
        vec!["t.conf:2: syntax error at end of line (expected action NAME or reject)"]
    );
    assert_eq!(
        errors("action a mbox\nmatch from nowhere action a\n"),
        vec!["t.conf:2: syntax error near \"nowhere\""]
    );
    assert_eq!(
        errors("action a mbox\nmatch from any from local action a\n"),
        vec!["t.conf:2: option \"from\" given twice"]
    );
    assert_eq!(
        errors("table x { a }\naction a mbox alias <x> alias <x>\n"),
        vec!["t.conf:2: option \"alias\" given twice"]
    );
    assert_eq!(
        errors("table t { a, b = c }\n"),
        vec!["t.conf:1: table \"t\" mixes list values and key = value pairs"]
    );
    assert_eq!(
        errors("table t file:\n"),
        vec!["t.conf:1: invalid table source \"file:\""]
    );
    assert_eq!(
        errors("\n\nqueue ttl \"1d\n"),
        vec![
            "t.conf:3: unterminated quoted string",
            "t.conf:3: syntax error at end of line (expected a duration)"
        ]
    );
    assert_eq!(
        errors("smtp sub-addr-delim ab\n"),
        vec!["t.conf:1: invalid sub-address delimiter \"ab\""]
    );
    assert_eq!(
        errors("accept for any\n"),
        vec!["t.conf:1: syntax error at end of line (expected deliver to or relay)"]
    );
    assert_eq!(
        errors("accept for any deliver to pigeon\n"),
        vec!["t.conf:1: unknown delivery method \"pigeon\""]
    );
    assert_eq!(
        errors("reject for any relay\n"),
        vec!["t.conf:1: syntax error near \"reject\""]
    );
}

#[test]
fn errors_do_not_stop_the_parse() {
    let e = parse_str(
        "bogus\nlisten on lo port x\nqueue nothing\n",
        Path::new("t.conf"),
    )
    .unwrap_err();
    assert_eq!(e.len(), 3);
    assert_eq!(
        e.to_string(),
        "t.conf:1: syntax error near \"bogus\"\nt.conf:2: invalid port \"x\"\nt.conf:3: syntax error near \"nothing\""
    );
}

#[test]
fn example_configs_parse() {
    let etc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc");
    let mut seen = 0;
    for entry in std::fs::read_dir(&etc).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            let c = load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            assert!(
                !c.listeners.is_empty() && !c.matches.is_empty(),
                "{}",
                path.display()
            );
            for t in c.tables.values() {
                if let TableSource::File { path: p, .. } = &t.source {
                    assert!(
                        p.exists(),
                        "{} references missing {}",
                        path.display(),
                        p.display()
                    );
                }
            }
            seen += 1;
        }
    }
    assert!(seen >= 3);
}

#[test]
fn garbage_never_panics() {
    use rand::{Rng, SeedableRng};
    let vocab = [
        "listen",
        "on",
        "action",
        "match",
        "from",
        "for",
        "table",
        "{",
        "}",
        ",",
        "=",
        "!",
        "<t>",
        "$m",
        "\"q",
        "\"%{rcpt.user[",
        "accept",
        "relay",
        "deliver",
        "to",
        "maildir",
        "pki",
        "\\\n",
        "\n",
        "#",
        "<",
        ">",
        "regex",
        "include",
        "filter",
        "chain",
        "m = x",
        "%{",
        "tls",
        "port",
        "~/",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..3000 {
        let n = rng.gen_range(0..25);
        let text: Vec<&str> = (0..n)
            .map(|_| vocab[rng.gen_range(0..vocab.len())])
            .collect();
        let _ = parse_str(&text.join(" "), Path::new("fuzz.conf"));
    }
}
