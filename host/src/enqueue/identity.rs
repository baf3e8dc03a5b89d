//! Who is sending and from where: the login name and GECOS name of the
//! real uid, and the mail name unqualified addresses are completed with
//! (`/etc/mail/mailname`, `/etc/mailname`, else the host name), as
//! OpenSMTPD's enqueue qualifies them.

use nix::unistd::{getuid, User};

/// The invoking user.
pub(crate) struct Identity {
    pub login: String,
    /// The GECOS full name (first comma-separated part, `&` expanded).
    pub full_name: Option<String>,
}

/// The user of the real uid; `$LOGNAME`/`$USER`, then the number, when
/// the passwd database has no entry.
pub(crate) fn current_user() -> Identity {
    let uid = getuid();
    match User::from_uid(uid) {
        Ok(Some(user)) => {
            let gecos = user.gecos.to_string_lossy().into_owned();
            Identity {
                full_name: gecos_name(&gecos, &user.name),
                login: user.name,
            }
        }
        _ => Identity {
            login: std::env::var("LOGNAME")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| uid.to_string()),
            full_name: None,
        },
    }
}

/// `Joe Q. Public,Room 1,...` → `Joe Q. Public`; `&` is the login name,
/// capitalised (the BSD convention).
fn gecos_name(gecos: &str, login: &str) -> Option<String> {
    let first = gecos.split(',').next().unwrap_or("").trim();
    if first.is_empty() {
        return None;
    }
    let mut cap = login.to_string();
    if let Some(c) = cap.get_mut(..1) {
        c.make_ascii_uppercase();
    }
    Some(first.replace('&', &cap))
}

/// The domain unqualified addresses get.
pub(crate) fn mail_name() -> String {
    for file in ["/etc/mail/mailname", "/etc/mailname"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            let name = text.trim();
            if !name.is_empty() && !name.contains(char::is_whitespace) {
                return name.to_string();
            }
        }
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gecos_full_names() {
        assert_eq!(
            gecos_name("Joe Q. Public,Room 1,555", "joe").as_deref(),
            Some("Joe Q. Public")
        );
        assert_eq!(gecos_name("& Smith", "joe").as_deref(), Some("Joe Smith"));
        assert_eq!(gecos_name(",,,", "joe"), None);
        assert_eq!(gecos_name("", "joe"), None);
    }
}
