//! Who is on the other end of the control socket, and whether they may
//! steer the daemon.
//!
//! The kernel tells us (`SO_PEERCRED`): no password, no token. Steering
//! is for root, the daemon's own user, and members of the daemon's group
//! (an operator added to `_wasmtpd`); every other local user gets the
//! public, read-only verbs — the socket itself is open to all, as
//! OpenSMTPD's is, so that anyone can enqueue mail.

use nix::unistd::{Gid, Uid, User};

/// The peer's credentials as the kernel gave them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// The daemon's own identity, which decides who may steer it.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// Whether the group is the daemon's own (a dedicated system account
    /// it dropped to), so that its members are operators.
    pub group_steers: bool,
}

/// `nobody` / `nogroup`, and what unmapped ids show as.
const OVERFLOW_ID: u32 = 65534;

impl Owner {
    /// The running process's effective user and group; `dropped` when it
    /// dropped root for a system account (privilege separation).
    pub fn current(dropped: bool) -> Owner {
        let (uid, gid) = (Uid::effective().as_raw(), Gid::effective().as_raw());
        Owner {
            uid,
            gid,
            group_steers: dropped && uid != OVERFLOW_ID && gid != OVERFLOW_ID,
        }
    }

    /// Whether `peer` may use every verb. May read the user and group
    /// databases: call it off the async runtime.
    pub fn may_steer(&self, peer: &Peer) -> bool {
        if peer.uid == 0 {
            return true;
        }
        if self.uid == OVERFLOW_ID {
            return false;
        }
        peer.uid == self.uid
            || (self.group_steers && (peer.gid == self.gid || member_of(peer.uid, self.gid)))
    }
}

/// Whether the user `uid` has `gid` among its supplementary groups.
fn member_of(uid: u32, gid: u32) -> bool {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|groups| groups.contains(&Gid::from_raw(gid)))
        .unwrap_or(false)
}

/// The login name of `uid`, or the number when it has none.
pub fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_the_owner_and_its_group_steer_others_do_not() {
        let owner = Owner {
            uid: 4000,
            gid: 4000,
            group_steers: true,
        };
        let peer = |uid, gid| Peer {
            uid,
            gid,
            pid: None,
        };
        assert!(owner.may_steer(&peer(0, 0)));
        assert!(owner.may_steer(&peer(4000, 100)));
        assert!(owner.may_steer(&peer(4100, 4000)));
        // No such user on this machine: no supplementary groups either.
        assert!(!owner.may_steer(&peer(4242, 4242)));
        // A user's own daemon: its primary group is shared with others.
        let mine = Owner {
            group_steers: false,
            ..owner
        };
        assert!(mine.may_steer(&peer(4000, 100)));
        assert!(!mine.may_steer(&peer(4100, 4000)));
    }

    #[test]
    fn a_daemon_running_as_nobody_is_steered_by_root_only() {
        let nobody = Owner {
            uid: OVERFLOW_ID,
            gid: OVERFLOW_ID,
            group_steers: false,
        };
        let peer = |uid| Peer {
            uid,
            gid: OVERFLOW_ID,
            pid: None,
        };
        assert!(nobody.may_steer(&peer(0)));
        assert!(!nobody.may_steer(&peer(OVERFLOW_ID)));
    }
}
