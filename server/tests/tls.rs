//! HTTPS between the phone and the server's own TLS (`serve --tls-cert --tls-key`), with a
//! test certificate authority made at test time (ECDSA P-256): the phone signs in and syncs;
//! a certificate from another authority, one for another name, a wrong pin and plain HTTP
//! are each refused with their typed error, and nothing is sent.

mod common;

use diaban_core::tls::{CertificateProblem, TlsSettings};
use diaban_core::{Device, DeviceError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256};

use common::{KEY, PASSWORD, Server};

/// A certificate authority and a server certificate it signed, as PEM files in `dir`.
struct TestCa {
    root_pem: String,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    /// The SHA-256 (hex) of the server certificate's public key.
    pin: String,
}

fn test_ca(dir: &std::path::Path, name: &str, server_names: &[&str]) -> TestCa {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, format!("Địa bàn test CA {name}"));
    let ca =
        CertifiedIssuer::self_signed(params, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key")).expect("CA");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let names: Vec<String> = server_names.iter().map(|n| (*n).to_owned()).collect();
    let cert = CertificateParams::new(names).expect("params").signed_by(&key, &ca).expect("certificate");
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let pin = hex::encode(diaban_core::tls::public_key_pin(cert.der()).expect("a certificate"));
    TestCa { root_pem: ca.pem(), cert: cert_path, key: key_path, pin }
}

fn https_server(ca: &TestCa) -> Server {
    let (cert, key) = (ca.cert.to_string_lossy().into_owned(), ca.key.to_string_lossy().into_owned());
    Server::with_options(&[("a", "03694", "field_officer")], &["--tls-cert", &cert, "--tls-key", &key])
}

async fn phone(server: &Server, url: &str, tls: TlsSettings, name: &str) -> Result<Device, DeviceError> {
    let mut device = Device::open(&server.dir.path().join(format!("{name}.sqlite")), &KEY, url, name).await?;
    device.set_tls(&tls)?;
    device.login("a", PASSWORD).await?;
    Ok(device)
}

#[tokio::test]
async fn a_phone_syncs_over_the_servers_own_https_and_refuses_what_it_should() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = test_ca(dir.path(), "tinh", &["localhost", "127.0.0.1"]);
    let server = https_server(&ca);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let url = format!("https://localhost:{}", server.url.rsplit(':').next().expect("port"));

    // Trusting the province's authority, and pinning the server's key: signed in, synced.
    let trusted = TlsSettings { pins: vec![ca.pin.clone()], extra_roots_pem: Some(ca.root_pem.clone()) };
    let good = phone(&server, &url, trusted, "good").await.expect("signed in over HTTPS");
    assert!(!good.templates().await.expect("templates").is_empty(), "the sign-in's sync brought the templates");
    good.sync().await.expect("sync over HTTPS");
    good.close().await;

    // Another authority: the certificate is not trusted.
    let other = test_ca(dir.path(), "khac", &["localhost"]);
    let untrusted = TlsSettings { pins: vec![], extra_roots_pem: Some(other.root_pem.clone()) };
    let refused = phone(&server, &url, untrusted, "other-ca").await.err();
    assert!(matches!(refused, Some(DeviceError::Certificate(CertificateProblem::UnknownIssuer))), "{refused:?}");

    // The right authority, the wrong pin.
    let pinned = TlsSettings { pins: vec!["ab".repeat(32)], extra_roots_pem: Some(ca.root_pem.clone()) };
    let refused = phone(&server, &url, pinned, "wrong-pin").await.err();
    assert!(matches!(refused, Some(DeviceError::Certificate(CertificateProblem::PinMismatch))), "{refused:?}");
    assert_eq!(server.count("SELECT COUNT(*) FROM devices").await, 1, "only the good phone got through");

    // The officer reads why, in Vietnamese.
    let sentence = DeviceError::Certificate(CertificateProblem::PinMismatch).user_message("vi");
    assert!(sentence.contains("không khớp"), "{sentence}");
}

#[tokio::test]
async fn a_certificate_for_another_name_and_plain_http_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = test_ca(dir.path(), "tinh", &["diaban.example"]);
    let server = https_server(&ca);
    let url = format!("https://localhost:{}", server.url.rsplit(':').next().expect("port"));
    let trusting = TlsSettings { pins: vec![], extra_roots_pem: Some(ca.root_pem.clone()) };
    let refused = phone(&server, &url, trusting, "wrong-name").await.err();
    assert!(matches!(refused, Some(DeviceError::Certificate(CertificateProblem::WrongName))), "{refused:?}");

    // Plain HTTP leaves the device only for the device itself.
    let opened = Device::open(&dir.path().join("plain.sqlite"), &KEY, "http://diaban.example:8080", "plain").await;
    assert!(matches!(opened.err(), Some(DeviceError::Insecure(_))));
    // TLS to a plain-HTTP server: no answer that could be taken for the server's.
    let plain = Server::with_users(&[("a", "03694", "field_officer")]);
    let port = plain.url.rsplit(':').next().expect("port");
    let device = Device::open(&dir.path().join("mixed.sqlite"), &KEY, &format!("https://localhost:{port}"), "mixed")
        .await
        .expect("open");
    assert!(matches!(
        device.login("a", PASSWORD).await,
        Err(DeviceError::Unreachable(_) | DeviceError::Certificate(_))
    ));
}
