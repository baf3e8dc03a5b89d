//! Client TLS and AUTH credentials for relaying (OpenSMTPD's mta side).
//!
//! A [`ClientTls`] is built once per relay action, at startup while the
//! `pki` and `ca` files are still readable: it holds the trust anchors
//! (the action's `ca`, else the system bundle), the client certificate
//! (`pki`), the TLS versions (`protocols`) and the [`VerifyMode`].
//! [`connect`] runs one handshake, for STARTTLS and smtps alike, and
//! returns the stream with a [`TlsOutcome`] saying whether the server's
//! certificate verified, for the "Server certificate verification
//! succeeded/failed" log line.
//!
//! [`credentials`] finds the `auth <table>` entry for a relay URL's label.

mod auth;
mod error;
mod roots;
mod verifier;

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, ClientConnection, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tracing::warn;

pub use auth::{credentials, Credentials};
pub use error::MtaTlsError;
pub use verifier::{Verdict, VerifyMode};

use crate::config::model::{Config, RelayOptions, RelayTls};
use crate::tls::{pki, protocols};
use verifier::{Check, Recording};

impl VerifyMode {
    /// OpenSMTPD's rule: `tls` alone verifies strictly; `tls no-verify`
    /// and no `tls` at all only report.
    pub fn for_relay(opts: &RelayOptions) -> VerifyMode {
        match opts.tls {
            Some(RelayTls::Verify) => VerifyMode::Strict,
            Some(RelayTls::NoVerify) | None => VerifyMode::Opportunistic,
        }
    }
}

/// What one handshake found out about the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOutcome {
    pub verified: bool,
    /// Why verification failed (None when it succeeded).
    pub error: Option<String>,
}

impl TlsOutcome {
    /// `succeeded` or `failed`, for "Server certificate verification … on
    /// session …".
    pub fn word(&self) -> &'static str {
        if self.verified {
            "succeeded"
        } else {
            "failed"
        }
    }

    fn from_verdict(verdict: &Verdict) -> TlsOutcome {
        match verdict.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(Ok(())) => TlsOutcome {
                verified: true,
                error: None,
            },
            Some(Err(why)) => TlsOutcome {
                verified: false,
                error: Some(why),
            },
            // Cannot happen while resumption is off, but never claim a
            // check that did not run.
            None => TlsOutcome {
                verified: false,
                error: Some("the server certificate was not checked".into()),
            },
        }
    }
}

/// The client TLS settings of one relay action.
#[derive(Debug)]
pub struct ClientTls {
    /// Complete but for the verifier, which is per connection.
    base: ClientConfig,
    check: Arc<Check>,
    provider: Arc<CryptoProvider>,
    mode: VerifyMode,
}

impl ClientTls {
    /// Reads the action's `ca` and `pki` files and checks `protocols`.
    pub fn new(
        opts: &RelayOptions,
        config: &Config,
        mode: VerifyMode,
    ) -> Result<ClientTls, MtaTlsError> {
        let anchors = roots::for_action(opts.ca.as_deref(), config)?;
        ClientTls::with_anchors(opts, config, mode, anchors)
    }

    fn with_anchors(
        opts: &RelayOptions,
        config: &Config,
        mode: VerifyMode,
        anchors: roots::Anchors,
    ) -> Result<ClientTls, MtaTlsError> {
        let provider = crate::tls::provider();
        let versions: Vec<&'static SupportedProtocolVersion> = match &opts.protocols {
            Some(spec) => protocols::parse(spec)?,
            None => rustls::DEFAULT_VERSIONS.to_vec(),
        };
        if let Some(ciphers) = &opts.ciphers {
            // OpenSSL cipher strings do not map onto rustls's suites,
            // which are all modern AEADs anyway.
            warn!("relay: ciphers \"{ciphers}\" ignored: rustls's default suites are used");
        }
        let check = if anchors.roots.is_empty() {
            Check::NoAnchors
        } else {
            let verifier =
                WebPkiServerVerifier::builder_with_provider(anchors.roots, provider.clone())
                    .build()
                    .map_err(|e| MtaTlsError::Setup(e.to_string()))?;
            Check::WebPki {
                verifier,
                pinned: anchors.pinned,
            }
        };
        let check = Arc::new(check);
        let placeholder = Arc::new(Recording {
            check: check.clone(),
            provider: provider.clone(),
            mode,
            verdict: Verdict::default(),
        });
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| MtaTlsError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(placeholder);
        let mut base = match &opts.pki {
            Some(name) => {
                let def = config
                    .pki
                    .get(name)
                    .ok_or_else(|| MtaTlsError::UnknownPki(name.clone()))?;
                let loaded = pki::load_pki(def, &provider)?;
                builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(loaded.key)))
            }
            None => builder.with_no_client_auth(),
        };
        // A resumed TLS 1.3 session shows no certificate, so there would be
        // nothing to verify and report.
        base.resumption = rustls::client::Resumption::disabled();
        Ok(ClientTls {
            base,
            check,
            provider,
            mode,
        })
    }

    pub fn mode(&self) -> VerifyMode {
        self.mode
    }

    /// A config for one connection and the slot its verifier records
    /// into, for drivers that run the handshake themselves.
    pub fn for_connection(&self) -> (Arc<ClientConfig>, Verdict) {
        let verdict = Verdict::default();
        let mut config = self.base.clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(Recording {
                check: self.check.clone(),
                provider: self.provider.clone(),
                mode: self.mode,
                verdict: verdict.clone(),
            }));
        (Arc::new(config), verdict)
    }
}

