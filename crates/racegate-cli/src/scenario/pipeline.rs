//! Section "pipelines": each `[[pipeline]]`, a kind of request sent by its own workers, with its
//! body, headers and answer check.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::Method;

use super::error::{text, Locator, ScenarioError, Setting};
use super::model::{RawCheck, RawPipeline};
use super::target::Target;
use super::{parse_duration, resolve_path, span, Overrides};

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

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_WORKERS: u32 = 10_000;

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

/// Every `[[pipeline]]`, in order: at least one, names unique.
pub(super) fn resolve(
    raw: &[RawPipeline],
    target: &Target,
    loc: &Locator<'_>,
    o: &Overrides,
) -> Result<Vec<Pipeline>, ScenarioError> {
    if raw.is_empty() {
        let mut e = loc.error(None, "pipeline", "no `[[pipeline]]`: nothing to send");
        e.hint = Some(vec![text(
            "add at least one [[pipeline]] with a `name` and a `path`",
        )]);
        return Err(e);
    }
    if o.workers.is_some_and(|w| w == 0 || w > MAX_WORKERS) {
        return Err(ScenarioError::given(
            Setting::Workers,
            format!("must be between 1 and {MAX_WORKERS}"),
        ));
    }
    let mut names = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, p)| {
            let at = At { loc, i };
            let name = p.name.get_ref().trim().to_string();
            if name.is_empty() {
                return Err(at.error(span(&p.name), "name", "must not be empty"));
            }
            if !names.insert(name.clone()) {
                return Err(at.error(
                    span(&p.name),
                    "name",
                    format!("pipeline name `{name}` is used twice"),
                ));
            }
            pipeline(name, p, &at, target, o)
        })
        .collect()
}

/// Errors of `pipeline[i]`.
struct At<'a, 'b> {
    loc: &'a Locator<'b>,
    i: usize,
}

impl At<'_, '_> {
    fn key(&self, k: &str) -> String {
        format!("pipeline[{}].{k}", self.i)
    }

    fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        k: &str,
        message: impl Into<String>,
    ) -> ScenarioError {
        self.loc.error(span, self.key(k), message)
    }
}

fn pipeline(
    name: String,
    p: &RawPipeline,
    at: &At<'_, '_>,
    target: &Target,
    o: &Overrides,
) -> Result<Pipeline, ScenarioError> {
    let workers = match (o.workers, &p.workers) {
        (Some(w), _) => w,
        (None, Some(w)) if *w.get_ref() == 0 || *w.get_ref() > MAX_WORKERS => {
            return Err(at.error(
                span(w),
                "workers",
                format!("must be between 1 and {MAX_WORKERS}"),
            ))
        }
        (None, Some(w)) => *w.get_ref(),
        (None, None) => 1,
    };
    let rate = match &p.rate {
        Some(r) if !(r.get_ref().is_finite() && *r.get_ref() > 0.0) => {
            return Err(at.error(
                span(r),
                "rate",
                "must be a positive number of requests per second",
            ))
        }
        Some(r) => Some(*r.get_ref()),
        None => None,
    };
    let (body, content_type) = body(p, at)?;
    let method = match &p.method {
        Some(m) => Method::from_bytes(m.get_ref().trim().to_ascii_uppercase().as_bytes()).map_err(
            |_| {
                at.error(
                    span(m),
                    "method",
                    format!("`{}` is not an HTTP method", m.get_ref()),
                )
            },
        )?,
        None if !body.is_empty() => Method::POST,
        None => Method::GET,
    };
    let path = path(p, at, target)?;
    let headers = headers(p, at, content_type)?;
    let expect_status = match &p.expect_status {
        Some(s) if !(100..=599).contains(s.get_ref()) => {
            return Err(at.error(span(s), "expect_status", "must be an HTTP status (100-599)"))
        }
        Some(s) => *s.get_ref(),
        None => 200,
    };
    let check = check(p, at)?;
    let timeout = match &p.timeout {
        Some(t) => parse_duration(at.loc, t, &at.key("timeout"))?,
        None => DEFAULT_TIMEOUT,
    };
    Ok(Pipeline {
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
    })
}

