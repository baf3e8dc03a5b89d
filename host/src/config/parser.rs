//! The parser driver: splits the token stream into statements, expands
//! macros, follows includes, and parses the global directives (tables,
//! pki, ca, queue, smtp, bounce, mda, filters). Listeners, actions, match
//! rules and 5.x rules live in their own files; the semantic checks run
//! once everything is read (see checks.rs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::cursor::Cursor;
use super::error::{ConfigError, ConfigErrors, ErrorKind};
use super::format;
use super::lexer::{lex, Tok, Token};
use super::model::*;
use super::units;

/// How deep includes may nest; deeper means a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefKind {
    Table,
    Pki,
    Ca,
    Filter,
    Action,
    Wrapper,
}

/// A name used somewhere, checked against the definitions at the end.
#[derive(Clone, Debug)]
pub(crate) struct Reference {
    pub kind: RefKind,
    pub name: String,
    pub origin: Origin,
}

/// The file being read: its name for errors, and the directory relative
/// paths (includes, table files, certificates) are resolved against.
pub(crate) struct FileCtx {
    pub file: PathBuf,
    pub base: Option<PathBuf>,
}

impl FileCtx {
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        match &self.base {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Parser {
    pub config: Config,
    pub errors: Vec<ConfigError>,
    pub refs: Vec<Reference>,
    macros: HashMap<String, String>,
    include_stack: Vec<PathBuf>,
    anonymous: usize,
}

impl Parser {
    pub fn new() -> Self {
        Parser::default()
    }

    /// Runs the semantic checks and hands back the config or every error.
    pub fn finish(mut self) -> Result<Config, ConfigErrors> {
        self.check();
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    pub fn refer(&mut self, kind: RefKind, name: &str, origin: Origin) {
        self.refs.push(Reference {
            kind,
            name: name.to_string(),
            origin,
        });
    }

    pub fn check_format(&mut self, template: &str, origin: Origin) {
        if let Err(error) = format::validate(template) {
            self.errors.push(ConfigError::new(
                origin,
                ErrorKind::Format {
                    template: template.to_string(),
                    error,
                },
            ));
        }
    }

    pub fn parse_file(&mut self, path: &Path, origin: Option<Origin>) {
        let err_origin = origin.unwrap_or(Origin {
            file: path.to_path_buf(),
            line: 0,
        });
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.include_stack.len() >= MAX_INCLUDE_DEPTH || self.include_stack.contains(&key) {
            self.errors.push(ConfigError::new(
                err_origin,
                ErrorKind::IncludeLoop(path.display().to_string()),
            ));
            return;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let base = path.parent().map(Path::to_path_buf);
                let ctx = FileCtx {
                    file: path.to_path_buf(),
                    base,
                };
                self.include_stack.push(key);
                self.parse_text(&text, &ctx);
                self.include_stack.pop();
            }
            Err(e) => self
                .errors
                .push(ConfigError::new(err_origin, ErrorKind::Io(e.to_string()))),
        }
    }

    pub fn parse_text(&mut self, text: &str, ctx: &FileCtx) {
        let (tokens, lex_errors) = lex(text);
        for (line, kind) in lex_errors {
            self.errors.push(ConfigError::at(&ctx.file, line, kind));
        }
        for stmt in split_statements(&tokens) {
            let line = stmt[0].line;
            let stmt = match self.expand_macros(stmt, ctx) {
                Some(s) if !s.is_empty() => s,
                _ => continue,
            };
            let mut c = Cursor::new(&stmt, &ctx.file, line);
            if let Err(e) = self.statement(&mut c, ctx) {
                self.errors.push(e);
            }
        }
    }

    /// Replaces `$name` tokens by the lexed macro value; None (after
    /// recording the error) when a macro is unknown.
    fn expand_macros(&mut self, stmt: &[Token], ctx: &FileCtx) -> Option<Vec<Token>> {
        let mut out = Vec::with_capacity(stmt.len());
        for t in stmt {
            let Tok::Macro(name) = &t.tok else {
                // Newlines inside `{ … }` are mere separators.
                if t.tok != Tok::Newline {
                    out.push(t.clone());
                }
                continue;
            };
            let Some(value) = self.macros.get(name) else {
                self.errors.push(ConfigError::at(
                    &ctx.file,
                    t.line,
                    ErrorKind::UndefinedMacro(name.clone()),
                ));
                return None;
            };
            let (toks, errs) = lex(value);
            for (_, kind) in errs {
                self.errors.push(ConfigError::at(&ctx.file, t.line, kind));
            }
            out.extend(
                toks.into_iter()
                    .filter(|v| v.tok != Tok::Newline)
                    .map(|v| Token {
                        tok: v.tok,
                        line: t.line,
                    }),
            );
        }
        Some(out)
    }

    fn statement(&mut self, c: &mut Cursor, ctx: &FileCtx) -> Result<(), ConfigError> {
        let Some(Tok::Word(word)) = c.peek() else {
            return Err(c.syntax("a directive"));
        };
        let word = word.as_str();
        // `name = value` defines a macro.
        c.bump();
        if c.eat(&Tok::Eq) {
            let value = c.string("a macro value")?;
            c.expect_end()?;
            self.macros.insert(word.to_string(), value);
            return Ok(());
        }
        match word {
            "include" => self.include(c, ctx),
            "table" => self.table(c, ctx),
            "pki" => self.pki(c, ctx),
            "ca" => self.ca(c, ctx),
            "listen" => self.listen(c),
            "action" => self.action(c),
            "match" => self.match_rule(c),
            "filter" => self.filter(c),
            "queue" => self.queue(c),
            "smtp" => self.smtp(c),
            "bounce" => self.bounce(c),
            "mda" => self.mda(c),
            "mta" => {
                if !c.eat_kw("max-deferred") {
                    return Err(c.syntax("max-deferred"));
                }
                c.number::<u64>("a number")?;
                c.expect_end()?;
                ignored(c, word);
                Ok(())
            }
            // Accepted for compatibility; wasmtpd has no use for them (yet).
            "srs" | "admd" | "proc" => {
                c.rest_as_words();
                ignored(c, word);
                Ok(())
            }
            "accept" | "reject" => self.legacy_rule(c, word == "accept"),
            "expire" | "max-message-size" | "limit" | "bounce-warn" => self.legacy_global(c, word),
            _ => Err(ConfigError::new(
                Origin {
                    file: ctx.file.clone(),
                    line: c.line(),
                },
                ErrorKind::SyntaxNear(word.to_string()),
            )),
        }
    }

    fn include(&mut self, c: &mut Cursor, ctx: &FileCtx) -> Result<(), ConfigError> {
        let origin = c.origin();
        let path = c.string("a file name")?;
        c.expect_end()?;
        let path = ctx.resolve(&path);
        self.parse_file(&path, Some(origin));
        Ok(())
    }

    /// A name for an anonymous table (`{ a, b }` in a match rule).
    pub fn anonymous_table(&mut self, values: Vec<String>, origin: Origin) -> String {
        self.anonymous += 1;
        let name = format!("anonymous-{}", self.anonymous);
        let def = TableDef {
            name: name.clone(),
            source: TableSource::InlineList(values),
            origin,
        };
        self.config.tables.insert(name.clone(), def);
        name
    }

    /// `{ a, b c }` (commas optional, as in OpenSMTPD), the `{` not yet eaten.
    pub fn brace_list(&mut self, c: &mut Cursor) -> Result<Vec<String>, ConfigError> {
        if !c.eat(&Tok::LBrace) {
            return Err(c.syntax("{"));
        }
        let mut out = Vec::new();
        loop {
            match c.peek() {
                Some(Tok::RBrace) => {
                    c.bump();
                    return Ok(out);
                }
                Some(Tok::Comma) => {
                    c.bump();
                }
                _ => out.push(c.string("a value or }")?),
            }
        }
    }

    fn table(&mut self, c: &mut Cursor, ctx: &FileCtx) -> Result<(), ConfigError> {
        let origin = c.origin();
        let name = c.string("a table name")?;
        let source = if c.peek() == Some(&Tok::LBrace) {
            self.inline_table(c, &name)?
        } else {
            let value = c.string("a table source")?;
            table_source(&value, ctx).ok_or_else(|| {
                ConfigError::new(
                    origin.clone(),
                    ErrorKind::BadValue {
                        what: "table source",
                        value,
                    },
                )
            })?
        };
        c.expect_end()?;
        if let Some(prev) = self.config.tables.get(&name) {
            return Err(ConfigError::new(
                origin,
                ErrorKind::Duplicate {
                    what: "table",
                    name,
                    previous: prev.origin.to_string(),
                },
            ));
        }
        self.config.tables.insert(
            name.clone(),
            TableDef {
                name,
                source,
                origin,
            },
        );
        Ok(())
    }

    fn inline_table(&mut self, c: &mut Cursor, name: &str) -> Result<TableSource, ConfigError> {
        c.bump();
        let mut list = Vec::new();
        let mut map = Vec::new();
        loop {
            match c.peek() {
                Some(Tok::RBrace) => {
                    c.bump();
                    break;
                }
                Some(Tok::Comma) => {
                    c.bump();
                }
                _ => {
                    let key = c.string("a value or }")?;
                    if c.eat(&Tok::Eq) {
                        map.push((key, c.string("a value")?));
                    } else {
                        list.push(key);
                    }
                }
            }
        }
        match (list.is_empty(), map.is_empty()) {
            (_, true) => Ok(TableSource::InlineList(list)),
            (true, false) => Ok(TableSource::InlineMap(map)),
            (false, false) => Err(c.error(ErrorKind::MixedTable(name.to_string()))),
        }
    }

    fn pki(&mut self, c: &mut Cursor, ctx: &FileCtx) -> Result<(), ConfigError> {
        let origin = c.origin();
        let name = c.string("a pki name")?;
        let pki = self.config.pki.entry(name.clone()).or_insert_with(|| Pki {
            name: name.clone(),
            origin,
            ..Pki::default()
        });
        if c.at_end() {
            return Err(c.syntax("cert, key or dhe"));
        }
        while !c.at_end() {
            let (slot, part) = if c.eat_kw("cert") || c.eat_kw("certificate") {
                (&mut pki.cert, "certificate")
            } else if c.eat_kw("key") {
                (&mut pki.key, "key")
            } else if c.eat_kw("dhe") {
                pki.dhe = Some(c.string("none, legacy or auto")?);
                continue;
            } else {
                return Err(c.syntax("cert, key or dhe"));
            };
            let path = c.string("a file name")?;
            if slot.is_some() {
                return Err(c.error(ErrorKind::DuplicatePkiPart(name, part)));
            }
            *slot = Some(ctx.resolve(&path));
        }
        Ok(())
    }

    fn ca(&mut self, c: &mut Cursor, ctx: &FileCtx) -> Result<(), ConfigError> {
        let origin = c.origin();
        let name = c.string("a ca name")?;
        if !(c.eat_kw("cert") || c.eat_kw("certificate")) {
            return Err(c.syntax("cert"));
        }
        let cert = ctx.resolve(&c.string("a file name")?);
        c.expect_end()?;
        if let Some(prev) = self.config.ca.get(&name) {
            return Err(ConfigError::new(
                origin,
                ErrorKind::Duplicate {
                    what: "ca",
                    name,
                    previous: prev.origin.to_string(),
                },
            ));
        }
        self.config
            .ca
            .insert(name.clone(), Ca { name, cert, origin });
        Ok(())
    }

    pub fn queue(&mut self, c: &mut Cursor) -> Result<(), ConfigError> {
        if c.eat_kw("compression") {
            self.config.queue.compression = true;
        } else if c.eat_kw("encryption") {
            // 5.x wrote `queue encryption key KEY`.
            c.eat_kw("key");
            self.config.queue.encryption = Some(c.optional_string(&[]));
        } else if c.eat_kw("ttl") {
            self.config.queue.ttl = Some(duration(c)?);
        } else {
            return Err(c.syntax("compression, encryption or ttl"));
        }
        c.expect_end()
    }

    /// `smtp …`. Besides OpenSMTPD's options, wasmtpd accepts
    /// `smtp limit max-sessions N` (concurrent inbound sessions) and
    /// `smtp limit max-commands N` (commands per session).
    fn smtp(&mut self, c: &mut Cursor) -> Result<(), ConfigError> {
        let smtp = &mut self.config.smtp;
        if c.at_end() {
            return Err(c.syntax("an smtp option"));
        }
        while !c.at_end() {
            if c.eat_kw("max-message-size") {
                smtp.max_message_size = size(c)?;
            } else if c.eat_kw("limit") {
                let mut any = false;
                loop {
                    if c.eat_kw("max-rcpt") {
                        smtp.max_rcpt = c.number("a number")?;
                    } else if c.eat_kw("max-mails") {
                        smtp.max_mails = c.number("a number")?;
                    } else if c.eat_kw("max-sessions") {
                        smtp.max_sessions = c.number("a number")?;
                    } else if c.eat_kw("max-commands") {
                        smtp.max_commands = c.number("a number")?;
                    } else if any {
                        break;
                    } else {
                        return Err(c.syntax("max-rcpt, max-mails, max-sessions or max-commands"));
                    }
                    any = true;
                }
            } else if c.eat_kw("sub-addr-delim") {
                let origin = c.origin();
                let s = c.string("a character")?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(ch), None) if !ch.is_alphanumeric() && !ch.is_whitespace() => {
                        smtp.sub_addr_delim = ch
                    }
                    _ => {
                        return Err(ConfigError::new(
                            origin,
                            ErrorKind::BadValue {
                                what: "sub-address delimiter",
                                value: s,
                            },
                        ))
                    }
                }
            } else if c.eat_kw("ciphers") {
                smtp.ciphers = Some(c.string("a cipher list")?);
            } else {
                return Err(c.syntax("an smtp option"));
            }
        }
        Ok(())
    }

