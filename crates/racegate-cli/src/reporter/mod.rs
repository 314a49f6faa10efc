//! Reporters: they read the report model ([`crate::report`]), or the event stream for the
//! progress lines, and write it; they never decide anything and import no engine. Every
//! writer is generic over [`std::io::Write`].
//!
//! - a stress run ([`crate::report::RunReport`]): [`terminal`], [`json`], [`markdown`],
//!   [`junit`];
//! - a comparison: [`compare`]; the demo: [`demo`]; both lay out a [`table::Table`];
//! - a page a person looks at, for all three: [`html`] (charts of the run over time);
//! - the machine-wide gates (`racegate status`, the library's
//!   [`GateStatus`](racegate::machine::GateStatus)): [`status`], and for Prometheus
//!   [`status_openmetrics`];
//! - while a command runs: [`progress`].
//!
//! ```
//! # use racegate_cli::reporter;
//! # fn show(r: &racegate_cli::report::RunReport) -> std::io::Result<()> {
//! let mut out = Vec::new();
//! reporter::json::write(r, &mut out)?;
//! reporter::markdown::write(r, &mut out)?;
//! reporter::junit::write(r, &mut out)?;
//! reporter::terminal::write(r, &mut out)?;
//! # Ok(()) }
//! ```

pub mod compare;
pub mod demo;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod progress;
pub mod status;
pub mod status_openmetrics;
pub mod table;
pub mod terminal;
pub mod timeline;

use std::time::Duration;

/// Milliseconds with two decimals, as every report prints latencies.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// A latency of `p` in milliseconds with two decimals; a dash when it had no successful
/// request (no latency, not a misleading zero).
pub(crate) fn latency_cell(p: &crate::report::run::PipelineReport, d: Duration) -> String {
    if p.ok == 0 {
        "-".to_string()
    } else {
        format!("{:.2}", ms(d))
    }
}

/// Seconds with three decimals.
pub(crate) fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Milliseconds, unrounded (the compare and demo JSON have always carried them so).
pub(crate) fn unrounded_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
