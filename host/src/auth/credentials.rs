//! The tables behind AUTH: `auth <creds>` (user → crypt hash) and
//! `senders <t>` (user → the addresses that user may send as).
//!
//! Only tables are supported as credentials sources: OpenSMTPD's default
//! without a table (the system's passwd/shadow through bsd_auth or PAM)
//! would need root to read shadow, which the session process is not. A
//! listener with `auth` and no table therefore refuses every attempt
//! with a logged error.

use crate::mailaddr::MailAddr;
use crate::table::{mailaddr_matches, Tables};

use super::hash::verify;

/// Why credentials could not be checked at all (a temporary failure for
/// the client, an operator error in the log).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the listener has no credentials table (auth without <table> is not supported)")]
    NoTable,
    #[error("table <{0}> is not defined")]
    UnknownTable(String),
}

/// A SHA-512-crypt hash of a random string: verified against when the
/// user is unknown, so that an unknown user costs as much time as a
/// wrong password and timing does not tell which part was wrong.
const DUMMY_HASH: &str = "$6$wasmtpdDummySlt$YoI1QUr.6CW.quF4bK8r8.YHzFPzw51YpGqnj7xhOLsRT0TsZ3ekPcQFoAiBD5XrUoQsy.ZMUrDvqVygYPgFg/";

/// Checks `user`/`password` against the listener's credentials table.
/// This hashes, which is slow on purpose: call it off the async threads.
pub fn check_credentials(
    tables: &Tables,
    table: Option<&str>,
    user: &str,
    password: &str,
) -> Result<bool, AuthError> {
    let name = table.ok_or(AuthError::NoTable)?;
    let t = tables
        .get(name)
        .ok_or_else(|| AuthError::UnknownTable(name.to_string()))?;
    match t.credentials(user) {
        Some(hash) => Ok(verify(hash, password)),
        None => {
            let _ = verify(DUMMY_HASH, password);
            Ok(false)
        }
    }
}

/// Whether the authenticated `user` may use `sender` as MAIL FROM under
/// `senders <table>`: the table maps the user to a comma- or
/// space-separated list of mailaddr entries (`user@domain`, `@domain`,
/// `user`). The null sender is never owned by anyone.
pub fn sender_allowed(
    tables: &Tables,
    table: &str,
    user: &str,
    sender: Option<&MailAddr>,
) -> Result<bool, AuthError> {
    let t = tables
        .get(table)
        .ok_or_else(|| AuthError::UnknownTable(table.to_string()))?;
    let Some(sender) = sender else {
        return Ok(false);
    };
    let Some(list) = t.lookup(user) else {
        return Ok(false);
    };
    Ok(list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .any(|e| mailaddr_matches(e, sender, '+')))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::auth::encrypt;
    use crate::table::Table;

    fn tables(name: &str, text: &str) -> Tables {
        let mut t = Tables::new();
        t.insert(name, Table::from_text(text, Path::new("test")).unwrap());
        t
    }

    #[test]
    fn dummy_hash_is_well_formed_and_matches_nothing_easy() {
        assert!(DUMMY_HASH.starts_with("$6$"));
        assert!(!verify(DUMMY_HASH, ""));
        assert!(!verify(DUMMY_HASH, "password"));
    }

    #[test]
    fn credentials_table_checks_user_and_password() {
        let h = encrypt("s3cret").unwrap();
        let t = tables("creds", &format!("joe {h}\n"));
        assert_eq!(
            check_credentials(&t, Some("creds"), "joe", "s3cret"),
            Ok(true)
        );
        assert_eq!(
            check_credentials(&t, Some("creds"), "joe", "nope"),
            Ok(false)
        );
        assert_eq!(
            check_credentials(&t, Some("creds"), "bob", "s3cret"),
            Ok(false)
        );
    }

    #[test]
    fn missing_tables_are_errors_not_rejections() {
        let t = Tables::new();
        assert_eq!(
            check_credentials(&t, None, "joe", "x"),
            Err(AuthError::NoTable)
        );
        assert_eq!(
            check_credentials(&t, Some("creds"), "joe", "x"),
            Err(AuthError::UnknownTable("creds".into()))
        );
    }

    #[test]
    fn senders_table_lists_owned_addresses() {
        let t = tables(
            "senders",
            "joe joe@example.org, @joe.example.net\nann ann@example.org\n",
        );
        let ok = |user: &str, addr: &str| {
            let a = MailAddr::parse(addr).unwrap();
            sender_allowed(&t, "senders", user, Some(&a)).unwrap()
        };
        assert!(ok("joe", "joe@example.org"));
        assert!(ok("joe", "joe+list@example.org"));
        assert!(ok("joe", "anything@joe.example.net"));
        assert!(!ok("joe", "ann@example.org"));
        assert!(ok("ann", "ann@example.org"));
        assert!(!ok("bob", "bob@example.org"));
        assert!(!sender_allowed(&t, "senders", "joe", None).unwrap());
    }
}
