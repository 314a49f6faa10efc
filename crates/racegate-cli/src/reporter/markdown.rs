//! `--markdown FILE`: the result as a table ready for a pull request.

use std::io::Write;

use super::{latency_cell, secs};
use crate::report::RunReport;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Write the Markdown report.
pub fn write<W: Write>(r: &RunReport, mut w: W) -> std::io::Result<()> {
    writeln!(w, "### racegate stress: **{}**", r.verdict)?;
    writeln!(w)?;
    writeln!(w, "{}", cell(&r.reason))?;
    writeln!(w)?;
    writeln!(
        w,
        "Target `{}`, {:.1} s (ended by {}), time to first failure: {}.",
        r.target,
        r.duration.as_secs_f64(),
        r.ended_by.as_str(),
        r.time_to_first_failure
            .map_or("none".to_string(), |t| format!("{:.3} s", secs(t)))
    )?;
    writeln!(w)?;
    writeln!(w, "| pipeline | ok | errors | p50 ms | p99 ms | req/s |")?;
    writeln!(w, "|---|---:|---:|---:|---:|---:|")?;
    for p in &r.pipelines {
        let lat = |d| latency_cell(p, d);
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {:.1} |",
            cell(&p.name),
            p.ok,
            p.errors,
            lat(p.latency.p50),
            lat(p.latency.p99),
            p.throughput_rps
        )?;
    }
    if r.pipelines.iter().any(|p| !p.errors_by_kind.is_empty()) {
        writeln!(w)?;
        writeln!(w, "Errors by kind:")?;
        for p in r.pipelines.iter().filter(|p| !p.errors_by_kind.is_empty()) {
            let kinds: Vec<String> = p
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("`{k}` {v}"))
                .collect();
            writeln!(w, "- {}: {}", cell(&p.name), kinds.join(", "))?;
        }
    }
    if !r.crashes.is_empty() {
        writeln!(w)?;
        writeln!(w, "| crash signature | seen by | count | first at |")?;
        writeln!(w, "|---|---|---:|---:|")?;
        for c in &r.crashes {
            writeln!(
                w,
                "| `{}` | {} | {} | {:.3} s |",
                cell(&c.signature).replace('`', "'"),
                c.source_label(),
                c.count,
                secs(c.first_at)
            )?;
        }
        for c in r.crashes.iter().filter(|c| !c.evidence.is_empty()) {
            writeln!(w)?;
            writeln!(w, "`{}`:", cell(&c.signature).replace('`', "'"))?;
            writeln!(w)?;
            writeln!(w, "```text")?;
            for line in super::crash_excerpt(&c.evidence, 8) {
                writeln!(w, "{line}")?;
            }
            writeln!(w, "```")?;
        }
    }
    if !r.restarts.is_empty() {
        writeln!(w)?;
        writeln!(w, "Restarts: {}", r.restarts.len())?;
    }
    for f in &r.probe_failures {
        writeln!(w)?;
        writeln!(w, "Smoke probe failed: {}", cell(f))?;
    }
    for x in &r.warnings {
        writeln!(w)?;
        writeln!(w, "Warning: {}", cell(x))?;
    }
    Ok(())
}
