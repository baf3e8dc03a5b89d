//! Checks that need the whole configuration: every name used is defined,
//! pki entries are complete, auth listeners name a credentials table,
//! filter chains are well formed, relay actions can relay.

use std::collections::HashSet;

use super::error::{ConfigError, ErrorKind};
use super::model::*;
use super::parser::{Parser, RefKind};

impl Parser {
    pub(crate) fn check(&mut self) {
        let mut errors = Vec::new();
        let cfg = &self.config;
        for r in &self.refs {
            let (defined, kind) = match r.kind {
                RefKind::Table => (
                    cfg.tables.contains_key(&r.name),
                    ErrorKind::UndefinedTable(r.name.clone()),
                ),
                RefKind::Pki => (
                    cfg.pki.contains_key(&r.name),
                    ErrorKind::UndefinedPki(r.name.clone()),
                ),
                RefKind::Ca => (
                    cfg.ca.contains_key(&r.name),
                    ErrorKind::UndefinedCa(r.name.clone()),
                ),
                RefKind::Filter => (
                    cfg.filters.contains_key(&r.name),
                    ErrorKind::UndefinedFilter(r.name.clone()),
                ),
                RefKind::Action => (
                    cfg.actions.contains_key(&r.name),
                    ErrorKind::UnknownAction(r.name.clone()),
                ),
                RefKind::Wrapper => (
                    cfg.mda_wrappers.contains_key(&r.name),
                    ErrorKind::UndefinedWrapper(r.name.clone()),
                ),
            };
            if !defined {
                errors.push(ConfigError::new(r.origin.clone(), kind));
            }
        }
        for pki in cfg.pki.values() {
            if pki.cert.is_none() {
                errors.push(ConfigError::new(
                    pki.origin.clone(),
                    ErrorKind::IncompletePki(pki.name.clone(), "certificate"),
                ));
            }
            if pki.key.is_none() {
                errors.push(ConfigError::new(
                    pki.origin.clone(),
                    ErrorKind::IncompletePki(pki.name.clone(), "key"),
                ));
            }
        }
        // The session side runs unprivileged and cannot read the system's
        // password database, so credentials come from a table.
        for l in &cfg.listeners {
            if matches!(l.auth, AuthMode::Required(None) | AuthMode::Optional(None)) {
                errors.push(ConfigError::new(
                    l.origin.clone(),
                    ErrorKind::AuthWithoutTable,
                ));
            }
        }
        for action in cfg.actions.values() {
            if let Method::Relay(opts) = &action.method {
                if let Some(why) = relay_problem(opts) {
                    errors.push(ConfigError::new(
                        action.origin.clone(),
                        ErrorKind::BadRelay {
                            action: action.name.clone(),
                            why,
                        },
                    ));
                }
            }
        }
        for f in cfg.filters.values() {
            if let FilterKind::Other(words) = &f.kind {
                errors.push(ConfigError::new(
                    f.origin.clone(),
                    ErrorKind::UnsupportedFilter {
                        name: f.name.clone(),
                        what: words.first().cloned().unwrap_or_default(),
                    },
                ));
            }
            let FilterKind::Chain(members) = &f.kind else {
                continue;
            };
            let mut seen = HashSet::new();
            for m in members {
                let (chain, member) = (f.name.clone(), m.clone());
                let kind = match cfg.filters.get(m) {
                    None => ErrorKind::ChainUnknownFilter { chain, member },
                    Some(FilterDef {
                        kind: FilterKind::Chain(_),
                        ..
                    }) => ErrorKind::ChainNested { chain, member },
                    Some(_) if !seen.insert(m) => ErrorKind::ChainRepeat { chain, member },
                    Some(_) => continue,
                };
                errors.push(ConfigError::new(f.origin.clone(), kind));
            }
        }
        self.errors.extend(errors);
    }
}

/// Why a relay action could never relay, if so.
fn relay_problem(opts: &RelayOptions) -> Option<String> {
    use crate::mta::route::Destination;
    let destination = match Destination::from_options(opts) {
        Ok(d) => d,
        Err(e) => return Some(e.to_string()),
    };
    let labelled = matches!(&destination, Destination::Smarthost(url) if url.label.is_some());
    // With `domain <t>` the hosts (and their labels) come from the table.
    if opts.auth.is_some() && !labelled && opts.domain.is_none() {
        return Some("auth needs a credentials label in the host (smtp+tls://label@host)".into());
    }
    None
}
