//! `action NAME METHOD [options]`: delivery methods and the local / relay
//! options, with the check that an option fits the method.

use std::collections::HashSet;

use super::cursor::Cursor;
use super::error::{ConfigError, ErrorKind};
use super::model::*;
use super::parser::{duration, Parser, RefKind};

/// Options only local delivery understands.
const LOCAL_OPTIONS: &[&str] = &["alias", "virtual", "userbase", "user", "wrapper"];
/// Options only relaying understands.
const RELAY_OPTIONS: &[&str] = &[
    "backup",
    "helo",
    "helo-src",
    "domain",
    "host",
    "tls",
    "auth",
    "mail-from",
    "src",
    "pki",
    "ca",
    "srs",
    "protocols",
    "ciphers",
];
/// Words that can never be an optional `maildir PATH`.
const NOT_A_PATH: &[&str] = &[
    "junk", "alias", "virtual", "userbase", "user", "wrapper", "ttl", "rcpt-to",
];

impl Parser {
    pub(crate) fn action(&mut self, c: &mut Cursor) -> Result<(), ConfigError> {
        let origin = c.origin();
        let name = c.string("an action name")?;
        let method = self.method(c)?;
        let mut action = Action {
            name: name.clone(),
            method,
            alias: None,
            virtual_: None,
            userbase: None,
            user: None,
            wrapper: None,
            ttl: None,
            origin: origin.clone(),
        };
        self.action_options(c, &mut action)?;
        if let Some(prev) = self.config.actions.get(&name) {
            return Err(ConfigError::new(
                origin,
                ErrorKind::Duplicate {
                    what: "action",
                    name,
                    previous: prev.origin.to_string(),
                },
            ));
        }
        self.config.actions.insert(name, action);
        Ok(())
    }

    fn method(&mut self, c: &mut Cursor) -> Result<Method, ConfigError> {
        let at = c.origin();
        let word = c.string("a delivery method")?;
        Ok(match word.as_str() {
            "mbox" => Method::Mbox,
            "maildir" => {
                let path = c.optional_string(NOT_A_PATH);
                if let Some(p) = &path {
                    self.check_format(p, at);
                }
                Method::Maildir {
                    path,
                    junk: c.eat_kw("junk"),
                }
            }
            "lmtp" => Method::Lmtp {
                dest: c.string("an LMTP destination")?,
                rcpt_to: c.eat_kw("rcpt-to"),
            },
            "mda" => {
                let command = c.string("a command")?;
                self.check_format(&command, at);
                Method::Mda { command }
            }
            "forward-only" => Method::ForwardOnly,
            "expand-only" => Method::ExpandOnly,
            "relay" => Method::Relay(Box::default()),
            _ => return Err(ConfigError::new(at, ErrorKind::UnknownMethod(word))),
        })
    }

    fn action_options(&mut self, c: &mut Cursor, a: &mut Action) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        while !c.at_end() {
            let at = c.origin();
            let Some(word) = c.peek_word() else {
                return Err(c.syntax("an action option"));
            };
            let is_relay = matches!(a.method, Method::Relay(_));
            if is_relay && LOCAL_OPTIONS.contains(&word) {
                return Err(c.error(ErrorKind::LocalOnlyOption(word.to_string())));
            }
            if !is_relay && RELAY_OPTIONS.contains(&word) {
                return Err(c.error(ErrorKind::RelayOnlyOption(word.to_string())));
            }
            if !seen.insert(word) {
                return Err(c.error(ErrorKind::RepeatedOption(word.to_string())));
            }
            c.bump();
            let table = |p: &mut Parser, c: &mut Cursor| -> Result<String, ConfigError> {
                let t = c.table_ref()?;
                p.refer(RefKind::Table, &t, at.clone());
                Ok(t)
            };
            if word == "ttl" {
                a.ttl = Some(duration(c)?);
                continue;
            }
            if let Method::Relay(r) = &mut a.method {
                match word {
                    "backup" => {
                        r.backup = true;
                        if c.eat_kw("mx") {
                            r.backup_mx = Some(c.string("an MX name")?);
                        }
                    }
                    "helo" => r.helo = Some(c.string("a host name")?),
                    "helo-src" => r.helo_src = Some(table(self, c)?),
                    "domain" => r.domain = Some(table(self, c)?),
                    "host" => r.host = Some(c.string("a relay URL")?),
                    "tls" => {
                        r.tls = Some(if c.eat_kw("no-verify") {
                            RelayTls::NoVerify
                        } else {
                            RelayTls::Verify
                        })
                    }
                    "auth" => r.auth = Some(table(self, c)?),
                    "mail-from" => r.mail_from = Some(c.string("an address")?),
                    "src" => {
                        // A table keeps its brackets so users can tell it
                        // from an address.
                        r.src = Some(match c.optional_table_ref() {
                            Some(t) => {
                                self.refer(RefKind::Table, &t, at.clone());
                                format!("<{t}>")
                            }
                            None => c.string("an address or <table>")?,
                        })
                    }
                    "pki" => {
                        let n = c.string("a pki name")?;
                        self.refer(RefKind::Pki, &n, at.clone());
                        r.pki = Some(n);
                    }
                    "ca" => {
                        let n = c.string("a ca name")?;
                        self.refer(RefKind::Ca, &n, at.clone());
                        r.ca = Some(n);
                    }
                    "srs" => r.srs = true,
                    "protocols" => r.protocols = Some(c.string("a protocol list")?),
                    "ciphers" => r.ciphers = Some(c.string("a cipher list")?),
                    _ => {
                        return Err(ConfigError::new(
                            at,
                            ErrorKind::SyntaxNear(word.to_string()),
                        ))
                    }
                }
            } else {
                match word {
                    "alias" => a.alias = Some(table(self, c)?),
                    "virtual" => a.virtual_ = Some(table(self, c)?),
                    "userbase" => a.userbase = Some(table(self, c)?),
                    "user" => a.user = Some(c.string("a user name")?),
                    "wrapper" => {
                        let n = c.string("a wrapper name")?;
                        self.refer(RefKind::Wrapper, &n, at.clone());
                        a.wrapper = Some(n);
                    }
                    _ => {
                        return Err(ConfigError::new(
                            at,
                            ErrorKind::SyntaxNear(word.to_string()),
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}
