//! The final table printed after a run.

use std::io::Write;

use super::{latency_cell, secs};
use crate::events::EndedBy;
use crate::report::RunReport;

/// Frames shown per crash group in the terminal (all of them are in the JSON).
const TERMINAL_FRAMES: usize = 3;

/// Write the human-readable summary.
pub fn write<W: Write>(r: &RunReport, mut w: W) -> std::io::Result<()> {
    writeln!(
        w,
        "\nracegate stress {}: {:.1} s",
        r.target,
        r.duration.as_secs_f64()
    )?;
    let width = r
        .pipelines
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    writeln!(
        w,
        "  {:<width$} {:>9} {:>9} {:>9} {:>9} {:>10}  errors by kind",
        "pipeline", "ok", "errors", "p50 ms", "p99 ms", "req/s"
    )?;
    for p in &r.pipelines {
        let kinds: Vec<String> = p
            .errors_by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let lat = |d| latency_cell(p, d);
        writeln!(
            w,
            "  {:<width$} {:>9} {:>9} {:>9} {:>9} {:>10.1}  {}",
            p.name,
            p.ok,
            p.errors,
            lat(p.latency.p50),
            lat(p.latency.p99),
            p.throughput_rps,
            kinds.join(", ")
        )?;
        for m in &p.check_messages {
            writeln!(w, "    check failed: {m}")?;
        }
    }
    if r.crashes.is_empty() {
        writeln!(w, "  crashes: none")?;
    } else {
        writeln!(w, "  crashes:")?;
        for c in &r.crashes {
            write!(
                w,
                "    {}x {}  [{}] first at {:.3} s",
                c.count,
                c.signature,
                c.source_label(),
                secs(c.first_at)
            )?;
            if let Some(p) = &c.path {
                write!(w, "  {}", p.display())?;
            }
            writeln!(w)?;
            for line in super::crash_excerpt(&c.evidence, TERMINAL_FRAMES) {
                writeln!(w, "      {line}")?;
            }
        }
    }
    if let Some(line) = super::restarts_line(r) {
        writeln!(w, "  {line}")?;
    }
    for f in &r.probe_failures {
        writeln!(w, "  smoke probe failed: {f}")?;
    }
    for x in &r.warnings {
        writeln!(w, "  warning: {x}")?;
    }
    match r.time_to_first_failure {
        Some(t) => writeln!(w, "  time to first failure: {:.3} s", secs(t))?,
        None => writeln!(w, "  time to first failure: none")?,
    }
    writeln!(w, "  run ended by: {}", ended_by(r.ended_by))?;
    writeln!(w, "verdict: {} ({})", r.verdict, r.reason)
}

/// Why the load phase ended, in words.
fn ended_by(e: EndedBy) -> &'static str {
    match e {
        EndedBy::Duration => "its duration",
        EndedBy::Requests => "its request bound",
        EndedBy::TargetExited => {
            "the target exited and will not be restarted (ended early; --keep-going runs the full duration)"
        }
        EndedBy::TargetUnresponsive => {
            "the target stopped answering and stayed down (ended early; --keep-going runs the full duration)"
        }
        EndedBy::Interrupted => "an interruption",
        EndedBy::NotStarted => "an unhealthy target (no load sent)",
    }
}
