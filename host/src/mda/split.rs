//! Splitting an `mda` command template into argv words, with shell-like
//! quoting but none of a shell's expansions, pipes or redirections.
//!
//! Templates are split *before* `%{…}` format specifiers are expanded,
//! so an envelope value always lands inside one argv element and can
//! never become shell syntax (OpenSMTPD's CVE-2020-7247 was an envelope
//! address reaching `/bin/sh -c`). Metacharacters that would mean
//! something to a shell are refused rather than silently taken
//! literally, so a config written for a shell fails loudly.

use super::MdaError;

/// Splits `template` into words: `'…'` is literal, `"…"` allows `\"`,
/// `\\`, `\$` and `` \` `` escapes, an unquoted backslash escapes the
/// next character.
pub fn split_command(template: &str) -> Result<Vec<String>, MdaError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word may be an empty quoted string, so track it separately.
    let mut in_word = false;
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(bad("unterminated single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(bad("unterminated double quote")),
                        },
                        Some(c @ ('$' | '`')) => return Err(meta(c)),
                        Some(c) => word.push(c),
                        None => return Err(bad("unterminated double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(bad("trailing backslash")),
                }
            }
            '|' | ';' | '&' | '>' | '<' | '`' | '$' | '(' | ')' | '\n' | '\r' => {
                return Err(meta(c));
            }
            '\0' => return Err(bad("NUL character")),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(bad("empty command"));
    }
    Ok(words)
}

fn bad(why: &str) -> MdaError {
    MdaError::BadCommand(why.to_string())
}

fn meta(c: char) -> MdaError {
    MdaError::BadCommand(format!(
        "{c:?} is shell syntax, but wasmtpd runs mda commands directly, without a shell; \
         quote it to pass it literally, or put the pipeline in a script"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<String> {
        split_command(s).unwrap()
    }

    #[test]
    fn splits_words_and_quotes() {
        assert_eq!(
            ok("/usr/bin/procmail -f %{sender}"),
            ["/usr/bin/procmail", "-f", "%{sender}"]
        );
        assert_eq!(ok("  a   b\tc "), ["a", "b", "c"]);
        assert_eq!(ok("cmd 'a b' \"c d\" e\\ f"), ["cmd", "a b", "c d", "e f"]);
        assert_eq!(ok("cmd '' \"\""), ["cmd", "", ""]);
        assert_eq!(ok("cmd a'b'\"c\""), ["cmd", "abc"]);
        assert_eq!(ok("cmd '$HOME | x; y'"), ["cmd", "$HOME | x; y"]);
        assert_eq!(
            ok(r#"cmd "say \"hi\" \$5 \n""#),
            ["cmd", r#"say "hi" $5 \n"#]
        );
        assert_eq!(ok(r"cmd \| \$x"), ["cmd", "|", "$x"]);
    }

    #[test]
    fn refuses_shell_syntax() {
        for s in [
            "procmail | tee x",
            "a; rm -rf /",
            "a && b",
            "a > /tmp/x",
            "a < /etc/passwd",
            "a `id`",
            "a $(id)",
            "a $HOME",
            "a \"$HOME\"",
            "(a)",
            "a\nb",
        ] {
            let err = split_command(s).unwrap_err();
            assert!(matches!(err, MdaError::BadCommand(_)), "{s}");
        }
        let msg = split_command("a | b").unwrap_err().to_string();
        assert!(msg.contains("without a shell"), "{msg}");
    }

    #[test]
    fn refuses_malformed() {
        for s in ["", "   ", "a 'b", "a \"b", "a \\"] {
            assert!(split_command(s).is_err(), "{s:?}");
        }
    }
}
