//! TLS for client connections: the server configuration built from the
//! certificate and key files (rustls, ring provider). Built once at start,
//! so a bad file fails the start with a clear message.

use std::sync::Arc;

use funnel_config::TlsFiles;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("certificate and key do not form a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The server-side TLS configuration for `files`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let file_err = |path: &std::path::Path, reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(&files.cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_err(&files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}
