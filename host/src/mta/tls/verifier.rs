//! A server certificate verifier that checks like webpki and records the
//! verdict for the connection, as OpenSMTPD's mta logs "Server certificate
//! verification succeeded/failed" for every TLS session. In opportunistic
//! mode a failed check is recorded and the handshake goes on; in strict
//! mode it aborts the handshake.
//!
//! rustls calls the verifier of a `ClientConfig`, not of a connection, so
//! each connection gets its own verifier (and config) writing into its own
//! [`Verdict`]; everything costly behind it is shared.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// How a certificate that fails verification is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// Accepted, the failure only recorded (`smtp://` by default, `tls
    /// no-verify`).
    Opportunistic,
    /// The handshake is aborted (`tls` without `no-verify`).
    Strict,
}

/// One connection's verdict: None until the certificate was checked, then
/// Ok or the reason it failed.
pub type Verdict = Arc<Mutex<Option<Result<(), String>>>>;

/// The check shared by all connections of a relay action.
#[derive(Debug)]
pub(super) enum Check {
    WebPki {
        verifier: Arc<WebPkiServerVerifier>,
        /// See `roots::Anchors::pinned`.
        pinned: Vec<CertificateDer<'static>>,
    },
    /// No trust anchors at all: webpki refuses to build a verifier, and
    /// every certificate fails.
    NoAnchors,
}

#[derive(Debug)]
pub(super) struct Recording {
    pub check: Arc<Check>,
    pub provider: Arc<CryptoProvider>,
    pub mode: VerifyMode,
    pub verdict: Verdict,
}

impl Recording {
    fn record(&self, v: Result<(), String>) {
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
    }
}

/// rustls's words for the failure, with webpki's own error named rather
/// than shown as `Other(OtherError(..))`.
fn reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => {
            match o.0.downcast_ref::<webpki::Error>() {
                Some(w) => format!("invalid peer certificate: {w:?}"),
                None => e.to_string(),
            }
        }
        _ => e.to_string(),
    }
}

fn is_ca_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => matches!(
            o.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = match self.check.as_ref() {
            Check::WebPki { verifier, pinned } => {
                match verifier.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(_) => Ok(()),
                    // webpki checked the validity dates before refusing
                    // the CA flag; the name is left to check.
                    Err(e) if is_ca_as_end_entity(&e) && pinned.contains(end_entity) => {
                        ParsedCertificate::try_from(end_entity)
                            .and_then(|c| verify_server_name(&c, server_name))
                    }
                    Err(e) => Err(e),
                }
            }
            Check::NoAnchors => Err(rustls::Error::General(
                "no trust anchors (no ca given and no system CA bundle)".into(),
            )),
        };
        match result {
            Ok(()) => {
                self.record(Ok(()));
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => {
                self.record(Err(reason(&e)));
                match self.mode {
                    VerifyMode::Opportunistic => Ok(ServerCertVerified::assertion()),
                    VerifyMode::Strict => Err(e),
                }
            }
        }
    }

    // Signatures are checked in every mode: they prove the peer holds the
    // key of the certificate it sent, whatever we think of the certificate.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
