//! Printers of a [`DemoOutcome`]: one row per dispatch mode, then the cost of the fix.

use std::io::Write;

use serde_json::{json, Value};

use super::table::Table;
use super::unrounded_ms as ms;
use crate::report::demo::{DemoOutcome, FixCost, Mode, ModeResult};
use crate::report::run::PipelineSummary;

/// Version of the `demo --json` document; fields are only ever added.
pub const SCHEMA_VERSION: u32 = 1;

/// Per pipeline `name value` lines.
fn per_pipeline(m: &ModeResult, f: impl Fn(&PipelineSummary) -> String) -> String {
    m.summary
        .pipelines
        .iter()
        .map(|p| format!("{} {}", p.name, f(p)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn crashes(m: &ModeResult) -> String {
    if m.report.crashes.is_empty() {
        return "none".into();
    }
    m.report
        .crashes
        .iter()
        .map(|c| {
            format!(
                "{}x {}\n  seen in {}",
                c.count,
                c.signature,
                c.source_label()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The table, one row per mode.
pub fn table(o: &DemoOutcome) -> Table {
    let mut t = Table::new([
        "dispatch",
        "verdict",
        "ok / errors",
        "crashes",
        "first failure",
        "p50",
        "req/s",
    ]);
    for m in &o.modes {
        let verdict = if m.report.verdict == m.expected {
            format!("{} (expected)", m.report.verdict)
        } else {
            format!("{} (expected {})", m.report.verdict, m.expected)
        };
        t.row([
            m.mode.as_str().to_string(),
            verdict,
            per_pipeline(m, |p| format!("{} / {}", p.ok, p.errors)),
            crashes(m),
            m.summary
                .time_to_first_failure
                .map_or("none".into(), |d| format!("{:.3} s", d.as_secs_f64())),
            per_pipeline(m, |p| {
                if p.ok == 0 {
                    "-".into()
                } else {
                    format!("{:.2} ms", ms(p.p50))
                }
            }),
            format!("{:.1}", m.summary.throughput_rps),
        ]);
    }
    t
}

pub(crate) fn cost_lines(c: &FixCost) -> Vec<String> {
    let ratio = c.ratio().map_or(String::new(), |r| format!(" ({r:.1}x)"));
    vec![
        format!(
            "the cost of the fix: gated `{}` p50 {:.2} ms under load ({} workers) vs {:.2} ms for one client alone{ratio}",
            c.pipeline,
            ms(c.loaded_p50),
            c.loaded_workers,
            ms(c.alone_p50),
        ),
        format!(
            "  the gate lets one dispatch at a time reach the device: {:.1} req/s for all workers together vs {:.1} req/s for one client alone ({} requests)",
            c.loaded_rps, c.alone_rps, c.alone_requests
        ),
    ]
}

pub(crate) fn outcome_line(o: &DemoOutcome) -> String {
    if o.interrupted {
        "interrupted: the story is incomplete".into()
    } else if o.as_expected && o.selected.len() < Mode::ALL.len() {
        let got: Vec<String> = o
            .modes
            .iter()
            .map(|m| format!("{} {}", m.mode.as_str(), m.report.verdict))
            .collect();
        format!("as expected: {}", got.join(", "))
    } else if o.as_expected {
        "as expected: the race crashes `shared`, distinct streams only move it (`streams` crashes too), the gate fixes it (`gated` passes)".into()
    } else {
        "NOT as expected: shared and streams should FAIL and gated should PASS".into()
    }
}

/// The terminal report.
pub fn write_terminal<W: Write>(o: &DemoOutcome, mut w: W) -> std::io::Result<()> {
    writeln!(
        w,
        "\nracegate demo: the simulated GPU in three dispatch modes, up to {} each (a crash ends a mode early), {} workers per pipeline\n",
        humantime::format_duration(o.duration),
        o.workers
    )?;
    table(o).write_text(&mut w, "  ")?;
    writeln!(w)?;
    match &o.cost {
        Some(c) => {
            for l in cost_lines(c) {
                writeln!(w, "{l}")?;
            }
        }
        None => writeln!(w, "the cost of the fix: not measured (gated did not pass)")?,
    }
    writeln!(w, "{}", outcome_line(o))
}

/// The Markdown report.
pub fn write_markdown<W: Write>(o: &DemoOutcome, mut w: W) -> std::io::Result<()> {
    writeln!(
        w,
        "### racegate demo: up to {} per dispatch mode, {} workers per pipeline\n",
        humantime::format_duration(o.duration),
        o.workers
    )?;
    table(o).write_markdown(&mut w)?;
    writeln!(w)?;
    if let Some(c) = &o.cost {
        for l in cost_lines(c) {
            writeln!(w, "{}", l.trim_start())?;
            writeln!(w)?;
        }
    }
    writeln!(w, "**{}**", outcome_line(o))
}

fn mode_json(m: &ModeResult) -> std::io::Result<Value> {
    let mut buf = Vec::new();
    super::json::write(&m.report, &mut buf)?;
    let report: Value = serde_json::from_slice(&buf)?;
    let mut out = serde_json::Map::new();
    out.insert("dispatch".into(), json!(m.mode.as_str()));
    out.insert("expected_verdict".into(), json!(m.expected.as_str()));
    if let Value::Object(fields) = report {
        out.extend(fields);
    }
    out.insert("target_pids".into(), json!(m.summary.target_pids));
    Ok(Value::Object(out))
}

/// `{"schema_version", "duration_s", "workers", "modes": [{"dispatch", "expected_verdict",
/// <every stress report field>, "target_pids"}], "cost_of_fix", "as_expected", "interrupted",
/// "exit_code"}`.
pub fn write_json<W: Write>(o: &DemoOutcome, mut w: W) -> std::io::Result<()> {
    let modes = o
        .modes
        .iter()
        .map(mode_json)
        .collect::<std::io::Result<Vec<_>>>()?;
    let doc = json!({
        "schema_version": SCHEMA_VERSION,
        "duration_s": o.duration.as_secs_f64(),
        "workers": o.workers,
        "modes": modes,
        "cost_of_fix": o.cost.as_ref().map(|c| json!({
            "pipeline": c.pipeline,
            "p50_under_load_ms": ms(c.loaded_p50),
            "workers_under_load": c.loaded_workers,
            "p50_alone_ms": ms(c.alone_p50),
            "ratio": c.ratio(),
            "throughput_under_load_rps": c.loaded_rps,
            "throughput_alone_rps": c.alone_rps,
            "requests_alone": c.alone_requests,
        })),
        "as_expected": o.as_expected,
        "interrupted": o.interrupted,
        "exit_code": o.exit_code,
    });
    serde_json::to_writer_pretty(&mut w, &doc)?;
    w.write_all(b"\n")
}
