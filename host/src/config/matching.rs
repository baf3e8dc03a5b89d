//! `match [!]COND … action NAME | reject`: the modern rule syntax.
//!
//! As in OpenSMTPD, a rule without `from` means `from local` and a rule
//! without `for` means `for local`; the parser writes these defaults into
//! the rule so the matcher never has to guess.

use super::cursor::Cursor;
use super::error::{ConfigError, ErrorKind};
use super::lexer::Tok;
use super::model::*;
use super::parser::{Parser, RefKind};

impl Parser {
    pub(crate) fn match_rule(&mut self, c: &mut Cursor) -> Result<(), ConfigError> {
        let origin = c.origin();
        let mut conditions = Vec::new();
        let verdict = loop {
            let at = c.origin();
            if c.eat_kw("action") {
                let name = c.string("an action name")?;
                self.refer(RefKind::Action, &name, at);
                break Verdict::Action(name);
            }
            if c.eat_kw("reject") {
                break Verdict::Reject;
            }
            if c.at_end() {
                return Err(c.syntax("action NAME or reject"));
            }
            let negated = c.eat_bang();
            let cond = self.condition(c)?;
            let kind = std::mem::discriminant(&cond);
            if conditions
                .iter()
                .any(|x: &Condition| std::mem::discriminant(&x.cond) == kind)
            {
                return Err(ConfigError::new(
                    at,
                    ErrorKind::RepeatedOption(cond_name(&cond).into()),
                ));
            }
            conditions.push(Condition { negated, cond });
        };
        c.expect_end()?;
        add_default_conditions(&mut conditions);
        self.config.matches.push(MatchRule {
            conditions,
            verdict,
            origin,
        });
        Ok(())
    }

    pub(crate) fn condition(&mut self, c: &mut Cursor) -> Result<Cond, ConfigError> {
        let Some(word) = c.peek_word() else {
            return Err(c.syntax("a match condition"));
        };
        c.bump();
        Ok(match word {
            "from" => Cond::From(self.source_cond(c)?),
            "for" => Cond::For(self.dest_cond(c)?),
            "auth" => Cond::Auth(self.optional_pattern(c)?),
            "helo" => Cond::Helo(self.pattern(c)?),
            "mail-from" => Cond::MailFrom(self.pattern(c)?),
            "rcpt-to" => Cond::RcptTo(self.pattern(c)?),
            "tag" => Cond::Tag(self.pattern(c)?),
            "tls" => Cond::Tls,
            _ => {
                return Err(ConfigError::new(
                    Origin {
                        line: c.line(),
                        ..c.origin()
                    },
                    ErrorKind::SyntaxNear(word.to_string()),
                ))
            }
        })
    }

    fn source_cond(&mut self, c: &mut Cursor) -> Result<FromCond, ConfigError> {
        let Some(word) = c.peek_word() else {
            return Err(c.syntax("any, local, socket, auth, mail-from, rdns or src"));
        };
        let cond = match word {
            "any" => FromCond::Any,
            "local" => FromCond::Local,
            "socket" => FromCond::Socket,
            "auth" | "mail-from" | "rdns" | "src" => {
                c.bump();
                return Ok(match word {
                    "auth" => FromCond::Auth(self.optional_pattern(c)?),
                    "mail-from" => FromCond::MailFrom(self.pattern(c)?),
                    "rdns" => FromCond::Rdns(self.optional_pattern(c)?),
                    _ => FromCond::Src(self.pattern(c)?),
                });
            }
            _ => return Err(c.syntax("any, local, socket, auth, mail-from, rdns or src")),
        };
        c.bump();
        Ok(cond)
    }

    fn dest_cond(&mut self, c: &mut Cursor) -> Result<ForCond, ConfigError> {
        if c.eat_kw("any") {
            Ok(ForCond::Any)
        } else if c.eat_kw("local") {
            Ok(ForCond::Local)
        } else if c.eat_kw("domain") {
            Ok(ForCond::Domain(self.pattern(c)?))
        } else if c.eat_kw("rcpt-to") {
            Ok(ForCond::RcptTo(self.pattern(c)?))
        } else {
            Err(c.syntax("any, local, domain or rcpt-to"))
        }
    }

    /// `[regex] VALUE` where VALUE is a literal, `<table>` or `{ list }`.
    pub(crate) fn pattern(&mut self, c: &mut Cursor) -> Result<Pattern, ConfigError> {
        let at = c.origin();
        let regex = c.eat_kw("regex");
        let table = match c.peek() {
            Some(Tok::TableRef(t)) => {
                c.bump();
                self.refer(RefKind::Table, t, at);
                t.clone()
            }
            Some(Tok::LBrace) => {
                let values = self.brace_list(c)?;
                self.anonymous_table(values, at)
            }
            _ => {
                let s = c.string("a value or <table>")?;
                return Ok(if regex {
                    Pattern::Regex(s)
                } else {
                    Pattern::Literal(s)
                });
            }
        };
        Ok(if regex {
            Pattern::RegexTable(table)
        } else {
            Pattern::Table(table)
        })
    }

    /// The value after `auth` / `from auth` / `from rdns`, which may only be
    /// a table (so the next condition keyword is never mistaken for it).
    fn optional_pattern(&mut self, c: &mut Cursor) -> Result<Option<Pattern>, ConfigError> {
        match c.peek() {
            Some(Tok::TableRef(_)) | Some(Tok::LBrace) => self.pattern(c).map(Some),
            Some(Tok::Word(w)) if w == "regex" => self.pattern(c).map(Some),
            _ => Ok(None),
        }
    }
}

fn cond_name(cond: &Cond) -> &'static str {
    match cond {
        Cond::From(_) => "from",
        Cond::For(_) => "for",
        Cond::Auth(_) => "auth",
        Cond::Helo(_) => "helo",
        Cond::MailFrom(_) => "mail-from",
        Cond::RcptTo(_) => "rcpt-to",
        Cond::Tag(_) => "tag",
        Cond::Tls => "tls",
        Cond::Fcrdns => "fcrdns",
    }
}

/// OpenSMTPD's defaults: `from local` and `for local` when not given.
pub(crate) fn add_default_conditions(conditions: &mut Vec<Condition>) {
    if !conditions.iter().any(|c| matches!(c.cond, Cond::From(_))) {
        conditions.push(Condition {
            negated: false,
            cond: Cond::From(FromCond::Local),
        });
    }
    if !conditions.iter().any(|c| matches!(c.cond, Cond::For(_))) {
        conditions.push(Condition {
            negated: false,
            cond: Cond::For(ForCond::Local),
        });
    }
}
