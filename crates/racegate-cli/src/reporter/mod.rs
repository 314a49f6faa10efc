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

/// `restarts: N (time to recover: 0.120 s, never)`, when the target was restarted.
pub(crate) fn restarts_line(r: &crate::report::RunReport) -> Option<String> {
    if r.restarts.is_empty() {
        return None;
    }
    let recovered: Vec<String> = r
        .restarts
        .iter()
        .map(|x| match x.time_to_recover {
            Some(t) => format!("{:.3} s", secs(t)),
            None => "never".into(),
        })
        .collect();
    Some(format!(
        "restarts: {} (time to recover: {})",
        r.restarts.len(),
        recovered.join(", ")
    ))
}

/// Seconds with three decimals.
pub(crate) fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Milliseconds, unrounded (the compare and demo JSON have always carried them so).
pub(crate) fn unrounded_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The lines that show where a crash happened, for the terminal and Markdown: the top `n`
/// meaningful frames (`at libmlx.so!mlx::core::array::release`), the heap message, the thread
/// and when the frames arrived, or why there are none; for a hang, each thread's top frame.
pub(crate) fn crash_excerpt(e: &crate::crash::Evidence, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = &e.heap_message {
        out.push(format!("glibc: {h}"));
    }
    for f in e.excerpt(n) {
        out.push(format!("at {f}"));
    }
    if !e.frames.is_empty() {
        let mut how = Vec::new();
        if let Some(t) = &e.thread {
            how.push(format!("thread {t}"));
        }
        if let Some(from) = &e.frames_from {
            how.push(format!("frames from {from}"));
        }
        if let Some(at) = e.frames_at {
            how.push(format!("at {:.3} s", secs(at)));
        }
        if let Some(c) = e.capture {
            how.push(format!("captured in {:.1} ms", ms(c)));
        }
        if !how.is_empty() {
            out.push(format!("({})", how.join(", ")));
        }
    }
    for t in e.threads.iter().take(n) {
        let top = crate::crash::frames::meaningful(&t.frames)
            .first()
            .map(|f| f.to_string())
            .unwrap_or_else(|| "(no meaningful frame)".into());
        out.push(format!("thread {}: {top}", t.thread));
    }
    if e.frames.is_empty() && e.threads.is_empty() {
        if let Some(why) = &e.frames_unavailable {
            out.push(format!("no frames: {why}"));
        }
    }
    out
}
