//! `--html FILE`: the report a person looks at. One self-contained page (inline CSS and SVG,
//! no script, nothing fetched): the verdict and its reason at the top, then the run over time
//! (latency p50/p99 per pipeline, throughput, errors, with crash and restart markers labelled
//! by signature), then the tables of the terminal report and the list of events.
//!
//! - a stress run: [`write_run`];
//! - a comparison: [`write_compare`], A and B on the same axes;
//! - the demo: [`write_demo`], one panel per dispatch mode.

mod chart;

use std::io::{self, Write};

use chart::{line_chart, Marker, Rgb, Series};

use super::{latency_cell, secs, table::Table};
use crate::report::compare::{Comparison, Side};
use crate::report::demo::DemoOutcome;
use crate::report::timeline::{Timeline, TimelineEventKind};
use crate::report::RunReport;
use crate::verdict::Verdict;

/// Escape text for HTML (element content and quoted attributes): the XML escaping of the
/// JUnit report is valid HTML too.
pub(crate) use super::junit::escape as esc;

const CSS: &str = r#"
:root { --fail: #c62828; --pass: #2e7d32; --partial: #ef6c00; --error: #6a1b9a; --aborted: #546e7a; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1040px; padding: 0 16px 48px; color: #222; }
header.verdict { margin: 16px 0; padding: 14px 18px; border-radius: 6px; color: #fff; }
header.verdict h1 { margin: 0; font-size: 28px; letter-spacing: .04em; }
header.verdict p { margin: 6px 0 0; }
.v-fail { background: var(--fail); } .v-pass { background: var(--pass); } .v-partial { background: var(--partial); }
.v-error { background: var(--error); } .v-aborted { background: var(--aborted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 4px; color: #fff; font-weight: 600; font-size: 13px; }
h2 { margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { margin: 18px 0 6px; }
.chart svg { width: 100%; height: auto; display: block; margin: 6px 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 13px; }
.meta { color: #555; }
.legend { font-size: 13px; margin: 0 0 14px 64px; }
.legend .key { margin-right: 16px; white-space: nowrap; }
.legend .key i { display: inline-block; width: 22px; margin-right: 5px; vertical-align: middle; }
.legend .key i.marker { width: 0; height: 14px; margin: 0 6px; }
footer { margin-top: 32px; color: #777; font-size: 12px; }
"#;

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "v-pass",
        Verdict::Partial => "v-partial",
        Verdict::Fail => "v-fail",
        Verdict::Error => "v-error",
        Verdict::Aborted => "v-aborted",
    }
}

fn head<W: Write>(w: &mut W, title: &str) -> io::Result<()> {
    write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(title)
    )
}

fn foot<W: Write>(w: &mut W) -> io::Result<()> {
    writeln!(
        w,
        "<footer>racegate {}: a self-contained report (no script, nothing fetched).</footer>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    )
}

/// The verdict banner: `id="verdict"` holds the verdict word, `id="reason"` its reason.
fn banner<W: Write>(w: &mut W, v: Verdict, reason: &str, meta: &str) -> io::Result<()> {
    writeln!(
        w,
        "<header class=\"verdict {}\"><h1 id=\"verdict\">{}</h1><p id=\"reason\">{}</p><p>{}</p></header>",
        verdict_class(v),
        v.as_str(),
        esc(reason),
        esc(meta)
    )
}

fn badge(v: Verdict) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        verdict_class(v),
        v.as_str()
    )
}

fn chart_div<W: Write>(w: &mut W, svg: io::Result<String>) -> io::Result<()> {
    writeln!(w, "<div class=\"chart\">{}</div>", svg?)
}

/// Pipelines' colours: none of them red, brown or green, the markers' colours.
const PALETTE: [Rgb; 8] = [
    (31, 119, 180),
    (148, 103, 189),
    (23, 190, 207),
    (227, 119, 194),
    (188, 189, 34),
    (127, 127, 127),
    (255, 127, 14),
    (57, 59, 121),
];
const SIDE_A: [Rgb; 4] = [
    (31, 119, 180),
    (86, 156, 214),
    (20, 80, 140),
    (120, 180, 230),
];
const SIDE_B: [Rgb; 4] = [(255, 127, 14), (214, 96, 20), (253, 174, 107), (166, 64, 3)];
const CRASH: Rgb = (214, 39, 40);
const EXIT: Rgb = (121, 85, 72);
const RESTART: Rgb = (46, 125, 50);
const PROBE: Rgb = (106, 27, 154);

/// The end of a run's time axis: its duration, or the last interval if one ran past it.
fn x_end(r: &RunReport) -> f64 {
    let last = r
        .timeline
        .pipelines
        .iter()
        .filter_map(|p| p.intervals.last())
        .map(|i| (i.at + i.span).as_secs_f64())
        .fold(0.0, f64::max);
    r.duration.as_secs_f64().max(last)
}

/// Markers for a timeline's events, coloured by kind; labels start with `prefix` (`A run 1: `
/// in a comparison).
fn markers(t: &Timeline, prefix: &str) -> Vec<Marker> {
    let mut out = t
        .events
        .iter()
        .filter_map(|e| {
            // Labels name what differs (the signature, the exit status); each distinct one is
            // drawn once, so a crash loop does not bury the chart in text.
            let (label, kind, color) = match &e.kind {
                TimelineEventKind::Crash { signature, .. } => (signature.clone(), "crash", CRASH),
                TimelineEventKind::TargetExited { status } => {
                    (format!("exited: {status}"), "target exited", EXIT)
                }
                TimelineEventKind::Restart { time_to_recover } => (
                    match time_to_recover {
                        Some(_) => "restart".into(),
                        None => "restart (never up again)".into(),
                    },
                    "restart",
                    RESTART,
                ),
                TimelineEventKind::SmokeProbeFailed { pipeline, .. } => (
                    format!("smoke probe failed: {pipeline}"),
                    "smoke probe failed",
                    PROBE,
                ),
                // The first start is the run's beginning; restarts have their own event.
                TimelineEventKind::TargetStarted { .. } => return None,
            };
            Some(Marker {
                at: e.at.as_secs_f64(),
                label: format!("{prefix}{label}"),
                kind: format!("{prefix}{kind}"),
                color,
            })
        })
        .collect::<Vec<_>>();
    // Crashes drawn last, on top of the exit and restart that follow them at once (a stable
    // sort keeps time order within each).
    out.sort_by_key(|m| m.color == CRASH);
    out
}

fn mid(i: &crate::report::timeline::Interval) -> f64 {
    (i.at + i.span / 2).as_secs_f64()
}

fn ms_opt(d: Option<std::time::Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

/// The three charts of one run: latency, throughput, errors.
fn run_charts<W: Write>(w: &mut W, r: &RunReport) -> io::Result<()> {
    let t = &r.timeline;
    let x = x_end(r);
    let marks = markers(t, "");
    let color = |i: usize| PALETTE[i % PALETTE.len()];
    let mut latency = Vec::new();
    for (i, p) in t.pipelines.iter().enumerate() {
        latency.push(Series {
            name: format!("{} p99", p.name),
            color: color(i),
            dashed: false,
            points: p
                .intervals
                .iter()
                .map(|v| (mid(v), ms_opt(v.p99)))
                .collect(),
        });
        latency.push(Series {
            name: format!("{} p50", p.name),
            color: color(i),
            dashed: true,
            points: p
                .intervals
                .iter()
                .map(|v| (mid(v), ms_opt(v.p50)))
                .collect(),
        });
    }
    let per = |f: fn(&crate::report::timeline::Interval) -> f64| -> Vec<Series> {
        t.pipelines
            .iter()
            .enumerate()
            .map(|(i, p)| Series {
                name: p.name.clone(),
                color: color(i),
                dashed: false,
                points: p.intervals.iter().map(|v| (mid(v), Some(f(v)))).collect(),
            })
            .collect()
    };
    let width = format!("{:.3} s intervals", t.interval.as_secs_f64());
    chart_div(
        w,
        line_chart(
            &format!("latency of successful requests, p99 (solid) and p50 (dashed); {width}"),
            "milliseconds",
            x,
            &latency,
            &marks,
        ),
    )?;
    chart_div(
        w,
        line_chart(
            "throughput: successful requests per second",
            "requests/s",
            x,
            &per(|v| v.ok_per_sec()),
            &marks,
        ),
    )?;
    chart_div(
        w,
        line_chart(
            "errors per second",
            "errors/s",
            x,
            &per(|v| v.errors_per_sec()),
            &marks,
        ),
    )
}

fn write_table<W: Write>(w: &mut W, t: &Table) -> io::Result<()> {
    t.write_html(w, esc)
}

/// The terminal report's tables, and the events.
fn run_tables<W: Write>(w: &mut W, r: &RunReport) -> io::Result<()> {
    let mut t = Table::new([
        "pipeline",
        "ok",
        "errors",
        "p50 ms",
        "p99 ms",
        "req/s",
        "errors by kind",
    ]);
    for p in &r.pipelines {
        let kinds: Vec<String> = p
            .errors_by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let mut kinds = kinds.join(", ");
        for m in &p.check_messages {
            kinds.push_str(&format!("\ncheck failed: {m}"));
        }
        t.row([
            p.name.clone(),
            p.ok.to_string(),
            p.errors.to_string(),
            latency_cell(p, p.latency.p50),
            latency_cell(p, p.latency.p99),
            format!("{:.1}", p.throughput_rps),
            kinds,
        ]);
    }
    writeln!(w, "<h3>Pipelines</h3>")?;
    write_table(w, &t)?;
    writeln!(w, "<h3>Crashes</h3>")?;
    if r.crashes.is_empty() {
        writeln!(w, "<p>none</p>")?;
    } else {
        let mut t = Table::new(["count", "signature", "seen by", "first at s", "report"]);
        for c in &r.crashes {
            // The signature, then the frames that name the code that crashed (as the
            // Markdown report shows them).
            let mut signature = c.signature.clone();
            for line in super::crash_excerpt(&c.evidence, 8) {
                signature.push('\n');
                signature.push_str(&line);
            }
            t.row([
                c.count.to_string(),
                signature,
                c.source_label(),
                format!("{:.3}", secs(c.first_at)),
                c.path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ]);
        }
        write_table(w, &t)?;
    }
    let mut facts: Vec<String> = super::restarts_line(r).into_iter().collect();
    facts.extend(
        r.probe_failures
            .iter()
            .map(|f| format!("smoke probe failed: {f}")),
    );
    facts.extend(r.warnings.iter().map(|x| format!("warning: {x}")));
    facts.push(match r.time_to_first_failure {
        Some(t) => format!("time to first failure: {:.3} s", secs(t)),
        None => "time to first failure: none".into(),
    });
    facts.push(format!("run ended by: {}", r.ended_by.as_str()));
    writeln!(w, "<ul>")?;
    for f in facts {
        writeln!(w, "<li>{}</li>", esc(&f))?;
    }
    writeln!(w, "</ul>")?;
    events_table(w, &r.timeline)
}

fn events_table<W: Write>(w: &mut W, t: &Timeline) -> io::Result<()> {
    if t.events.is_empty() {
        return Ok(());
    }
    let mut table = Table::new(["at s", "event", "details"]);
    for e in &t.events {
        let details = match &e.kind {
            TimelineEventKind::Crash { signature, sources } => {
                let by: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
                format!("{signature} (seen by {})", by.join("+"))
            }
            TimelineEventKind::TargetStarted { pid, incarnation } => {
                format!("pid {pid}, start {}", incarnation + 1)
            }
            TimelineEventKind::TargetExited { status } => status.clone(),
            TimelineEventKind::Restart { time_to_recover } => match time_to_recover {
                Some(t) => format!("healthy again after {:.3} s", secs(*t)),
                None => "never healthy again".into(),
            },
            TimelineEventKind::SmokeProbeFailed { pipeline, message } => {
                format!("{pipeline}: {message}")
            }
        };
        table.row([
            format!("{:.3}", secs(e.at)),
            e.kind.as_str().to_string(),
            details,
        ]);
    }
    writeln!(w, "<h3>Events</h3>")?;
    write_table(w, &table)?;
    if t.events_dropped > 0 {
        writeln!(
            w,
            "<p class=\"meta\">{} later events not kept.</p>",
            t.events_dropped
        )?;
    }
    Ok(())
}

/// The HTML report of one stress run.
pub fn write_run<W: Write>(r: &RunReport, mut w: W) -> io::Result<()> {
    head(
        &mut w,
        &format!("racegate stress {}: {}", r.target, r.verdict),
    )?;
    let meta = format!(
        "racegate stress {} · {:.1} s · {} requests, {} errors · ended by {}",
        r.target,
        r.duration.as_secs_f64(),
        r.requests(),
        r.errors(),
        r.ended_by.as_str()
    );
    banner(&mut w, r.verdict, &r.reason, &meta)?;
    writeln!(w, "<h2>Over time</h2>")?;
    run_charts(&mut w, r)?;
    writeln!(w, "<h2>Summary</h2>")?;
    run_tables(&mut w, r)?;
    foot(&mut w)
}

/// The HTML report of a comparison: A and B on the same axes, then the table.
pub fn write_compare<W: Write>(c: &Comparison, mut w: W) -> io::Result<()> {
    let title = super::compare::title(c);
    head(&mut w, &title)?;
    // A comparison has no verdict of its own: both builds passing every run is PASS, else the
    // winner line says what happened.
    let verdict = if c.interrupted {
        Verdict::Aborted
    } else if c.exit_code == 0 {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    banner(&mut w, verdict, &super::compare::winner_line(c), &title)?;
    writeln!(w, "<ul>")?;
    for (tag, (build, _)) in [("A", &c.a), ("B", &c.b)] {
        writeln!(
            w,
            "<li><b>{tag}</b> = {}: <code>{}</code></li>",
            esc(&build.label),
            esc(&build.command.join(" "))
        )?;
    }
    writeln!(w, "</ul>")?;
    writeln!(w, "<h2>Over time (A blue, B orange)</h2>")?;
    compare_charts(&mut w, c)?;
    writeln!(w, "<h2>Summary</h2>")?;
    write_table(&mut w, &super::compare::table(c))?;
    writeln!(w, "<h2>Runs</h2>")?;
    for (side, reports) in [(Side::A, &c.reports.0), (Side::B, &c.reports.1)] {
        for (i, r) in reports.iter().enumerate() {
            writeln!(
                w,
                "<h3>{} run {}: {}</h3><p>{}</p>",
                side.as_str().to_uppercase(),
                i + 1,
                badge(r.verdict),
                esc(&r.reason)
            )?;
            run_tables(&mut w, r)?;
        }
    }
    foot(&mut w)
}

/// Per-interval sums over a run's pipelines.
fn totals(
    t: &Timeline,
    f: fn(&crate::report::timeline::Interval) -> f64,
) -> Vec<(f64, Option<f64>)> {
    let n = t
        .pipelines
        .iter()
        .map(|p| p.intervals.len())
        .max()
        .unwrap_or(0);
    (0..n)
        .map(|i| {
            let mut x = 0.0;
            let mut y = 0.0;
            for p in &t.pipelines {
                if let Some(v) = p.intervals.get(i) {
                    x = mid(v);
                    y += f(v);
                }
            }
            (x, Some(y))
        })
        .collect()
}

fn compare_charts<W: Write>(w: &mut W, c: &Comparison) -> io::Result<()> {
    let sides = [
        (Side::A, &c.reports.0, SIDE_A),
        (Side::B, &c.reports.1, SIDE_B),
    ];
    let x = sides
        .iter()
        .flat_map(|(_, rs, _)| rs.iter().map(x_end))
        .fold(0.0, f64::max);
    let mut marks = Vec::new();
    for (side, reports, _) in &sides {
        for (i, r) in reports.iter().enumerate() {
            let prefix = format!("{} run {}: ", side.as_str().to_uppercase(), i + 1);
            marks.extend(markers(&r.timeline, &prefix));
        }
    }
    let name = |side: Side, i: usize, what: &str| {
        let run = if c.reports.0.len().max(c.reports.1.len()) > 1 {
            format!(" run {}", i + 1)
        } else {
            String::new()
        };
        format!("{}{run}{what}", side.as_str().to_uppercase())
    };
    // Latency: one chart per pipeline (pipelines are the same scenario on both sides).
    let pipelines: Vec<String> = c
        .reports
        .0
        .iter()
        .chain(&c.reports.1)
        .flat_map(|r| r.timeline.pipelines.iter().map(|p| p.name.clone()))
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    for pipe in &pipelines {
        let mut series = Vec::new();
        for (side, reports, colors) in &sides {
            for (i, r) in reports.iter().enumerate() {
                let Some(p) = r.timeline.pipelines.iter().find(|p| &p.name == pipe) else {
                    continue;
                };
                let color = colors[i % colors.len()];
                series.push(Series {
                    name: name(*side, i, " p99"),
                    color,
                    dashed: false,
                    points: p
                        .intervals
                        .iter()
                        .map(|v| (mid(v), ms_opt(v.p99)))
                        .collect(),
                });
                series.push(Series {
                    name: name(*side, i, " p50"),
                    color,
                    dashed: true,
                    points: p
                        .intervals
                        .iter()
                        .map(|v| (mid(v), ms_opt(v.p50)))
                        .collect(),
                });
            }
        }
        chart_div(
            w,
            line_chart(
                &format!("`{pipe}` latency, p99 (solid) and p50 (dashed)"),
                "milliseconds",
                x,
                &series,
                &marks,
            ),
        )?;
    }
    for (title, unit, f) in [
        (
            "throughput: successful requests per second, all pipelines",
            "requests/s",
            (|v| v.ok_per_sec()) as fn(&crate::report::timeline::Interval) -> f64,
        ),
        ("errors per second, all pipelines", "errors/s", |v| {
            v.errors_per_sec()
        }),
    ] {
        let mut series = Vec::new();
        for (side, reports, colors) in &sides {
            for (i, r) in reports.iter().enumerate() {
                series.push(Series {
                    name: name(*side, i, ""),
                    color: colors[i % colors.len()],
                    dashed: false,
                    points: totals(&r.timeline, f),
                });
            }
        }
        chart_div(w, line_chart(title, unit, x, &series, &marks))?;
    }
    Ok(())
}

/// The HTML report of the demo: the table, then one panel per dispatch mode.
pub fn write_demo<W: Write>(o: &DemoOutcome, mut w: W) -> io::Result<()> {
    let title = "racegate demo: the simulated GPU in three dispatch modes";
    head(&mut w, title)?;
    let verdict = if o.interrupted {
        Verdict::Aborted
    } else if o.as_expected {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let meta = format!(
        "{title}, up to {} each, {} workers per pipeline",
        humantime::format_duration(o.duration),
        o.workers
    );
    banner(&mut w, verdict, &super::demo::outcome_line(o), &meta)?;
    writeln!(w, "<h2>Summary</h2>")?;
    write_table(&mut w, &super::demo::table(o))?;
    match &o.cost {
        Some(c) => {
            for l in super::demo::cost_lines(c) {
                writeln!(w, "<p>{}</p>", esc(l.trim()))?;
            }
        }
        None => writeln!(
            w,
            "<p>the cost of the fix: not measured (gated did not pass)</p>"
        )?,
    }
    for m in &o.modes {
        writeln!(
            w,
            "<section class=\"mode\" id=\"mode-{}\"><h2>mode <code>{}</code>: {} <span class=\"meta\">(expected {})</span></h2><p>{}</p>",
            m.mode.as_str(),
            m.mode.as_str(),
            badge(m.report.verdict),
            m.expected.as_str(),
            esc(&m.report.reason)
        )?;
        run_charts(&mut w, &m.report)?;
        run_tables(&mut w, &m.report)?;
        writeln!(w, "</section>")?;
    }
    foot(&mut w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;"
        );
    }
}