/// The body (placeholders expanded) and the content type it implies.
fn body(
    p: &RawPipeline,
    at: &At<'_, '_>,
) -> Result<(Vec<u8>, Option<&'static str>), ScenarioError> {
    let bodies = [p.json.is_some(), p.body.is_some(), p.body_file.is_some()];
    if bodies.iter().filter(|b| **b).count() > 1 {
        let s = p
            .body_file
            .as_ref()
            .and_then(span)
            .or(p.body.as_ref().and_then(span));
        return Err(at.error(s, "json", "use only one of `json`, `body`, `body_file`"));
    }
    if let Some(j) = &p.json {
        let value = serde_json::to_value(j.get_ref())
            .map_err(|e| at.error(span(j), "json", format!("cannot be sent as JSON: {e}")))?;
        return Ok((expand(&value.to_string()), Some("application/json")));
    }
    if let Some(b) = &p.body {
        return Ok((expand(b.get_ref()), None));
    }
    if let Some(f) = &p.body_file {
        let path = resolve_path(at.loc.file, f.get_ref());
        let text = std::fs::read(&path).map_err(|e| {
            at.error(
                span(f),
                "body_file",
                format!("cannot read body file `{}`: {e}", path.display()),
            )
        })?;
        let content_type = path
            .extension()
            .is_some_and(|e| e == "json")
            .then_some("application/json");
        let body = match String::from_utf8(text) {
            Ok(s) => expand(&s),
            Err(e) => e.into_bytes(),
        };
        return Ok((body, content_type));
    }
    Ok((Vec::new(), None))
}

/// The request path: the target's path prefix, then the pipeline's `path`.
fn path(p: &RawPipeline, at: &At<'_, '_>, target: &Target) -> Result<String, ScenarioError> {
    match &p.path {
        Some(s) if !s.get_ref().starts_with('/') => Err(at.error(
            span(s),
            "path",
            format!("`{}` must start with `/`", s.get_ref()),
        )),
        Some(s) => {
            let full = format!("{}{}", target.base_path, s.get_ref());
            if full.parse::<hyper::http::uri::PathAndQuery>().is_err() {
                return Err(at.error(
                    span(s),
                    "path",
                    format!("`{}` is not a valid path", s.get_ref()),
                ));
            }
            Ok(full)
        }
        None => {
            let mut e = at.error(span(&p.name), "path", "missing key `path`");
            e.hint = Some(vec![text(
                "add `path = \"/v1/chat/completions\"` (or `/` for the root)",
            )]);
            Err(e)
        }
    }
}

/// The written headers, plus the body's content type unless one was written.
fn headers(
    p: &RawPipeline,
    at: &At<'_, '_>,
    content_type: Option<&'static str>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ScenarioError> {
    let mut headers = Vec::new();
    let mut has_content_type = false;
    if let Some(h) = &p.headers {
        for (k, v) in h.get_ref() {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| at.error(span(h), "headers", format!("`{k}` is not a header name")))?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                at.error(
                    span(h),
                    "headers",
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
    Ok(headers)
}

fn check(p: &RawPipeline, at: &At<'_, '_>) -> Result<Check, ScenarioError> {
    let pointer_ok = |ptr: &str| ptr.is_empty() || ptr.starts_with('/');
    let not_a_pointer = |ptr: &str| format!("`{ptr}` is not a JSON pointer (it starts with `/`)");
    if let Some(ptr) = &p.check_pointer {
        if !pointer_ok(ptr.get_ref()) {
            return Err(at.error(span(ptr), "check_pointer", not_a_pointer(ptr.get_ref())));
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
                let mut e = at.error(span(c), "check", format!("unknown check `{n}`"));
                e.hint = Some(vec![text(
                    "use \"consistent\", \"none\", { pointer = \"/a\", equals = 1 } or { regex = \"...\" }",
                )]);
                return Err(e);
            }
            RawCheck::Pointer { pointer, equals } => {
                if !pointer_ok(pointer) {
                    return Err(at.error(span(c), "check.pointer", not_a_pointer(pointer)));
                }
                Check::PointerEquals {
                    pointer: pointer.clone(),
                    value: serde_json::to_value(equals).map_err(|e| {
                        at.error(span(c), "check.equals", format!("not a JSON value: {e}"))
                    })?,
                }
            }
            RawCheck::Regex { regex } => Check::Regex(
                regex::Regex::new(regex)
                    .map_err(|e| at.error(span(c), "check.regex", format!("invalid regex: {e}")))?,
            ),
        },
    };
    if p.check_pointer.is_some() && !matches!(check, Check::Consistent { .. }) {
        return Err(at.error(
            p.check_pointer.as_ref().and_then(span),
            "check_pointer",
            "only used with `check = \"consistent\"`",
        ));
    }
    Ok(check)
}

fn expand(s: &str) -> Vec<u8> {
    if s.contains(PNG_1X1_PLACEHOLDER) {
        s.replace(PNG_1X1_PLACEHOLDER, &png_1x1_data_url())
            .into_bytes()
    } else {
        s.as_bytes().to_vec()
    }
}
