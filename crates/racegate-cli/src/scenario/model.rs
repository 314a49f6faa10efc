//! The scenario file exactly as written (TOML, serde). Unknown keys are errors; nothing here
//! is interpreted. [`super::resolve`] turns it into a [`super::Scenario`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The top level of a scenario file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Base URL of the service under test.
    pub target: Option<Spanned<String>>,
    /// Hard bound on the run ("5m", "30s").
    pub duration: Option<Spanned<String>>,
    /// Optional bound on the total number of requests.
    pub requests: Option<Spanned<u64>>,
    /// Smoke probes per pipeline before the run (default 3); `smoke_probes` is the same key.
    #[serde(alias = "smoke_probes")]
    pub probes: Option<Spanned<u32>>,
    /// Extra time after `duration` for in-flight requests before they are cut (default 2s).
    pub grace: Option<Spanned<String>>,
    /// TLS settings.
    pub tls: Option<RawTls>,
    /// The pipelines, in order.
    #[serde(default, rename = "pipeline")]
    pub pipelines: Vec<RawPipeline>,
    /// Crash-report folders.
    pub crash: Option<RawCrash>,
    /// A target process racegate starts, watches and restarts.
    pub target_process: Option<RawTargetProcess>,
    /// Thresholds of the verdict.
    pub verdict: Option<RawVerdict>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file with the CA certificates that sign the target's certificate.
    pub ca: Option<Spanned<String>>,
    /// PEM client certificate chain (mTLS).
    pub cert: Option<Spanned<String>>,
    /// PEM client private key (mTLS).
    pub key: Option<Spanned<String>>,
    /// Name to verify the server certificate against, when it differs from the target host.
    pub server_name: Option<Spanned<String>>,
}

/// `[[pipeline]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Unique name.
    pub name: Spanned<String>,
    /// Concurrent workers.
    pub workers: Option<Spanned<u32>>,
    /// Requests per second (open loop).
    pub rate: Option<Spanned<f64>>,
    /// HTTP method (default GET, or POST when there is a body).
    pub method: Option<Spanned<String>>,
    /// Path and query, appended to the target.
    pub path: Option<Spanned<String>>,
    /// JSON body.
    pub json: Option<Spanned<toml::Value>>,
    /// Raw body.
    pub body: Option<Spanned<String>>,
    /// Body read from a file, relative to the scenario file.
    pub body_file: Option<Spanned<String>>,
    /// Extra request headers.
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    /// Expected status (default 200).
    pub expect_status: Option<Spanned<u16>>,
    /// The answer check.
    pub check: Option<Spanned<RawCheck>>,
    /// JSON pointer compared by `check = "consistent"`.
    pub check_pointer: Option<Spanned<String>>,
    /// Per-request timeout (default 30s).
    pub timeout: Option<Spanned<String>>,
}

/// `check = "consistent" | "none" | { pointer = "/a", equals = ... } | { regex = "..." }`
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCheck {
    /// A named check.
    Named(String),
    /// A JSON pointer that must equal a value.
    Pointer {
        /// JSON pointer.
        pointer: String,
        /// The value it must have.
        equals: toml::Value,
    },
    /// A regex the body must match.
    Regex {
        /// The regex.
        regex: String,
    },
}

/// `[crash]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCrash {
    /// Folders to watch (replace the OS defaults).
    pub dirs: Option<Spanned<Vec<String>>>,
    /// File-name globs (replace the defaults).
    pub patterns: Option<Spanned<Vec<String>>>,
    /// How long to keep watching after the run for a report of a crash already seen.
    pub settle: Option<Spanned<String>>,
    /// How often the folders are polled (default 150ms).
    pub poll: Option<Spanned<String>>,
}

/// `[target_process]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargetProcess {
    /// Program and arguments; `{port}` is replaced by a free loopback port.
    pub command: Option<Spanned<Vec<String>>>,
    /// Health path, polled until it answers 2xx.
    pub health: Option<Spanned<String>>,
    /// Restart the target when it exits (like launchd `KeepAlive`).
    pub restart: Option<Spanned<bool>>,
    /// End the run early once the target exited and will not be restarted (default true).
    pub stop_on_exit: Option<Spanned<bool>>,
    /// How long the target may take to become healthy (default 30s).
    pub startup_timeout: Option<Spanned<String>>,
    /// Working directory, relative to the scenario file.
    pub cwd: Option<Spanned<String>>,
    /// Extra environment variables.
    pub env: Option<Spanned<BTreeMap<String, String>>>,
}

/// `[verdict]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerdict {
    /// Highest error rate that still passes.
    pub max_error_rate: Option<Spanned<f64>>,
}
