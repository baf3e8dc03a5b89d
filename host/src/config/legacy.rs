//! The OpenSMTPD 5.x grammar, mapped onto the modern model.
//!
//! Each `accept` rule becomes an implicit action named `legacy-rule-LINE`
//! plus a match rule pointing at it; a `reject` rule becomes a match rule
//! with the reject verdict. Without `from` a rule means `from local`, and
//! without `for` it means `for local`, as in 5.x.

use std::time::Duration;

use super::cursor::Cursor;
use super::error::{ConfigError, ErrorKind};
use super::lexer::Tok;
use super::matching::add_default_conditions;
use super::model::*;
use super::parser::{duration, duration_list, ignored, size, Parser, RefKind};

/// Words that end an optional argument (`deliver to maildir [PATH]`,
/// `relay backup [MX]`) because they start the next clause.
const KEYWORDS: &[&str] = &[
    "tagged",
    "from",
    "sender",
    "for",
    "alias",
    "virtual",
    "userbase",
    "forward-only",
    "deliver",
    "relay",
    "via",
    "backup",
    "tls",
    "auth",
    "as",
    "source",
    "hostname",
    "pki",
    "expire",
    "rcpt-to",
];

impl Parser {
    /// `expire D`, `max-message-size SZ`, `bounce-warn D,…` and `limit …`
    /// (the latter accepted and ignored).
    pub(crate) fn legacy_global(&mut self, c: &mut Cursor, word: &str) -> Result<(), ConfigError> {
        match word {
            "expire" => self.config.queue.ttl = Some(duration(c)?),
            "max-message-size" => self.config.smtp.max_message_size = size(c)?,
            "bounce-warn" => self.config.bounce_warn_interval = duration_list(c)?,
            _ => {
                c.rest_as_words();
                ignored(c, word);
            }
        }
        c.expect_end()
    }

