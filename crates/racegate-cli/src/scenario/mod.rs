//! Stress scenarios: the TOML file plus flags, parsed then validated into a resolved
//! [`Scenario`] with no side effects (nothing is started, nothing is connected; only the
//! scenario file and the body files it names are read).
//!
//! ```
//! use racegate_cli::scenario::{Overrides, Scenario};
//! let src = r#"
//! target = "http://127.0.0.1:8080"
//! duration = "2s"
//! [[pipeline]]
//! name = "health"
//! path = "/healthz"
//! "#;
//! let s = Scenario::from_toml_str(src, None, &Overrides::default()).unwrap();
//! assert_eq!(s.pipelines[0].name, "health");
//! assert_eq!(s.duration, std::time::Duration::from_secs(2));
//! ```

mod error;
pub mod model;

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::Method;
use toml::Spanned;

use error::Locator;
pub use error::ScenarioError;
use model::{RawCheck, RawScenario};

use crate::crash::CrashDir;
use crate::verdict::Thresholds;

/// Placeholder expanded in request bodies to a 1x1 PNG `data:` URL.
pub const PNG_1X1_PLACEHOLDER: &str = "{{png_1x1_data_url}}";

/// A valid 1x1 RGBA PNG, base64: the smallest real image a vision pipeline accepts.
const PNG_1X1_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// The 1x1 PNG as a `data:` URL.
pub fn png_1x1_data_url() -> String {
    format!("data:image/png;base64,{PNG_1X1_BASE64}")
}

/// Default JSON pointer compared by `check = "consistent"` on OpenAI-shaped answers.
pub const OPENAI_CONTENT_POINTER: &str = "/choices/0/message/content";

/// Flags that override the scenario file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--target URL`
    pub target: Option<String>,
    /// `--duration DUR`
    pub duration: Option<Duration>,
    /// `--requests N`
    pub requests: Option<u64>,
    /// `--workers N` (every pipeline)
    pub workers: Option<u32>,
    /// `--crash-dir DIR...` (replace the file's and the defaults)
    pub crash_dirs: Vec<PathBuf>,
    /// `--crash-pattern GLOB...` (replace the file's and the defaults)
    pub crash_patterns: Vec<String>,
    /// `--allow-remote`
    pub allow_remote: bool,
    /// `--keep-going`: run the full duration even when the target is down for good.
    pub keep_going: bool,
}

/// The service under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As written (may contain `{port}`).
    pub url: String,
    /// `https`?
    pub https: bool,
    /// Host as written (no brackets).
    pub host: String,
    /// Port, when the URL names one (or the scheme default).
    pub port: Option<u16>,
    /// Path prefix, without a trailing slash.
    pub base_path: String,
}

impl Target {
    /// The base URL with `port` put in place of `{port}` (or of the written port).
    pub fn base_url(&self, port: Option<u16>) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match port.or(self.port) {
            Some(p) => format!("{scheme}://{host}:{p}{}", self.base_path),
            None => format!("{scheme}://{host}{}", self.base_path),
        }
    }
}

/// Client TLS material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// CA bundle; the OS roots when absent.
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key (mTLS).
    pub client: Option<(PathBuf, PathBuf)>,
    /// Server name to verify, when it differs from the target host.
    pub server_name: Option<String>,
}

/// How answers are checked.
#[derive(Debug, Clone)]
pub enum Check {
    /// Status only.
    None,
    /// Every answer equals the first one (the first smoke probe's). Compares `pointer` when
    /// given; otherwise [`OPENAI_CONTENT_POINTER`] when the answer is OpenAI-shaped JSON, else
    /// the whole body.
    Consistent {
        /// Explicit JSON pointer.
        pointer: Option<String>,
    },
    /// A JSON pointer must equal a value.
    PointerEquals {
        /// JSON pointer.
        pointer: String,
        /// Expected value.
        value: serde_json::Value,
    },
    /// The body must match a regex.
    Regex(regex::Regex),
}

