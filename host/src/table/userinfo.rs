//! Users as delivery sees them: a name, a uid/gid to run as and a home
//! directory. They come from a `userbase` table (`user uid:gid:/home`) or
//! from the system password database (getpwnam).

use std::path::{Path, PathBuf};

use super::error::TableError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub directory: PathBuf,
}

/// Parses a userbase value `uid:gid:/home/dir` for `username`.
pub(crate) fn parse_userinfo(
    table: &str,
    username: &str,
    value: &str,
) -> Result<UserInfo, TableError> {
    let bad = |msg: &str| TableError::BadValue {
        table: table.to_string(),
        key: username.to_string(),
        msg: format!("{msg} (expected uid:gid:/home/directory, got {value:?})"),
    };
    let mut parts = value.trim().splitn(3, ':');
    let uid = parts.next().and_then(|s| s.trim().parse::<u32>().ok());
    let gid = parts.next().and_then(|s| s.trim().parse::<u32>().ok());
    let dir = parts.next().map(str::trim).unwrap_or("");
    let (Some(uid), Some(gid)) = (uid, gid) else {
        return Err(bad("bad uid or gid"));
    };
    if !Path::new(dir).is_absolute() {
        return Err(bad("home directory must be an absolute path"));
    }
    Ok(UserInfo {
        username: username.to_string(),
        uid,
        gid,
        directory: PathBuf::from(dir),
    })
}

/// getpwnam(3): Ok(None) when the user does not exist, Err when the user
/// database itself failed (a temporary condition for mail).
pub(crate) fn system_lookup(name: &str) -> Result<Option<UserInfo>, TableError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(Some(UserInfo {
            username: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            directory: u.dir,
        })),
        Ok(None) => Ok(None),
        Err(e) => Err(TableError::System {
            user: name.to_string(),
            msg: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userbase_values() {
        let u = parse_userinfo("users", "alice", "5000:5001:/var/vmail/alice").unwrap();
        assert_eq!(
            u,
            UserInfo {
                username: "alice".into(),
                uid: 5000,
                gid: 5001,
                directory: "/var/vmail/alice".into()
            }
        );
        assert!(parse_userinfo("users", "a", "x:1:/h").is_err());
        assert!(parse_userinfo("users", "a", "1:1:relative").is_err());
        assert!(parse_userinfo("users", "a", "1:1").is_err());
    }

    #[test]
    fn system_users() {
        let root = system_lookup("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let nobody = system_lookup("nobody").unwrap().unwrap();
        assert_ne!(nobody.uid, 0);
        assert_eq!(system_lookup("no-such-user-wasmtpd").unwrap(), None);
    }
}
