//! The timeline and the HTML reports end to end: the real binary runs `stress`, `compare` and
//! `demo` against the sim server (itself, as `sim-serve`) on loopback, and Debian's Chromium
//! renders each HTML report headless. Checked: no console message and no fetch, the verdict
//! of the JSON report at the top, every chart with a data line, and the verdict's banner in
//! the screenshot (kept under `target/tmp/html-reports/`).
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

mod browser;
mod provision;
mod sim_scenario;
use sim_scenario::managed_scenario;

fn racegate() -> String {
    assert_cmd::cargo::cargo_bin("racegate")
        .display()
        .to_string()
}

/// A scenario whose target is a managed `racegate sim-serve` in `dispatch` mode, restarted
/// after each crash.
fn scenario(dir: &Path, dispatch: &str) -> PathBuf {
    managed_scenario(dir, "2s", &["--dispatch", dispatch], "restart = true")
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = assert_cmd::Command::cargo_bin("racegate")
        .unwrap()
        .args(args)
        .timeout(Duration::from_secs(180))
        .output()
        .unwrap();
    let all = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), all)
}

fn read_json(path: &Path, output: &str) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON report ({e})\n{output}"))
}

fn banner_rgb(verdict: &str) -> (u8, u8, u8) {
    match verdict {
        "PASS" => (0x2e, 0x7d, 0x32),
        "FAIL" => (0xc6, 0x28, 0x28),
        "PARTIAL" => (0xef, 0x6c, 0x00),
        "ERROR" => (0x6a, 0x1b, 0x9a),
        _ => (0x54, 0x6e, 0x7a),
    }
}

/// Render `html` and check it as the module documentation says; `charts` is how many charts
/// the page must have at least.
fn check_in_browser(html: &Path, name: &str, verdict: &str, charts: usize) -> String {
    let page = browser::render(html, name);
    assert!(
        page.console.is_empty(),
        "{name}: console messages: {:#?}",
        page.console
    );
    assert!(
        page.fetches.is_empty(),
        "{name}: the page fetched {:?}",
        page.fetches
    );
    assert!(
        page.dom
            .contains(&format!("<h1 id=\"verdict\">{verdict}</h1>")),
        "{name}: verdict {verdict} not at the top:\n{}",
        &page.dom[..page.dom.len().min(3000)]
    );
    let svgs = browser::charts(&page.dom);
    assert!(svgs.len() >= charts, "{name}: {} charts", svgs.len());
    for (i, svg) in svgs.iter().enumerate() {
        assert!(
            browser::has_data_line(svg),
            "{name}: chart {i} draws no data line"
        );
    }
    let banner = browser::pixels_of(&page.screenshot, banner_rgb(verdict));
    assert!(
        banner > 10_000,
        "{name}: the {verdict} banner is not in the screenshot ({banner} pixels): {}",
        page.screenshot.display()
    );
    page.dom
}