/// One kind of request, sent by its own workers.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Unique name.
    pub name: String,
    /// Concurrent workers (connections).
    pub workers: u32,
    /// Open-loop rate in requests per second; closed loop when `None`.
    pub rate: Option<f64>,
    /// HTTP method.
    pub method: Method,
    /// Path and query (starts with `/`).
    pub path: String,
    /// Request headers (content type included).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Request body, placeholders expanded.
    pub body: Bytes,
    /// Expected status.
    pub expect_status: u16,
    /// Answer check.
    pub check: Check,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Crash-report folders to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashWatch {
    /// Folders and the report names in each (missing folders are skipped).
    pub dirs: Vec<CrashDir>,
    /// After the run, how long to wait for the report of a crash already seen elsewhere.
    pub settle: Duration,
    /// Polling interval.
    pub poll: Duration,
}

/// A target process racegate manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetProcess {
    /// Program and arguments (may contain `{port}`).
    pub command: Vec<String>,
    /// Health path.
    pub health: String,
    /// Restart on exit.
    pub restart: bool,
    /// Bound on becoming healthy.
    pub startup_timeout: Duration,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl TargetProcess {
    /// Whether racegate must pick a free port for it.
    pub fn wants_port(&self) -> bool {
        self.command.iter().any(|a| a.contains("{port}"))
    }
}

/// A resolved, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file it came from.
    pub source: Option<PathBuf>,
    /// The service under test.
    pub target: Target,
    /// Hard bound on the run.
    pub duration: Duration,
    /// Optional bound on the total number of requests.
    pub requests: Option<u64>,
    /// Smoke probes per pipeline.
    pub probes: u32,
    /// Time given to in-flight requests after `duration`.
    pub grace: Duration,
    /// TLS material.
    pub tls: Tls,
    /// Pipelines, at least one.
    pub pipelines: Vec<Pipeline>,
    /// Crash folders.
    pub crash: CrashWatch,
    /// The managed target, if any.
    pub target_process: Option<TargetProcess>,
    /// Verdict thresholds.
    pub verdict: Thresholds,
    /// End the load early (after a short settle) when the target is down for good: a managed
    /// target that exited and will not be restarted, or an unmanaged one the dead-target
    /// detector gave up on. `[target_process] stop_on_exit` (default true), `--keep-going`.
    pub stop_on_exit: bool,
}

const DEFAULT_DURATION: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_GRACE: Duration = Duration::from_secs(2);
const DEFAULT_PROBES: u32 = 3;
const MAX_WORKERS: u32 = 10_000;

impl Scenario {
    /// Read and resolve a scenario file.
    pub fn from_file(path: &Path, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: Some(path.to_path_buf()),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the scenario file: {e}"),
            hint: None,
        })?;
        Scenario::from_toml_str(&src, Some(path), overrides)
    }

    /// Resolve scenario text; relative paths are taken from `file`'s folder.
    pub fn from_toml_str(
        src: &str,
        file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Scenario, ScenarioError> {
        let loc = Locator { file, src };
        let raw: RawScenario = toml::from_str(src).map_err(|e| loc.toml_error(&e))?;
        resolve(raw, &loc, overrides)
    }

    /// The built-in scenario for `racegate stress --target URL`: a text pipeline and a 1x1 PNG
    /// vision pipeline on `/v1/chat/completions`, 4 workers each, `check = "consistent"`.
    pub fn builtin(overrides: &Overrides) -> Result<Scenario, ScenarioError> {
        let src = builtin_toml(overrides.target.as_deref().unwrap_or(""));
        let mut o = overrides.clone();
        if o.target.is_none() {
            return Err(ScenarioError {
                file: None,
                line: None,
                column: None,
                key: Some("--target".into()),
                message: "no scenario file and no target".into(),
                hint: Some("pass a scenario file or `--target http://127.0.0.1:PORT`".into()),
            });
        }
        o.target = None;
        let loc = Locator {
            file: None,
            src: &src,
        };
        let raw: RawScenario = toml::from_str(&src).map_err(|e| loc.toml_error(&e))?;
        resolve(raw, &loc, &o).map_err(|mut e| {
            e.line = None;
            e.column = None;
            if e.key.as_deref() == Some("target") {
                e.key = Some("--target".into());
            }
            e
        })
    }

    /// Total workers across pipelines.
    pub fn total_workers(&self) -> u32 {
        self.pipelines.iter().map(|p| p.workers).sum()
    }
}

