//! Reading `pki` and `ca` files: PEM certificate chains, RSA, ECDSA and
//! Ed25519 keys, checked against each other. Runs at startup, as root,
//! before privileges are dropped.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

use super::error::{FileProblem, TlsError};
use crate::config::model::{Ca, Pki};

/// A loaded `pki`: its key pair and the names it answers to for SNI.
#[derive(Debug)]
pub struct LoadedPki {
    pub name: String,
    pub key: Arc<CertifiedKey>,
    /// Lowercase: the pki name, then the certificate's DNS names
    /// (`*.example.org` for wildcards).
    pub names: Vec<String>,
}

/// Loads a pki's chain and key and checks that they belong together.
pub fn load_pki(pki: &Pki, provider: &CryptoProvider) -> Result<LoadedPki, TlsError> {
    let fail = |problem| TlsError::Pki {
        origin: pki.origin.to_string(),
        name: pki.name.clone(),
        problem,
    };
    let cert_path = pki
        .cert
        .as_deref()
        .ok_or(FileProblem::Missing("certificate"))
        .map_err(fail)?;
    let key_path = pki
        .key
        .as_deref()
        .ok_or(FileProblem::Missing("key"))
        .map_err(fail)?;
    let chain = read_certs(cert_path).map_err(fail)?;
    let key_der = read_key(key_path).map_err(fail)?;
    warn_if_loose(&pki.name, key_path);
    let signer = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            fail(FileProblem::Bad {
                what: "key",
                path: key_path.to_path_buf(),
                why: e.to_string(),
            })
        })?;
    let key = CertifiedKey::new(chain, signer);
    if let Err(e) = key.keys_match() {
        let problem = match e {
            rustls::Error::InconsistentKeys(_) => FileProblem::Mismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            },
            other => FileProblem::Bad {
                what: "certificate",
                path: cert_path.to_path_buf(),
                why: other.to_string(),
            },
        };
        return Err(fail(problem));
    }
    let mut names = vec![pki.name.to_ascii_lowercase()];
    names.extend(dns_names(&key.cert[0]));
    Ok(LoadedPki {
        name: pki.name.clone(),
        key: Arc::new(key),
        names,
    })
}

/// The trust anchors of a `ca`, for checking client certificates.
pub fn load_ca(ca: &Ca) -> Result<RootCertStore, TlsError> {
    let fail = |problem| TlsError::Ca {
        origin: ca.origin.to_string(),
        name: ca.name.clone(),
        problem,
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&ca.cert).map_err(fail)? {
        roots.add(cert).map_err(|e| {
            fail(FileProblem::Bad {
                what: "certificate",
                path: ca.cert.clone(),
                why: e.to_string(),
            })
        })?;
    }
    Ok(roots)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, FileProblem> {
    std::fs::read(path).map_err(|source| FileProblem::Unreadable {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileProblem> {
    let pem = read(path, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileProblem::Bad {
            what: "certificate",
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(FileProblem::Empty {
            what: "certificate",
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, FileProblem> {
    let pem = read(path, "key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => FileProblem::Empty {
            what: "private key",
            path: path.to_path_buf(),
        },
        other => FileProblem::Bad {
            what: "key",
            path: path.to_path_buf(),
            why: other.to_string(),
        },
    })
}

/// A private key others can read is as good as published.
fn warn_if_loose(pki: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warn!(
            "pki \"{pki}\": key file {} is readable by group or others (mode {mode:04o}); chmod 600 it",
            path.display()
        );
    }
}

/// The DNS names of a certificate's subjectAltName, lowercase.
fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(cert) {
        Ok(ee) => ee
            .valid_dns_names()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
        Err(_) => Vec::new(),
    }
}