/// The name a certificate is checked against: an MX or smarthost name
/// (trailing dot dropped) or an address, `[bracketed]` or not. Addresses
/// are checked against the certificate's IP entries and sent without SNI.
pub fn server_name(name: &str) -> Result<ServerName<'static>, MtaTlsError> {
    let bare = name.trim();
    let bare = bare
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or(bare);
    let bare = bare.strip_suffix('.').unwrap_or(bare);
    ServerName::try_from(bare.to_string()).map_err(|_| MtaTlsError::BadServerName(name.into()))
}

/// Runs the TLS handshake on `stream` (right after connecting for smtps,
/// after the 220 to STARTTLS otherwise). In strict mode a certificate
/// that fails verification is an [`MtaTlsError::Verify`].
pub async fn connect<S>(
    stream: S,
    server: &str,
    tls: &ClientTls,
) -> Result<(TlsStream<S>, TlsOutcome), MtaTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = server_name(server)?;
    let (config, verdict) = tls.for_connection();
    match TlsConnector::from(config).connect(name, stream).await {
        Ok(s) => Ok((s, TlsOutcome::from_verdict(&verdict))),
        Err(source) => {
            let recorded = verdict.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match recorded {
                Some(Err(why)) if tls.mode == VerifyMode::Strict => Err(MtaTlsError::Verify {
                    server: server.to_string(),
                    why,
                }),
                _ => Err(MtaTlsError::Handshake {
                    server: server.to_string(),
                    source,
                }),
            }
        }
    }
}

