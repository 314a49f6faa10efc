//! The HTTP(S) client: one dedicated HTTP/1.1 keep-alive connection per worker (hyper's
//! connection API, like oha), over rustls with the ring provider. A connection that fails or
//! times out is dropped and the next request dials a new one.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Uri};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::errors::StressError;
use crate::events::ErrorKind;
use crate::scenario::{Pipeline, Tls};

/// Dials connections to the target (plain or TLS); cheap to clone.
#[derive(Clone)]
pub struct Connector {
    inner: HttpsConnector<HttpConnector>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Build the connector from the scenario's TLS material.
pub fn build(tls: &Tls, connect_timeout: Duration) -> Result<Connector, StressError> {
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
    Ok(Connector {
        inner: builder.enable_http1().wrap_connector(http),
        connect_timeout,
    })
}

/// One keep-alive connection, owned by one worker (or the probes, or the health check).
#[derive(Debug)]
pub struct Conn {
    connector: Connector,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// Not connected yet: the first request dials.
    pub fn new(connector: &Connector) -> Conn {
        Conn {
            connector: connector.clone(),
            sender: None,
        }
    }

    async fn connect(&mut self, t: &RequestTemplate) -> Result<(), ErrorKind> {
        let mut svc = self.connector.inner.clone();
        let io =
            match tokio::time::timeout(self.connector.connect_timeout, svc.call(t.origin.clone()))
                .await
            {
                Err(_) => return Err(ErrorKind::Connect),
                Ok(Err(e)) => return Err(classify_connect(&*e)),
                Ok(Ok(io)) => io,
            };
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| classify_connect(&e))?;
        // The connection's I/O is driven by its own task; it ends when the sender is dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    async fn exchange(&mut self, t: &RequestTemplate) -> Result<Answer, ErrorKind> {
        // A kept-alive connection the server closed while idle is not an error of the target:
        // like curl and browsers, retry once on a fresh connection when a reused connection
        // fails before any byte of the answer arrived. That covers the request never sent
        // (`canceled`) and the one the server's closing socket reset or cut off unread: the
        // server closed without reading it, and no client can see the close before it writes
        // when the close comes right after the previous answer. A fresh connection never
        // retries, so a dead target still shows (as `connect_refused`).
        let mut reused = true;
        let resp = loop {
            if self.sender.as_ref().map_or(true, SendRequest::is_closed) {
                self.connect(t).await?;
                reused = false;
            }
            let sender = self.sender.as_mut().ok_or(ErrorKind::Other)?;
            if let Err(e) = sender.ready().await {
                self.sender = None;
                if reused {
                    continue;
                }
                return Err(classify(&e));
            }
            match sender.send_request(t.request()).await {
                Ok(resp) => break resp,
                Err(e)
                    if reused
                        && (e.is_canceled()
                            || matches!(classify(&e), ErrorKind::Reset | ErrorKind::Closed)) =>
                {
                    self.sender = None;
                    continue;
                }
                Err(e) => return Err(classify(&e)),
            }
        };
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| classify(&e))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// Send one request and read the whole answer, bounded by `timeout` (connecting included).
    pub async fn send(
        &mut self,
        t: &RequestTemplate,
        timeout: Duration,
    ) -> Result<Answer, ErrorKind> {
        let r = match tokio::time::timeout(timeout, self.exchange(t)).await {
            Ok(r) => r,
            Err(_) => Err(ErrorKind::Timeout),
        };
        if r.is_err() {
            // The connection's state is unknown (half-read answer, dead peer): dial anew.
            self.sender = None;
        }
        r
    }
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
    /// `scheme://authority`, what the connector dials.
    origin: Uri,
    /// Path and query, sent in origin form.
    path: Uri,
    host: HeaderValue,
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
        let bad =
            |e: &dyn std::fmt::Display| StressError::Target(format!("`{url}` is not a URL: {e}"));
        let uri: Uri = url.parse().map_err(|e| bad(&e))?;
        let origin: Uri = base[..authority_end].parse().map_err(|e| bad(&e))?;
        let path: Uri = pipeline.path.parse().map_err(|e| bad(&e))?;
        let authority = uri
            .authority()
            .ok_or_else(|| StressError::Target(format!("`{url}` has no host")))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| StressError::Target(format!("`{url}`: {e}")))?;
        Ok(RequestTemplate {
            uri,
            origin,
            path,
            host,
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
        *req.uri_mut() = self.path.clone();
        let headers = req.headers_mut();
        headers.insert(HOST, self.host.clone());
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

/// Name the kind of an error raised while dialing (TCP connect, TLS handshake).
pub fn classify_connect(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    match classify(err) {
        ErrorKind::Other | ErrorKind::Timeout => ErrorKind::Connect,
        k => k,
    }
}

/// Name the kind of a transport error by walking its causes.
pub fn classify(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => return ErrorKind::ConnectRefused,
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    return ErrorKind::Reset
                }
                K::UnexpectedEof => return ErrorKind::Closed,
                K::TimedOut => return ErrorKind::Timeout,
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
            if he.is_incomplete_message() || he.is_closed() || he.is_canceled() {
                return ErrorKind::Closed;
            }
            if he.is_timeout() {
                return ErrorKind::Timeout;
            }
        }
        cur = e.source();
    }
    ErrorKind::Other
}
