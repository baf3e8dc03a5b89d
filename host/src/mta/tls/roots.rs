//! Trust anchors for checking relay hosts: the action's `ca`, else the
//! system bundle. A missing or empty bundle leaves no anchors rather than
//! failing: every certificate then fails verification, which
//! opportunistic TLS tolerates and strict TLS reports per host.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tracing::{debug, warn};

use super::error::MtaTlsError;
use crate::config::model::Config;
use crate::tls::pki;

/// Where distributions keep their PEM bundle, Debian's first.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// A relay action's trust.
pub struct Anchors {
    pub roots: Arc<RootCertStore>,
    /// The certificates of the action's `ca` file as they are: a server
    /// presenting one of them exactly is trusted even when it is marked
    /// as a CA, as OpenSSL trusts a self-signed certificate given as its
    /// own CA (`openssl req -x509` marks them so) and webpki does not.
    pub pinned: Vec<CertificateDer<'static>>,
}

/// The anchors for a relay action: `ca NAME` if given, else the system's.
pub fn for_action(ca: Option<&str>, config: &Config) -> Result<Anchors, MtaTlsError> {
    let Some(name) = ca else {
        return Ok(Anchors {
            roots: system(),
            pinned: Vec::new(),
        });
    };
    let def = config
        .ca
        .get(name)
        .ok_or_else(|| MtaTlsError::UnknownCa(name.to_string()))?;
    let roots = Arc::new(pki::load_ca(def)?);
    // load_ca just parsed the same file.
    let pinned = CertificateDer::pem_file_iter(&def.cert)
        .map(|iter| iter.filter_map(Result::ok).collect())
        .unwrap_or_default();
    Ok(Anchors { roots, pinned })
}

/// The system bundle, read once: every relay action without `ca` shares it.
pub fn system() -> Arc<RootCertStore> {
    static SYSTEM: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| Arc::new(load_first(SYSTEM_BUNDLES.iter().map(Path::new))))
        .clone()
}

/// The anchors of the first bundle that exists and holds any.
fn load_first<'a>(paths: impl Iterator<Item = &'a Path>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for path in paths {
        let Ok(iter) = CertificateDer::pem_file_iter(path) else {
            continue;
        };
        // A bundle with one unparsable entry still vouches for the rest.
        let certs: Vec<_> = iter.filter_map(Result::ok).collect();
        let (added, ignored) = roots.add_parsable_certificates(certs);
        if ignored > 0 {
            debug!("{}: {ignored} certificates ignored", path.display());
        }
        if added > 0 {
            debug!("{}: {added} trust anchors", path.display());
            return roots;
        }
    }
    warn!("no system CA bundle found: relay hosts' certificates cannot be verified");
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bundle_leaves_no_anchors_and_the_next_one_is_tried() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "").unwrap();
        assert!(load_first([missing.as_path(), empty.as_path()].into_iter()).is_empty());
        let crt = super::super::tests::self_signed(dir.path(), "ca.test", true).0;
        let roots = load_first([missing.as_path(), empty.as_path(), crt.as_path()].into_iter());
        assert_eq!(roots.len(), 1);
    }
}
