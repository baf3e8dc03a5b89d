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
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

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
    WebPki(Arc<WebPkiServerVerifier>),
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
            Check::WebPki(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
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
                self.record(Err(e.to_string()));
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
