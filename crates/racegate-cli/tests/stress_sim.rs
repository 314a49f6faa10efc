//! `racegate stress` against the racegate-sim demo server (`racegate sim-serve`), end to end:
//! the real binary, real loopback ports, real crashes. Every run is bounded (1-2 s of load,
//! `timeout` on the process).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

mod sim_scenario;
mod sim_server;
use sim_scenario::managed_scenario;
use sim_server::Server;

struct Outcome {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

fn stress(args: &[&str], json_path: &Path) -> Outcome {
    let out = Command::cargo_bin("racegate")
        .unwrap()
        .arg("stress")
        .args(args)
        .arg("--json")
        .arg(json_path)
        .arg("--quiet")
        .timeout_output(Duration::from_secs(60));
    let json = std::fs::read_to_string(json_path)
        .map(|s| serde_json::from_str(&s).expect("valid JSON report"))
        .unwrap_or(Value::Null);
    Outcome {
        code: out.status.code().unwrap_or(-1),
        json,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

trait TimeoutOutput {
    fn timeout_output(&mut self, limit: Duration) -> std::process::Output;
}

impl TimeoutOutput for Command {
    /// Run with a hard bound: a hung run fails the test instead of hanging CI.
    fn timeout_output(&mut self, limit: Duration) -> std::process::Output {
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "racegate stress did not end within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // Polling a child's exit status; not synchronizing with it.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn crashes(json: &Value) -> Vec<(String, String)> {
    json["crashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["signature"].as_str().unwrap().to_string(),
                c["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn show(o: &Outcome) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}\njson:\n{:#}",
        o.code, o.stdout, o.stderr, o.json
    )
}

#[test]
fn gated_dispatch_passes_with_the_builtin_scenario() {
    let server = Server::start(&["--dispatch", "gated"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let md = dir.path().join("r.md");
    let junit = dir.path().join("r.xml");
    let o = stress(
        &[
            "--target",
            &server.url,
            "--duration",
            "1s",
            "--crash-dir",
            dir.path().to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        &json,
    );
    assert_eq!(o.code, 0, "{}", show(&o));
    assert_eq!(o.json["schema_version"], 1);
    assert_eq!(o.json["verdict"], "PASS");
    assert_eq!(o.json["ended_by"], "duration", "{}", show(&o));
    assert!(o.json["time_to_first_failure_s"].is_null());
    let names: Vec<&str> = o.json["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["text", "vision"]);
    for p in o.json["pipelines"].as_array().unwrap() {
        assert!(p["ok"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["errors"], 0, "{p}");
        assert!(
            p["latency_ms"]["p99"].as_f64().unwrap() >= p["latency_ms"]["p50"].as_f64().unwrap()
        );
        assert!(p["throughput_rps"].as_f64().unwrap() > 0.0);
    }
    assert!(crashes(&o.json).is_empty());
    assert!(o.stdout.contains("verdict: PASS"), "{}", o.stdout);
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("| text |") && md.contains("**PASS**"), "{md}");
    let junit = std::fs::read_to_string(junit).unwrap();
    assert!(
        junit.contains(r#"name="pipeline vision""#) && junit.contains(r#"failures="0""#),
        "{junit}"
    );
}

#[test]
fn shared_dispatch_fails_with_the_encoder_assertion_from_stderr_and_ips() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let sc = managed_scenario(
        dir.path(),
        "1500ms",
        &[
            "--dispatch",
            "shared",
            "--crash-dir",
            reports.to_str().unwrap(),
        ],
        "",
    );
    let o = stress(
        &[
            sc.to_str().unwrap(),
            "--crash-dir",
            reports.to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_eq!(o.code, 1, "{}", show(&o));
    assert_eq!(o.json["verdict"], "FAIL");
    let crashes = crashes(&o.json);
    let (sig, source) = crashes
        .iter()
        .find(|(s, _)| s.starts_with("assertion:"))
        .unwrap_or_else(|| panic!("no assertion crash: {}", show(&o)));
    assert!(source.contains("stderr"), "{}", show(&o));
    assert!(source.contains("crash_report"), "{}", show(&o));
    assert!(source.contains("exit_status"), "{}", show(&o));
    assert!(!sig.contains("encodeSignalEvent"), "{sig}");
    assert!(o.json["time_to_first_failure_s"].as_f64().is_some());
    let with_path = o.json["crashes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"].is_string());
    assert!(with_path.is_some(), "{}", show(&o));
}

#[test]
fn streams_dispatch_fails_with_the_signal_event_assertion() {
    let dir = tempfile::tempdir().unwrap();
    let sc = managed_scenario(
        dir.path(),
        "1500ms",
        &[
            "--dispatch",
            "streams",
            "--crash-dir",
            dir.path().to_str().unwrap(),
        ],
        "",
    );
    let o = stress(
        &[
            sc.to_str().unwrap(),
            "--crash-dir",
            dir.path().to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_eq!(o.code, 1, "{}", show(&o));
    let crashes = crashes(&o.json);
    assert!(
        crashes
            .iter()
            .any(|(s, src)| s.contains("encodeSignalEvent")
                && src.contains("stderr")
                && src.contains("crash_report")),
        "{}",
        show(&o)
    );
}

#[test]
fn injected_500s_without_a_crash_are_partial() {
    let dir = tempfile::tempdir().unwrap();
    let sc = managed_scenario(
        dir.path(),
        "1500ms",
        &["--dispatch", "gated", "--fail-every", "25"],
        "",
    );
    let o = stress(
        &[
            sc.to_str().unwrap(),
            "--crash-dir",
            dir.path().to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_eq!(o.code, 3, "{}", show(&o));
    assert_eq!(o.json["verdict"], "PARTIAL");
    let by_kind: u64 = o.json["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["errors_by_kind"]["status_500"].as_u64().unwrap_or(0))
        .sum();
    assert!(by_kind > 0, "{}", show(&o));
    assert!(crashes(&o.json).is_empty(), "{}", show(&o));
}

#[test]
fn wrong_answers_under_concurrency_fail_by_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let sc = managed_scenario(dir.path(), "1500ms", &["--dispatch", "corrupt"], "");
    let o = stress(
        &[
            sc.to_str().unwrap(),
            "--crash-dir",
            dir.path().to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_eq!(o.code, 1, "{}", show(&o));
    let failed: u64 = o.json["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["failed_checks"].as_u64().unwrap())
        .sum();
    assert!(failed > 0, "{}", show(&o));
    assert!(crashes(&o.json).is_empty(), "{}", show(&o));
    assert!(o.json["reason"].as_str().unwrap().contains("failed check"));
}

#[test]
fn a_managed_target_that_crashes_is_restarted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sc = managed_scenario(
        dir.path(),
        "1500ms",
        &["--dispatch", "shared"],
        "restart = true",
    );
    let o = stress(
        &[
            sc.to_str().unwrap(),
            "--crash-dir",
            dir.path().to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_eq!(o.code, 1, "{}", show(&o));
    let restarts = o.json["restarts"].as_array().unwrap();
    assert!(!restarts.is_empty(), "{}", show(&o));
    // The load waits while the target restarts, so every restart but one the run's end cut
    // short answers its health check again.
    let (last, earlier) = restarts.split_last().unwrap();
    assert!(
        earlier.iter().all(|r| r["time_to_recover_s"].is_f64()),
        "{}",
        show(&o)
    );
    assert!(
        earlier.len() + usize::from(last["time_to_recover_s"].is_f64()) >= 1,
        "{}",
        show(&o)
    );
    let count: u64 = o.json["crashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert!(count as usize >= restarts.len(), "{}", show(&o));
}

#[test]
fn an_unhealthy_target_is_an_error_and_nothing_is_hammered() {
    // Bind and hold a port that answers nothing useful: connection refused after close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let o = stress(
        &[
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--duration",
            "1s",
            "--crash-dir",
            dir.path().to_str().unwrap(),
            "--crash-dir",
            "/nonexistent-racegate-crash-folder",
        ],
        &json,
    );
    assert_eq!(o.code, 2, "{}", show(&o));
    assert_eq!(o.json["verdict"], "ERROR");
    assert_eq!(o.json["requests"], 0);
    assert!(!o.json["probe_failures"].as_array().unwrap().is_empty());
    // A named crash folder that does not exist is reported, not silently ignored.
    let warnings = o.json["warnings"].to_string();
    assert!(
        warnings.contains("/nonexistent-racegate-crash-folder"),
        "{}",
        show(&o)
    );
}

#[test]
fn a_target_whose_probes_get_500_is_an_error() {
    let server = Server::start(&["--dispatch", "gated", "--fail-every", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let o = stress(
        &[
            "--target",
            &server.url,
            "--duration",
            "1s",
            "--crash-dir",
            dir.path().to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_eq!(o.code, 2, "{}", show(&o));
    assert!(o.stdout.contains("status_500"), "{}", show(&o));
}

/// The assertion crash of `shared` dispatch, seen on stderr and in a `.ips` report.
fn assert_shared_crash_attributed(o: &Outcome) {
    assert_eq!(o.code, 1, "{}", show(o));
    assert_eq!(o.json["verdict"], "FAIL", "{}", show(o));
    let (_, source) = crashes(&o.json)
        .into_iter()
        .find(|(s, _)| s.starts_with("assertion:"))
        .unwrap_or_else(|| panic!("no assertion crash: {}", show(o)));
    assert!(source.contains("stderr"), "{}", show(o));
    assert!(source.contains("crash_report"), "{}", show(o));
}

#[test]
fn a_crashed_target_that_is_not_restarted_ends_the_run_early() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let sc = managed_scenario(
        dir.path(),
        "1500ms",
        &[
            "--dispatch",
            "shared",
            "--crash-dir",
            reports.to_str().unwrap(),
        ],
        "",
    );
    let o = stress(
        &[
            sc.to_str().unwrap(),
            "--duration",
            "30s",
            "--crash-dir",
            reports.to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_shared_crash_attributed(&o);
    assert_eq!(o.json["ended_by"], "target_exited", "{}", show(&o));
    assert!(
        o.json["duration_s"].as_f64().unwrap() < 30.0,
        "{}",
        show(&o)
    );
    assert!(
        o.stdout.contains("run ended by: the target exited"),
        "{}",
        show(&o)
    );
    // The verdict is computed from the crash, not from how the run ended.
    assert!(
        o.json["reason"].as_str().unwrap().contains("crash"),
        "{}",
        show(&o)
    );
}

#[test]
fn keep_going_runs_the_full_duration_after_the_target_exited() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let sc = managed_scenario(
        dir.path(),
        "1500ms",
        &[
            "--dispatch",
            "shared",
            "--crash-dir",
            reports.to_str().unwrap(),
        ],
        "",
    );
    let o = stress(
        &[
            sc.to_str().unwrap(),
            "--keep-going",
            "--crash-dir",
            reports.to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_shared_crash_attributed(&o);
    assert_eq!(o.json["ended_by"], "duration", "{}", show(&o));
    // Workers stop at the deadline, not before: the load phase lasts at least `duration`.
    assert!(
        o.json["duration_s"].as_f64().unwrap() >= 1.5,
        "{}",
        show(&o)
    );
    let refused: u64 = o.json["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["errors_by_kind"]["connect_refused"].as_u64().unwrap_or(0))
        .sum();
    assert!(refused > 0, "the dead target was hammered: {}", show(&o));
}

#[test]
fn stop_on_exit_false_in_the_scenario_runs_the_full_duration() {
    let dir = tempfile::tempdir().unwrap();
    let sc = managed_scenario(
        dir.path(),
        "1500ms",
        &["--dispatch", "shared"],
        "stop_on_exit = false",
    );
    let o = stress(
        &[
            sc.to_str().unwrap(),
            "--crash-dir",
            dir.path().to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_eq!(o.code, 1, "{}", show(&o));
    assert_eq!(o.json["ended_by"], "duration", "{}", show(&o));
}

#[test]
fn an_unmanaged_target_that_stops_answering_ends_the_run_early() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--dispatch", "shared"]);
    let o = stress(
        &[
            "--target",
            &server.url,
            "--duration",
            "30s",
            "--crash-dir",
            dir.path().to_str().unwrap(),
        ],
        &dir.path().join("r.json"),
    );
    assert_eq!(o.code, 1, "{}", show(&o));
    assert_eq!(o.json["ended_by"], "target_unresponsive", "{}", show(&o));
    assert!(
        o.json["duration_s"].as_f64().unwrap() < 30.0,
        "{}",
        show(&o)
    );
    assert!(
        crashes(&o.json)
            .iter()
            .any(|(_, source)| source == "unresponsive"),
        "{}",
        show(&o)
    );
}
