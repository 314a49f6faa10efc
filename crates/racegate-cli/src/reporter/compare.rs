//! Printers of a [`Comparison`]: the side-by-side table (terminal, Markdown) and JSON. They
//! only lay out what the core decided.

use std::io::Write;

use serde_json::{json, Value};

use super::table::Table;
use super::unrounded_ms as ms;
use crate::report::compare::{Build, Comparison, Side, SideRuns, Stat};
use crate::report::run::PipelineSummary;
use crate::report::RunReport;

/// Version of the `compare --json` document; fields are only ever added.
pub const SCHEMA_VERSION: u32 = 1;

/// One value per run: the value alone for one run, else `min / median / max`.
fn stat_cell(values: &[f64], decimals: usize, unit: &str) -> String {
    match Stat::of(values.iter().copied()) {
        None => "-".into(),
        Some(_) if values.len() == 1 => format!("{:.decimals$}{unit}", values[0]),
        Some(s) => format!(
            "{:.decimals$} / {:.decimals$} / {:.decimals$}{unit}",
            s.min, s.median, s.max
        ),
    }
}

fn verdicts(side: &SideRuns) -> String {
    if side.runs.is_empty() {
        return "not run".into();
    }
    let first = side.runs[0].verdict;
    if side.runs.len() > 1 && side.runs.iter().all(|r| r.verdict == first) {
        return format!("{first} x{}", side.runs.len());
    }
    side.runs
        .iter()
        .map(|r| r.verdict.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn crashes(side: &SideRuns) -> String {
    let sigs = side.signatures();
    if sigs.is_empty() && side.crashed_runs() == 0 {
        return "none".into();
    }
    let mut out = format!(
        "{} in {} of {} runs",
        side.crashes(),
        side.crashed_runs(),
        side.runs.len()
    );
    for (sig, n) in sigs {
        out.push_str(&format!("\n{n}x {sig}"));
    }
    out
}

fn first_failure(side: &SideRuns) -> String {
    let times: Vec<f64> = side
        .runs
        .iter()
        .filter_map(|r| r.time_to_first_failure)
        .map(|d| d.as_secs_f64())
        .collect();
    if times.is_empty() {
        return "none".into();
    }
    let cell = stat_cell(&times, 3, " s");
    if times.len() < side.runs.len() {
        format!("{cell} ({} of {} runs)", times.len(), side.runs.len())
    } else {
        cell
    }
}

/// The side-by-side table.
pub fn table(c: &Comparison) -> Table {
    let (a, b) = (&c.a.1, &c.b.1);
    let mut t = Table::new([
        "".to_string(),
        format!("A: {}", a.label),
        format!("B: {}", b.label),
    ]);
    t.row(["verdict".to_string(), verdicts(a), verdicts(b)]);
    let names: Vec<String> = a
        .runs
        .iter()
        .chain(&b.runs)
        .next()
        .map(|r| r.pipelines.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    let per_pipe =
        |side: &SideRuns, i: usize, latency: bool, f: &dyn Fn(&PipelineSummary) -> f64| {
            side.runs
                .iter()
                .filter_map(|r| r.pipelines.get(i))
                // A pipeline with no success has no latency to show.
                .filter(|p| p.ok > 0 || !latency)
                .map(f)
                .collect::<Vec<f64>>()
        };
    for (i, name) in names.iter().enumerate() {
        type Getter = fn(&PipelineSummary) -> f64;
        let metrics: [(&str, Getter, usize, &str); 5] = [
            ("ok", |p| p.ok as f64, 0, ""),
            ("errors", |p| p.errors as f64, 0, ""),
            ("p50", |p| ms(p.p50), 2, " ms"),
            ("p99", |p| ms(p.p99), 2, " ms"),
            ("req/s", |p| p.throughput_rps, 1, ""),
        ];
        for (label, get, decimals, unit) in metrics {
            let is_latency = unit == " ms";
            t.row([
                format!("{name} {label}"),
                stat_cell(&per_pipe(a, i, is_latency, &get), decimals, unit),
                stat_cell(&per_pipe(b, i, is_latency, &get), decimals, unit),
            ]);
        }
    }
    let total = |s: &SideRuns| s.runs.iter().map(|r| r.throughput_rps).collect::<Vec<_>>();
    t.row([
        "total req/s".to_string(),
        stat_cell(&total(a), 1, ""),
        stat_cell(&total(b), 1, ""),
    ]);
    let checks = |s: &SideRuns| {
        s.runs
            .iter()
            .map(|r| r.failed_checks as f64)
            .collect::<Vec<_>>()
    };
    t.row([
        "failed checks".to_string(),
        stat_cell(&checks(a), 0, ""),
        stat_cell(&checks(b), 0, ""),
    ]);
    t.row(["crashes".to_string(), crashes(a), crashes(b)]);
    t.row([
        "time to first failure".to_string(),
        first_failure(a),
        first_failure(b),
    ]);
    t
}

pub(crate) fn winner_line(c: &Comparison) -> String {
    match c.decision.winner {
        Some(side) => {
            let label = match side {
                Side::A => &c.a.1.label,
                Side::B => &c.b.1.label,
            };
            format!(
                "winner: {} ({label}): {}",
                side.as_str().to_uppercase(),
                c.decision.reason
            )
        }
        None => format!("winner: none ({})", c.decision.reason),
    }
}

pub(crate) fn title(c: &Comparison) -> String {
    let runs = c.a.1.runs.len().max(c.b.1.runs.len());
    let each = if runs == 1 {
        "1 run each".to_string()
    } else {
        format!("{runs} runs each, alternating A B, min / median / max")
    };
    format!(
        "racegate compare: {} per run, {each}{}",
        humantime::format_duration(c.duration),
        if c.interrupted { " (interrupted)" } else { "" }
    )
}

/// The terminal report.
pub fn write_terminal<W: Write>(c: &Comparison, mut w: W) -> std::io::Result<()> {
    writeln!(w, "\n{}", title(c))?;
    for (tag, (build, _)) in [("A", &c.a), ("B", &c.b)] {
        writeln!(w, "  {tag} = {}: {}", build.label, build.command.join(" "))?;
    }
    writeln!(w)?;
    table(c).write_text(&mut w, "  ")?;
    writeln!(w, "{}", winner_line(c))?;
    writeln!(
        w,
        "exit status {}: {}",
        c.exit_code,
        if c.exit_code == 0 {
            "both builds passed every run"
        } else if c.interrupted {
            "interrupted"
        } else {
            "not every run of both builds passed"
        }
    )
}

/// The Markdown report (for a pull request).
pub fn write_markdown<W: Write>(c: &Comparison, mut w: W) -> std::io::Result<()> {
    writeln!(w, "### {}\n", title(c))?;
    for (tag, (build, _)) in [("A", &c.a), ("B", &c.b)] {
        writeln!(
            w,
            "- **{tag}** `{}`: `{}`",
            build.label,
            build.command.join(" ")
        )?;
    }
    writeln!(w)?;
    table(c).write_markdown(&mut w)?;
    writeln!(w, "\n**{}**", winner_line(c))
}

fn report_json(r: &RunReport, pids: &[u32]) -> std::io::Result<Value> {
    let mut buf = Vec::new();
    super::json::write(r, &mut buf)?;
    let mut v: Value = serde_json::from_slice(&buf)?;
    if let Value::Object(m) = &mut v {
        m.insert("target_pids".into(), json!(pids));
    }
    Ok(v)
}

fn side_json(build: &Build, side: &SideRuns, reports: &[RunReport]) -> std::io::Result<Value> {
    let runs = reports
        .iter()
        .zip(&side.runs)
        .map(|(r, s)| report_json(r, &s.target_pids))
        .collect::<std::io::Result<Vec<_>>>()?;
    let tp = side.throughput();
    Ok(json!({
        "label": side.label,
        "command": build.command,
        "runs": runs,
        "summary": {
            "verdicts": side.runs.iter().map(|r| r.verdict.as_str()).collect::<Vec<_>>(),
            "crashed_runs": side.crashed_runs(),
            "crashes": side.crashes(),
            "signatures": side.signatures().iter().map(|(s, n)| json!({"signature": s, "count": n})).collect::<Vec<_>>(),
            "failed_checks": side.failed_checks(),
            "errors": side.errors(),
            "throughput_rps": tp.map(|t| json!({"min": t.min, "median": t.median, "max": t.max})),
        }
    }))
}

/// The JSON document: `schema_version`, `runs`, `a`, `b` (each: `label`, `command`, `runs` —
/// full stress reports plus `target_pids` — and `summary`), `winner` (`"a"`, `"b"` or null),
/// `reason`, `interrupted`, `exit_code`.
pub fn write_json<W: Write>(c: &Comparison, mut w: W) -> std::io::Result<()> {
    let doc = json!({
        "schema_version": SCHEMA_VERSION,
        "scenario": c.scenario_file.as_ref().map(|p| p.display().to_string()),
        "runs": c.runs_requested,
        "duration_s": c.duration.as_secs_f64(),
        "a": side_json(&c.a.0, &c.a.1, &c.reports.0)?,
        "b": side_json(&c.b.0, &c.b.1, &c.reports.1)?,
        "winner": c.decision.winner.map(|s| s.as_str()),
        "winner_label": c.decision.winner.map(|s| match s {
            Side::A => c.a.1.label.clone(),
            Side::B => c.b.1.label.clone(),
        }),
        "reason": c.decision.reason,
        "interrupted": c.interrupted,
        "exit_code": c.exit_code,
    });
    serde_json::to_writer_pretty(&mut w, &doc)?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::WinnerDecision;
    use crate::report::run::StressRunSummary;
    use crate::verdict::Verdict;
    use std::time::Duration;

    fn run(
        verdict: Verdict,
        ok: u64,
        p50_ms: u64,
        rps: f64,
        crash: Option<&str>,
    ) -> StressRunSummary {
        StressRunSummary {
            verdict,
            reason: String::new(),
            duration: Duration::from_secs(2),
            pipelines: vec![PipelineSummary {
                name: "text".into(),
                ok,
                errors: 0,
                p50: Duration::from_millis(p50_ms),
                p99: Duration::from_millis(p50_ms * 2),
                throughput_rps: rps,
            }],
            signatures: crash.map(|s| vec![(s.to_string(), 1)]).unwrap_or_default(),
            crashes: u64::from(crash.is_some()),
            restarts: 0,
            failed_checks: 0,
            errors: 0,
            requests: ok,
            throughput_rps: rps,
            time_to_first_failure: crash.map(|_| Duration::from_millis(250)),
            target_pids: vec![4242],
        }
    }

    fn comparison() -> Comparison {
        let build = |label: &str| Build {
            label: label.into(),
            command: vec!["./srv".into(), "{port}".into()],
        };
        let a = SideRuns {
            label: "streams".into(),
            runs: vec![
                run(Verdict::Fail, 0, 0, 0.0, Some("assertion: x")),
                run(Verdict::Fail, 3, 10, 1.5, Some("assertion: x")),
                run(Verdict::Pass, 90, 20, 45.0, None),
            ],
        };
        let b = SideRuns {
            label: "mutex".into(),
            runs: vec![
                run(Verdict::Pass, 80, 30, 40.0, None),
                run(Verdict::Pass, 82, 31, 41.0, None),
                run(Verdict::Pass, 84, 32, 42.0, None),
            ],
        };
        Comparison {
            scenario_file: None,
            runs_requested: 3,
            duration: Duration::from_secs(2),
            decision: WinnerDecision {
                winner: Some(Side::B),
                reason: "mutex never crashed".into(),
            },
            a: (build("streams"), a),
            b: (build("mutex"), b),
            reports: (Vec::new(), Vec::new()),
            interrupted: false,
            exit_code: 1,
        }
    }

    #[test]
    fn cells_show_min_median_max_and_skip_latency_without_success() {
        let t = table(&comparison());
        let row = |name: &str| t.rows.iter().find(|r| r[0] == name).unwrap().clone();
        assert_eq!(row("verdict")[1], "FAIL FAIL PASS");
        assert_eq!(row("verdict")[2], "PASS x3");
        assert_eq!(row("text ok")[1], "0 / 3 / 90");
        // The run with no success has no p50: two values, median of 10 and 20.
        assert_eq!(row("text p50")[1], "10.00 / 15.00 / 20.00 ms");
        assert_eq!(row("crashes")[1], "2 in 2 of 3 runs\n2x assertion: x");
        assert_eq!(row("crashes")[2], "none");
        assert_eq!(
            row("time to first failure")[1],
            "0.250 / 0.250 / 0.250 s (2 of 3 runs)"
        );
    }

    #[test]
    fn every_format_names_the_winner() {
        let c = comparison();
        let mut text = Vec::new();
        write_terminal(&c, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("winner: B (mutex): mutex never crashed"),
            "{text}"
        );
        let mut md = Vec::new();
        write_markdown(&c, &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(
            md.contains("| verdict | FAIL FAIL PASS | PASS x3 |"),
            "{md}"
        );
        let mut js = Vec::new();
        write_json(&c, &mut js).unwrap();
        let v: Value = serde_json::from_slice(&js).unwrap();
        assert_eq!(v["winner"], "b");
        assert_eq!(v["winner_label"], "mutex");
        assert_eq!(v["a"]["summary"]["crashed_runs"], 2);
        assert_eq!(v["b"]["summary"]["throughput_rps"]["median"], 41.0);
    }
}
