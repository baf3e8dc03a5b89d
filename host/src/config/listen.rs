//! `listen on IFACE|ADDR|socket [inet4|inet6] [options]`, including the
//! 5.x spellings (`certificate NAME`, `mask-source`).

use super::cursor::Cursor;
use super::error::{ConfigError, ErrorKind};
use super::lexer::Tok;
use super::model::*;
use super::parser::{Parser, RefKind};

fn target(s: &str) -> ListenTarget {
    if s == "socket" {
        ListenTarget::Socket
    } else if let Ok(addr) = s.parse() {
        ListenTarget::Addr(addr)
    } else if s.contains('.') {
        ListenTarget::Host(s.to_string())
    } else {
        ListenTarget::Interface(s.to_string())
    }
}

fn port(c: &mut Cursor) -> Result<u16, ConfigError> {
    let origin = c.origin();
    let s = c.string("a port")?;
    match s.as_str() {
        "smtp" => Ok(25),
        "smtps" => Ok(465),
        "submission" => Ok(587),
        _ => s
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ConfigError::new(origin, ErrorKind::BadPort(s))),
    }
}

impl Parser {
    pub(crate) fn listen(&mut self, c: &mut Cursor) -> Result<(), ConfigError> {
        let origin = c.origin();
        if !c.eat_kw("on") {
            return Err(c.syntax("on"));
        }
        let mut l = Listener {
            target: target(&c.string("an interface, address or socket")?),
            family: AddressFamily::Any,
            port: None,
            tls: TlsMode::None,
            tls_verify: false,
            pki: Vec::new(),
            ca: None,
            auth: AuthMode::None,
            tag: None,
            hostname: None,
            hostnames: None,
            filter: None,
            mask_src: false,
            no_dsn: false,
            proxy_v2: false,
            received_auth: false,
            senders: None,
            masquerade: false,
            protocols: None,
            ciphers: None,
            origin: origin.clone(),
        };
        while let Some(word) = c.peek_word() {
            let at = c.origin();
            c.bump();
            match word {
                "inet4" => l.family = AddressFamily::Inet4,
                "inet6" => l.family = AddressFamily::Inet6,
                "port" => l.port = Some(port(c)?),
                "tls" => l.tls = TlsMode::StartTls,
                "tls-require" => {
                    l.tls = TlsMode::StartTlsRequire;
                    l.tls_verify = c.eat_kw("verify");
                }
                "smtps" => {
                    l.tls = TlsMode::Smtps;
                    l.tls_verify = c.eat_kw("verify");
                }
                "pki" | "certificate" => {
                    let name = c.string("a pki name")?;
                    self.refer(RefKind::Pki, &name, at);
                    l.pki.push(name);
                }
                "ca" => {
                    let name = c.string("a ca name")?;
                    self.refer(RefKind::Ca, &name, at);
                    l.ca = Some(name);
                }
                "auth" | "auth-optional" => {
                    let table = c.optional_table_ref();
                    if let Some(t) = &table {
                        self.refer(RefKind::Table, t, at);
                    }
                    l.auth = if word == "auth" {
                        AuthMode::Required(table)
                    } else {
                        AuthMode::Optional(table)
                    };
                }
                "tag" => l.tag = Some(c.string("a tag")?),
                "hostname" => l.hostname = Some(c.string("a host name")?),
                "hostnames" => {
                    let t = c.table_ref()?;
                    self.refer(RefKind::Table, &t, at);
                    l.hostnames = Some(t);
                }
                "filter" => {
                    let name = if c.peek() == Some(&Tok::LBrace) {
                        // An inline chain becomes a named chain filter.
                        let members = self.brace_list(c)?;
                        let name = format!("listener-chain-{}", at.line);
                        self.config.filters.insert(
                            name.clone(),
                            FilterDef {
                                name: name.clone(),
                                kind: FilterKind::Chain(members),
                                origin: at.clone(),
                            },
                        );
                        name
                    } else {
                        c.string("a filter name")?
                    };
                    self.refer(RefKind::Filter, &name, at);
                    l.filter = Some(name);
                }
                "mask-src" | "mask-source" => l.mask_src = true,
                "no-dsn" => l.no_dsn = true,
                "proxy-v2" => l.proxy_v2 = true,
                "received-auth" => l.received_auth = true,
                "senders" => {
                    let t = c.table_ref()?;
                    self.refer(RefKind::Table, &t, at);
                    l.senders = Some(t);
                    l.masquerade = c.eat_kw("masquerade");
                }
                "protocols" => l.protocols = Some(c.string("a protocol list")?),
                "ciphers" => l.ciphers = Some(c.string("a cipher list")?),
                _ => {
                    return Err(ConfigError::new(
                        at,
                        ErrorKind::SyntaxNear(word.to_string()),
                    ))
                }
            }
        }
        c.expect_end()?;
        self.config.listeners.push(l);
        Ok(())
    }
}
