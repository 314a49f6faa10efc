//! `racegate compare` end to end: the real binary starts two builds of the real sim server
//! (itself, as `sim-serve`) on loopback ports and compares them.
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;

use serde_json::Value;

mod common;
use common::alive;

fn racegate() -> String {
    assert_cmd::cargo::cargo_bin("racegate")
        .display()
        .to_string()
}

fn sim(dispatch: &str) -> String {
    // Quoted like a user would, to go through the command-line splitter.
    format!(
        "'{}' sim-serve --listen 127.0.0.1:{{port}} --dispatch {dispatch}",
        racegate()
    )
}

fn run_compare(args: &[&str], json: &Path) -> (Option<i32>, String, Value) {
    let out = assert_cmd::Command::cargo_bin("racegate")
        .unwrap()
        .arg("compare")
        .args(args)
        .arg("--quiet")
        .arg("--json")
        .arg(json)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc =
        serde_json::from_slice(&std::fs::read(json).unwrap_or_default()).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.code(), stdout, doc)
}

/// Every target pid the report lists is gone.
fn assert_no_orphans(doc: &Value) {
    let mut n = 0;
    for side in ["a", "b"] {
        for run in doc[side]["runs"].as_array().unwrap() {
            for pid in run["target_pids"].as_array().unwrap() {
                let pid = pid.as_u64().unwrap();
                n += 1;
                assert!(!alive(pid), "build {side}'s server {pid} outlived compare");
            }
        }
    }
    assert!(n >= 2, "no target pids recorded: {doc}");
}

#[test]
fn the_build_that_never_crashed_wins() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("compare.json");
    let (a, b) = (sim("shared"), sim("gated"));
    let (code, stdout, doc) = run_compare(
        &[
            "--a",
            &a,
            "--b",
            &b,
            "--label-a",
            "shared",
            "--label-b",
            "gated",
            "--duration",
            "2s",
        ],
        &json,
    );
    assert_eq!(code, Some(1), "shared fails, so not both pass:\n{stdout}");
    assert_eq!(doc["winner"], "b", "{stdout}");
    assert_eq!(doc["winner_label"], "gated");
    let reason = doc["reason"].as_str().unwrap();
    assert!(reason.contains("gated never crashed"), "{reason}");
    assert!(stdout.contains("winner: B (gated)"), "{stdout}");
    assert_eq!(doc["a"]["summary"]["verdicts"][0], "FAIL");
    assert_eq!(doc["b"]["summary"]["verdicts"][0], "PASS");
    let sig = doc["a"]["summary"]["signatures"][0]["signature"]
        .as_str()
        .unwrap();
    assert!(sig.starts_with("assertion: "), "{sig}");
    assert_no_orphans(&doc);
}

#[test]
fn identical_builds_have_no_clear_winner() {
    // An open-loop rate fixes each build's throughput, so the only differences left are noise.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("steady.toml");
    std::fs::write(
        &scenario,
        r#"
target = "http://127.0.0.1"   # the port is racegate's
duration = "2s"

[[pipeline]]
name = "text"
workers = 2
rate = 40
method = "POST"
path = "/v1/chat/completions"
json = { model = "default", messages = [{ role = "user", content = "Say hi" }], max_tokens = 4 }
check = "consistent"
"#,
    )
    .unwrap();
    let json = dir.path().join("compare.json");
    let build = sim("gated");
    let (code, stdout, doc) = run_compare(
        &[
            scenario.to_str().unwrap(),
            "--a",
            &build,
            "--b",
            &build,
            "--label-a",
            "first",
            "--label-b",
            "second",
            "--runs",
            "2",
        ],
        &json,
    );
    assert_eq!(code, Some(0), "both pass:\n{stdout}");
    assert_eq!(doc["winner"], Value::Null, "{stdout}");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap()
            .starts_with("no clear winner"),
        "{}",
        doc["reason"]
    );
    assert!(stdout.contains("winner: none"), "{stdout}");
    // Alternation: two runs each, both recorded.
    assert_eq!(doc["a"]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(doc["b"]["runs"].as_array().unwrap().len(), 2);
    assert_no_orphans(&doc);
}

#[test]
fn bad_commands_are_usage_errors_naming_the_flag() {
    for (a, needle) in [
        ("", "the command is empty"),
        ("./server | tee log", "needs a shell"),
        ("'./server", "never closed"),
        ("/nonexistent/racegate-build --port {port}", "not found"),
    ] {
        let out = assert_cmd::Command::cargo_bin("racegate")
            .unwrap()
            .args(["compare", "--a", a, "--b", "sh"])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--a") && err.contains(needle), "{a:?}: {err}");
    }
    let out = assert_cmd::Command::cargo_bin("racegate")
        .unwrap()
        .args([
            "compare",
            "--a",
            "sh",
            "--b",
            "sh",
            "--label-a",
            "same",
            "--label-b",
            "same",
        ])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_remote_scenario_target_is_refused_with_a_hint_that_compare_accepts() {
    // Nothing is started or contacted: the scenario is refused while it is validated.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("remote.toml");
    std::fs::write(
        &scenario,
        "target = \"http://192.0.2.10:8080\"\nduration = \"1s\"\n\n[[pipeline]]\nname = \"health\"\nmethod = \"GET\"\npath = \"/healthz\"\n",
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("racegate")
        .unwrap()
        .args([
            "compare",
            scenario.to_str().unwrap(),
            "--a",
            "sh",
            "--b",
            "sh",
        ])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
    // The hint names a flag compare really has.
    let help = assert_cmd::Command::cargo_bin("racegate")
        .unwrap()
        .args(["compare", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--allow-remote"));
}

#[test]
fn ctrl_c_stops_the_comparison_and_its_build() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("compare.json");
    let build = sim("gated");
    let child = Command::cargo_bin("racegate")
        .unwrap()
        .args([
            "compare",
            "--a",
            &build,
            "--b",
            &build,
            "--duration",
            "60s",
            "--json",
        ])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (server, status) = common::interrupt_once_hammering(child, "target started (pid ");
    assert_eq!(status.code(), Some(130));
    assert!(
        !alive(server),
        "build A's server {server} outlived an interrupted compare"
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["interrupted"], true);
    assert_eq!(doc["winner"], Value::Null);
    assert_eq!(doc["a"]["runs"][0]["verdict"], "ABORTED");
    assert_eq!(
        doc["b"]["runs"].as_array().unwrap().len(),
        0,
        "B never started"
    );
}
