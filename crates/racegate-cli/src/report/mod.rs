//! Reporters: they read a finished [`RunReport`] (or the event stream, for the progress line)
//! and write it; they never decide anything. Every writer is generic over [`std::io::Write`].
//!
//! ```
//! # use racegate_cli::report;
//! # fn show(r: &racegate_cli::stress::RunReport) -> std::io::Result<()> {
//! let mut out = Vec::new();
//! report::json::write(r, &mut out)?;
//! report::markdown::write(r, &mut out)?;
//! report::junit::write(r, &mut out)?;
//! report::terminal::write(r, &mut out)?;
//! # Ok(()) }
//! ```

pub mod json;
pub mod junit;
pub mod markdown;
pub mod progress;
pub mod terminal;

use std::time::Duration;

/// Milliseconds with two decimals, as every report prints latencies.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// Seconds with three decimals.
pub(crate) fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
