//! HTTPS with client certificates (mTLS): certificates are generated here with rcgen.
#![cfg(unix)]

mod common;

use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["stress-client".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        dir,
        ca: ca.der().clone(),
        client_chain: vec![client.der().clone()],
        client_key: client_key.serialize_der(),
    }
}

fn client_config(pki: &Pki, with_cert: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(if with_cert {
        builder
            .with_client_auth_cert(
                pki.client_chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.client_key.clone())),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    })
}

#[test]
fn clients_without_a_certificate_are_refused_and_with_one_are_served() {
    let pki = pki();
    let p = |f: &str| pki.dir.path().join(f).to_string_lossy().into_owned();
    let server = Server::start(&[
        "--dispatch",
        "gated",
        "--work-us",
        "50",
        "--tls-cert",
        &p("server.pem"),
        "--tls-key",
        &p("server.key"),
        "--client-ca",
        &p("ca.pem"),
    ]);
    assert!(server.https);

    let refused = request_tls(
        server.addr,
        client_config(&pki, false),
        "GET",
        "/healthz",
        b"",
    );
    assert!(
        refused.is_err(),
        "served without a client certificate: {refused:?}"
    );

    let body = text_body("over mTLS", 3);
    let resp = request_tls(
        server.addr,
        client_config(&pki, true),
        "POST",
        "/v1/chat/completions",
        &body,
    )
    .expect("served with a client certificate");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        expected(&body)
    );

    // Plain HTTP to the TLS port gets nothing useful either.
    assert!(request(server.addr, "GET", "/healthz", b"").map_or(true, |r| r.status != 200));
}
