//! TLS for inbound SMTP with rustls (ring provider): `pki` and `ca`
//! loading ([`pki`]), certificate choice by SNI ([`sni`]), one
//! `ServerConfig` per listener ([`build_listeners`]) and the stream the
//! driver reads and writes ([`stream`]).
//!
//! Everything here that touches files runs in `daemon::prepare`, as root
//! and before privileges are dropped, like OpenSMTPD loading its pki in
//! the parent process.

pub mod error;
pub mod pki;
pub mod protocols;
pub mod sni;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tracing::warn;

pub use error::{FileProblem, TlsError};
pub use pki::LoadedPki;
pub use sni::SniResolver;
pub use stream::{describe, Stream};

use crate::config::model::{Config, Listener, TlsMode};

/// The crypto all TLS here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads every `pki` and `ca` of the configuration, as `smtpd -n` does:
/// a missing, unreadable or mismatched file is an error.
pub fn check(config: &Config) -> Result<(), TlsError> {
    let provider = provider();
    for p in config.pki.values() {
        pki::load_pki(p, &provider)?;
    }
    for ca in config.ca.values() {
        pki::load_ca(ca)?;
    }
    Ok(())
}

/// One TLS server configuration per listener (None for plain ones), in
/// `config.listeners` order. `default_hostname` is the name a listener
/// without `hostname` announces. Each pki is read once, however many
/// listeners use it.
pub fn build_listeners(
    config: &Config,
    default_hostname: &str,
) -> Result<Vec<Option<Arc<ServerConfig>>>, TlsError> {
    let provider = provider();
    let mut loaded: BTreeMap<String, Arc<LoadedPki>> = BTreeMap::new();
    let mut out = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        if l.tls == TlsMode::None {
            out.push(None);
            continue;
        }
        let hostname = l.hostname.as_deref().unwrap_or(default_hostname);
        let mut pkis = Vec::new();
        for name in pki_names(l, hostname, config)? {
            if let Some(p) = loaded.get(&name) {
                pkis.push(p.clone());
                continue;
            }
            let Some(def) = config.pki.get(&name) else {
                // The parser already refused undefined pki names.
                continue;
            };
            let p = Arc::new(pki::load_pki(def, &provider)?);
            loaded.insert(name, p.clone());
            pkis.push(p);
        }
        out.push(Some(server_config(l, config, pkis, hostname, &provider)?));
    }
    Ok(out)
}

/// The listener's `pki` names; without any, the pki named like the
/// listener's hostname (OpenSMTPD's default).
fn pki_names(l: &Listener, hostname: &str, config: &Config) -> Result<Vec<String>, TlsError> {
    if !l.pki.is_empty() {
        return Ok(l.pki.clone());
    }
    if config.pki.contains_key(hostname) {
        return Ok(vec![hostname.to_string()]);
    }
    Err(TlsError::NoPki {
        origin: l.origin.to_string(),
        hostname: hostname.to_string(),
    })
}

fn server_config(
    l: &Listener,
    config: &Config,
    pkis: Vec<Arc<LoadedPki>>,
    hostname: &str,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let setup = |why: String| TlsError::Setup {
        origin: l.origin.to_string(),
        why,
    };
    let versions = match &l.protocols {
        Some(spec) => protocols::parse(spec).map_err(|e| setup(e.to_string()))?,
        None => rustls::DEFAULT_VERSIONS.to_vec(),
    };
    if let Some(ciphers) = l.ciphers.as_ref().or(config.smtp.ciphers.as_ref()) {
        // OpenSSL cipher strings do not map onto rustls's suites, which
        // are all modern AEADs anyway.
        warn!(
            "{}: ciphers \"{ciphers}\" ignored: rustls's default suites are used",
            l.origin
        );
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| setup(e.to_string()))?;
    let builder = if l.tls_verify {
        let ca =
            l.ca.as_ref()
                .and_then(|name| config.ca.get(name))
                .ok_or_else(|| TlsError::NoCa {
                    origin: l.origin.to_string(),
                })?;
        let roots = Arc::new(pki::load_ca(ca)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| setup(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let resolver = SniResolver::new(pkis, hostname);
    Ok(Arc::new(builder.with_cert_resolver(Arc::new(resolver))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn make_cert(dir: &Path, name: &str) {
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2", "-newkey", "ed25519"])
            .arg("-keyout")
            .arg(dir.join(format!("{name}.key")))
            .arg("-out")
            .arg(dir.join(format!("{name}.crt")))
            .args(["-subj", &format!("/CN={name}")])
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    fn build(dir: &Path, text: &str) -> Result<Vec<Option<Arc<ServerConfig>>>, TlsError> {
        let text = text.replace("{dir}", &dir.display().to_string());
        let config = crate::config::parse_str(&text, Path::new("smtpd.conf")).unwrap();
        build_listeners(&config, "mx.example")
    }

    #[test]
    fn only_tls_listeners_get_a_server_config() {
        let dir = tempfile::tempdir().unwrap();
        make_cert(dir.path(), "mx.example");
        let built = build(
            dir.path(),
            "pki mx.example cert \"{dir}/mx.example.crt\"\n\
             pki mx.example key \"{dir}/mx.example.key\"\n\
             listen on 127.0.0.1\n\
             listen on 127.0.0.1 port 465 smtps pki mx.example\n\
             listen on 127.0.0.1 port 587 tls-require\n",
        )
        .unwrap();
        assert!(built[0].is_none());
        assert!(built[1].is_some());
        // Without `pki`, the pki named like the hostname.
        assert!(built[2].is_some());
    }

    #[test]
    fn tls_without_a_usable_pki_or_verify_without_ca_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        make_cert(dir.path(), "a.example");
        let pki = "pki a.example cert \"{dir}/a.example.crt\"\n\
                   pki a.example key \"{dir}/a.example.key\"\n";
        let err = build(dir.path(), &format!("{pki}listen on 127.0.0.1 tls\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "smtpd.conf:3: listener uses TLS but names no pki, and there is no pki \"mx.example\""
        );
        let err = build(
            dir.path(),
            &format!("{pki}listen on 127.0.0.1 smtps verify pki a.example\n"),
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("smtpd.conf:3: `verify` needs a ca"));
        let err = build(
            dir.path(),
            &format!("{pki}listen on 127.0.0.1 tls pki a.example protocols \"tlsv1.1\"\n"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("none of TLSv1.2 or TLSv1.3"),
            "{err}"
        );
    }
}