    fn bounce(&mut self, c: &mut Cursor) -> Result<(), ConfigError> {
        if !c.eat_kw("warn-interval") {
            return Err(c.syntax("warn-interval"));
        }
        self.config.bounce_warn_interval = duration_list(c)?;
        Ok(())
    }

    fn mda(&mut self, c: &mut Cursor) -> Result<(), ConfigError> {
        if !c.eat_kw("wrapper") {
            return Err(c.syntax("wrapper"));
        }
        let origin = c.origin();
        let name = c.string("a wrapper name")?;
        let command = c.string("a command")?;
        c.expect_end()?;
        self.check_format(&command, origin.clone());
        if self.config.mda_wrappers.contains_key(&name) {
            return Err(ConfigError::new(
                origin,
                ErrorKind::Duplicate {
                    what: "mda wrapper",
                    name,
                    previous: "an earlier line".into(),
                },
            ));
        }
        self.config.mda_wrappers.insert(name, command);
        Ok(())
    }
}

/// Logs a directive that is accepted for compatibility but does nothing.
pub(crate) fn ignored(c: &Cursor, word: &str) {
    tracing::warn!(
        "{}: \"{word}\" is accepted but has no effect in wasmtpd",
        c.origin()
    );
}

/// Statements end at a newline outside braces, so `{ … }` may span lines.
fn split_statements(tokens: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t.tok {
            Tok::LBrace => depth += 1,
            Tok::RBrace => depth = depth.saturating_sub(1),
            Tok::Newline if depth == 0 => {
                if i > start {
                    out.push(&tokens[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < tokens.len() {
        out.push(&tokens[start..]);
    }
    out
}

/// `[backend:]value`: `file:` and `db:` (and a bare path) name files,
/// resolved against the config's directory; other backends keep their text.
fn table_source(value: &str, ctx: &FileCtx) -> Option<TableSource> {
    if let Some((backend, rest)) = value.split_once(':') {
        let is_backend = !backend.is_empty()
            && backend
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if is_backend {
            return match backend {
                "file" | "db" if rest.is_empty() => None,
                "file" | "db" => Some(TableSource::File {
                    backend: backend.to_string(),
                    path: ctx.resolve(rest),
                }),
                _ => Some(TableSource::Backend {
                    backend: backend.to_string(),
                    config: rest.to_string(),
                }),
            };
        }
    }
    Some(TableSource::File {
        backend: "file".into(),
        path: ctx.resolve(value),
    })
}

pub(crate) fn size(c: &mut Cursor) -> Result<u64, ConfigError> {
    let origin = c.origin();
    let s = c.string("a size")?;
    units::parse_size(&s).ok_or_else(|| ConfigError::new(origin, ErrorKind::BadSize(s)))
}

pub(crate) fn duration(c: &mut Cursor) -> Result<std::time::Duration, ConfigError> {
    let origin = c.origin();
    let s = c.string("a duration")?;
    units::parse_duration(&s).ok_or_else(|| ConfigError::new(origin, ErrorKind::BadDuration(s)))
}

/// `D[, D…]` up to the end of the statement.
pub(crate) fn duration_list(c: &mut Cursor) -> Result<Vec<std::time::Duration>, ConfigError> {
    let mut out = vec![duration(c)?];
    while !c.at_end() {
        c.eat(&Tok::Comma);
        out.push(duration(c)?);
    }
    Ok(out)
}
