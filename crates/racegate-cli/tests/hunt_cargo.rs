//! `racegate hunt` end to end on the Rust fixtures: the real binary drives real `cargo test`
//! and `cargo nextest` runs of `fixtures/sim-gpu-suite` and `fixtures/clean-suite`.
//!
//! The fixtures build into `target/fixtures` (not the workspace's own target dir, whose lock
//! the outer `cargo test` may hold).

use std::path::PathBuf;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn manifest(fixture: &str) -> String {
    root()
        .join("fixtures")
        .join(fixture)
        .join("Cargo.toml")
        .display()
        .to_string()
}

fn racegate() -> Command {
    let mut cmd = Command::cargo_bin("racegate").unwrap();
    cmd.env("CARGO_TARGET_DIR", root().join("target/fixtures"))
        .env_remove("RUSTFLAGS")
        .timeout(Duration::from_secs(240));
    cmd
}

fn report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn finds_exactly_the_two_tests_sharing_the_default_stream_and_verifies_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    let out = racegate()
        .args([
            "hunt",
            "--runs",
            "3",
            "--jobs",
            "4",
            "--test-timeout",
            "30s",
        ])
        .args(["--budget", "3m", "--verify", "--json"])
        .arg(&json)
        .args([
            "--",
            "cargo",
            "test",
            "--manifest-path",
            &manifest("sim-gpu-suite"),
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("RACES FOUND"), "{stdout}");
    assert!(
        stdout.contains("let _gpu = racegate::test_guard(\"gpu\");"),
        "{stdout}"
    );

    let r = report(&json);
    assert_eq!(r["schema"], "racegate.hunt.v1");
    assert_eq!(r["runner"], "cargo");
    assert_eq!(r["tests"], 30);
    assert_eq!(r["verdict"], "races_found");
    // The control: without serialization the suite crashes.
    let findings = r["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f["kind"], "crash");
    assert_eq!(f["classification"], "race");
    assert!(f["seen_in_runs"].as_u64().unwrap() >= 1);
    assert_eq!(
        f["conflict_set"],
        serde_json::json!([
            "attention::fused_softmax_on_default_stream",
            "sampling::top_k_on_default_stream"
        ])
    );
    // The sim writes Metal's assertion line to fd 2 before aborting, so the signature is the
    // assertion text, not just the signal.
    let signature = f["signature"].as_str().unwrap();
    assert!(signature.contains("assertion"), "{signature}");
    let b = &f["bisection"];
    assert!(b["probes"].as_f64().unwrap() < 4.0 * 30f64.log2(), "{b}");
    assert!(b["runs"].as_u64().unwrap() >= b["probes"].as_u64().unwrap());
    assert!(f["reproduction"]["reproduced"].as_u64().unwrap() >= 1);
    // The serialization, applied, holds.
    assert_eq!(r["verify"]["passed"], true, "{}", r["verify"]);
    let toml_text = r["fix"]["nextest_toml"].as_str().unwrap();
    let parsed: toml::Table = toml_text.parse().unwrap();
    assert!(parsed.contains_key("test-groups"));
    assert!(toml_text.contains("test(=sampling::top_k_on_default_stream)"));
}

#[test]
fn clean_suite_reports_no_race_over_k_runs() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    racegate()
        .args([
            "hunt",
            "--runs",
            "4",
            "--jobs",
            "4",
            "--test-timeout",
            "30s",
            "-q",
            "--json",
        ])
        .arg(&json)
        .args([
            "--",
            "cargo",
            "test",
            "--manifest-path",
            &manifest("clean-suite"),
        ])
        .assert()
        .code(0);
    let r = report(&json);
    assert_eq!(r["verdict"], "clean");
    assert_eq!(r["suite_runs"].as_array().unwrap().len(), 4);
    assert!(r["findings"].as_array().unwrap().is_empty());
    assert!(r["fix"].as_object().unwrap().is_empty());
}

#[test]
fn nextest_isolates_processes_so_the_in_process_race_is_not_a_conflict_there() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    racegate()
        .args([
            "hunt",
            "--runs",
            "2",
            "--jobs",
            "4",
            "--test-timeout",
            "30s",
            "-q",
            "--json",
        ])
        .arg(&json)
        .args([
            "--",
            "cargo",
            "nextest",
            "run",
            "--manifest-path",
            &manifest("sim-gpu-suite"),
        ])
        .assert()
        .code(0);
    let r = report(&json);
    assert_eq!(r["runner"], "nextest");
    assert_eq!(r["tests"], 30);
    assert_eq!(r["verdict"], "clean");
}

#[test]
fn bad_input_is_a_usage_error_naming_the_problem() {
    racegate()
        .args(["hunt", "--", "make", "test"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--runner auto"));
    racegate()
        .args([
            "hunt",
            "--json",
            "/nonexistent/dir/h.json",
            "--",
            "cargo",
            "test",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--json `/nonexistent/dir/h.json`: directory `/nonexistent/dir` does not exist",
        ));
    racegate()
        .args([
            "hunt",
            "--runner",
            "pytest",
            "--",
            "no-such-test-runner-xyz",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "could not start `no-such-test-runner-xyz",
        ));
    racegate()
        .args(["hunt", "--test-timeout", "0s", "--", "cargo", "test"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--test-timeout"));
    racegate()
        .args([
            "hunt",
            "--test-timeout",
            "5m",
            "--budget",
            "1m",
            "--",
            "cargo",
            "test",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("must not exceed --budget"));
    racegate()
        .args([
            "hunt",
            "--runs",
            "1",
            "--",
            "cargo",
            "test",
            "--manifest-path",
            "/nonexistent/Cargo.toml",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "listing tests with `cargo test --manifest-path /nonexistent/Cargo.toml",
        ));
}

#[test]
fn nextest_cross_process_conflict_is_found_and_the_emitted_test_group_holds() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    racegate()
        .args([
            "hunt",
            "--runs",
            "3",
            "--jobs",
            "4",
            "--test-timeout",
            "30s",
            "-q",
        ])
        .args(["--verify", "--json"])
        .arg(&json)
        .args(["--", "cargo", "nextest", "run", "--manifest-path"])
        .arg(manifest("nextest-device-suite"))
        .assert()
        .code(1);
    let r = report(&json);
    assert_eq!(r["runner"], "nextest");
    assert_eq!(r["tests"], 12);
    assert_eq!(r["verdict"], "races_found");
    let findings = r["findings"].as_array().unwrap();
    // Whichever test loses the device, it is one failure: same message, one finding.
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f["kind"], "failure");
    assert_eq!(f["classification"], "race");
    assert!(f["signature"].as_str().unwrap().contains("device busy"));
    assert_eq!(
        f["conflict_set"],
        serde_json::json!([
            "nextest-device-suite device::exclusive_download",
            "nextest-device-suite device::exclusive_upload"
        ])
    );
    assert!(r["fix"]["nextest_toml"]
        .as_str()
        .unwrap()
        .contains("(binary_id(=nextest-device-suite) & test(=device::exclusive_upload))"));
    // Applied through nextest's own test groups (a tool config file), the fix holds.
    assert_eq!(r["verify"]["passed"], true, "{}", r["verify"]);
}
