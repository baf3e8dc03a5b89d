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
}

impl Owner {
    /// The running process's effective user and group.
    pub fn current() -> Owner {
        Owner {
            uid: Uid::effective().as_raw(),
            gid: Gid::effective().as_raw(),
        }
    }

    /// Whether `peer` may use every verb.
    pub fn may_steer(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == self.uid
            || peer.gid == self.gid
            || member_of(peer.uid, self.gid)
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
    }
}
