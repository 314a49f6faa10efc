//! Errors that stop a stress run before it can produce a report. A target that is not healthy
//! is not one of them: that is a report with verdict ERROR.

/// A stress run that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    /// TLS material could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The target URL cannot be used.
    #[error("target: {0}")]
    Target(String),
    /// No free loopback port for `{port}`.
    #[error("cannot pick a free loopback port for `{{port}}`: {0}")]
    Port(#[source] std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
