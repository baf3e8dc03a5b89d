//! AUTH credentials for relaying: `auth <table>` maps the label of the
//! relay URL (`smtp+tls://label@host`) to `username:password`, as in
//! table(5). The password is wiped from memory when dropped and never
//! shown by `Debug`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::error::MtaTlsError;
use crate::table::Tables;

pub struct Credentials {
    pub user: String,
    pub password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// The `AUTH PLAIN` initial response: base64 of `\0user\0password`,
    /// as OpenSMTPD's mta sends it.
    pub fn plain(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(Vec::with_capacity(
            self.user.len() + self.password.len() + 2,
        ));
        raw.push(0);
        raw.extend_from_slice(self.user.as_bytes());
        raw.push(0);
        raw.extend_from_slice(self.password.as_bytes());
        Zeroizing::new(STANDARD.encode(raw.as_slice()))
    }

    /// The two `AUTH LOGIN` answers: base64 user, then base64 password.
    pub fn login(&self) -> (String, Zeroizing<String>) {
        (
            STANDARD.encode(self.user.as_bytes()),
            Zeroizing::new(STANDARD.encode(self.password.as_bytes())),
        )
    }
}

/// The credentials `label` maps to in `table`. Like OpenSMTPD, the value
/// splits at its first `:`, so passwords may contain colons.
pub fn credentials(tables: &Tables, table: &str, label: &str) -> Result<Credentials, MtaTlsError> {
    let t = tables
        .get(table)
        .ok_or_else(|| MtaTlsError::UnknownTable(table.to_string()))?;
    if label.is_empty() {
        return Err(MtaTlsError::NoLabel(table.to_string()));
    }
    let value = t
        .credentials(label)
        .ok_or_else(|| MtaTlsError::NoCredentials {
            table: table.to_string(),
            label: label.to_string(),
        })?;
    match value.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(Credentials {
            user: user.to_string(),
            password: Zeroizing::new(password.to_string()),
        }),
        _ => Err(MtaTlsError::BadCredentials {
            table: table.to_string(),
            label: label.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Table;
    use std::path::Path;

    fn tables() -> Tables {
        let mut tables = Tables::new();
        let t = Table::from_text(
            "# label username:password\n\
             relay1 joe:s3cr:et\n\
             broken nocolon\n\
             nouser :pw\n",
            Path::new("/etc/mail/secrets"),
        )
        .unwrap();
        tables.insert("secrets", t);
        tables
    }

    #[test]
    fn a_label_maps_to_user_and_password_split_at_the_first_colon() {
        let c = credentials(&tables(), "secrets", "Relay1").unwrap();
        assert_eq!(c.user, "joe");
        assert_eq!(c.password.as_str(), "s3cr:et");
        assert_eq!(c.plain().as_str(), STANDARD.encode("\0joe\0s3cr:et"));
        let (u, p) = c.login();
        assert_eq!(u, STANDARD.encode("joe"));
        assert_eq!(p.as_str(), STANDARD.encode("s3cr:et"));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = credentials(&tables(), "secrets", "relay1").unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("joe"), "{shown}");
        assert!(!shown.contains("s3cr"), "{shown}");
    }

    #[test]
    fn missing_tables_labels_and_malformed_values_say_which() {
        let tables = tables();
        let err = |t: &str, l: &str| credentials(&tables, t, l).unwrap_err().to_string();
        assert_eq!(
            err("secrets", "other"),
            "relay auth: table secrets has no credentials for label \"other\""
        );
        assert_eq!(
            err("nosuch", "relay1"),
            "relay auth: table nosuch is not defined"
        );
        assert!(err("secrets", "").contains("no label"));
        let bad = err("secrets", "broken");
        assert!(bad.contains("label \"broken\""), "{bad}");
        assert!(!bad.contains("nocolon"), "{bad}");
        assert!(err("secrets", "nouser").contains("not username:password"));
    }
}
