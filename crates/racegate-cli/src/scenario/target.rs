//! Section "target": the service under test (the file's `target` or the given one) and its TLS
//! material (`[tls]`).

use std::net::IpAddr;
use std::path::PathBuf;

use toml::Spanned;

use super::error::{text, HintPart, Locator, ScenarioError, Setting};
use super::model::{RawScenario, RawTls};
use super::{resolve_path, span, Overrides};

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

/// The target: the given one, else the file's.
pub(super) fn resolve(
    raw: &RawScenario,
    loc: &Locator<'_>,
    o: &Overrides,
) -> Result<Target, ScenarioError> {
    match (&o.target, &raw.target) {
        (Some(t), _) => parse_target(t, o.allow_remote).map_err(|(m, h)| {
            let e = ScenarioError::given(Setting::Target, m);
            match h {
                Some(h) => e.with_hint(h),
                None => e,
            }
        }),
        (None, Some(t)) => parse_target(t.get_ref(), o.allow_remote).map_err(|(m, h)| {
            let mut e = loc.error(span(t), "target", m);
            e.hint = h;
            e
        }),
        (None, None) => {
            let mut e = loc.error(None, "target", "missing key: no target to stress");
            e.hint = Some(vec![
                text("add `target = \"http://127.0.0.1:PORT\"`, or give "),
                HintPart::Setting(Setting::Target),
            ]);
            Err(e)
        }
    }
}

type TargetError = (String, Option<Vec<HintPart>>);

/// Validate a target URL; `{port}` is allowed (the managed target's port).
pub(super) fn parse_target(url: &str, allow_remote: bool) -> Result<Target, TargetError> {
    let with_port = url.replace("{port}", "1");
    let uri: hyper::Uri = with_port
        .parse()
        .map_err(|e| (format!("`{url}` is not a URL: {e}"), None))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err((
                format!("`{url}`: scheme `{other}` is not supported"),
                Some(vec![text("use http:// or https://")]),
            ))
        }
        None => {
            return Err((
                format!("`{url}` has no scheme"),
                Some(vec![text("write it like http://127.0.0.1:8080")]),
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
            Some(vec![text("put queries in each pipeline's `path`")]),
        ));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        return Err((
            format!("target host `{host}` is not a loopback address"),
            Some(vec![
                text("racegate hammers services; give "),
                HintPart::Setting(Setting::AllowRemote),
                text(" to stress a remote one on purpose"),
            ]),
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

/// `[tls]`: files must exist, a client certificate needs its key, and the target must be https.
pub(super) fn resolve_tls(
    raw: Option<&RawTls>,
    target: &Target,
    loc: &Locator<'_>,
) -> Result<Tls, ScenarioError> {
    let mut tls = Tls::default();
    let Some(t) = raw else {
        return Ok(tls);
    };
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
    Ok(tls)
}
