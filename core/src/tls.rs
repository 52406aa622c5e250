//! HTTPS for the phone: rustls (no OpenSSL), TLS 1.3 only, the platform's trust store (the
//! Android and iOS system verifiers; the system's roots elsewhere), an optional pin of the
//! server's public key set by the app, and plain HTTP refused except to this machine.
//!
//! Kept small for 2G: one key exchange group (X25519, no post-quantum share that would add a
//! kilobyte to every hello), ECDSA P-256 certificates recommended (`docs/mobile.md`), and one
//! client per device, so a sync's exchanges share one connection.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// How the phone checks the server, beyond the platform's trust store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// SHA-256 hashes (hex) of the server's public key (its SubjectPublicKeyInfo): when any are
    /// given, the server's certificate must carry one of these keys, whoever signed it.
    pub pins: Vec<String>,
    /// Extra trusted roots (PEM), for a province's own certificate authority and for tests.
    /// Not available on Android, whose apps take their roots from the system's store.
    pub extra_roots_pem: Option<String>,
}

/// What is wrong with the way to the server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("the server address must start with https:// (plain http:// only to this device itself): {0}")]
    Insecure(String),
    #[error("the server address is not a URL: {0}")]
    BadUrl(String),
    #[error("a pin must be 64 hex digits (the SHA-256 of the server's public key): {0:?}")]
    BadPin(String),
    #[error("the extra root certificates cannot be read: {0}")]
    BadRoots(String),
    #[error("TLS cannot be set up: {0}")]
    Setup(String),
}

/// Why the server's certificate was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Signed by nobody the phone trusts (a wrong or self-made certificate, or someone in
    /// the middle).
    UnknownIssuer,
    /// Expired, or not yet valid (the phone's clock may be wrong).
    Expired,
    /// Made for another server name.
    WrongName,
    /// Trusted, but not the key the app pinned.
    PinMismatch,
    /// Anything else about the certificate or the handshake.
    Other,
}

/// Refuses plain HTTP except to this device itself (loopback), where nothing travels.
pub fn check_url(url: &str) -> Result<(), TlsError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| TlsError::BadUrl(url.to_owned()))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) => Ok(()),
        "http" => Err(TlsError::Insecure(url.to_owned())),
        _ => Err(TlsError::BadUrl(url.to_owned())),
    }
}

/// The rustls configuration the phone's HTTP client uses.
pub fn client_config(settings: &TlsSettings) -> Result<rustls::ClientConfig, TlsError> {
    let setup = |e: &dyn std::fmt::Display| TlsError::Setup(e.to_string());
    // ring's provider is marked deprecated for lacking post-quantum key exchange; its
    // absence is what keeps the hello small on 2G (X25519MLKEM768 adds ~1.2 KB each way).
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519, rustls::crypto::ring::kx_group::SECP256R1];
    let provider = Arc::new(provider);
    let pins = settings
        .pins
        .iter()
        .map(|p| {
            let bytes =
                hex::decode(p.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| TlsError::BadPin(p.clone()))?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| TlsError::BadPin(p.clone()))
        })
        .collect::<Result<Vec<_>, TlsError>>()?;
    let platform = platform_verifier(settings, provider.clone())?;
    let verifier = Arc::new(Pinned { inner: platform, pins });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(target_os = "android")]
fn platform_verifier(
    _settings: &TlsSettings,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| TlsError::Setup(e.to_string()))?;
    Ok(Arc::new(verifier))
}

#[cfg(not(target_os = "android"))]
fn platform_verifier(
    settings: &TlsSettings,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let verifier = match &settings.extra_roots_pem {
        Some(pem) => {
            let roots = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::BadRoots(e.to_string()))?;
            if roots.is_empty() {
                return Err(TlsError::BadRoots("no certificate in the PEM text".into()));
            }
            rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider)
        }
        None => rustls_platform_verifier::Verifier::new(provider),
    };
    Ok(Arc::new(verifier.map_err(|e| TlsError::Setup(e.to_string()))?))
}

/// The platform's verdict, then the pin: the end certificate's public key must be one of the
/// pinned keys, when there are any.
#[derive(Debug)]
struct Pinned {
    inner: Arc<dyn ServerCertVerifier>,
    pins: Vec<[u8; 32]>,
}

/// The SHA-256 of a certificate's SubjectPublicKeyInfo: what a pin names.
pub fn public_key_pin(certificate: &[u8]) -> Option<[u8; 32]> {
    let der = CertificateDer::from(certificate.to_vec());
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    Some(Sha256::digest(cert.subject_public_key_info().as_ref()).into())
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        if self.pins.is_empty() || public_key_pin(end_entity).is_some_and(|pin| self.pins.contains(&pin)) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a failed request's error chain says about the certificate, if anything. (The rustls
/// error may sit inside I/O errors, whose `source` skips the error they wrap.)
pub fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<CertificateProblem> {
    if let Some(rustls::Error::InvalidCertificate(c)) = error.downcast_ref::<rustls::Error>() {
        return Some(match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => CertificateProblem::UnknownIssuer,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => CertificateProblem::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertificateProblem::WrongName
            }
            CertificateError::ApplicationVerificationFailure => CertificateProblem::PinMismatch,
            _ => CertificateProblem::Other,
        });
    }
    let wrapped = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|e| e as &(dyn std::error::Error + 'static));
    wrapped.and_then(certificate_problem).or_else(|| error.source().and_then(certificate_problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_only_to_this_device() {
        for ok in ["https://diaban.sonla.gov.vn", "http://127.0.0.1:8080/", "http://localhost:8080", "http://[::1]:80"]
        {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in ["http://diaban.sonla.gov.vn", "http://10.0.0.2:8080", "http://127.0.0.1.example.com"] {
            assert!(matches!(check_url(bad), Err(TlsError::Insecure(_))), "{bad}");
        }
        assert!(matches!(check_url("ftp://x"), Err(TlsError::BadUrl(_))));
        assert!(matches!(check_url("diaban"), Err(TlsError::BadUrl(_))));
    }

    #[test]
    fn a_pin_is_64_hex_digits() {
        let settings = TlsSettings { pins: vec!["abc".into()], ..TlsSettings::default() };
        assert!(matches!(client_config(&settings), Err(TlsError::BadPin(_))));
    }
}