/// The TOML text of the built-in scenario.
pub fn builtin_toml(target: &str) -> String {
    let target = toml::Value::String(target.to_string());
    format!(
        r#"target = {target}
duration = "30s"

[[pipeline]]
name = "text"
workers = 4
method = "POST"
path = "/v1/chat/completions"
json = {{ model = "default", messages = [{{ role = "user", content = "Say hi" }}], max_tokens = 8 }}
check = "consistent"

[[pipeline]]
name = "vision"
workers = 4
method = "POST"
path = "/v1/chat/completions"
json = {{ model = "default", messages = [{{ role = "user", content = [{{ type = "text", text = "What is in this image?" }}, {{ type = "image_url", image_url = {{ url = "{PNG_1X1_PLACEHOLDER}" }} }}] }}], max_tokens = 8 }}
check = "consistent"
"#
    )
}

fn span<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    Some(s.span())
}

fn parse_duration(
    loc: &Locator<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Result<Duration, ScenarioError> {
    let d = humantime::parse_duration(v.get_ref().trim()).map_err(|e| {
        let mut err = loc.error(
            span(v),
            key,
            format!("`{}` is not a duration: {e}", v.get_ref()),
        );
        err.hint = Some("write it like \"500ms\", \"30s\", \"5m\"".into());
        err
    })?;
    if d.is_zero() {
        return Err(loc.error(span(v), key, "must be greater than zero"));
    }
    Ok(d)
}

fn resolve_path(file: Option<&Path>, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        return p;
    }
    match file.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p,
    }
}

fn flag_error(flag: &str, message: String, hint: Option<&str>) -> ScenarioError {
    ScenarioError {
        file: None,
        line: None,
        column: None,
        key: Some(flag.into()),
        message,
        hint: hint.map(str::to_string),
    }
}

