//! Choosing a listener's certificate from the name the client asked for
//! (SNI), as OpenSMTPD does when a listener has several `pki`.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::pki::LoadedPki;

/// The pkis of one listener; `default` answers clients that send no
/// name, or a name none of the pkis carries.
#[derive(Debug)]
pub struct SniResolver {
    pkis: Vec<Arc<LoadedPki>>,
    default: usize,
}

impl SniResolver {
    /// `pkis` must not be empty. The default is the pki named like the
    /// listener's hostname, else the first.
    pub fn new(pkis: Vec<Arc<LoadedPki>>, hostname: &str) -> SniResolver {
        let default = pkis
            .iter()
            .position(|p| p.name.eq_ignore_ascii_case(hostname))
            .unwrap_or(0);
        SniResolver { pkis, default }
    }

    /// The pki that answers `sni` (None: the client sent no name).
    pub fn choose(&self, sni: Option<&str>) -> Option<&Arc<LoadedPki>> {
        let chosen = sni.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.pkis
                .iter()
                .find(|p| p.names.contains(&name))
                .or_else(|| {
                    self.pkis
                        .iter()
                        .find(|p| p.names.iter().any(|n| wildcard_match(n, &name)))
                })
        });
        chosen.or_else(|| self.pkis.get(self.default))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name()).map(|p| p.key.clone())
    }
}

/// `*.example.org` covers exactly one label more: `a.example.org`, not
/// `example.org` nor `a.b.example.org` (RFC 6125 §6.4.3).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    match name.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == suffix,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki(name: &str, names: &[&str]) -> Arc<LoadedPki> {
        use rustls::sign::SigningKey;
        #[derive(Debug)]
        struct NoKey;
        impl SigningKey for NoKey {
            fn choose_scheme(
                &self,
                _: &[rustls::SignatureScheme],
            ) -> Option<Box<dyn rustls::sign::Signer>> {
                None
            }
            fn algorithm(&self) -> rustls::SignatureAlgorithm {
                rustls::SignatureAlgorithm::ED25519
            }
        }
        let mut all = vec![name.to_string()];
        all.extend(names.iter().map(|n| n.to_string()));
        Arc::new(LoadedPki {
            name: name.to_string(),
            key: Arc::new(CertifiedKey::new(Vec::new(), Arc::new(NoKey))),
            names: all,
        })
    }

    fn chosen(r: &SniResolver, sni: Option<&str>) -> String {
        r.choose(sni).map(|p| p.name.clone()).unwrap_or_default()
    }

    #[test]
    fn sni_picks_by_pki_name_certificate_name_and_wildcard() {
        let r = SniResolver::new(
            vec![
                pki("a.example", &[]),
                pki("b", &["b.example", "*.b.example"]),
            ],
            "nomatch",
        );
        assert_eq!(chosen(&r, Some("a.example")), "a.example");
        assert_eq!(chosen(&r, Some("B.Example.")), "b");
        assert_eq!(chosen(&r, Some("mx.b.example")), "b");
        assert_eq!(chosen(&r, Some("x.mx.b.example")), "a.example");
    }

    #[test]
    fn no_sni_gets_the_hostname_pki_else_the_first() {
        let pkis = vec![pki("a.example", &[]), pki("mx.example", &[])];
        let r = SniResolver::new(pkis.clone(), "MX.example");
        assert_eq!(chosen(&r, None), "mx.example");
        assert_eq!(chosen(&r, Some("unknown.example")), "mx.example");
        let r = SniResolver::new(pkis, "other.example");
        assert_eq!(chosen(&r, None), "a.example");
    }
}
