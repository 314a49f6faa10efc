//! The demo inference server: an OpenAI-compatible chat endpoint with a text and a vision
//! pipeline on one simulated device, wired per [`Dispatch`] mode.
//!
//! - `POST /v1/chat/completions`: text messages, or vision when a content part is an
//!   `image_url` with a `data:image/png;base64,...` URL; `"stream": true` answers with
//!   server-sent events (`chat.completion.chunk` objects, then `data: [DONE]`). The same request
//!   always yields the same `choices[0].message.content` (streamed deltas concatenate to it),
//!   unless the device corrupts it (`--dispatch corrupt`).
//! - `GET /healthz`: `{"status":"ok","dispatch":..}`, plus in gated mode the `gpu` gate's
//!   figures (`gate.acquisitions`, `holders`, `waiters`, `wait_ms`/`hold_ms` percentiles);
//!   `GET /v1/models`.
//! - `GET /metrics`: every gate of the server in OpenMetrics (`racegate::metrics`), for
//!   Prometheus: in gated mode the `gpu` gate, labeled `text` and `vision`.
//! - Every error is a JSON body `{"error":{"message","type","code"}}` with a 4xx/5xx status, and
//!   the server keeps serving. Bodies larger than `--max-body-bytes` (default 8 MiB) get 413.
//!
//! Both `racegate-sim serve` and the hidden `racegate sim-serve` run [`run`] with [`ServeArgs`].

pub mod api;
pub mod dispatcher;
mod tls;

use std::io::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

pub use self::api::{reference_answer, ApiError, Job, PipelineKind};
pub use self::dispatcher::{Dispatch, Dispatcher};
use crate::{DeviceConfig, SimDevice, SimError, ViolationPolicy};

/// Default `--max-body-bytes`: 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What the device does on a violation (`--on-violation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum OnViolation {
    /// Abort the server with Metal's assertion line (and an `.ips` with `--crash-dir`).
    Abort,
    /// Answer the request with a 500 `device_error` and keep serving.
    Error,
}