/// Validate a target URL; `{port}` is allowed (the managed target's port).
fn parse_target(url: &str, allow_remote: bool) -> Result<Target, (String, Option<&'static str>)> {
    let probe = url.replace("{port}", "1");
    let uri: hyper::Uri = probe
        .parse()
        .map_err(|e| (format!("`{url}` is not a URL: {e}"), None))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err((
                format!("`{url}`: scheme `{other}` is not supported"),
                Some("use http:// or https://"),
            ))
        }
        None => {
            return Err((
                format!("`{url}` has no scheme"),
                Some("write it like http://127.0.0.1:8080"),
            ))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| (format!("`{url}` has no host"), None))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if uri.query().is_some() {
        return Err((
            format!("`{url}`: a target has no query string"),
            Some("put queries in each pipeline's `path`"),
        ));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        return Err((
            format!("target host `{host}` is not a loopback address"),
            Some(
                "racegate hammers services; pass --allow-remote to stress a remote one on purpose",
            ),
        ));
    }
    let port = if url.contains("{port}") {
        None
    } else {
        uri.port_u16().or(Some(if https { 443 } else { 80 }))
    };
    Ok(Target {
        url: url.to_string(),
        https,
        host,
        port,
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

fn resolve(raw: RawScenario, loc: &Locator<'_>, o: &Overrides) -> Result<Scenario, ScenarioError> {
    // target
    let target = match (&o.target, &raw.target) {
        (Some(t), _) => {
            parse_target(t, o.allow_remote).map_err(|(m, h)| flag_error("--target", m, h))?
        }
        (None, Some(t)) => parse_target(t.get_ref(), o.allow_remote).map_err(|(m, h)| {
            let mut e = loc.error(span(t), "target", m);
            e.hint = h.map(str::to_string);
            e
        })?,
        (None, None) => {
            let mut e = loc.error(None, "target", "missing key: no target to stress");
            e.hint = Some("add `target = \"http://127.0.0.1:PORT\"` or pass --target".into());
            return Err(e);
        }
    };

    let duration = match (o.duration, &raw.duration) {
        (Some(d), _) if d.is_zero() => {
            return Err(flag_error(
                "--duration",
                "must be greater than zero".into(),
                None,
            ))
        }
        (Some(d), _) => d,
        (None, Some(d)) => parse_duration(loc, d, "duration")?,
        (None, None) => DEFAULT_DURATION,
    };
    let requests = match (o.requests, &raw.requests) {
        (Some(0), _) => {
            return Err(flag_error("--requests", "must be at least 1".into(), None));
        }
        (Some(n), _) => Some(n),
        (None, Some(n)) if *n.get_ref() == 0 => {
            return Err(loc.error(span(n), "requests", "must be at least 1"))
        }
        (None, Some(n)) => Some(*n.get_ref()),
        (None, None) => None,
    };
    let probes = match &raw.probes {
        Some(p) if *p.get_ref() > 100 => {
            return Err(loc.error(span(p), "probes", "at most 100 smoke probes per pipeline"))
        }
        Some(p) => *p.get_ref(),
        None => DEFAULT_PROBES,
    };
    let grace = match &raw.grace {
        Some(g) => parse_duration(loc, g, "grace")?,
        None => DEFAULT_GRACE,
    };

    // tls
    let mut tls = Tls::default();
    if let Some(t) = &raw.tls {
        let file_of = |v: &Spanned<String>, key: &str| -> Result<PathBuf, ScenarioError> {
            let p = resolve_path(loc.file, v.get_ref());
            if !p.is_file() {
                return Err(loc.error(
                    span(v),
                    key,
                    format!("file `{}` does not exist", p.display()),
                ));
            }
            Ok(p)
        };
        if let Some(ca) = &t.ca {
            tls.ca = Some(file_of(ca, "tls.ca")?);
        }
        match (&t.cert, &t.key) {
            (Some(c), Some(k)) => {
                tls.client = Some((file_of(c, "tls.cert")?, file_of(k, "tls.key")?));
            }
            (Some(c), None) => {
                return Err(loc.error(span(c), "tls.key", "`tls.cert` needs `tls.key` for mTLS"))
            }
            (None, Some(k)) => {
                return Err(loc.error(span(k), "tls.cert", "`tls.key` needs `tls.cert` for mTLS"))
            }
            (None, None) => {}
        }
        tls.server_name = t.server_name.as_ref().map(|s| s.get_ref().clone());
        if !target.https {
            return Err(loc.error(
                t.ca.as_ref().or(t.cert.as_ref()).and_then(span),
                "tls",
                format!(
                    "`[tls]` is set but the target `{}` is not https",
                    target.url
                ),
            ));
        }
    }

    // pipelines
    if raw.pipelines.is_empty() {
        let mut e = loc.error(None, "pipeline", "no `[[pipeline]]`: nothing to send");
        e.hint = Some("add at least one [[pipeline]] with a `name` and a `path`".into());
        return Err(e);
    }
    let mut names = HashSet::new();
    let mut pipelines = Vec::with_capacity(raw.pipelines.len());
    for (i, p) in raw.pipelines.iter().enumerate() {
        let key = |k: &str| format!("pipeline[{i}].{k}");
        let name = p.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(loc.error(span(&p.name), key("name"), "must not be empty"));
        }
        if !names.insert(name.clone()) {
            return Err(loc.error(
                span(&p.name),
                key("name"),
                format!("pipeline name `{name}` is used twice"),
            ));
        }
        let workers = match (o.workers, &p.workers) {
            (Some(0), _) => {
                return Err(flag_error("--workers", "must be at least 1".into(), None));
            }
            (Some(w), _) if w > MAX_WORKERS => {
                return Err(flag_error(
                    "--workers",
                    format!("at most {MAX_WORKERS} workers per pipeline"),
                    None,
                ));
            }
            (Some(w), _) => w,
            (None, Some(w)) if *w.get_ref() == 0 || *w.get_ref() > MAX_WORKERS => {
                return Err(loc.error(
                    span(w),
                    key("workers"),
                    format!("must be between 1 and {MAX_WORKERS}"),
                ))
            }
            (None, Some(w)) => *w.get_ref(),
            (None, None) => 1,
        };
        let rate = match &p.rate {
            Some(r) if !(r.get_ref().is_finite() && *r.get_ref() > 0.0) => {
                return Err(loc.error(
                    span(r),
                    key("rate"),
                    "must be a positive number of requests per second",
                ))
            }
            Some(r) => Some(*r.get_ref()),
            None => None,
        };
        let bodies = [p.json.is_some(), p.body.is_some(), p.body_file.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            let s = p
                .body_file
                .as_ref()
                .and_then(span)
                .or(p.body.as_ref().and_then(span));
            return Err(loc.error(
                s,
                key("json"),
                "use only one of `json`, `body`, `body_file`",
            ));
        }
        let mut headers = Vec::new();
        let mut content_type = None;
        let body = if let Some(j) = &p.json {
            let value = serde_json::to_value(j.get_ref()).map_err(|e| {
                loc.error(span(j), key("json"), format!("cannot be sent as JSON: {e}"))
            })?;
            content_type = Some("application/json");
            expand(&value.to_string())
        } else if let Some(b) = &p.body {
            expand(b.get_ref())
        } else if let Some(f) = &p.body_file {
            let path = resolve_path(loc.file, f.get_ref());
            let text = std::fs::read(&path).map_err(|e| {
                loc.error(
                    span(f),
                    key("body_file"),
                    format!("cannot read body file `{}`: {e}", path.display()),
                )
            })?;
            if path.extension().is_some_and(|e| e == "json") {
                content_type = Some("application/json");
            }
            match String::from_utf8(text) {
                Ok(s) => expand(&s),
                Err(e) => e.into_bytes(),
            }
        } else {
            Vec::new()
        };
        let method = match &p.method {
            Some(m) => Method::from_bytes(m.get_ref().trim().to_ascii_uppercase().as_bytes())
                .map_err(|_| {
                    loc.error(
                        span(m),
                        key("method"),
                        format!("`{}` is not an HTTP method", m.get_ref()),
                    )
                })?,
            None if !body.is_empty() => Method::POST,
            None => Method::GET,
        };
        let path = match &p.path {
            Some(s) if !s.get_ref().starts_with('/') => {
                return Err(loc.error(
                    span(s),
                    key("path"),
                    format!("`{}` must start with `/`", s.get_ref()),
                ))
            }
            Some(s) => {
                let full = format!("{}{}", target.base_path, s.get_ref());
                if full.parse::<hyper::http::uri::PathAndQuery>().is_err() {
                    return Err(loc.error(
                        span(s),
                        key("path"),
                        format!("`{}` is not a valid path", s.get_ref()),
                    ));
                }
                full
            }
            None => {
                let mut e = loc.error(span(&p.name), key("path"), "missing key `path`");
                e.hint = Some("add `path = \"/v1/chat/completions\"` (or `/` for the root)".into());
                return Err(e);
            }
        };
        let mut has_content_type = false;
        if let Some(h) = &p.headers {
            for (k, v) in h.get_ref() {
                let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                    loc.error(
                        span(h),
                        key("headers"),
                        format!("`{k}` is not a header name"),
                    )
                })?;
                let value = HeaderValue::from_str(v).map_err(|_| {
                    loc.error(
                        span(h),
                        key("headers"),
                        format!("header `{k}` has an invalid value"),
                    )
                })?;
                has_content_type |= name == hyper::header::CONTENT_TYPE;
                headers.push((name, value));
            }
        }
        if let (Some(ct), false) = (content_type, has_content_type) {
            headers.push((hyper::header::CONTENT_TYPE, HeaderValue::from_static(ct)));
        }
        let expect_status = match &p.expect_status {
            Some(s) if !(100..=599).contains(s.get_ref()) => {
                return Err(loc.error(
                    span(s),
                    key("expect_status"),
                    "must be an HTTP status (100-599)",
                ))
            }
            Some(s) => *s.get_ref(),
            None => 200,
        };
        let pointer_ok = |ptr: &str| ptr.is_empty() || ptr.starts_with('/');
        if let Some(ptr) = &p.check_pointer {
            if !pointer_ok(ptr.get_ref()) {
                return Err(loc.error(
                    span(ptr),
                    key("check_pointer"),
                    format!(
                        "`{}` is not a JSON pointer (it starts with `/`)",
                        ptr.get_ref()
                    ),
                ));
            }
        }
        let check = match &p.check {
            None => Check::None,
            Some(c) => match c.get_ref() {
                RawCheck::Named(n) if n == "consistent" => Check::Consistent {
                    pointer: p.check_pointer.as_ref().map(|s| s.get_ref().clone()),
                },
                RawCheck::Named(n) if n == "none" => Check::None,
                RawCheck::Named(n) => {
                    let mut e = loc.error(span(c), key("check"), format!("unknown check `{n}`"));
                    e.hint = Some("use \"consistent\", \"none\", { pointer = \"/a\", equals = 1 } or { regex = \"...\" }".into());
                    return Err(e);
                }
                RawCheck::Pointer { pointer, equals } => {
                    if !pointer_ok(pointer) {
                        return Err(loc.error(
                            span(c),
                            key("check.pointer"),
                            format!("`{pointer}` is not a JSON pointer (it starts with `/`)"),
                        ));
                    }
                    Check::PointerEquals {
                        pointer: pointer.clone(),
                        value: serde_json::to_value(equals).map_err(|e| {
                            loc.error(
                                span(c),
                                key("check.equals"),
                                format!("not a JSON value: {e}"),
                            )
                        })?,
                    }
                }
                RawCheck::Regex { regex } => {
                    Check::Regex(regex::Regex::new(regex).map_err(|e| {
                        loc.error(span(c), key("check.regex"), format!("invalid regex: {e}"))
                    })?)
                }
            },
        };
        if p.check_pointer.is_some() && !matches!(check, Check::Consistent { .. }) {
            return Err(loc.error(
                p.check_pointer.as_ref().and_then(span),
                key("check_pointer"),
                "only used with `check = \"consistent\"`",
            ));
        }
        let timeout = match &p.timeout {
            Some(t) => parse_duration(loc, t, &key("timeout"))?,
            None => DEFAULT_TIMEOUT,
        };
        pipelines.push(Pipeline {
            name,
            workers,
            rate,
            method,
            path,
            headers,
            body: Bytes::from(body),
            expect_status,
            check,
            timeout,
        });
    }

    // target process (resolved before the crash defaults, which depend on its program name)
    let target_process = match &raw.target_process {
        None => None,
        Some(tp) => {
            let command = match &tp.command {
                Some(c) if !c.get_ref().is_empty() && !c.get_ref()[0].is_empty() => {
                    c.get_ref().clone()
                }
                Some(c) => {
                    return Err(loc.error(span(c), "target_process.command", "must name a program"))
                }
                None => {
                    return Err(loc.error(
                        None,
                        "target_process.command",
                        "missing key: `[target_process]` needs a `command`",
                    ))
                }
            };
            let health = match &tp.health {
                Some(h) if !h.get_ref().starts_with('/') => {
                    return Err(loc.error(span(h), "target_process.health", "must start with `/`"))
                }
                Some(h) => format!("{}{}", target.base_path, h.get_ref()),
                None => format!("{}/", target.base_path),
            };
            let startup_timeout = match &tp.startup_timeout {
                Some(t) => parse_duration(loc, t, "target_process.startup_timeout")?,
                None => Duration::from_secs(30),
            };
            let tp = TargetProcess {
                command,
                health,
                restart: tp.restart.as_ref().is_some_and(|r| *r.get_ref()),
                startup_timeout,
                cwd: tp.cwd.as_ref().map(|c| resolve_path(loc.file, c.get_ref())),
                env: tp
                    .env
                    .as_ref()
                    .map(|e| {
                        e.get_ref()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            if target.port.is_none() && !tp.wants_port() {
                return Err(loc.error(
                    raw.target.as_ref().and_then(span),
                    "target",
                    "the target uses `{port}` but `target_process.command` has no `{port}`",
                ));
            }
            Some(tp)
        }
    };
    if target.port.is_none() && target_process.is_none() {
        return Err(loc.error(
            raw.target.as_ref().and_then(span),
            "target",
            "`{port}` in the target needs a `[target_process]` whose command has `{port}`",
        ));
    }

    let stop_on_exit = !o.keep_going
        && raw
            .target_process
            .as_ref()
            .and_then(|tp| tp.stop_on_exit.as_ref())
            .map_or(true, |s| *s.get_ref());

    // crash watching
    let program = target_process.as_ref().map(|tp| {
        Path::new(&tp.command[0])
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let defaults = crate::stress::watch::default_crash_dirs(program.as_deref());
    let crash_raw = raw.crash.unwrap_or_default();
    let patterns: Option<Vec<String>> = if !o.crash_patterns.is_empty() {
        for p in &o.crash_patterns {
            globset::Glob::new(p).map_err(|e| {
                flag_error("--crash-pattern", format!("`{p}` is not a glob: {e}"), None)
            })?;
        }
        Some(o.crash_patterns.clone())
    } else if let Some(p) = &crash_raw.patterns {
        for g in p.get_ref() {
            globset::Glob::new(g).map_err(|e| {
                loc.error(
                    span(p),
                    "crash.patterns",
                    format!("`{g}` is not a glob: {e}"),
                )
            })?;
        }
        Some(p.get_ref().clone())
    } else {
        None
    };
    let named_dirs: Option<Vec<PathBuf>> = if !o.crash_dirs.is_empty() {
        Some(o.crash_dirs.clone())
    } else {
        crash_raw.dirs.as_ref().map(|d| {
            d.get_ref()
                .iter()
                .map(|s| resolve_path(loc.file, &expand_home(s)))
                .collect()
        })
    };
    let dirs = match named_dirs {
        Some(paths) => {
            // Named folders get the named patterns, else every report format (whatever the
            // OS: a Linux CI job may collect `.ips` files from a simulator).
            let pats = patterns.clone().unwrap_or_else(|| {
                let all: Vec<String> = crate::stress::watch::REPORT_PATTERNS
                    .iter()
                    .map(|p| p.to_string())
                    .collect();
                crate::stress::watch::scoped_patterns(&all, program.as_deref())
            });
            paths
                .into_iter()
                .map(|path| CrashDir {
                    path,
                    patterns: pats.clone(),
                })
                .collect()
        }
        None => defaults
            .into_iter()
            .map(|mut d| {
                if let Some(p) = &patterns {
                    d.patterns = p.clone();
                }
                d
            })
            .collect(),
    };
    let settle = match &crash_raw.settle {
        Some(s) => parse_duration(loc, s, "crash.settle")?,
        None => Duration::from_secs(3),
    };
    let poll = match &crash_raw.poll {
        Some(s) => parse_duration(loc, s, "crash.poll")?,
        None => Duration::from_millis(150),
    };

    let verdict = match raw.verdict.as_ref().and_then(|v| v.max_error_rate.as_ref()) {
        Some(r) if !(0.0..=1.0).contains(r.get_ref()) => {
            return Err(loc.error(
                span(r),
                "verdict.max_error_rate",
                "must be between 0.0 and 1.0",
            ))
        }
        Some(r) => Thresholds {
            max_error_rate: *r.get_ref(),
        },
        None => Thresholds::default(),
    };

    Ok(Scenario {
        source: loc.file.map(Path::to_path_buf),
        target,
        duration,
        requests,
        probes,
        grace,
        tls,
        pipelines,
        crash: CrashWatch { dirs, settle, poll },
        target_process,
        verdict,
        stop_on_exit,
    })
}

fn expand(s: &str) -> Vec<u8> {
    if s.contains(PNG_1X1_PLACEHOLDER) {
        s.replace(PNG_1X1_PLACEHOLDER, &png_1x1_data_url())
            .into_bytes()
    } else {
        s.as_bytes().to_vec()
    }
}

fn expand_home(s: &str) -> String {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest).to_string_lossy().into_owned(),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(src: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_toml_str(src, Some(Path::new("s.toml")), &Overrides::default())
    }

    const MIN: &str = "target = \"http://127.0.0.1:9\"\n[[pipeline]]\nname = \"a\"\npath = \"/\"\n";

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = parse(MIN).unwrap();
        assert_eq!(s.duration, DEFAULT_DURATION);
        assert_eq!(s.pipelines[0].workers, 1);
        assert_eq!(s.pipelines[0].method, Method::GET);
        assert_eq!(s.target.base_url(None), "http://127.0.0.1:9");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse(&format!("{MIN}wokers = 4\n")).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.to_string().contains("wokers"), "{e}");
        assert!(e.to_string().starts_with("s.toml:5:"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse(&format!("{MIN}workers = \"four\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("pipeline[0].workers"), "{e}");
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn stop_on_exit_defaults_on_and_the_file_or_flag_turn_it_off() {
        let managed =
            "target = \"http://127.0.0.1:{port}\"\n[[pipeline]]\nname = \"a\"\npath = \"/\"\n\
                       [target_process]\ncommand = [\"srv\", \"{port}\"]\n";
        assert!(parse(MIN).unwrap().stop_on_exit);
        assert!(parse(managed).unwrap().stop_on_exit);
        let off = format!("{managed}stop_on_exit = false\n");
        assert!(!parse(&off).unwrap().stop_on_exit);
        let keep_going = Overrides {
            keep_going: true,
            ..Default::default()
        };
        for src in [MIN, managed] {
            let s = Scenario::from_toml_str(src, None, &keep_going).unwrap();
            assert!(!s.stop_on_exit);
        }
        let e = parse(&format!("{managed}stop_on_exit = \"no\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("target_process.stop_on_exit"), "{e}");
        assert_eq!(e.line, Some(7), "{e}");
    }

    #[test]
    fn remote_targets_need_the_flag() {
        let src = MIN.replace("127.0.0.1", "10.1.2.3");
        let e = parse(&src).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        let o = Overrides {
            allow_remote: true,
            ..Default::default()
        };
        Scenario::from_toml_str(&src, None, &o).unwrap();
        for ok in ["http://localhost:1", "http://[::1]:80", "https://127.8.0.1"] {
            parse_target(ok, false).unwrap();
        }
    }

    #[test]
    fn flags_override_the_file() {
        let o = Overrides {
            target: Some("http://127.0.0.1:7".into()),
            duration: Some(Duration::from_millis(1500)),
            workers: Some(3),
            ..Default::default()
        };
        let s = Scenario::from_toml_str(MIN, None, &o).unwrap();
        assert_eq!(s.target.port, Some(7));
        assert_eq!(s.duration, Duration::from_millis(1500));
        assert_eq!(s.pipelines[0].workers, 3);
    }

    #[test]
    fn builtin_has_text_and_vision() {
        let o = Overrides {
            target: Some("http://127.0.0.1:8080".into()),
            ..Default::default()
        };
        let s = Scenario::builtin(&o).unwrap();
        let names: Vec<_> = s.pipelines.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["text", "vision"]);
        assert!(s.pipelines.iter().all(|p| p.workers == 4));
        let vision = std::str::from_utf8(&s.pipelines[1].body).unwrap();
        assert!(
            vision.contains("data:image/png;base64,iVBORw0KGgo"),
            "{vision}"
        );
        assert!(!vision.contains("{{"));
        let e = Scenario::builtin(&Overrides::default()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("--target"));
    }

    #[test]
    fn checks_parse() {
        let s = parse(&format!(
            "{MIN}check = {{ pointer = \"/a/0\", equals = 3 }}\n[[pipeline]]\nname = \"b\"\npath = \"/x\"\ncheck = {{ regex = \"^ok\" }}\n"
        ))
        .unwrap();
        assert!(matches!(s.pipelines[0].check, Check::PointerEquals { .. }));
        assert!(matches!(s.pipelines[1].check, Check::Regex(_)));
        let e = parse(&format!("{MIN}check = \"same\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("pipeline[0].check"));
        let e = parse(&format!("{MIN}check = {{ pointr = \"/a\" }}\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("pipeline[0].check"), "{e}");
        assert!(e.message.contains("regex"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,400}") {
            let _ = parse(&src);
        }

        #[test]
        fn mutated_scenarios_never_panic(cut in 0usize..400, insert in "[\\[\\]=\"{}a-z0-9 \\n]{0,12}") {
            let base = format!("{MIN}workers = 2\nrate = 5.0\ncheck = \"consistent\"\n[crash]\ndirs = [\"/tmp\"]\n[verdict]\nmax_error_rate = 0.1\n");
            let mut cut = cut.min(base.len());
            while !base.is_char_boundary(cut) { cut -= 1; }
            let src = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
            if let Err(e) = parse(&src) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
