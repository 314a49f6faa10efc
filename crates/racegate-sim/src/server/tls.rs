//! rustls (ring provider) server configuration, with optional client-certificate checks (mTLS).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::ServeError;

fn tls_err(flag: &'static str, path: &Path, message: impl Into<String>) -> ServeError {
    ServeError::Tls {
        flag,
        path: path.to_owned(),
        message: message.into(),
    }
}

fn read_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let pem = std::fs::read(path).map_err(|e| tls_err(flag, path, e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(flag, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(flag, path, "holds no PEM `CERTIFICATE` block"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServeError> {
    let flag = "--tls-key";
    let pem = std::fs::read(path).map_err(|e| tls_err(flag, path, e.to_string()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| tls_err(flag, path, format!("not a PEM key file: {e}")))?
        .ok_or_else(|| tls_err(flag, path, "holds no PEM private key"))
}

/// The server's TLS configuration: certificate and key, and with `client_ca`, a verifier that
/// refuses clients without a certificate signed by that CA.
pub(super) fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs("--tls-cert", cert)?;
    let key_der = read_key(key)?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("--tls-cert", cert, e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs("--client-ca", ca)? {
                roots
                    .add(c)
                    .map_err(|e| tls_err("--client-ca", ca, format!("unusable CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_err("--client-ca", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| tls_err("--tls-key", key, format!("does not match --tls-cert: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
