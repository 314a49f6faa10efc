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
