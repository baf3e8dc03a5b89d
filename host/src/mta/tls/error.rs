//! What can go wrong setting up client TLS, during a handshake with a
//! relay host, or finding the AUTH credentials of a relay URL's label.

use crate::tls::protocols::ProtocolsError;
use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum MtaTlsError {
    /// A `pki` or `ca` file could not be loaded (names the directive).
    #[error(transparent)]
    Files(#[from] TlsError),
    #[error("relay action names pki \"{0}\", which is not defined")]
    UnknownPki(String),
    #[error("relay action names ca \"{0}\", which is not defined")]
    UnknownCa(String),
    #[error("relay action: {0}")]
    Protocols(#[from] ProtocolsError),
    #[error("relay action: cannot set up TLS: {0}")]
    Setup(String),
    #[error("\"{0}\" is not a host name or address TLS can check a certificate against")]
    BadServerName(String),
    /// Strict verification refused the server's certificate.
    #[error("TLS with {server}: server certificate verification failed: {why}")]
    Verify { server: String, why: String },
    #[error("TLS handshake with {server} failed: {source}")]
    Handshake {
        server: String,
        #[source]
        source: std::io::Error,
    },
    #[error("relay auth: table {0} is not defined")]
    UnknownTable(String),
    #[error("relay auth: the relay URL has no label to look up in table {0} (use smtp+tls://label@host)")]
    NoLabel(String),
    #[error("relay auth: table {table} has no credentials for label \"{label}\"")]
    NoCredentials { table: String, label: String },
    /// The value is not `username:password`; the value itself is not
    /// shown, it may hold the password.
    #[error("relay auth: table {table}, label \"{label}\": credentials are not username:password")]
    BadCredentials { table: String, label: String },
}
