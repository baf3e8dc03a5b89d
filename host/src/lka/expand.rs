//! Recipient expansion, OpenSMTPD's `lka_expand`: from a recipient and the
//! local action it matched, through `virtual` or `alias` tables, to the
//! final delivery targets (users, files, commands) and to the addresses
//! that leave this action's scope.
//!
//! Lookup order (as OpenSMTPD's aliases.c; keys lowercased):
//! - `virtual <t>`, for an address: `user+tag@domain`, `user@domain`,
//!   `user+tag`, `user`, `@domain`, `@`. No entry: unknown user. For a
//!   user name reached through the table: `user+tag`, `user` only (no
//!   catch-alls, as OpenSMTPD skips them when there is no domain).
//! - `alias <t>`: `user+tag`, then `user`.
//! - Neither: the local part, lowercased, is the user.
//!
//! Values are aliases(5) lists ([`parse_alias_value`]). A user name is
//! expanded again; a name listed under itself (`alice: alice, /backup`) or
//! written `\alice` is final. An address in a domain the virtual table has
//! keys for (`x@domain` or `@domain`) is expanded again here; any other
//! address becomes [`Expanded::Forward`] and the caller matches it against
//! the rules again, as OpenSMTPD does ([`expand_routed`] does that loop
//! given the rule matcher, with loop and depth protection across hops). Nodes already expanded are not
//! expanded twice (diamonds are fine); a node met again among its own
//! ancestors is a loop and is cut there. If nothing deliverable remains
//! and a loop was cut, the result is [`ExpandError::Loop`]. Chains deeper
//! than [`EXPAND_DEPTH`] fail with [`ExpandError::TooDeep`]. Any error in
//! any branch fails the whole recipient, as in OpenSMTPD.
//!
//! Final users are looked up in the action's `userbase` table, else with
//! getpwnam; not found is [`ExpandError::UnknownUser`].
//!
//! Who deliveries run as:
//! - A user: the user's uid/gid. With `user U` on the action OpenSMTPD
//!   runs the delivery with U's uid/gid (and U's home as HOME), while
//!   `%{user.username}` / `%{user.directory}` still name the recipient's
//!   userbase entry. [`LocalTarget::User`] carries one identity, so here it
//!   holds the recipient's username and home (for paths, mbox, `~/Maildir`)
//!   with U's uid/gid (for the process).
//! - A `/file` or `|command` from an alias: the action's `user` if set;
//!   else the user the alias belongs to, when that is a known user
//!   (userbase or system); else `nobody` (getpwnam, falling back to
//!   65534:65534). Never root: a uid 0 candidate falls through to `nobody`.
//!   (OpenSMTPD runs these as its `_smtpd` user unless they come from a
//!   ~/.forward.)
//!
//! Not done: ~/.forward files. So on a `forward-only` action a final user
//! is a temporary failure and files/commands are refused (temporary, like
//! OpenSMTPD); on `expand-only` a final user is a permanent failure.
//! `error:` alias entries are rejected as invalid values.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::config::model::{Action, Method};
use crate::envelope::LocalTarget;
use crate::mailaddr::MailAddr;
use crate::table::{parse_alias_value, AliasTarget, Table, TableError, Tables, UserInfo};

/// OpenSMTPD's EXPAND_DEPTH.
pub const EXPAND_DEPTH: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expanded {
    /// Deliver with the action's method.
    Local { dest: MailAddr, target: LocalTarget },
    /// An address outside this action's scope: match it against the rules
    /// again and queue it under whatever action it gets.
    Forward(MailAddr),
    /// The action is a relay: queue this address for the mta as is.
    Relay(MailAddr),
}

#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error("alias loop through {0}")]
    Loop(String),
    #[error("expansion deeper than {EXPAND_DEPTH} levels")]
    TooDeep,
    /// Nothing to deliver for a reason other than a loop (an empty
    /// include, a final user on an expand-only action).
    #[error("expansion produced no deliverable recipient: {0}")]
    NoDelivery(String),
    /// A forwarded address the rules reject.
    #[error("forwarded address {0} rejected by the rules")]
    Rejected(String),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{0}")]
    Temporary(String),
}

