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
    if let Some(mode) = loose_mode(path) {
        warn!(
            "pki \"{pki}\": key file {} is readable by group or others (mode {mode:04o}); chmod 600 it",
            path.display()
        );
    }
}

/// The file's mode when group or others may read or write it.
fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Origin;
    use std::path::PathBuf;
    use std::process::Command;

    /// A self-signed certificate for `name` and its key, made by openssl.
    fn make(dir: &Path, name: &str, alg: &[&str]) -> (PathBuf, PathBuf) {
        let (crt, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let out = Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2", "-newkey"])
            .args(alg)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .args(["-subj", &format!("/CN={name}")])
            .args([
                "-addext",
                &format!("subjectAltName=DNS:{name},DNS:*.{name}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (crt, key)
    }

    fn pki(name: &str, cert: &Path, key: &Path) -> Pki {
        Pki {
            name: name.to_string(),
            cert: Some(cert.to_path_buf()),
            key: Some(key.to_path_buf()),
            dhe: None,
            origin: Origin {
                file: PathBuf::from("smtpd.conf"),
                line: 7,
            },
        }
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn rsa_ecdsa_and_ed25519_keys_load_with_their_names() {
        let dir = tempfile::tempdir().unwrap();
        for (name, alg) in [
            ("rsa.example", &["rsa:2048"][..]),
            (
                "ec.example",
                &["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"][..],
            ),
            ("ed.example", &["ed25519"][..]),
        ] {
            let (crt, key) = make(dir.path(), name, alg);
            let loaded = load_pki(&pki("mx", &crt, &key), &provider()).unwrap();
            assert_eq!(loaded.names, ["mx", name, &format!("*.{name}")]);
        }
    }

    #[test]
    fn a_chain_keeps_every_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = make(dir.path(), "leaf.example", &["ed25519"]);
        let (ca, _) = make(dir.path(), "ca.example", &["ed25519"]);
        let chain = dir.path().join("chain.pem");
        let mut text = std::fs::read(&crt).unwrap();
        text.extend(std::fs::read(&ca).unwrap());
        std::fs::write(&chain, text).unwrap();
        let loaded = load_pki(&pki("leaf", &chain, &key), &provider()).unwrap();
        assert_eq!(loaded.key.cert.len(), 2);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, _) = make(dir.path(), "a.example", &["ed25519"]);
        let (_, other) = make(dir.path(), "b.example", &["ed25519"]);
        let err = load_pki(&pki("a", &crt, &other), &provider()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("smtpd.conf:7: pki \"a\": the certificate"),
            "{text}"
        );
        assert!(text.contains("does not match"), "{text}");
    }

    #[test]
    fn missing_and_empty_files_name_the_pki_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = make(dir.path(), "a.example", &["ed25519"]);
        let nowhere = dir.path().join("nowhere.key");
        let text = load_pki(&pki("a", &crt, &nowhere), &provider())
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("smtpd.conf:7: pki \"a\": cannot read key"),
            "{text}"
        );
        assert!(text.contains("nowhere.key"), "{text}");
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not pem\n").unwrap();
        let text = load_pki(&pki("a", &empty, &key), &provider())
            .unwrap_err()
            .to_string();
        assert!(text.contains("no certificate found"), "{text}");
    }

    #[test]
    fn loose_key_permissions_are_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = make(dir.path(), "a.example", &["ed25519"]);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(loose_mode(&key), None);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(loose_mode(&key), Some(0o644));
    }

    #[test]
    fn a_ca_file_loads_as_trust_anchors() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, _) = make(
            dir.path(),
            "ca.example",
            &["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        );
        let ca = Ca {
            name: "c".into(),
            cert: crt,
            origin: Origin::default(),
        };
        assert_eq!(load_ca(&ca).unwrap().len(), 1);
    }
}
