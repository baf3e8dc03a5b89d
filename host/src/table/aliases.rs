//! aliases(5) values: the comma-separated right-hand side of an alias or
//! virtual table entry.
//!
//! ```text
//! staff: alice, bob@example.org, /var/mail/staff.archive,
//!        "|/usr/local/bin/ticket --queue staff", :include:/etc/mail/staff,
//!        \carol
//! ```
//!
//! - `user`: a local user, expanded again through the aliases.
//! - `\user`: the local user, NOT expanded further (sendmail's escape).
//! - `user@domain`: an address, routed like any recipient.
//! - `/path`: append to that mbox file.
//! - `|command` (quote it when it has commas): pipe the message to it.
//! - `:include:/path`: read more values from that file, one or more a line.
//!
//! Entries may be double-quoted (commas and blanks inside are kept);
//! `error:` entries are not supported and are reported as invalid.

use std::path::PathBuf;

use crate::mailaddr::MailAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasTarget {
    /// A local user name, lowercased; expanded again through the aliases.
    User(String),
    /// `\user`: deliver to this local user without further expansion.
    UserLiteral(String),
    Address(MailAddr),
    File(PathBuf),
    Command(String),
    Include(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid alias entry {entry:?}: {reason}")]
pub struct AliasError {
    pub entry: String,
    pub reason: String,
}

/// Parses an alias value into its targets, in order. Empty items (`a,,b`)
/// are skipped; any invalid item fails the whole value, as in OpenSMTPD.
pub fn parse_alias_value(v: &str) -> Result<Vec<AliasTarget>, AliasError> {
    split_quoted(v)?
        .into_iter()
        .map(|item| parse_item(&item))
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().flatten().collect())
}

fn split_quoted(v: &str) -> Result<Vec<String>, AliasError> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(AliasError {
            entry: cur.trim().to_string(),
            reason: "unterminated quote".into(),
        });
    }
    items.push(cur);
    Ok(items)
}

fn parse_item(item: &str) -> Result<Option<AliasTarget>, AliasError> {
    let item = item.trim();
    if item.is_empty() {
        return Ok(None);
    }
    let err = |reason: &str| AliasError {
        entry: item.to_string(),
        reason: reason.to_string(),
    };
    let body = match item.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .ok_or_else(|| err("text after the closing quote"))?
            .trim(),
        None => item,
    };
    if body.contains('"') {
        return Err(err("stray quote"));
    }
    if let Some(cmd) = body.strip_prefix('|') {
        let cmd = cmd.trim();
        if cmd.is_empty() {
            return Err(err("empty command"));
        }
        return Ok(Some(AliasTarget::Command(cmd.to_string())));
    }
    if let Some(path) = body.strip_prefix(":include:") {
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(err(":include: needs an absolute path"));
        }
        return Ok(Some(AliasTarget::Include(PathBuf::from(path))));
    }
    if body.starts_with('/') {
        return Ok(Some(AliasTarget::File(PathBuf::from(body))));
    }
    if body.to_ascii_lowercase().starts_with("error:") {
        return Err(err("error: entries are not supported"));
    }
    if let Some(user) = body.strip_prefix('\\') {
        return valid_user(user)
            .map(|u| Some(AliasTarget::UserLiteral(u)))
            .ok_or_else(|| err("not a valid user name"));
    }
    if body.contains('@') {
        return MailAddr::parse(body)
            .map(|a| Some(AliasTarget::Address(a)))
            .map_err(|e| err(&e.to_string()));
    }
    valid_user(body)
        .map(|u| Some(AliasTarget::User(u)))
        .ok_or_else(|| err("not a valid user name, address, /file, |command or :include:"))
}

/// OpenSMTPD's user name alphabet (letters, digits, `_ . - +`), plus
/// non-ASCII letters; lowercased like every lookup key.
fn valid_user(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+'));
    ok.then(|| s.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use AliasTarget::*;

    #[test]
    fn all_forms() {
        let v = parse_alias_value(
            "Alice, bob@Example.org , /var/backup/mbox, \"|/usr/bin/cmd arg, x\", \
             :include:/etc/mail/list, \\carol,,",
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                User("alice".into()),
                Address(MailAddr::new("bob", "Example.org")),
                File("/var/backup/mbox".into()),
                Command("/usr/bin/cmd arg, x".into()),
                Include("/etc/mail/list".into()),
                UserLiteral("carol".into()),
            ]
        );
    }

    #[test]
    fn unquoted_command_and_quoted_user() {
        assert_eq!(
            parse_alias_value("|/bin/cat -u").unwrap(),
            vec![Command("/bin/cat -u".into())]
        );
        assert_eq!(
            parse_alias_value("\"bob\"").unwrap(),
            vec![User("bob".into())]
        );
        assert_eq!(
            parse_alias_value("\"/var/mail/with space\"").unwrap(),
            vec![File("/var/mail/with space".into())]
        );
    }

    #[test]
    fn invalid_entries() {
        for bad in [
            "\"|/bin/x",
            "a b",
            "bob@",
            ":include:relative",
            "|",
            "error:550 go away",
            "\\",
            "\"x\"y",
        ] {
            assert!(parse_alias_value(bad).is_err(), "{bad}");
        }
        let e = parse_alias_value("alice, a;b").err().unwrap();
        assert_eq!(e.entry, "a;b");
    }
}