impl ExpandError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, ExpandError::Table(_) | ExpandError::Temporary(_))
    }

    /// The SMTP reply for RCPT TO.
    pub fn reply(&self) -> &'static str {
        match self {
            ExpandError::UnknownUser(_) => "550 5.1.1 Invalid recipient",
            ExpandError::Loop(_) => "550 5.4.6 Alias loop detected",
            ExpandError::Rejected(_) => "550 5.7.1 Delivery not authorized",
            ExpandError::TooDeep | ExpandError::NoDelivery(_) => {
                "524 5.2.4 Mailing list expansion problem"
            }
            ExpandError::Table(_) | ExpandError::Temporary(_) => "451 4.3.0 Temporary failure",
        }
    }
}

/// Expands `rcpt` under `action`. See the module documentation.
pub fn expand(
    rcpt: &MailAddr,
    action: &Action,
    tables: &Tables,
    sub_addr_delim: char,
) -> Result<Vec<Expanded>, ExpandError> {
    if matches!(action.method, Method::Relay(_)) {
        return Ok(vec![Expanded::Relay(rcpt.clone())]);
    }
    let get = |name: &Option<String>| -> Result<Option<Arc<Table>>, ExpandError> {
        Ok(name.as_deref().map(|n| tables.require(n)).transpose()?)
    };
    let virt = get(&action.virtual_)?;
    let virtual_domains = virt
        .as_ref()
        .map(|t| {
            t.entries()
                .filter_map(|(k, _)| k.rsplit_once('@').map(|(_, d)| d.to_string()))
                .filter(|d| !d.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut cx = Expander {
        action,
        delim: sub_addr_delim,
        alias: get(&action.alias)?,
        virt,
        virtual_domains,
        userbase: get(&action.userbase)?,
        expanded: HashSet::new(),
        stack: Vec::new(),
        emitted: HashSet::new(),
        out: Vec::new(),
        loop_at: None,
    };
    cx.address(rcpt, 0)?;
    if cx.out.is_empty() {
        return Err(match cx.loop_at {
            Some(at) => ExpandError::Loop(at),
            None => ExpandError::NoDelivery(rcpt.to_string()),
        });
    }
    tracing::debug!(rcpt = %rcpt, action = %action.name, targets = cx.out.len(), "expanded");
    Ok(cx.out)
}

/// Expands `rcpt` and follows the addresses it forwards to, as OpenSMTPD
/// does within one expansion tree: `route` is the rule matcher, giving the
/// action for a forwarded address (or the error to fail the recipient
/// with, e.g. [`ExpandError::Rejected`]). Every result comes with the
/// action that delivers it; results are `Local` or `Relay`, never
/// `Forward`.
///
/// An address met twice is followed once; if nothing deliverable remains
/// because addresses only forwarded to each other, the result is
/// [`ExpandError::Loop`]. More than [`EXPAND_DEPTH`] hops is
/// [`ExpandError::TooDeep`].
pub fn expand_routed<'a>(
    rcpt: &MailAddr,
    action: &'a Action,
    tables: &Tables,
    sub_addr_delim: char,
    mut route: impl FnMut(&MailAddr) -> Result<&'a Action, ExpandError>,
) -> Result<Vec<(&'a Action, Expanded)>, ExpandError> {
    let mut out: Vec<(&'a Action, Expanded)> = Vec::new();
    let mut seen = HashSet::from([rcpt.to_string().to_lowercase()]);
    let mut pending = std::collections::VecDeque::from([(rcpt.clone(), action, 0usize)]);
    let mut looped = None;
    while let Some((addr, act, hop)) = pending.pop_front() {
        for e in expand(&addr, act, tables, sub_addr_delim)? {
            match e {
                Expanded::Forward(a) => {
                    if !seen.insert(a.to_string().to_lowercase()) {
                        looped.get_or_insert_with(|| a.to_string());
                        continue;
                    }
                    if hop + 1 >= EXPAND_DEPTH {
                        return Err(ExpandError::TooDeep);
                    }
                    let next = route(&a)?;
                    pending.push_back((a, next, hop + 1));
                }
                other => {
                    if !out.iter().any(|(x, o)| x.name == act.name && *o == other) {
                        out.push((act, other));
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err(match looped {
            Some(at) => ExpandError::Loop(at),
            None => ExpandError::NoDelivery(rcpt.to_string()),
        });
    }
    Ok(out)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Addr(String),
    User(String),
    Include(String),
    Final(String),
    File(String),
    Command(String),
    Forward(String),
}

struct Expander<'a> {
    action: &'a Action,
    delim: char,
    alias: Option<Arc<Table>>,
    virt: Option<Arc<Table>>,
    /// Domains the virtual table has keys in: addresses there are
    /// expanded here rather than forwarded.
    virtual_domains: HashSet<String>,
    userbase: Option<Arc<Table>>,
    /// Nodes whose table entries were already expanded.
    expanded: HashSet<Key>,
    /// The nodes being expanded, root first: meeting one again is a loop.
    stack: Vec<Key>,
    emitted: HashSet<Key>,
    out: Vec<Expanded>,
    loop_at: Option<String>,
}

impl Expander<'_> {
    fn check_depth(&self, depth: usize) -> Result<(), ExpandError> {
        if depth >= EXPAND_DEPTH {
            tracing::debug!(depth, "expansion too deep");
            return Err(ExpandError::TooDeep);
        }
        Ok(())
    }

    fn strip_tag<'s>(&self, user: &'s str) -> &'s str {
        match user.find(self.delim) {
            Some(i) if i > 0 => &user[..i],
            _ => user,
        }
    }

    /// Runs `f` on the entry of `key` unless it was expanded already;
    /// records a loop if `key` is one of its own ancestors.
    fn descend(
        &mut self,
        key: Key,
        label: &str,
        f: impl FnOnce(&mut Self) -> Result<(), ExpandError>,
    ) -> Result<(), ExpandError> {
        if self.stack.contains(&key) {
            tracing::debug!(node = label, "expansion loop cut");
            self.loop_at.get_or_insert_with(|| label.to_string());
            return Ok(());
        }
        if !self.expanded.insert(key.clone()) {
            return Ok(());
        }
        self.stack.push(key);
        let r = f(self);
        self.stack.pop();
        r
    }

    fn emit(&mut self, key: Key, e: Expanded) {
        if self.emitted.insert(key) {
            self.out.push(e);
        }
    }

    fn address(&mut self, addr: &MailAddr, depth: usize) -> Result<(), ExpandError> {
        self.check_depth(depth)?;
        let Some(virt) = self.virt.clone() else {
            let user = addr.local.to_lowercase();
            return self.user(&user, addr, depth + 1, None, false);
        };
        let value = self
            .virtual_address_lookup(&virt, addr)
            .ok_or_else(|| ExpandError::UnknownUser(addr.to_string()))?;
        let targets = parse_value(&virt, &addr.to_string(), &value)?;
        let key = Key::Addr(addr.to_string().to_lowercase());
        self.descend(key, &addr.to_string(), |cx| {
            targets
                .into_iter()
                .try_for_each(|t| cx.target(t, addr, depth + 1, None))
        })
    }

    fn virtual_address_lookup(&self, virt: &Table, addr: &MailAddr) -> Option<String> {
        let full = addr.local.to_lowercase();
        let user = self.strip_tag(&full);
        let domain = addr.domain_lc();
        let tagged = user.len() != full.len();
        let mut keys = Vec::with_capacity(6);
        if tagged {
            keys.push(format!("{full}@{domain}"));
        }
        keys.push(format!("{user}@{domain}"));
        if tagged {
            keys.push(full.clone());
        }
        keys.push(user.to_string());
        keys.push(format!("@{domain}"));
        keys.push("@".to_string());
        keys.iter()
            .find_map(|k| virt.lookup(k).map(|v| (k, v.to_string())))
            .map(|(k, v)| {
                tracing::trace!(rcpt = %addr, key = %k, "virtual entry");
                v
            })
    }

    /// The alias entry for a user name: `user+tag`, then `user`, in the
    /// virtual table when the action has one, else in the alias table.
    fn user_alias_lookup(&self, name: &str) -> Option<(Arc<Table>, String)> {
        let table = self.virt.clone().or_else(|| self.alias.clone())?;
        let value = table
            .lookup(name)
            .or_else(|| table.lookup(self.strip_tag(name)))?
            .to_string();
        Some((table, value))
    }

    fn target(
        &mut self,
        t: AliasTarget,
        dest: &MailAddr,
        depth: usize,
        owner: Option<&str>,
    ) -> Result<(), ExpandError> {
        match t {
            AliasTarget::User(name) => self.user(&name, dest, depth, owner, false),
            AliasTarget::UserLiteral(name) => self.user(&name, dest, depth, owner, true),
            AliasTarget::Address(a) => {
                if self.virtual_domains.contains(&a.domain_lc()) {
                    self.address(&a, depth)
                } else {
                    self.check_depth(depth)?;
                    let key = Key::Forward(a.to_string().to_lowercase());
                    self.emit(key, Expanded::Forward(a));
                    Ok(())
                }
            }
            AliasTarget::File(path) => {
                self.check_depth(depth)?;
                self.refuse_on_forward_only("file", &path.display().to_string())?;
                let run = self.run_as(owner)?;
                let path = path.display().to_string();
                let target = LocalTarget::File {
                    path: path.clone(),
                    user: run.username,
                    uid: run.uid,
                    gid: run.gid,
                    home: run.directory.display().to_string(),
                };
                self.emit(Key::File(path), local(dest, target));
                Ok(())
            }
            AliasTarget::Command(command) => {
                self.check_depth(depth)?;
                self.refuse_on_forward_only("command", &command)?;
                let run = self.run_as(owner)?;
                let target = LocalTarget::Command {
                    command: command.clone(),
                    user: run.username,
                    uid: run.uid,
                    gid: run.gid,
                    home: run.directory.display().to_string(),
                };
                self.emit(Key::Command(command), local(dest, target));
                Ok(())
            }
            AliasTarget::Include(path) => {
                self.check_depth(depth)?;
                let label = path.display().to_string();
                self.descend(Key::Include(label.clone()), &label, |cx| {
                    read_include(&path)?
                        .into_iter()
                        .try_for_each(|t| cx.target(t, dest, depth + 1, owner))
                })
            }
        }
    }

    fn user(
        &mut self,
        name: &str,
        dest: &MailAddr,
        depth: usize,
        parent: Option<&str>,
        literal: bool,
    ) -> Result<(), ExpandError> {
        self.check_depth(depth)?;
        let name = name.to_lowercase();
        let same_user = parent == Some(name.as_str());
        if !literal && !same_user {
            if let Some((table, value)) = self.user_alias_lookup(&name) {
                let targets = parse_value(&table, &name, &value)?;
                return self.descend(Key::User(name.clone()), &name, |cx| {
                    targets
                        .into_iter()
                        .try_for_each(|t| cx.target(t, dest, depth + 1, Some(&name)))
                });
            }
        }
        self.final_user(&name, dest)
    }

    fn final_user(&mut self, name: &str, dest: &MailAddr) -> Result<(), ExpandError> {
        let base = self.strip_tag(name).to_string();
        let info = self
            .known_user(&base)?
            .ok_or_else(|| ExpandError::UnknownUser(base.clone()))?;
        match self.action.method {
            Method::ForwardOnly => {
                return Err(ExpandError::Temporary(format!(
                    "no .forward for user {base} on forward-only action {}",
                    self.action.name
                )))
            }
            Method::ExpandOnly => {
                return Err(ExpandError::NoDelivery(format!(
                    "no .forward for user {base} on expand-only action {}",
                    self.action.name
                )))
            }
            _ => {}
        }
        let (uid, gid) = match &self.action.user {
            Some(u) => {
                let run = self.delivery_user(u)?;
                (run.uid, run.gid)
            }
            None => (info.uid, info.gid),
        };
        let target = LocalTarget::User {
            username: info.username.clone(),
            uid,
            gid,
            home: info.directory.display().to_string(),
        };
        self.emit(Key::Final(info.username), local(dest, target));
        Ok(())
    }

    /// A user from the action's userbase, else from the system.
    fn known_user(&self, name: &str) -> Result<Option<UserInfo>, ExpandError> {
        Ok(match &self.userbase {
            Some(t) => t.try_userinfo(name)?,
            None => Tables::try_system_userinfo(name)?,
        })
    }

    /// The action's `user U`, which is a system user.
    fn delivery_user(&self, name: &str) -> Result<UserInfo, ExpandError> {
        Tables::try_system_userinfo(name)?.ok_or_else(|| {
            ExpandError::Temporary(format!(
                "delivery user {name} of action {} does not exist",
                self.action.name
            ))
        })
    }

    fn run_as(&self, owner: Option<&str>) -> Result<UserInfo, ExpandError> {
        let candidate = match (&self.action.user, owner) {
            (Some(u), _) => Some(self.delivery_user(u)?),
            (None, Some(o)) => self.known_user(self.strip_tag(o))?,
            (None, None) => None,
        };
        match candidate {
            Some(u) if u.uid != 0 => Ok(u),
            Some(u) => {
                tracing::warn!(user = %u.username, "alias file/command would run as root, running as nobody");
                Ok(nobody())
            }
            None => Ok(nobody()),
        }
    }

    fn refuse_on_forward_only(&self, what: &str, which: &str) -> Result<(), ExpandError> {
        if matches!(self.action.method, Method::ForwardOnly) {
            return Err(ExpandError::Temporary(format!(
                "{what} {which} matched on forward-only action {}",
                self.action.name
            )));
        }
        Ok(())
    }
}

fn local(dest: &MailAddr, target: LocalTarget) -> Expanded {
    Expanded::Local {
        dest: dest.clone(),
        target,
    }
}

fn nobody() -> UserInfo {
    Tables::system_userinfo("nobody")
        .filter(|u| u.uid != 0)
        .unwrap_or_else(|| UserInfo {
            username: "nobody".into(),
            uid: 65534,
            gid: 65534,
            directory: "/nonexistent".into(),
        })
}

fn parse_value(table: &Table, key: &str, value: &str) -> Result<Vec<AliasTarget>, ExpandError> {
    parse_alias_value(value).map_err(|e| {
        ExpandError::Table(TableError::BadValue {
            table: table.name().to_string(),
            key: key.to_string(),
            msg: e.to_string(),
        })
    })
}

/// An `:include:` file: alias values, one or more a line, `#` comments.
/// An unreadable file is a temporary failure (OpenSMTPD skips it, which
/// can silently drop the list's mail).
fn read_include(path: &Path) -> Result<Vec<AliasTarget>, ExpandError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ExpandError::Temporary(format!("cannot read include file {}: {e}", path.display()))
    })?;
    let mut targets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = parse_alias_value(line).map_err(|e| {
            ExpandError::Table(TableError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                msg: e.to_string(),
            })
        })?;
        targets.extend(parsed);
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Origin;

    const USERS: &str = "\
alice 1001:1001:/home/alice
bob 1002:1002:/home/bob
carol 1003:1003:/home/carol
admin 1000:1000:/home/admin
";

    fn action(method: Method) -> Action {
        Action {
            name: "local".into(),
            method,
            alias: None,
            virtual_: None,
            userbase: Some("users".into()),
            user: None,
            wrapper: None,
            ttl: None,
            origin: Origin::default(),
        }
    }

    fn mbox() -> Action {
        action(Method::Mbox)
    }

    fn with_alias(a: Action) -> Action {
        Action {
            alias: Some("aliases".into()),
            ..a
        }
    }

    fn with_virtual(a: Action) -> Action {
        Action {
            virtual_: Some("virtual".into()),
            ..a
        }
    }

    fn tables(aliases: &str, virt: &str) -> Tables {
        let mut t = Tables::new();
        let p = |n: &str| Path::new(n).to_path_buf();
        t.insert("users", Table::from_text(USERS, &p("users")).unwrap());
        t.insert("aliases", Table::from_text(aliases, &p("aliases")).unwrap());
        t.insert("virtual", Table::from_text(virt, &p("virtual")).unwrap());
        t
    }

    fn addr(s: &str) -> MailAddr {
        MailAddr::parse(s).unwrap()
    }

    /// A compact view of the results: `user:NAME`, `file:PATH@RUNAS`,
    /// `cmd:COMMAND@RUNAS`, `fwd:ADDR`.
    fn summary(v: &[Expanded]) -> Vec<String> {
        v.iter()
            .map(|e| match e {
                Expanded::Local { target, .. } => match target {
                    LocalTarget::User { username, .. } => format!("user:{username}"),
                    LocalTarget::File { path, user, .. } => format!("file:{path}@{user}"),
                    LocalTarget::Command { command, user, .. } => format!("cmd:{command}@{user}"),
                },
                Expanded::Forward(a) => format!("fwd:{a}"),
                Expanded::Relay(a) => format!("relay:{a}"),
            })
            .collect()
    }

    fn run(rcpt: &str, a: &Action, t: &Tables) -> Result<Vec<String>, ExpandError> {
        expand(&addr(rcpt), a, t, '+').map(|v| summary(&v))
    }

    #[test]
    fn plain_local_part_is_the_user() {
        let t = tables("", "");
        let v = expand(&addr("Alice+News@example.org"), &mbox(), &t, '+').unwrap();
        assert_eq!(
            v,
            vec![Expanded::Local {
                dest: addr("Alice+News@example.org"),
                target: LocalTarget::User {
                    username: "alice".into(),
                    uid: 1001,
                    gid: 1001,
                    home: "/home/alice".into()
                }
            }]
        );
    }

    #[test]
    fn unknown_user() {
        let t = tables("", "");
        let e = expand(&addr("mallory@example.org"), &mbox(), &t, '+').unwrap_err();
        assert!(
            matches!(&e, ExpandError::UnknownUser(u) if u == "mallory"),
            "{e:?}"
        );
        assert!(e.reply().starts_with("550 5.1.1"));
        assert!(!e.is_temporary());
    }

    #[test]
    fn alias_chains() {
        let t = tables(
            "root: admin\nadmin: alice, bob\nstaff: Admin, carol, alice\n",
            "",
        );
        let a = with_alias(mbox());
        assert_eq!(
            run("root@x.org", &a, &t).unwrap(),
            vec!["user:alice", "user:bob"]
        );
        // alice reached twice is delivered once.
        assert_eq!(
            run("staff@x.org", &a, &t).unwrap(),
            vec!["user:alice", "user:bob", "user:carol"]
        );
        // An alias with a tag falls back on the bare name.
        assert_eq!(
            run("root+cron@x.org", &a, &t).unwrap(),
            vec!["user:alice", "user:bob"]
        );
        // Not an alias: a plain user.
        assert_eq!(run("carol@x.org", &a, &t).unwrap(), vec!["user:carol"]);
    }

    #[test]
    fn self_reference_delivers_to_user_and_file() {
        let t = tables("alice: alice, /var/backup/alice\n", "");
        let v = expand(&addr("alice@x.org"), &with_alias(mbox()), &t, '+').unwrap();
        assert_eq!(
            summary(&v),
            vec!["user:alice", "file:/var/backup/alice@alice"]
        );
        // The file runs as the alias owner, alice.
        assert!(matches!(
            &v[1],
            Expanded::Local {
                target: LocalTarget::File { uid: 1001, .. },
                ..
            }
        ));
    }

    #[test]
    fn backslash_user_is_not_expanded() {
        let t = tables("bob: \\bob, alice\n", "");
        assert_eq!(
            run("bob@x.org", &with_alias(mbox()), &t).unwrap(),
            vec!["user:bob", "user:alice"]
        );
    }

    #[test]
    fn loops() {
        let t = tables("a: b\nb: a\nc: d, carol\nd: c\n", "");
        let a = with_alias(mbox());
        let e = expand(&addr("a@x.org"), &a, &t, '+').unwrap_err();
        assert!(matches!(&e, ExpandError::Loop(n) if n == "a"), "{e:?}");
        assert!(e.reply().starts_with("550 5.4.6"));
        // A loop next to a real target is simply cut.
        assert_eq!(run("c@x.org", &a, &t).unwrap(), vec!["user:carol"]);
    }

    #[test]
    fn too_deep() {
        let chain: String = (0..12).map(|i| format!("l{i}: l{}\n", i + 1)).collect();
        let t = tables(&format!("{chain}l12: alice\n"), "");
        let e = expand(&addr("l0@x.org"), &with_alias(mbox()), &t, '+').unwrap_err();
        assert!(matches!(e, ExpandError::TooDeep), "{e:?}");
        // Shorter chains are fine.
        let t = tables("l0: l1\nl1: l2\nl2: alice\n", "");
        assert_eq!(
            run("l0@x.org", &with_alias(mbox()), &t).unwrap(),
            vec!["user:alice"]
        );
    }

    #[test]
    fn include_files() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list");
        std::fs::write(&list, "# members\nalice, bob\n\ncarol@elsewhere.net\n").unwrap();
        let t = tables(&format!("list: :include:{}, admin\n", list.display()), "");
        assert_eq!(
            run("list@x.org", &with_alias(mbox()), &t).unwrap(),
            vec![
                "user:alice",
                "user:bob",
                "fwd:carol@elsewhere.net",
                "user:admin"
            ]
        );
        let t = tables("list: :include:/nonexistent/wasmtpd/list\n", "");
        let e = expand(&addr("list@x.org"), &with_alias(mbox()), &t, '+').unwrap_err();
        assert!(e.is_temporary(), "{e:?}");
    }

    #[test]
    fn include_cycles_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list");
        std::fs::write(&list, format!("alice\n:include:{}\n", list.display())).unwrap();
        let t = tables(&format!("list: :include:{}\n", list.display()), "");
        assert_eq!(
            run("list@x.org", &with_alias(mbox()), &t).unwrap(),
            vec!["user:alice"]
        );
    }

    #[test]
    fn expand_only_without_forward_files() {
        let t = tables("root: r@elsewhere.org\n", "");
        let a = with_alias(action(Method::ExpandOnly));
        assert_eq!(
            run("root@x.org", &a, &t).unwrap(),
            vec!["fwd:r@elsewhere.org"]
        );
        let e = expand(&addr("alice@x.org"), &a, &t, '+').unwrap_err();
        assert!(matches!(e, ExpandError::NoDelivery(_)), "{e:?}");
    }

    #[test]
    fn files_and_commands_never_run_as_root() {
        let t = tables(
            "root: /var/log/root.mbox, \"|/usr/bin/logger -t mail\"\nbob: \"|/usr/bin/procmail -m\"\n",
            "",
        );
        let mut a = with_alias(mbox());
        // root is not in the userbase: nobody.
        assert_eq!(
            run("root@x.org", &a, &t).unwrap(),
            vec![
                "file:/var/log/root.mbox@nobody",
                "cmd:/usr/bin/logger -t mail@nobody"
            ]
        );
        assert_eq!(
            run("bob@x.org", &a, &t).unwrap(),
            vec!["cmd:/usr/bin/procmail -m@bob"]
        );
        // With system users, root is known but still never used.
        a.userbase = None;
        let v = expand(&addr("root@x.org"), &a, &t, '+').unwrap();
        for e in &v {
            match e {
                Expanded::Local {
                    target: LocalTarget::File { uid, .. },
                    ..
                }
                | Expanded::Local {
                    target: LocalTarget::Command { uid, .. },
                    ..
                } => {
                    assert_ne!(*uid, 0)
                }
                other => panic!("{other:?}"),
            }
        }
        // The action's user wins.
        a.user = Some("nobody".into());
        assert_eq!(
            run("bob@x.org", &a, &t).unwrap(),
            vec!["cmd:/usr/bin/procmail -m@nobody"]
        );
    }

    #[test]
    fn action_user_sets_uid_not_mailbox() {
        let t = tables("", "");
        let a = Action {
            user: Some("nobody".into()),
            ..mbox()
        };
        let v = expand(&addr("alice@x.org"), &a, &t, '+').unwrap();
        let nobody = Tables::system_userinfo("nobody").unwrap();
        assert_eq!(
            v,
            vec![Expanded::Local {
                dest: addr("alice@x.org"),
                target: LocalTarget::User {
                    username: "alice".into(),
                    uid: nobody.uid,
                    gid: nobody.gid,
                    home: "/home/alice".into()
                }
            }]
        );
        let a = Action {
            user: Some("no-such-user-wasmtpd".into()),
            ..mbox()
        };
        assert!(expand(&addr("alice@x.org"), &a, &t, '+')
            .unwrap_err()
            .is_temporary());
    }

    #[test]
    fn system_users_without_userbase() {
        let t = tables("postmaster: root\n", "");
        let a = Action {
            userbase: None,
            ..with_alias(mbox())
        };
        let v = expand(&addr("postmaster@x.org"), &a, &t, '+').unwrap();
        assert!(matches!(
            &v[..],
            [Expanded::Local { target: LocalTarget::User { username, uid: 0, .. }, .. }] if username == "root"
        ));
        assert!(matches!(
            expand(&addr("no-such-user-wasmtpd@x.org"), &a, &t, '+'),
            Err(ExpandError::UnknownUser(_))
        ));
    }

    #[test]
    fn forward_outside_addresses() {
        let t = tables("bob: bob@elsewhere.org, BOB@elsewhere.org\n", "");
        assert_eq!(
            run("bob@x.org", &with_alias(mbox()), &t).unwrap(),
            vec!["fwd:bob@elsewhere.org"]
        );
    }

    const VIRTUAL: &str = "\
alice@example.org: alice
alice+list@example.org: bob
sales@example.org: alice@example.org, bob@example.org, partner@other.net
bob@example.org: bob
@example.org: carol
l1@example.net: l2@example.net
l2@example.net: l1@example.net
info: admin
";

    #[test]
    fn virtual_lookups() {
        let t = tables("", VIRTUAL);
        let a = with_virtual(action(Method::Maildir {
            path: None,
            junk: false,
        }));
        assert_eq!(
            run("Alice@Example.org", &a, &t).unwrap(),
            vec!["user:alice"]
        );
        assert_eq!(
            run("alice+list@example.org", &a, &t).unwrap(),
            vec!["user:bob"]
        );
        assert_eq!(
            run("alice+other@example.org", &a, &t).unwrap(),
            vec!["user:alice"]
        );
        // Catch-all for the domain.
        assert_eq!(run("zed@example.org", &a, &t).unwrap(), vec!["user:carol"]);
        // `user` keys apply to any domain.
        assert_eq!(run("info@example.com", &a, &t).unwrap(), vec!["user:admin"]);
        // Addresses in the table's domains expand here, others forward.
        assert_eq!(
            run("sales@example.org", &a, &t).unwrap(),
            vec!["user:alice", "user:bob", "fwd:partner@other.net"]
        );
        let v = expand(&addr("sales@example.org"), &a, &t, '+').unwrap();
        assert!(
            matches!(&v[0], Expanded::Local { dest, .. } if *dest == addr("alice@example.org")),
            "dest is the nearest address: {v:?}"
        );
        // No entry at all.
        assert!(matches!(
            expand(&addr("x@nowhere.org"), &a, &t, '+'),
            Err(ExpandError::UnknownUser(_))
        ));
        // Loops between virtual addresses.
        assert!(matches!(
            expand(&addr("l1@example.net"), &a, &t, '+'),
            Err(ExpandError::Loop(_))
        ));
    }

    #[test]
    fn virtual_global_catch_all() {
        let t = tables("", "@: carol\n");
        let a = with_virtual(mbox());
        assert_eq!(
            run("anyone@anywhere.org", &a, &t).unwrap(),
            vec!["user:carol"]
        );
    }

    #[test]
    fn relay_and_forward_only_actions() {
        let t = tables("root: /var/log/root.mbox\n", "");
        let relay = action(Method::Relay(Box::default()));
        assert_eq!(run("x@y.org", &relay, &t).unwrap(), vec!["relay:x@y.org"]);
        let fwd = with_alias(action(Method::ForwardOnly));
        assert!(expand(&addr("root@x.org"), &fwd, &t, '+')
            .unwrap_err()
            .is_temporary());
        let t = tables("root: r@elsewhere.org\n", "");
        assert_eq!(
            run("root@x.org", &fwd, &t).unwrap(),
            vec!["fwd:r@elsewhere.org"]
        );
    }

    #[test]
    fn routed_expansion_follows_forwards() {
        let t = tables(
            "bob: bob@remote.org, alice@other.local, bob@x.org\nloop: loop@y.org\n",
            "alice@other.local: alice\n",
        );
        let local = with_alias(mbox());
        let vlocal = Action {
            name: "vlocal".into(),
            ..with_virtual(mbox())
        };
        let relay = Action {
            name: "relay".into(),
            ..action(Method::Relay(Box::default()))
        };
        let route = |a: &MailAddr| -> Result<&Action, ExpandError> {
            match a.domain_lc().as_str() {
                "remote.org" => Ok(&relay),
                "other.local" => Ok(&vlocal),
                "x.org" | "y.org" => Ok(&local),
                _ => Err(ExpandError::Rejected(a.to_string())),
            }
        };
        let v = expand_routed(&addr("bob@x.org"), &local, &t, '+', route).unwrap();
        let got: Vec<_> = v
            .iter()
            .map(|(a, e)| format!("{}={}", a.name, summary(std::slice::from_ref(e))[0]))
            .collect();
        assert_eq!(got, vec!["relay=relay:bob@remote.org", "vlocal=user:alice"]);

        let e = expand_routed(&addr("loop@x.org"), &local, &t, '+', route).unwrap_err();
        assert!(matches!(e, ExpandError::Loop(_)), "{e:?}");

        let t = tables("carl: carl@nowhere.org\n", "");
        let e = expand_routed(&addr("carl@x.org"), &local, &t, '+', route).unwrap_err();
        assert!(e.reply().starts_with("550 5.7.1"), "{e:?}");
    }

    #[test]
    fn bad_alias_values_are_temporary() {
        let t = tables("x: a b\n", "");
        let e = expand(&addr("x@y.org"), &with_alias(mbox()), &t, '+').unwrap_err();
        assert!(e.is_temporary(), "{e:?}");
        assert!(e.to_string().contains("aliases"), "{e}");
    }

    #[test]
    fn missing_table_is_temporary() {
        let t = Tables::new();
        let e = expand(&addr("x@y.org"), &with_alias(mbox()), &t, '+').unwrap_err();
        assert!(e.is_temporary());
    }
}