/// `version=TLSv1.3, cipher=TLS13_AES_256_GCM_SHA384, bits=256`, the
/// shape of OpenSMTPD's "Started TLS" line (as `crate::tls::describe`).
pub fn describe(conn: &ClientConnection) -> String {
    crate::tls::stream::describe_state(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Ca, Origin, Pki};
    use rustls::RootCertStore;
    use std::path::{Path, PathBuf};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A self-signed certificate for `name` (and 127.0.0.1) and its key,
    /// made by openssl as the server-side tests do; `ca` keeps openssl's
    /// default of marking it a CA.
    pub(in crate::mta::tls) fn self_signed(dir: &Path, name: &str, ca: bool) -> (PathBuf, PathBuf) {
        let (crt, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2", "-newkey"])
            .args(["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .args(["-subj", &format!("/CN={name}")])
            .args([
                "-addext",
                &format!("subjectAltName=DNS:{name},IP:127.0.0.1"),
            ])
            .args([
                "-addext",
                if ca {
                    "basicConstraints=critical,CA:TRUE"
                } else {
                    "basicConstraints=critical,CA:FALSE"
                },
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

    /// A configuration with a pki and a ca of each name: `mx.test` (the
    /// server's usual certificate), `client.test`, and `legacy.test`
    /// (self-signed and marked as a CA, as `openssl req -x509` makes them).
    fn setup(dir: &Path) -> Config {
        let mut config = Config::default();
        for name in ["mx.test", "client.test", "legacy.test"] {
            let (crt, key) = self_signed(dir, name, name == "legacy.test");
            config.pki.insert(
                name.into(),
                Pki {
                    name: name.into(),
                    cert: Some(crt.clone()),
                    key: Some(key),
                    dhe: None,
                    origin: Origin::default(),
                },
            );
            config.ca.insert(
                name.into(),
                Ca {
                    name: name.into(),
                    cert: crt,
                    origin: Origin::default(),
                },
            );
        }
        config
    }

    fn server_config(
        config: &Config,
        pki_name: &str,
        client_ca: Option<&str>,
    ) -> Arc<rustls::ServerConfig> {
        let provider = crate::tls::provider();
        let key = pki::load_pki(&config.pki[pki_name], &provider).unwrap().key;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let roots = Arc::new(pki::load_ca(&config.ca[ca]).unwrap());
                let v =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(key))))
    }

    /// Serves one TLS connection that greets with "220 ok" and returns
    /// whether the server's side of the handshake succeeded.
    async fn serve_once(
        server: Arc<rustls::ServerConfig>,
    ) -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<Result<(), String>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = tokio_rustls::TlsAcceptor::from(server)
                .accept(tcp)
                .await
                .map_err(|e| e.to_string())?;
            s.write_all(b"220 ok\r\n")
                .await
                .map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 16];
            // The client's close (or its certificate being refused).
            s.read(&mut buf).await.map_err(|e| e.to_string())?;
            Ok(())
        });
        (addr, task)
    }

    async fn handshake(
        config: &Config,
        opts: &RelayOptions,
        mode: VerifyMode,
        name: &str,
    ) -> Result<(String, TlsOutcome), MtaTlsError> {
        handshake_with(config, "mx.test", opts, mode, name).await
    }

    async fn handshake_with(
        config: &Config,
        server_pki: &str,
        opts: &RelayOptions,
        mode: VerifyMode,
        name: &str,
    ) -> Result<(String, TlsOutcome), MtaTlsError> {
        let tls = ClientTls::new(opts, config, mode)?;
        let (addr, _server) = serve_once(server_config(config, server_pki, None)).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut s, outcome) = connect(tcp, name, &tls).await?;
        let mut line = [0u8; 8];
        s.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"220 ok\r\n");
        Ok((describe(s.get_ref().1), outcome))
    }

    fn with_ca(ca: &str) -> RelayOptions {
        RelayOptions {
            ca: Some(ca.into()),
            ..RelayOptions::default()
        }
    }

    #[test]
    fn the_mode_follows_the_tls_option() {
        let mut opts = RelayOptions::default();
        assert_eq!(VerifyMode::for_relay(&opts), VerifyMode::Opportunistic);
        opts.tls = Some(RelayTls::NoVerify);
        assert_eq!(VerifyMode::for_relay(&opts), VerifyMode::Opportunistic);
        opts.tls = Some(RelayTls::Verify);
        assert_eq!(VerifyMode::for_relay(&opts), VerifyMode::Strict);
    }

    #[test]
    fn configs_build_for_each_mode_and_bad_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        for mode in [VerifyMode::Opportunistic, VerifyMode::Strict] {
            for opts in [
                RelayOptions::default(),
                with_ca("mx.test"),
                RelayOptions {
                    pki: Some("client.test".into()),
                    protocols: Some("tlsv1.3".into()),
                    ..RelayOptions::default()
                },
            ] {
                let tls = ClientTls::new(&opts, &config, mode).unwrap();
                assert_eq!(tls.mode(), mode);
                let (c, _) = tls.for_connection();
                assert_eq!(c.client_auth_cert_resolver.has_certs(), opts.pki.is_some());
            }
        }
        let err = |opts: RelayOptions| {
            ClientTls::new(&opts, &config, VerifyMode::Strict)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(RelayOptions {
                pki: Some("nope".into()),
                ..RelayOptions::default()
            }),
            "relay action names pki \"nope\", which is not defined"
        );
        assert_eq!(
            err(with_ca("nope")),
            "relay action names ca \"nope\", which is not defined"
        );
        assert!(err(RelayOptions {
            protocols: Some("tlsv1.0".into()),
            ..RelayOptions::default()
        })
        .contains("none of TLSv1.2 or TLSv1.3"));
    }

    #[test]
    fn server_names_accept_hosts_and_addresses() {
        assert!(matches!(
            server_name("mx.example.org.").unwrap(),
            ServerName::DnsName(d) if d.as_ref() == "mx.example.org"
        ));
        assert!(matches!(
            server_name("[192.0.2.1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("2001:db8::1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("bad name").is_err());
    }

    #[tokio::test]
    async fn opportunistic_accepts_a_self_signed_certificate_and_says_why_it_failed() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        let (desc, outcome) = handshake(
            &config,
            &RelayOptions::default(),
            VerifyMode::Opportunistic,
            "mx.test",
        )
        .await
        .unwrap();
        assert!(!outcome.verified);
        assert_eq!(outcome.word(), "failed");
        let why = outcome.error.unwrap();
        assert!(why.contains("UnknownIssuer"), "{why}");
        assert!(desc.starts_with("version=TLSv1.3, cipher=TLS13_"), "{desc}");
    }

    #[tokio::test]
    async fn opportunistic_without_any_trust_anchor_still_connects() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        let opts = RelayOptions::default();
        let anchors = roots::Anchors {
            roots: Arc::new(RootCertStore::empty()),
            pinned: Vec::new(),
        };
        let tls =
            ClientTls::with_anchors(&opts, &config, VerifyMode::Opportunistic, anchors).unwrap();
        let (addr, _server) = serve_once(server_config(&config, "mx.test", None)).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (_, outcome) = connect(tcp, "mx.test", &tls).await.unwrap();
        assert!(!outcome.verified);
        assert!(outcome.error.unwrap().contains("no trust anchors"));
    }

    #[tokio::test]
    async fn strict_refuses_a_certificate_it_cannot_verify() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        let err = handshake(
            &config,
            &RelayOptions::default(),
            VerifyMode::Strict,
            "mx.test",
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, MtaTlsError::Verify { .. }), "{text}");
        assert!(
            text.starts_with("TLS with mx.test: server certificate verification failed"),
            "{text}"
        );
        // Signed by a trusted ca, but for another name.
        let err = handshake(
            &config,
            &with_ca("mx.test"),
            VerifyMode::Strict,
            "other.test",
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("not valid for name"), "{err}");
    }

    #[tokio::test]
    async fn strict_accepts_a_certificate_of_the_actions_ca_by_name_or_address() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        for name in ["mx.test", "MX.test.", "127.0.0.1", "[127.0.0.1]"] {
            let (_, outcome) = handshake(&config, &with_ca("mx.test"), VerifyMode::Strict, name)
                .await
                .unwrap();
            assert_eq!(
                outcome,
                TlsOutcome {
                    verified: true,
                    error: None
                },
                "{name}"
            );
            assert_eq!(outcome.word(), "succeeded");
        }
    }

    #[tokio::test]
    async fn protocols_limit_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        let opts = RelayOptions {
            protocols: Some("tlsv1.2".into()),
            ..with_ca("mx.test")
        };
        let (desc, outcome) = handshake(&config, &opts, VerifyMode::Strict, "mx.test")
            .await
            .unwrap();
        assert!(outcome.verified);
        assert!(
            desc.starts_with("version=TLSv1.2, cipher=TLS_ECDHE_"),
            "{desc}"
        );
    }

    #[tokio::test]
    async fn the_pki_is_presented_as_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        for (pki, accepted) in [(Some("client.test"), true), (None, false)] {
            let opts = RelayOptions {
                pki: pki.map(String::from),
                ..with_ca("mx.test")
            };
            let tls = ClientTls::new(&opts, &config, VerifyMode::Strict).unwrap();
            let (addr, server) =
                serve_once(server_config(&config, "mx.test", Some("client.test"))).await;
            let tcp = TcpStream::connect(addr).await.unwrap();
            // TLS 1.3 clients finish before the server has judged their
            // certificate: the server's side tells.
            if let Ok((mut s, _)) = connect(tcp, "mx.test", &tls).await {
                let mut line = [0u8; 8];
                let _ = s.read_exact(&mut line).await;
                let _ = s.write_all(b"QUIT\r\n").await;
                let _ = s.shutdown().await;
            }
            let served = server.await.unwrap();
            assert_eq!(served.is_ok(), accepted, "{pki:?}: {served:?}");
        }
    }

    #[tokio::test]
    async fn a_self_signed_certificate_marked_ca_is_trusted_when_it_is_the_actions_ca() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        let strict = |opts: RelayOptions, name: &'static str| {
            let config = config.clone();
            async move { handshake_with(&config, "legacy.test", &opts, VerifyMode::Strict, name).await }
        };
        let (_, outcome) = strict(with_ca("legacy.test"), "legacy.test").await.unwrap();
        assert!(outcome.verified);
        // Still checked for the name.
        let err = strict(with_ca("legacy.test"), "other.test")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not valid for name"), "{err}");
        // Only that very certificate is trusted so.
        let err = strict(with_ca("mx.test"), "legacy.test").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "TLS with legacy.test: server certificate verification failed: \
             invalid peer certificate: CaUsedAsEndEntity"
        );
        let err = strict(RelayOptions::default(), "legacy.test")
            .await
            .unwrap_err();
        assert!(matches!(err, MtaTlsError::Verify { .. }), "{err}");
    }
}
