//! A cursor over the tokens of one statement, with the small helpers the
//! directive parsers share (keywords, strings, table references, errors
//! that name the offending word).

use std::path::Path;

use super::error::{ConfigError, ErrorKind};
use super::lexer::{Tok, Token};
use super::model::Origin;

pub(crate) struct Cursor<'a> {
    toks: &'a [Token],
    pos: usize,
    file: &'a Path,
    /// Line of the statement's first token, for errors past its end.
    line: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(toks: &'a [Token], file: &'a Path, line: usize) -> Self {
        Cursor {
            toks,
            pos: 0,
            file,
            line,
        }
    }

    pub fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    /// The next token's text if it is a bare word (quoted strings are never
    /// keywords).
    pub fn peek_word(&self) -> Option<&'a str> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }

    pub fn is_kw(&self, kw: &str) -> bool {
        self.peek_word() == Some(kw)
    }

    pub fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub fn eat(&mut self, tok: &Tok) -> bool {
        let hit = self.peek() == Some(tok);
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub fn eat_bang(&mut self) -> bool {
        self.eat(&Tok::Bang)
    }

    pub fn bump(&mut self) -> Option<&'a Tok> {
        let t = self.peek();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    /// Line of the next token (or of the statement when none is left).
    pub fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(self.line, |t| t.line)
    }

    pub fn origin(&self) -> Origin {
        Origin {
            file: self.file.to_path_buf(),
            line: self.line(),
        }
    }

    pub fn error(&self, kind: ErrorKind) -> ConfigError {
        ConfigError::new(self.origin(), kind)
    }

    /// A syntax error naming the next token, or saying what was expected
    /// when the line ended early.
    pub fn syntax(&self, expected: &'static str) -> ConfigError {
        match self.peek() {
            Some(t) => self.error(ErrorKind::SyntaxNear(t.describe())),
            None => self.error(ErrorKind::UnexpectedEnd(expected)),
        }
    }

    /// A word or quoted string.
    pub fn string(&mut self, expected: &'static str) -> Result<String, ConfigError> {
        match self.peek() {
            Some(Tok::Word(s)) | Some(Tok::Quoted(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => Err(self.syntax(expected)),
        }
    }

    /// A string that is not one of `keywords` (for optional arguments such
    /// as `maildir [PATH]` that are followed by keyword options).
    pub fn optional_string(&mut self, keywords: &[&str]) -> Option<String> {
        match self.peek() {
            Some(Tok::Quoted(s)) => {
                self.pos += 1;
                Some(s.clone())
            }
            Some(Tok::Word(s)) if !keywords.contains(&s.as_str()) => {
                self.pos += 1;
                Some(s.clone())
            }
            _ => None,
        }
    }

    pub fn table_ref(&mut self) -> Result<String, ConfigError> {
        match self.peek() {
            Some(Tok::TableRef(t)) => {
                self.pos += 1;
                Ok(t.clone())
            }
            _ => Err(self.syntax("a table reference <name>")),
        }
    }

    pub fn optional_table_ref(&mut self) -> Option<String> {
        match self.peek() {
            Some(Tok::TableRef(t)) => {
                self.pos += 1;
                Some(t.clone())
            }
            _ => None,
        }
    }

    pub fn number<T: std::str::FromStr>(
        &mut self,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        let line_err = self.origin();
        let s = self.string(expected)?;
        s.parse()
            .map_err(|_| ConfigError::new(line_err, ErrorKind::BadNumber(s)))
    }

    pub fn expect_end(&self) -> Result<(), ConfigError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.error(ErrorKind::SyntaxNear(t.describe()))),
        }
    }

    /// Everything left, as words (table references keep their brackets).
    pub fn rest_as_words(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(t) = self.bump() {
            out.push(match t {
                Tok::Quoted(s) => s.clone(),
                other => other.describe(),
            });
        }
        out
    }
}