/// Flags of `racegate-sim serve` and `racegate sim-serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port. The first stdout line is
    /// `listening on http(s)://ADDR`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// How the text and vision pipelines share the device.
    #[arg(long, value_enum, default_value_t = Dispatch::Gated)]
    pub dispatch: Dispatch,

    /// CPU cost of one dispatch (one generated token), in microseconds.
    #[arg(long, value_name = "MICROS", default_value_t = 1000)]
    pub work_us: u64,

    /// Answer every Nth chat request with a 500 JSON error (`injected_failure`), without
    /// touching the device.
    #[arg(long, value_name = "N")]
    pub fail_every: Option<NonZeroU64>,

    /// Before aborting on a violation, write a macOS-style `.ips` crash report into DIR.
    #[arg(long, value_name = "DIR")]
    pub crash_dir: Option<PathBuf>,

    /// Process name in crash reports (`<app>-<timestamp>.ips`).
    #[arg(long, value_name = "NAME", default_value = "racegate-sim")]
    pub app_name: String,

    /// What a device violation does.
    #[arg(long, value_enum, default_value_t = OnViolation::Abort)]
    pub on_violation: OnViolation,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by this PEM CA bundle (mTLS; needs --tls-cert).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address from `--listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS file could not be read or used.
    #[error("{flag} `{}`: {message}", path.display())]
    Tls {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A flag value is out of range.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

struct AppState {
    dispatcher: Dispatcher,
    max_body_bytes: usize,
    fail_every: Option<NonZeroU64>,
    requests: AtomicU64,
}

type Shared = Arc<AppState>;

/// Validate `args` (no side effects) and run the server until the process is killed.
///
/// # Errors
/// [`ServeError`] when the flags are invalid, a TLS file is unusable, or the address cannot be
/// bound.
pub fn run(args: ServeArgs) -> Result<(), ServeError> {
    if args.max_body_bytes < 1024 {
        return Err(ServeError::Flag {
            flag: "--max-body-bytes",
            message: format!("must be at least 1024, got `{}`", args.max_body_bytes),
        });
    }
    if args.app_name.is_empty()
        || args.app_name.starts_with('.')
        || !args
            .app_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(ServeError::Flag {
            flag: "--app-name",
            message: format!(
                "must be ASCII letters, digits, `.`, `_` or `-` (it names crash report files), got `{}`",
                args.app_name
            ),
        });
    }
    if args.work_us > 10_000_000 {
        return Err(ServeError::Flag {
            flag: "--work-us",
            message: format!("must be at most 10000000 (10 s), got `{}`", args.work_us),
        });
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key, args.client_ca.as_deref())?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve(args, tls))
}

fn app(state: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/healthz", get(healthz))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error_response(&ApiError {
                status: 404,
                kind: "invalid_request_error",
                code: "not_found",
                message: "no such route; try POST /v1/chat/completions or GET /healthz".into(),
            })
        })
        .method_not_allowed_fallback(|| async {
            error_response(&ApiError {
                status: 405,
                kind: "invalid_request_error",
                code: "method_not_allowed",
                message: "method not allowed on this route".into(),
            })
        })
        .with_state(state)
}

async fn serve(args: ServeArgs, tls: Option<Arc<rustls::ServerConfig>>) -> Result<(), ServeError> {
    let policy = match args.on_violation {
        OnViolation::Abort => ViolationPolicy::Abort,
        OnViolation::Error => ViolationPolicy::Error,
    };
    let mut config = DeviceConfig::new(policy).app_name(args.app_name.clone());
    if let Some(dir) = &args.crash_dir {
        config = config.crash_dir(dir.clone());
    }
    let device = SimDevice::with_config(config);
    let passes = crate::passes_for(Duration::from_micros(args.work_us));
    let state = Arc::new(AppState {
        dispatcher: Dispatcher::new(args.dispatch, &device, passes),
        max_body_bytes: args.max_body_bytes,
        fail_every: args.fail_every,
        requests: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: args.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: args.listen,
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    {
        let mut out = std::io::stdout().lock();
        // The first line is a contract: clients read the port from it.
        let _ = writeln!(out, "listening on {scheme}://{local}");
        let _ = writeln!(
            out,
            "dispatch={} work_us={} passes={passes}",
            args.dispatch.name(),
            args.work_us
        );
        let _ = out.flush();
    }
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let router = app(state);
    loop {
        let (tcp, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            // Out of file descriptors and the like: transient; back off a little and keep
            // serving rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // A client that never finishes its headers does not hold a connection forever.
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            match acceptor {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
                Some(acceptor) => {
                    // A failed handshake (no or untrusted client certificate) just closes the
                    // connection.
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    if let Ok(Ok(stream)) = handshake {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            }
        });
    }
}

fn error_response(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(err.body())).into_response()
}

fn device_error(err: &SimError) -> ApiError {
    ApiError {
        status: 500,
        kind: "server_error",
        code: "device_error",
        message: err.to_string(),
    }
}

async fn healthz(State(state): State<Shared>) -> Response {
    let mut body = serde_json::json!({
        "status": "ok",
        "dispatch": state.dispatcher.dispatch().name(),
    });
    if let Some(gate) = state.dispatcher.gate() {
        let stats = gate.stats();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let pct = |p: &racegate::Percentiles| serde_json::json!({"p50": ms(p.p50), "p90": ms(p.p90), "p99": ms(p.p99), "max": ms(p.max)});
        body["gate"] = serde_json::json!({
            "name": stats.name,
            "acquisitions": stats.acquisitions,
            "holders": stats.holders.len(),
            "waiters": stats.waiters,
            "wait_ms": pct(&stats.wait),
            "hold_ms": pct(&stats.hold),
        });
    }
    Json(body).into_response()
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, racegate::metrics::CONTENT_TYPE)],
        racegate::metrics::render(),
    )
        .into_response()
}

async fn models() -> Response {
    Json(serde_json::json!({
        "object": "list",
        "data": [{"id": "racegate-sim", "object": "model", "owned_by": "racegate"}],
    }))
    .into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion_id(job: &Job) -> String {
    format!("chatcmpl-{:016x}", job.seed)
}

async fn chat_completions(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    match chat(state, headers, body).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    }
}

async fn chat(state: Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let too_large = || ApiError {
        status: 413,
        kind: "invalid_request_error",
        code: "body_too_large",
        message: format!(
            "request body is larger than the limit of {} bytes (--max-body-bytes)",
            state.max_body_bytes
        ),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| too_large())?;
    // PNG decoding is CPU work: keep it off the async workers.
    let job = tokio::task::spawn_blocking(move || api::parse_request(&bytes))
        .await
        .map_err(|e| ApiError {
            status: 500,
            kind: "server_error",
            code: "internal_error",
            message: format!("request parser failed: {e}"),
        })??;

    let n = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(every) = state.fail_every {
        if n % every.get() == 0 {
            return Err(ApiError {
                status: 500,
                kind: "server_error",
                code: "injected_failure",
                message: format!("injected failure: request {n} (--fail-every {every})"),
            });
        }
    }

    if job.stream {
        return Ok(stream_response(state, job).await);
    }
    let permit = state.dispatcher.permit(job.pipeline).await;
    let job = Arc::new(job);
    let (st, jb) = (Arc::clone(&state), Arc::clone(&job));
    let content = tokio::task::spawn_blocking(move || {
        let answer = st.dispatcher.answer(&jb);
        drop(permit);
        answer
    })
    .await
    .map_err(|e| ApiError {
        status: 500,
        kind: "server_error",
        code: "internal_error",
        message: format!("device worker failed: {e}"),
    })?
    .map_err(|e| device_error(&e))?;
    let body = serde_json::json!({
        "id": completion_id(&job),
        "object": "chat.completion",
        "created": unix_now(),
        "model": job.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "length",
        }],
        "usage": api::Usage {
            prompt_tokens: job.prompt_tokens,
            completion_tokens: job.max_tokens,
            total_tokens: job.prompt_tokens + job.max_tokens,
        },
    });
    Ok(Json(body).into_response())
}

fn chunk(job: &Job, created: u64, delta: serde_json::Value, finish: Option<&str>) -> Event {
    let data = serde_json::json!({
        "id": completion_id(job),
        "object": "chat.completion.chunk",
        "created": created,
        "model": job.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Event::default().data(data.to_string())
}

/// The SSE answer. The producer task takes the permit (pipeline lock, and in gated mode an
/// owned gate guard) and keeps it until the client has taken the last event: it waits for the
/// response stream to finish (or the client to go away) before releasing.
async fn stream_response(state: Shared, job: Job) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<(Event, bool)>(1);
    let job = Arc::new(job);
    tokio::spawn(async move {
        let permit = state.dispatcher.permit(job.pipeline).await;
        let created = unix_now();
        let send = |event: Event, last: bool| {
            let tx = tx.clone();
            async move { tx.send((event, last)).await.is_ok() }
        };
        let blocking = |f: Box<dyn FnOnce() -> Result<(String, u64), SimError> + Send>| async move {
            match tokio::task::spawn_blocking(f).await {
                Ok(result) => result.map_err(|e| device_error(&e)),
                Err(e) => Err(ApiError {
                    status: 500,
                    kind: "server_error",
                    code: "internal_error",
                    message: format!("device worker failed: {e}"),
                }),
            }
        };
        let result: Result<(), ApiError> = async {
            let (st, jb) = (Arc::clone(&state), Arc::clone(&job));
            let (prefix, mut previous) =
                blocking(Box::new(move || st.dispatcher.prefix(&jb))).await?;
            let mut role_sent = false;
            let mut delta = |content: String| {
                let mut d = serde_json::json!({ "content": content });
                if !role_sent {
                    d["role"] = "assistant".into();
                    role_sent = true;
                }
                d
            };
            if !prefix.is_empty() && !send(chunk(&job, created, delta(prefix), None), false).await {
                return Ok(());
            }
            for i in 0..job.max_tokens {
                let (st, jb) = (Arc::clone(&state), Arc::clone(&job));
                let (piece, answer) =
                    blocking(Box::new(move || st.dispatcher.token(&jb, i, previous))).await?;
                previous = answer;
                if !send(chunk(&job, created, delta(piece), None), false).await {
                    return Ok(());
                }
            }
            let _ = send(
                chunk(&job, created, serde_json::json!({}), Some("length")),
                false,
            )
            .await;
            Ok(())
        }
        .await;
        if let Err(err) = result {
            // Headers are gone already: report the error in-band, as OpenAI does.
            let _ = send(Event::default().data(err.body().to_string()), false).await;
        }
        let _ = send(Event::default().data("[DONE]"), true).await;
        // Keep the permit until the response stream took the last event and ended.
        tx.closed().await;
        drop(permit);
    });
    let events = futures_util::stream::unfold((rx, false), |(mut rx, done)| async move {
        if done {
            return None;
        }
        let (event, last) = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(event), (rx, last)))
    });
    Sse::new(events).into_response()
}