#[test]
fn stress_timeline_and_html_show_the_crashes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), "shared");
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let (code, output) = run(&[
        "stress",
        sc.to_str().unwrap(),
        "--crash-dir",
        dir.path().to_str().unwrap(),
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{output}");
    let doc = read_json(&json, &output);
    let t = &doc["timeline"];
    assert!(t["interval_s"].as_f64().unwrap() > 0.0, "{t}");
    // Every success and error of the run is in exactly one interval.
    for (p, tp) in doc["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .zip(t["pipelines"].as_array().unwrap())
    {
        assert_eq!(p["name"], tp["name"]);
        let sum = |k: &str| -> u64 {
            tp["intervals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i[k].as_u64().unwrap())
                .sum()
        };
        assert_eq!(sum("ok"), p["ok"].as_u64().unwrap(), "{tp}");
        assert_eq!(sum("errors"), p["errors"].as_u64().unwrap(), "{tp}");
    }
    let events = t["events"].as_array().unwrap();
    let of_kind = |k: &str| events.iter().filter(|e| e["kind"] == k).collect::<Vec<_>>();
    let crashes = of_kind("crash");
    let signature = doc["crashes"][0]["signature"].as_str().unwrap();
    assert!(!crashes.is_empty(), "{t}");
    assert_eq!(crashes[0]["signature"], signature);
    let counted: u64 = doc["crashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(crashes.len() as u64, counted, "one event per crash: {t}");
    assert_eq!(
        of_kind("restart").len(),
        doc["restarts"].as_array().unwrap().len(),
        "{t}"
    );
    assert!(!of_kind("target_exited").is_empty(), "{t}");

    let dom = check_in_browser(&html, "stress", "FAIL", 3);
    // The crash marker is labelled with its signature (as far as a label goes).
    let head: String = signature.chars().take(30).collect();
    let escaped = head
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(dom.contains(&escaped), "no `{head}` label in the page");
}

#[test]
fn compare_html_puts_both_builds_on_the_same_axes() {
    let dir = tempfile::tempdir().unwrap();
    let sim = |dispatch: &str| {
        format!(
            "'{}' sim-serve --listen 127.0.0.1:{{port}} --dispatch {dispatch}",
            racegate()
        )
    };
    let (json, html) = (dir.path().join("c.json"), dir.path().join("c.html"));
    let (code, output) = run(&[
        "compare",
        "--a",
        &sim("shared"),
        "--b",
        &sim("gated"),
        "--label-a",
        "shared",
        "--label-b",
        "gated",
        "--duration",
        "2s",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{output}");
    let doc = read_json(&json, &output);
    assert_eq!(doc["winner"], "b", "{output}");
    // A comparison has no verdict of its own: not every run passed, so the page says FAIL
    // and names the winner.
    let dom = check_in_browser(&html, "compare", "FAIL", 4);
    assert!(dom.contains("winner: B (gated)"), "no winner line");
    // Both builds' lines are in the same throughput chart (A's latency may have no point: it
    // can crash before its first success).
    let charts = browser::charts(&dom);
    let throughput = charts
        .iter()
        .find(|c| c.contains("throughput"))
        .expect("a throughput chart");
    for (side, color) in [("A", "#1F77B4"), ("B", "#FF7F0E")] {
        assert!(
            throughput.contains(&format!("stroke=\"{color}\"")),
            "no {side} line in the throughput chart"
        );
    }
}

#[test]
fn demo_html_has_one_panel_per_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("d.json"), dir.path().join("d.html"));
    let (code, output) = run(&[
        "demo",
        "--duration",
        "2s",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{output}");
    let dom = check_in_browser(&html, "demo", "PASS", 9);
    for mode in ["shared", "streams", "gated"] {
        assert!(
            dom.contains(&format!("<section class=\"mode\" id=\"mode-{mode}\">")),
            "no panel for {mode}"
        );
    }
}

/// The control: the checks above do fail. A page with a script error, a console message and
/// a fetch is caught on all three counts.
#[test]
fn the_browser_checks_catch_console_errors_and_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        r#"<!DOCTYPE html><html><body><h1 id="verdict">PASS</h1>
<img src="http://example.invalid/pixel.png">
<script>console.error("boom"); undefinedFunction();</script></body></html>"#,
    )
    .unwrap();
    let got = browser::render(&page, "control");
    assert!(
        got.console.iter().any(|l| l.contains("boom")),
        "{:#?}",
        got.console
    );
    assert!(
        got.console.iter().any(|l| l.contains("undefinedFunction")),
        "{:#?}",
        got.console
    );
    assert!(
        !got.fetches.is_empty() && got.fetches.iter().all(|h| h == "example.invalid"),
        "the image fetch was not seen: {:?}",
        got.fetches
    );
    assert!(browser::charts(&got.dom).is_empty());
    assert_eq!(browser::pixels_of(&got.screenshot, banner_rgb("PASS")), 0);
}
