//! The table registry: every table of the configuration by name.
//!
//! Each slot holds an `Arc<Table>` behind a `std::sync::RwLock`. A lookup
//! clones the Arc under a read lock held for a pointer copy, so readers
//! never wait on file I/O; `reload` reads and parses the file first and
//! only then takes the write lock to swap the Arc. Lookups already running
//! finish on the old table, later ones see the new one, and a failed
//! reload leaves the old table in place.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::model::{Config, TableDef};

use super::error::TableError;
use super::lookup::Table;
use super::userinfo::{system_lookup, UserInfo};

#[derive(Debug)]
struct Slot {
    /// None for tables inserted by code (tests), which cannot be reloaded.
    def: Option<TableDef>,
    current: RwLock<Arc<Table>>,
}

#[derive(Debug, Default)]
pub struct Tables {
    slots: HashMap<String, Slot>,
}

impl Tables {
    pub fn new() -> Tables {
        Tables::default()
    }

    /// Loads every table the configuration defines; reports all failures,
    /// not just the first.
    pub fn load_all(config: &Config) -> Result<Tables, Vec<TableError>> {
        let mut tables = Tables::new();
        let mut errors = Vec::new();
        for (name, def) in &config.tables {
            match Table::load(def) {
                Ok(t) => {
                    tracing::debug!(table = %name, entries = t.len(), "table loaded");
                    tables.slots.insert(
                        name.clone(),
                        Slot {
                            def: Some(def.clone()),
                            current: RwLock::new(Arc::new(t)),
                        },
                    );
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(tables)
        } else {
            Err(errors)
        }
    }

    /// Adds (or replaces) a table under `name`; such tables cannot be
    /// reloaded from a definition.
    pub fn insert(&mut self, name: &str, table: Table) {
        self.slots.insert(
            name.to_string(),
            Slot {
                def: None,
                current: RwLock::new(Arc::new(table)),
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<Arc<Table>> {
        let slot = self.slots.get(name)?;
        let guard = slot.current.read().unwrap_or_else(|p| p.into_inner());
        Some(Arc::clone(&guard))
    }

    /// Like `get`, but a missing table is an error naming it.
    pub fn require(&self, name: &str) -> Result<Arc<Table>, TableError> {
        self.get(name)
            .ok_or_else(|| TableError::Unknown(name.to_string()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// `smtpctl update table NAME`: reload from the definition and swap.
    pub fn reload(&self, name: &str) -> Result<(), TableError> {
        let slot = self
            .slots
            .get(name)
            .ok_or_else(|| TableError::Unknown(name.to_string()))?;
        let def = slot
            .def
            .as_ref()
            .ok_or_else(|| TableError::NotReloadable(name.to_string()))?;
        let fresh = Arc::new(Table::load(def)?);
        let mut guard = slot.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = fresh;
        tracing::info!(table = %name, "table reloaded");
        Ok(())
    }

    /// getpwnam(3), used when an action has no userbase. None when the
    /// user does not exist or the user database failed (logged).
    pub fn system_userinfo(name: &str) -> Option<UserInfo> {
        match system_lookup(name) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "system user lookup failed");
                None
            }
        }
    }

    /// getpwnam(3) telling "no such user" (Ok(None)) from a failure (Err).
    pub fn try_system_userinfo(name: &str) -> Result<Option<UserInfo>, TableError> {
        system_lookup(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Origin, TableSource};

    #[test]
    fn load_get_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("domains");
        std::fs::write(&path, "example.org\n").unwrap();
        let mut config = Config::default();
        config.tables.insert(
            "domains".into(),
            TableDef {
                name: "domains".into(),
                source: TableSource::File {
                    backend: "file".into(),
                    path: path.clone(),
                },
                origin: Origin::default(),
            },
        );
        let tables = Tables::load_all(&config).unwrap();
        let old = tables.get("domains").unwrap();
        assert!(old.match_domain("example.org"));

        std::fs::write(&path, "example.net\n").unwrap();
        tables.reload("domains").unwrap();
        let new = tables.get("domains").unwrap();
        assert!(new.match_domain("example.net"));
        assert!(!new.match_domain("example.org"));
        // Holders of the old Arc keep a consistent view.
        assert!(old.match_domain("example.org"));

        // A broken file leaves the current table in place.
        std::fs::write(&path, "a\nb c\n").unwrap();
        assert!(tables.reload("domains").is_err());
        assert!(tables.get("domains").unwrap().match_domain("example.net"));

        assert!(matches!(tables.reload("nope"), Err(TableError::Unknown(_))));
        assert!(tables.get("nope").is_none());
    }

    #[test]
    fn load_all_reports_every_error() {
        let mut config = Config::default();
        for n in ["a", "b"] {
            config.tables.insert(
                n.into(),
                TableDef {
                    name: n.into(),
                    source: TableSource::File {
                        backend: "file".into(),
                        path: format!("/nonexistent/wasmtpd/{n}").into(),
                    },
                    origin: Origin::default(),
                },
            );
        }
        assert_eq!(Tables::load_all(&config).err().unwrap().len(), 2);
    }

    #[test]
    fn system_users() {
        assert_eq!(Tables::system_userinfo("root").unwrap().uid, 0);
        assert_eq!(
            Tables::system_userinfo("nobody").unwrap().username,
            "nobody"
        );
        assert!(Tables::system_userinfo("no-such-user-wasmtpd").is_none());
    }
}
