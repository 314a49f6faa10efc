//! The HTTP(S) client: hyper 1's pooled legacy client over rustls (ring), one connection per
//! busy worker, reused across requests.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::errors::StressError;
use crate::events::ErrorKind;
use crate::scenario::{Pipeline, Tls};

/// The pooled client every worker shares.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Build the client. `max_idle` should cover every worker so connections are kept.
pub fn build(
    tls: &Tls,
    max_idle: usize,
    connect_timeout: Duration,
) -> Result<HttpClient, StressError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let config = tls_config(tls)?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config);
    let builder = builder.https_or_http();
    let builder = match &tls.server_name {
        Some(name) => {
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| StressError::Tls(format!("server name `{name}`: {e}")))?;
            builder
                .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server_name))
        }
        None => builder,
    };
    let https = builder.enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle.max(1))
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https))
}

fn tls_config(tls: &Tls) -> Result<rustls::ClientConfig, StressError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StressError::Tls(e.to_string()))?;
    let builder = match &tls.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| StressError::Tls(format!("`{}`: {e}", ca.display())))?;
            }
            builder.with_root_certificates(roots)
        }
        // Without a CA the OS roots apply; a machine with none can still stress plain http.
        None => match builder.clone().with_native_roots() {
            Ok(b) => b,
            Err(_) => builder.with_root_certificates(rustls::RootCertStore::empty()),
        },
    };
    let config = match &tls.client {
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            let file = std::fs::File::open(key)
                .map_err(|e| StressError::Tls(format!("`{}`: {e}", key.display())))?;
            let key_der = rustls_pemfile::private_key(&mut BufReader::new(file))
                .map_err(|e| StressError::Tls(format!("`{}`: {e}", key.display())))?
                .ok_or_else(|| {
                    StressError::Tls(format!("`{}` holds no private key", key.display()))
                })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| StressError::Tls(format!("client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    // hyper-rustls sets ALPN (http/1.1) itself.
    Ok(config)
}

fn read_certs(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, StressError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StressError::Tls(format!("`{}`: {e}", path.display())))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut BufReader::new(file)).collect();
    let certs = certs.map_err(|e| StressError::Tls(format!("`{}`: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(StressError::Tls(format!(
            "`{}` holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// A pipeline's request, ready to be sent many times.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    uri: Uri,
    pipeline: Pipeline,
}

impl RequestTemplate {
    /// Join the base URL and the pipeline's path.
    pub fn new(base_url: &str, pipeline: &Pipeline) -> Result<RequestTemplate, StressError> {
        let base = base_url.trim_end_matches('/');
        // base_url already carries the target's path prefix, and so does pipeline.path.
        let authority_end = base
            .find("://")
            .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(base.len());
        let url = format!("{}{}", &base[..authority_end], pipeline.path);
        let uri = url
            .parse()
            .map_err(|e| StressError::Target(format!("`{url}` is not a URL: {e}")))?;
        Ok(RequestTemplate {
            uri,
            pipeline: pipeline.clone(),
        })
    }

    /// The full URL.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.pipeline.body.clone()));
        *req.method_mut() = self.pipeline.method.clone();
        *req.uri_mut() = self.uri.clone();
        let headers = req.headers_mut();
        for (k, v) in &self.pipeline.headers {
            headers.append(k.clone(), v.clone());
        }
        req
    }
}

/// An answer: status and the whole body.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Bytes,
}

/// Send one request and read the whole answer, bounded by `timeout`.
pub async fn send(
    client: &HttpClient,
    template: &RequestTemplate,
    timeout: Duration,
) -> Result<Answer, ErrorKind> {
    let fut = async {
        let resp = client
            .request(template.request())
            .await
            .map_err(|e| classify(&e))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| classify(&e))?
            .to_bytes();
        Ok(Answer { status, body })
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ErrorKind::Timeout),
    }
}

/// Name the kind of a transport error by walking its causes.
pub fn classify(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut is_connect = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(le) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            is_connect |= le.is_connect();
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => return ErrorKind::ConnectRefused,
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    return ErrorKind::Reset
                }
                K::UnexpectedEof => return ErrorKind::Closed,
                K::TimedOut => {
                    return if is_connect {
                        ErrorKind::Connect
                    } else {
                        ErrorKind::Timeout
                    }
                }
                _ => {}
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return ErrorKind::Tls;
            }
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(he) = e.downcast_ref::<hyper::Error>() {
            if he.is_incomplete_message() {
                return ErrorKind::Closed;
            }
            if he.is_timeout() {
                return ErrorKind::Timeout;
            }
        }
        cur = e.source();
    }
    if is_connect {
        ErrorKind::Connect
    } else {
        ErrorKind::Other
    }
}
