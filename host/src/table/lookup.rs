//! One loaded table and the lookup services of table(5): plain key lookup,
//! list membership, domain, network address, mail address and user
//! matching.
//!
//! A `Table` is immutable: reloading builds a new one and swaps it in the
//! registry, so a lookup never sees a half-read file.
//!
//! Case: keys are lowercased when loaded and every lookup key is
//! lowercased too, as OpenSMTPD does, so all services compare keys
//! case-insensitively. Values are returned as written.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::config::model::{TableDef, TableSource};
use crate::mailaddr::MailAddr;

use super::error::TableError;
use super::parse::parse_text;
use super::userinfo::{parse_userinfo, system_lookup, UserInfo};

#[derive(Debug)]
pub struct Table {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Static(Static),
    /// The system password database; answers user lookups only.
    Getpwnam,
}

#[derive(Debug)]
struct Static {
    list: bool,
    /// In file order, keys lowercased, duplicates removed (last wins).
    entries: Vec<(String, Option<String>)>,
    index: HashMap<String, usize>,
    /// Keys that parse as addresses or networks, for `match_netaddr`.
    nets: Vec<IpNet>,
}

impl Static {
    fn build(name: &str, list: bool, raw: Vec<(String, Option<String>)>) -> Static {
        let mut entries: Vec<(String, Option<String>)> = Vec::with_capacity(raw.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(raw.len());
        for (k, v) in raw {
            match index.get(&k) {
                Some(&i) => {
                    tracing::warn!(table = name, key = %k, "duplicate table key, the last one wins");
                    entries[i].1 = v;
                }
                None => {
                    index.insert(k.clone(), entries.len());
                    entries.push((k, v));
                }
            }
        }
        let nets = entries.iter().filter_map(|(k, _)| parse_net(k)).collect();
        Static {
            list,
            entries,
            index,
            nets,
        }
    }
}

/// `1.2.3.4`, `10.0.0.0/8`, `::1`, `[::1]`, `[2001:db8::]/32`, `2001:db8::/32`.
fn parse_net(s: &str) -> Option<IpNet> {
    let cleaned: String = s.chars().filter(|c| *c != '[' && *c != ']').collect();
    let cleaned = cleaned
        .strip_prefix("ipv6:")
        .map(str::to_string)
        .unwrap_or(cleaned);
    if let Ok(net) = cleaned.parse::<IpNet>() {
        return Some(net);
    }
    cleaned.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Domain matching as table(5) describes: exact names, and `*.example.org`
/// for any name below example.org (at any depth; not example.org itself).
pub fn domain_matches(domain: &str, pattern: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    let pattern = pattern.trim_end_matches('.');
    match pattern.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => {
            domain.len() > suffix.len()
                && domain
                    .get(domain.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
        _ => domain.eq_ignore_ascii_case(pattern),
    }
}

/// One mailaddr entry (`user`, `@domain`, `user@domain`, `@`) against an
/// address. An entry without a sub-address matches the address with its
/// `+tag` stripped; an entry with one must match exactly. `entry` is
/// compared case-insensitively.
pub fn mailaddr_matches(entry: &str, addr: &MailAddr, delim: char) -> bool {
    let (user, domain) = match entry.rfind('@') {
        Some(at) => (&entry[..at], &entry[at + 1..]),
        None => (entry, ""),
    };
    if !domain.is_empty() && !domain_matches(&addr.domain, domain) {
        return false;
    }
    if user.is_empty() {
        return true;
    }
    let local = if user.contains(delim) {
        addr.local.as_str()
    } else {
        addr.local_base(delim)
    };
    local.to_lowercase() == user.to_lowercase()
}

/// One netaddr entry (address or CIDR network, IPv6 maybe in `[...]`)
/// against a client address.
pub fn netaddr_matches(entry: &str, ip: IpAddr) -> bool {
    parse_net(entry).is_some_and(|n| n.contains(&ip))
}

impl Table {
    /// Loads a table as smtpd.conf defines it.
    pub fn load(def: &TableDef) -> Result<Table, TableError> {
        let named = |mut t: Table| {
            t.name = def.name.clone();
            t
        };
        match &def.source {
            TableSource::File { backend, path } => match backend.as_str() {
                "file" | "static" | "" => {
                    let text = read(def, path)?;
                    Ok(named(Table::from_text(&text, path)?))
                }
                "db" => {
                    // A `db:` table is usually made by makemap(8) from a text
                    // file of the same name without `.db`: read that instead.
                    let text_path = match path.extension() {
                        Some(ext) if ext == "db" => path.with_extension(""),
                        _ => path.clone(),
                    };
                    match std::fs::read(&text_path) {
                        Ok(bytes) if !looks_binary(&bytes) => {
                            tracing::info!(
                                table = %def.name,
                                path = %text_path.display(),
                                "db table read from its text source"
                            );
                            let text = String::from_utf8_lossy(&bytes);
                            Ok(named(Table::from_text(&text, &text_path)?))
                        }
                        _ => Err(TableError::DbUnsupported {
                            origin: def.origin.clone(),
                            name: def.name.clone(),
                            path: path.clone(),
                            text: text_path,
                        }),
                    }
                }
                other => Err(TableError::UnsupportedBackend {
                    origin: def.origin.clone(),
                    name: def.name.clone(),
                    backend: other.to_string(),
                }),
            },
            TableSource::InlineList(items) => Ok(Table {
                name: def.name.clone(),
                kind: Kind::Static(Static::build(
                    &def.name,
                    true,
                    items.iter().map(|k| (k.to_lowercase(), None)).collect(),
                )),
            }),
            TableSource::InlineMap(pairs) => Ok(Table {
                name: def.name.clone(),
                kind: Kind::Static(Static::build(
                    &def.name,
                    false,
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_lowercase(), Some(v.clone())))
                        .collect(),
                )),
            }),
            TableSource::Backend { backend, .. } if backend == "getpwnam" => Ok(Table {
                name: def.name.clone(),
                kind: Kind::Getpwnam,
            }),
            TableSource::Backend { backend, .. } => Err(TableError::UnsupportedBackend {
                origin: def.origin.clone(),
                name: def.name.clone(),
                backend: backend.clone(),
            }),
        }
    }

    /// Parses table(5) file text (see `parse` for the format). `origin`
    /// names the file in error messages.
    pub fn from_text(text: &str, origin: &Path) -> Result<Table, TableError> {
        let parsed = parse_text(text, origin)?;
        let name = origin.display().to_string();
        Ok(Table {
            kind: Kind::Static(Static::build(&name, parsed.list, parsed.entries)),
            name,
        })
    }

    /// A table backed by the system password database.
    pub fn getpwnam(name: &str) -> Table {
        Table {
            name: name.to_string(),
            kind: Kind::Getpwnam,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for a list table (keys only).
    pub fn is_list(&self) -> bool {
        matches!(&self.kind, Kind::Static(s) if s.list)
    }

    /// Map lookup: the value for `key`, compared case-insensitively.
    pub fn lookup(&self, key: &str) -> Option<&str> {
        let Kind::Static(s) = &self.kind else {
            return None;
        };
        let i = *s.index.get(&key.to_lowercase())?;
        s.entries[i].1.as_deref()
    }

    /// Whether `key` is a list entry or a map key (for getpwnam tables:
    /// whether the system user exists).
    pub fn contains(&self, key: &str) -> bool {
        match &self.kind {
            Kind::Static(s) => s.index.contains_key(&key.to_lowercase()),
            Kind::Getpwnam => matches!(system_lookup(&key.to_lowercase()), Ok(Some(_))),
        }
    }

    /// Domain service: `example.org` entries and `*.example.org` wildcards.
    pub fn match_domain(&self, domain: &str) -> bool {
        let Kind::Static(s) = &self.kind else {
            return false;
        };
        let d = domain.trim_end_matches('.').to_lowercase();
        s.index.contains_key(&d) || s.entries.iter().any(|(k, _)| domain_matches(&d, k))
    }

    /// Netaddr service: addresses and CIDR networks, v4 and v6 (`[...]`
    /// allowed). An IPv4-mapped IPv6 client also matches IPv4 entries.
    pub fn match_netaddr(&self, ip: IpAddr) -> bool {
        let Kind::Static(s) = &self.kind else {
            return false;
        };
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        s.nets
            .iter()
            .any(|n| n.contains(&ip) || mapped.is_some_and(|m| n.contains(&m)))
    }

    /// Mailaddr service with the default `+` sub-address delimiter.
    pub fn match_mailaddr(&self, addr: &MailAddr) -> bool {
        self.match_mailaddr_delim(addr, '+')
    }

    /// Mailaddr service: entries `user`, `@domain`, `user@domain` and `@`
    /// (anything). An entry without a sub-address matches the address with
    /// its `+tag` stripped; an entry with one must match exactly.
    pub fn match_mailaddr_delim(&self, addr: &MailAddr, delim: char) -> bool {
        let Kind::Static(s) = &self.kind else {
            return false;
        };
        s.entries
            .iter()
            .any(|(k, _)| mailaddr_matches(k, addr, delim))
    }

    /// Credentials service (`user $2b$...` / `label user:password`).
    pub fn credentials(&self, user: &str) -> Option<&str> {
        self.lookup(user)
    }

    /// Userinfo service; a malformed entry reads as absent (see
    /// [`Table::try_userinfo`] to tell the two apart).
    pub fn userinfo(&self, user: &str) -> Option<UserInfo> {
        self.try_userinfo(user).ok().flatten()
    }

    /// Userinfo service: `user uid:gid:/home` entries, or the system
    /// passwd entry for getpwnam tables. Err on a malformed entry or a
    /// failing user database, which mail treats as temporary.
    pub fn try_userinfo(&self, user: &str) -> Result<Option<UserInfo>, TableError> {
        let key = user.to_lowercase();
        match &self.kind {
            Kind::Getpwnam => system_lookup(&key),
            Kind::Static(_) => match self.lookup(&key) {
                Some(v) => parse_userinfo(&self.name, &key, v).map(Some),
                None => Ok(None),
            },
        }
    }

    /// All entries in file order (keys lowercased; lists have no values).
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        let slice: &[(String, Option<String>)] = match &self.kind {
            Kind::Static(s) => &s.entries,
            Kind::Getpwnam => &[],
        };
        slice.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Static(s) => s.entries.len(),
            Kind::Getpwnam => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn read(def: &TableDef, path: &PathBuf) -> Result<String, TableError> {
    let bytes = std::fs::read(path).map_err(|source| TableError::Io {
        origin: def.origin.clone(),
        name: def.name.clone(),
        path: path.clone(),
        source,
    })?;
    // Table files are text; a stray Latin-1 byte should not make the whole
    // table unusable.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn looks_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(4096).any(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Origin;

    fn table(text: &str) -> Table {
        Table::from_text(text, Path::new("t")).unwrap()
    }

    fn def(name: &str, source: TableSource) -> TableDef {
        TableDef {
            name: name.into(),
            source,
            origin: Origin {
                file: "smtpd.conf".into(),
                line: 7,
            },
        }
    }

    #[test]
    fn map_lookup_is_case_insensitive() {
        let t = table("# aliases\nRoot: admin\nadmin: alice, bob\n");
        assert!(!t.is_list());
        assert_eq!(t.lookup("ROOT"), Some("admin"));
        assert_eq!(t.lookup("admin"), Some("alice, bob"));
        assert_eq!(t.lookup("nobody"), None);
        assert!(t.contains("Admin"));
        assert_eq!(t.credentials("root"), Some("admin"));
    }

    #[test]
    fn list_tables() {
        let t = table("example.org\nExample.NET\n");
        assert!(t.is_list());
        assert!(t.contains("example.net"));
        assert_eq!(t.lookup("example.org"), None);
        let keys: Vec<_> = t.entries().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["example.org", "example.net"]);
    }

    #[test]
    fn domain_wildcards() {
        let t = table("example.org\n*.example.net\n");
        assert!(t.match_domain("EXAMPLE.org"));
        assert!(t.match_domain("example.org."));
        assert!(!t.match_domain("sub.example.org"));
        assert!(t.match_domain("mx.example.net"));
        assert!(t.match_domain("a.b.Example.NET"));
        assert!(!t.match_domain("example.net"));
        assert!(!t.match_domain("badexample.net"));
    }

    #[test]
    fn netaddr_v4_v6_cidr() {
        let t = table("192.168.0.0/16\n10.1.2.3\n[::1]\n2001:db8::/32\n[fe80::]/10\n");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(t.match_netaddr(ip("192.168.44.1")));
        assert!(!t.match_netaddr(ip("192.169.0.1")));
        assert!(t.match_netaddr(ip("10.1.2.3")));
        assert!(!t.match_netaddr(ip("10.1.2.4")));
        assert!(t.match_netaddr(ip("::1")));
        assert!(t.match_netaddr(ip("2001:db8:1::25")));
        assert!(!t.match_netaddr(ip("2001:db9::1")));
        assert!(t.match_netaddr(ip("fe80::1")));
        assert!(t.match_netaddr(ip("::ffff:192.168.1.1")));
    }

    #[test]
    fn mailaddr_forms() {
        let t = table("alice\n@example.org\nbob@example.net\ncarol+list@example.com\n");
        let a = |s: &str| MailAddr::parse(s).unwrap();
        assert!(t.match_mailaddr(&a("Alice@anywhere.org")));
        assert!(t.match_mailaddr(&a("alice+tag@anywhere.org")));
        assert!(t.match_mailaddr(&a("zed@EXAMPLE.org")));
        assert!(t.match_mailaddr(&a("bob+x@example.net")));
        assert!(!t.match_mailaddr(&a("bob@example.org.uk")));
        assert!(!t.match_mailaddr(&a("bob@other.net")));
        assert!(t.match_mailaddr(&a("carol+list@example.com")));
        assert!(!t.match_mailaddr(&a("carol@example.com")));
        assert!(!t.match_mailaddr(&a("carol+other@example.com")));
        assert!(table("@\n").match_mailaddr(&a("x@y.z")));
    }

    #[test]
    fn userbase_entries() {
        let t = table("alice 5000:5000:/var/vmail/alice\nbroken 5000\n");
        let u = t.userinfo("ALICE").unwrap();
        assert_eq!((u.username.as_str(), u.uid, u.gid), ("alice", 5000, 5000));
        assert_eq!(u.directory, PathBuf::from("/var/vmail/alice"));
        assert!(t.try_userinfo("broken").is_err());
        assert_eq!(t.userinfo("broken"), None);
        assert_eq!(t.try_userinfo("nobody").unwrap(), None);
    }

    #[test]
    fn getpwnam_tables() {
        let t = Table::load(&def(
            "pw",
            TableSource::Backend {
                backend: "getpwnam".into(),
                config: String::new(),
            },
        ))
        .unwrap();
        assert_eq!(t.userinfo("root").unwrap().uid, 0);
        assert!(t.userinfo("nobody").unwrap().uid != 0);
        assert!(t.contains("root"));
        assert!(!t.contains("no-such-user-wasmtpd"));
    }

    #[test]
    fn inline_tables() {
        let l = Table::load(&def(
            "l",
            TableSource::InlineList(vec!["Example.org".into()]),
        ))
        .unwrap();
        assert!(l.is_list());
        assert!(l.match_domain("example.ORG"));
        let m = Table::load(&def(
            "m",
            TableSource::InlineMap(vec![("Joe".into(), "5:5:/home/joe".into())]),
        ))
        .unwrap();
        assert_eq!(m.lookup("joe"), Some("5:5:/home/joe"));
        assert_eq!(m.name(), "m");
    }

    #[test]
    fn file_and_db_backends() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("aliases");
        std::fs::write(&txt, "root: admin\n").unwrap();
        let f = Table::load(&def(
            "a",
            TableSource::File {
                backend: "file".into(),
                path: txt.clone(),
            },
        ))
        .unwrap();
        assert_eq!(f.lookup("root"), Some("admin"));
        // db: falls back on the text source without `.db`.
        let d = Table::load(&def(
            "a",
            TableSource::File {
                backend: "db".into(),
                path: dir.path().join("aliases.db"),
            },
        ))
        .unwrap();
        assert_eq!(d.lookup("root"), Some("admin"));
        let e = Table::load(&def(
            "v",
            TableSource::File {
                backend: "db".into(),
                path: dir.path().join("virtual.db"),
            },
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.starts_with("smtpd.conf:7: table v: db tables are not supported"),
            "{e}"
        );
        assert!(e.contains("file:"), "{e}");
        let e = Table::load(&def(
            "x",
            TableSource::File {
                backend: "file".into(),
                path: dir.path().join("missing"),
            },
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.starts_with("smtpd.conf:7: table x: cannot read"), "{e}");
        std::fs::write(&txt, "root: admin\nbad\n").unwrap();
        let e = Table::load(&def(
            "a",
            TableSource::File {
                backend: "file".into(),
                path: txt.clone(),
            },
        ))
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            e,
            format!("{}:2: missing value for key \"bad\"", txt.display())
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let t = table("a: 1\nA: 2\n");
        assert_eq!(t.lookup("a"), Some("2"));
        assert_eq!(t.len(), 1);
    }
}
