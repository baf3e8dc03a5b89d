//! Tokeniser for smtpd.conf: words, quoted strings, `{ } , = !`, `<table>`
//! references, `$macro` uses, comments and backslash-newline continuations.
//!
//! Follows OpenBSD's parse.y lexer: a word stops at whitespace and at the
//! punctuation that has meaning of its own; `$name` is only recognised
//! outside quotes, and it is the parser that expands it (macros are defined
//! in file order, so expansion cannot happen here).

use super::error::ErrorKind;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Word(String),
    Quoted(String),
    LBrace,
    RBrace,
    Comma,
    Eq,
    Bang,
    /// `<name>`
    TableRef(String),
    /// `$name`
    Macro(String),
    Newline,
}

impl Tok {
    /// The token as it would appear in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => w.clone(),
            Tok::Quoted(q) => q.clone(),
            Tok::LBrace => "{".into(),
            Tok::RBrace => "}".into(),
            Tok::Comma => ",".into(),
            Tok::Eq => "=".into(),
            Tok::Bang => "!".into(),
            Tok::TableRef(t) => format!("<{t}>"),
            Tok::Macro(m) => format!("${m}"),
            Tok::Newline => "end of line".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    /// 1-based line the token starts on.
    pub line: usize,
}

/// Characters that end a bare word (besides whitespace).
fn is_special(c: char) -> bool {
    matches!(
        c,
        '{' | '}' | ',' | '=' | '!' | '<' | '>' | '#' | '"' | '\'' | '(' | ')'
    )
}

fn is_macro_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `text` into tokens; errors are collected with their line and
/// lexing carries on after them.
pub fn lex(text: &str) -> (Vec<Token>, Vec<(usize, ErrorKind)>) {
    let mut toks = Vec::new();
    let mut errors = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    let push = |toks: &mut Vec<Token>, tok, line| toks.push(Token { tok, line });

    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                push(&mut toks, Tok::Newline, line);
                line += 1;
                i += 1;
            }
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                line += 1;
                i += 2;
            }
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' | '}' | ',' | '=' | '!' => {
                let tok = match c {
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    ',' => Tok::Comma,
                    '=' => Tok::Eq,
                    _ => Tok::Bang,
                };
                push(&mut toks, tok, line);
                i += 1;
            }
            '"' | '\'' => {
                let start_line = line;
                let quote = c;
                let mut s = String::new();
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    let c = chars[i];
                    if c == quote {
                        closed = true;
                        i += 1;
                        break;
                    }
                    if c == '\n' {
                        // A quote left open at end of line is an error, not
                        // a multi-line string: it would swallow the file.
                        break;
                    }
                    if c == '\\' {
                        match chars.get(i + 1) {
                            Some(&'\n') => {
                                line += 1;
                                i += 2;
                                continue;
                            }
                            Some(&n) if n == quote || n == '\\' || n == ' ' || n == '\t' => {
                                s.push(n);
                                i += 2;
                                continue;
                            }
                            _ => {}
                        }
                    }
                    s.push(c);
                    i += 1;
                }
                if closed {
                    push(&mut toks, Tok::Quoted(s), start_line);
                } else {
                    errors.push((start_line, ErrorKind::UnterminatedQuote));
                }
            }
            '<' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && !chars[j].is_whitespace() && !is_special(chars[j]) {
                    j += 1;
                }
                if j > start && chars.get(j) == Some(&'>') {
                    let name: String = chars[start..j].iter().collect();
                    push(&mut toks, Tok::TableRef(name), line);
                    i = j + 1;
                } else {
                    errors.push((line, ErrorKind::BadTableRef));
                    i = j.max(i + 1);
                }
            }
            '$' if chars.get(i + 1).is_some_and(|&c| is_macro_char(c)) => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && is_macro_char(chars[j]) {
                    j += 1;
                }
                push(
                    &mut toks,
                    Tok::Macro(chars[start..j].iter().collect()),
                    line,
                );
                i = j;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                    // `a\<newline>b` continues the line, it does not join words.
                    if chars[i] == '\\' && chars.get(i + 1) == Some(&'\n') {
                        break;
                    }
                    i += 1;
                }
                if i == start {
                    // A lone special we do not otherwise know (`>`, `(`, `)`).
                    errors.push((line, ErrorKind::SyntaxNear(c.to_string())));
                    i += 1;
                } else {
                    push(&mut toks, Tok::Word(chars[start..i].iter().collect()), line);
                }
            }
        }
    }
    push(&mut toks, Tok::Newline, line);
    (toks, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let (t, e) = lex(s);
        assert!(e.is_empty(), "{e:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.into())
    }

    #[test]
    fn words_quotes_and_punctuation() {
        assert_eq!(
            toks(r#"table t { a, b = "c d" } !x <vdomains> $m"#),
            vec![
                w("table"),
                w("t"),
                Tok::LBrace,
                w("a"),
                Tok::Comma,
                w("b"),
                Tok::Eq,
                Tok::Quoted("c d".into()),
                Tok::RBrace,
                Tok::Bang,
                w("x"),
                Tok::TableRef("vdomains".into()),
                Tok::Macro("m".into()),
                Tok::Newline,
            ]
        );
    }

    #[test]
    fn escapes_inside_quotes() {
        assert_eq!(
            toks(r#""a \"b\" c\\d \n""#),
            vec![Tok::Quoted(r#"a "b" c\d \n"#.into()), Tok::Newline]
        );
        assert_eq!(
            toks("'x\"y'"),
            vec![Tok::Quoted("x\"y".into()), Tok::Newline]
        );
    }

    #[test]
    fn comments_and_continuations_keep_line_numbers() {
        let (t, e) = lex("# c\nlisten \\\n  on lo0 # tail\naction\n");
        assert!(e.is_empty());
        let lines: Vec<(Tok, usize)> = t.into_iter().map(|t| (t.tok, t.line)).collect();
        assert_eq!(
            lines,
            vec![
                (Tok::Newline, 1),
                (w("listen"), 2),
                (w("on"), 3),
                (w("lo0"), 3),
                (Tok::Newline, 3),
                (w("action"), 4),
                (Tok::Newline, 4),
                (Tok::Newline, 5),
            ]
        );
    }

    #[test]
    fn paths_and_urls_are_single_words() {
        assert_eq!(
            toks("file:/etc/mail/aliases smtp://127.0.0.1:10024 %{rcpt.user[2:]}"),
            vec![
                w("file:/etc/mail/aliases"),
                w("smtp://127.0.0.1:10024"),
                Tok::Word("%".into()),
                Tok::LBrace,
                w("rcpt.user[2:]"),
                Tok::RBrace,
                Tok::Newline
            ]
        );
    }

    #[test]
    fn errors_are_reported_with_lines() {
        let (_, e) = lex("a\n\"open\nb < c\n");
        assert_eq!(
            e,
            vec![
                (2, ErrorKind::UnterminatedQuote),
                (3, ErrorKind::BadTableRef)
            ]
        );
    }
}