    pub(crate) fn legacy_rule(&mut self, c: &mut Cursor, accept: bool) -> Result<(), ConfigError> {
        let origin = c.origin();
        let mut conditions: Vec<Condition> = Vec::new();
        let mut method: Option<Method> = None;
        let mut alias = None;
        let mut virtual_ = None;
        let mut userbase = None;
        let mut ttl: Option<Duration> = None;

        while !c.at_end() {
            let at = c.origin();
            let Some(word) = c.peek_word() else {
                return Err(c.syntax("a rule keyword"));
            };
            c.bump();
            let fresh = method.is_none();
            let relay = match &mut method {
                Some(Method::Relay(r)) => Some(r),
                _ => None,
            };
            match (word, relay) {
                ("tagged", _) => {
                    let negated = c.eat_bang();
                    let tag = c.string("a tag")?;
                    conditions.push(Condition {
                        negated,
                        cond: Cond::Tag(Pattern::Literal(tag)),
                    });
                }
                ("from", _) => {
                    let negated = c.eat_bang();
                    let cond = if c.eat_kw("any") {
                        FromCond::Any
                    } else if c.eat_kw("local") {
                        FromCond::Local
                    } else {
                        c.eat_kw("source");
                        FromCond::Src(self.pattern(c)?)
                    };
                    conditions.push(Condition {
                        negated,
                        cond: Cond::From(cond),
                    });
                }
                ("sender", _) => {
                    let negated = c.eat_bang();
                    let p = self.pattern(c)?;
                    conditions.push(Condition {
                        negated,
                        cond: Cond::MailFrom(p),
                    });
                }
                ("for", _) => {
                    let negated = c.eat_bang();
                    let cond = if c.eat_kw("any") {
                        ForCond::Any
                    } else if c.eat_kw("local") {
                        ForCond::Local
                    } else if c.eat_kw("domain") {
                        ForCond::Domain(self.pattern(c)?)
                    } else if c.eat_kw("recipient") {
                        ForCond::RcptTo(self.pattern(c)?)
                    } else {
                        return Err(c.syntax("any, local, domain or recipient"));
                    };
                    conditions.push(Condition {
                        negated,
                        cond: Cond::For(cond),
                    });
                }
                ("alias", _) => alias = Some(self.legacy_table(c)?),
                ("virtual", _) => virtual_ = Some(self.legacy_table(c)?),
                ("userbase", _) => userbase = Some(self.legacy_table(c)?),
                ("expire", _) => ttl = Some(duration(c)?),
                ("forward-only", None) if fresh => method = Some(Method::ForwardOnly),
                ("deliver", None) if fresh => method = Some(self.legacy_deliver(c)?),
                ("relay", None) if fresh => method = Some(Method::Relay(Box::default())),
                ("via", Some(r)) => r.host = Some(c.string("a relay URL")?),
                ("backup", Some(r)) => {
                    r.backup = true;
                    r.backup_mx = c.optional_string(KEYWORDS);
                }
                // 5.x `tls` did not verify unless told to.
                ("tls", Some(r)) => {
                    r.tls = Some(if c.eat_kw("verify") {
                        RelayTls::Verify
                    } else {
                        RelayTls::NoVerify
                    })
                }
                ("auth", Some(r)) => {
                    let t = c.table_ref()?;
                    self.refer(RefKind::Table, &t, at);
                    r.auth = Some(t);
                }
                ("as", Some(r)) => r.mail_from = Some(c.string("an address")?),
                ("source", Some(r)) => {
                    let t = c.table_ref()?;
                    self.refer(RefKind::Table, &t, at);
                    r.src = Some(format!("<{t}>"));
                }
                ("hostname", Some(r)) => r.helo = Some(c.string("a host name")?),
                ("pki", Some(r)) => {
                    let n = c.string("a pki name")?;
                    self.refer(RefKind::Pki, &n, at);
                    r.pki = Some(n);
                }
                _ => {
                    return Err(ConfigError::new(
                        at,
                        ErrorKind::SyntaxNear(word.to_string()),
                    ))
                }
            }
        }

        add_default_conditions(&mut conditions);
        let verdict = match (accept, method) {
            (false, None) => Verdict::Reject,
            (false, Some(_)) => {
                return Err(ConfigError::new(
                    origin,
                    ErrorKind::SyntaxNear("reject".into()),
                ))
            }
            (true, None) => return Err(c.error(ErrorKind::UnexpectedEnd("deliver to or relay"))),
            (true, Some(method)) => {
                let mut name = format!("legacy-rule-{}", origin.line);
                let mut n = 1;
                while self.config.actions.contains_key(&name) {
                    n += 1;
                    name = format!("legacy-rule-{}-{n}", origin.line);
                }
                let action = Action {
                    name: name.clone(),
                    method,
                    alias,
                    virtual_,
                    userbase,
                    user: None,
                    wrapper: None,
                    ttl,
                    origin: origin.clone(),
                };
                self.config.actions.insert(name.clone(), action);
                Verdict::Action(name)
            }
        };
        self.config.matches.push(MatchRule {
            conditions,
            verdict,
            origin,
        });
        Ok(())
    }

    fn legacy_table(&mut self, c: &mut Cursor) -> Result<TableRef, ConfigError> {
        let at = c.origin();
        let t = c.table_ref()?;
        self.refer(RefKind::Table, &t, at);
        Ok(t)
    }

    /// `deliver to mbox | maildir [PATH] | lmtp DEST [rcpt-to] | mda CMD`
    fn legacy_deliver(&mut self, c: &mut Cursor) -> Result<Method, ConfigError> {
        if !c.eat_kw("to") {
            return Err(c.syntax("to"));
        }
        let at = c.origin();
        if c.eat_kw("mbox") {
            Ok(Method::Mbox)
        } else if c.eat_kw("maildir") {
            let path = c.optional_string(KEYWORDS);
            if let Some(p) = &path {
                self.check_format(p, at);
            }
            Ok(Method::Maildir { path, junk: false })
        } else if c.eat_kw("lmtp") {
            let dest = c.string("an LMTP destination")?;
            Ok(Method::Lmtp {
                dest,
                rcpt_to: c.eat_kw("rcpt-to"),
            })
        } else if c.eat_kw("mda") {
            let command = c.string("a command")?;
            self.check_format(&command, at);
            Ok(Method::Mda { command })
        } else {
            match c.peek() {
                Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => {
                    Err(c.error(ErrorKind::UnknownMethod(w.clone())))
                }
                _ => Err(c.syntax("mbox, maildir, lmtp or mda")),
            }
        }
    }
}
