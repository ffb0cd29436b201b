//! TLS configurations (rustls, ring provider): the server side for client
//! connections, from the certificate and key files, and the client side
//! toward backends, with the certificate check each backend asks for.
//! Built at start (and reload), so a bad file fails with a clear message.

use std::sync::Arc;

use funnel_config::{BackendTls, BackendTlsMode, TlsFiles};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

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
    /// A backend's TLS settings cannot work as given.
    #[error("{0}")]
    Backend(String),
    /// rustls refused the certificate and key.
    #[error("certificate and key do not form a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Client TLS as loaded from its files.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The rustls server configuration new logins take.
    pub config: Arc<rustls::ServerConfig>,
    /// When the first certificate of the chain (the server's own)
    /// expires, as Unix seconds (`None`: its validity could not be read).
    pub not_after: Option<i64>,
}

/// The server-side TLS configuration for `files`.
pub fn server_config(files: &TlsFiles) -> Result<ClientTls, TlsError> {
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
    let not_after = crate::cert_expiry::not_after(&certs[0]);
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_err(&files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(ClientTls {
        config: Arc::new(config),
        not_after,
    })
}

/// A hash of a file's bytes, to see a change (not for security).
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// What a backend connection needs to start TLS: the client configuration
/// (with its certificate check) and the name to present and check.
#[derive(Clone, Debug)]
pub struct BackendTlsSpec {
    /// rustls client configuration, shared by every connection to this backend.
    pub config: Arc<rustls::ClientConfig>,
    /// SNI and, under `verify_identity`, the name the certificate must carry.
    pub server_name: ServerName<'static>,
    /// The configured settings it was built from (a reload compares them).
    pub settings: BackendTls,
    /// A hash of the CA file's bytes as read (`None`: no CA file): a
    /// reload that finds them changed under the same name (a rotated CA
    /// bundle) gives the backend a new pool, as a change of settings does.
    pub ca_fingerprint: Option<u64>,
}

/// Builds the TLS client side for a backend at `host` (the host part of
/// its address). Reads the CA file, so call it at start or reload only.
pub fn backend_config(tls: &BackendTls, host: &str) -> Result<BackendTlsSpec, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut ca_fingerprint = None;
    let verifier: Arc<dyn ServerCertVerifier> = match (&tls.ca, tls.mode) {
        (_, BackendTlsMode::Required) => Arc::new(AnyCertificate(provider.clone())),
        (None, _) => {
            return Err(TlsError::Backend(
                "verify_ca and verify_identity need a CA file".into(),
            ))
        }
        (Some(ca), mode) => {
            let file_err = |reason: String| TlsError::File {
                path: ca.display().to_string(),
                reason,
            };
            let pem = std::fs::read(ca).map_err(|e| file_err(e.to_string()))?;
            ca_fingerprint = Some(fingerprint(&pem));
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots
                    .add(cert.map_err(|e| file_err(e.to_string()))?)
                    .map_err(|e| file_err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(file_err("no CA certificate in the file".into()));
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| file_err(e.to_string()))?;
            if mode == BackendTlsMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    let server_name = backend_server_name(tls, host)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(BackendTlsSpec {
        config: Arc::new(config),
        server_name,
        settings: tls.clone(),
        ca_fingerprint,
    })
}

/// The name a backend at `host` is asked for and checked by: its
/// `server_name`, else the host of its address.
pub fn backend_server_name(tls: &BackendTls, host: &str) -> Result<ServerName<'static>, TlsError> {
    let name = tls
        .server_name
        .as_deref()
        .unwrap_or(host)
        .trim_matches(['[', ']']);
    ServerName::try_from(name.to_string())
        .map_err(|e| TlsError::Backend(format!("{name:?} is not a valid server name: {e}")))
}

impl BackendTlsSpec {
    /// True when this was built from `tls` for a backend at `host`, so it
    /// serves as it is: an admin `SET` keeps it rather than read the CA
    /// file again (a reload reads it).
    pub fn built_from(&self, tls: &BackendTls, host: &str) -> bool {
        self.settings == *tls && backend_server_name(tls, host).is_ok_and(|n| n == self.server_name)
    }
}

/// `mode: required`: any certificate is accepted (MySQL's `REQUIRED`), but
/// the handshake signatures are still checked so the session keys are real.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `mode: verify_ca`: the chain must lead to the CA; a name mismatch is
/// forgiven (servers addressed by an IP their certificate does not list).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
