//! The unprivileged user the network-facing daemon runs as, and the one
//! irreversible switch to it.

use nix::unistd::{self, Gid, Uid, User};
use tracing::warn;

use super::PrivsepError;

/// Users tried in order: a dedicated account first (OpenBSD spells
/// system users with a leading underscore), `nobody` as the last resort.
const CANDIDATES: [&str; 3] = ["_wasmtpd", "wasmtpd", "nobody"];

/// Finds the account to drop to. Falling back to `nobody` works but
/// shares that uid with every other daemon doing the same: say so.
pub fn unprivileged_user() -> Result<User, PrivsepError> {
    for name in CANDIDATES {
        let Ok(Some(user)) = User::from_name(name) else {
            continue;
        };
        if user.uid.is_root() || user.gid.as_raw() == 0 {
            return Err(PrivsepError::RootUser(name.to_string()));
        }
        if name == "nobody" {
            warn!(
                "privsep: no _wasmtpd or wasmtpd user; running as nobody \
                 (create a dedicated user to keep mail apart from other daemons)"
            );
        }
        return Ok(user);
    }
    Err(PrivsepError::NoUser)
}

/// Becomes `user` for good: supplementary groups, then gid, then uid (in
/// that order: each step needs the rights the next one gives up), all
/// three of real, effective and saved ids. Then checks that root cannot
/// be regained.
pub fn drop_to(user: &User) -> Result<(), PrivsepError> {
    let step = |what: &'static str| move |e: nix::Error| PrivsepError::Drop(what, e);
    unistd::setgroups(&[user.gid]).map_err(step("setgroups"))?;
    unistd::setresgid(user.gid, user.gid, user.gid).map_err(step("setresgid"))?;
    unistd::setresuid(user.uid, user.uid, user.uid).map_err(step("setresuid"))?;
    verify(user.uid, user.gid)
}

fn verify(uid: Uid, gid: Gid) -> Result<(), PrivsepError> {
    let ids = unistd::getresuid().map_err(|e| PrivsepError::Drop("getresuid", e))?;
    let gids = unistd::getresgid().map_err(|e| PrivsepError::Drop("getresgid", e))?;
    let groups = unistd::getgroups().map_err(|e| PrivsepError::Drop("getgroups", e))?;
    let uids_ok = [ids.real, ids.effective, ids.saved]
        .iter()
        .all(|&u| u == uid);
    let gids_ok = [gids.real, gids.effective, gids.saved]
        .iter()
        .all(|&g| g == gid);
    let groups_ok = groups.iter().all(|&g| g == gid);
    // The decisive test: a process that can become root again has not
    // dropped anything.
    let regained =
        unistd::setuid(Uid::from_raw(0)).is_ok() || unistd::setgid(Gid::from_raw(0)).is_ok();
    if uids_ok && gids_ok && groups_ok && !regained {
        Ok(())
    } else {
        Err(PrivsepError::StillPrivileged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_unprivileged_account() {
        // Every Unix system has at least `nobody`.
        let user = unprivileged_user().unwrap();
        assert!(!user.uid.is_root());
        assert_ne!(user.gid.as_raw(), 0);
    }

    #[test]
    fn dropping_is_for_good() {
        if !unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to drop privileges");
            return;
        }
        let user = unprivileged_user().unwrap();
        // In a child process: the test runner must stay root.
        // SAFETY: the child only makes system calls and exits.
        match unsafe { unistd::fork() }.unwrap() {
            unistd::ForkResult::Child => {
                let code = match drop_to(&user) {
                    Ok(()) if unistd::setuid(Uid::from_raw(0)).is_err() => 0,
                    _ => 1,
                };
                unsafe { libc::_exit(code) };
            }
            unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
