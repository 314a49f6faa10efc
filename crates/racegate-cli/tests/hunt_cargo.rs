//! `racegate hunt` end to end on the Rust fixtures: the real binary drives real `cargo test`
//! and `cargo nextest` runs of `fixtures/sim-gpu-suite` and `fixtures/clean-suite`.
//!
//! The fixtures build into `target/fixtures` (not the workspace's own target dir, whose lock
//! the outer `cargo test` may hold). cargo-nextest is provisioned by the tests themselves
//! (`common/tools.rs`) when the machine lacks it.

use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

#[path = "common/tools.rs"]
#[allow(dead_code)]
mod tools;

use tools::workspace as root;

fn manifest(fixture: &str) -> String {
    root()
        .join("fixtures")
        .join(fixture)
        .join("Cargo.toml")
        .display()
        .to_string()
}

fn racegate() -> Command {
    tools::racegate_on_rust_fixtures(Duration::from_secs(420))
}

fn report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn finds_exactly_the_two_tests_sharing_the_default_stream_and_verifies_the_fix() {
    let _one = tools::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    let out = racegate()
        .args(["hunt", "--runs", "3", "--jobs", "4"])
        .args(["--budget", "4m", "--verify", "--json"])
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
    // The fix names its group, not a GPU the suite may not have.
    assert!(
        stdout.contains("let _guard = racegate::test_guard(\"racegate-conflict-1\");"),
        "{stdout}"
    );

    let r = report(&json);
    assert_eq!(r["schema"], "racegate.hunt.v1");
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["partial"], false);
    assert_eq!(r["runner"], "cargo");
    assert_eq!(r["tests"], 30);
    assert_eq!(r["verdict"], "races_found");
    assert_eq!(r["test_timeout_derived"], true);
    let findings = r["findings"].as_array().unwrap();
    assert!(
        findings.iter().all(|f| f["classification"] == "race"),
        "nothing here fails alone: {findings:#?}"
    );
    let pair = serde_json::json!([
        "sim_gpu_suite attention::fused_softmax_on_default_stream",
        "sim_gpu_suite sampling::top_k_on_default_stream"
    ]);
    let f = findings
        .iter()
        .find(|f| f["kind"] == "crash")
        .expect("the abort");
    // The control: without serialization the binary aborts, with the two tests in flight.
    assert!(f["seen_in_runs"].as_u64().unwrap() >= 1);
    assert_eq!(f["identity"]["process"], "sim_gpu_suite");
    assert_eq!(f["identity"]["message"], "signal: SIGABRT");
    let flight = f["in_flight"].as_array().unwrap();
    for t in pair.as_array().unwrap() {
        assert!(flight.contains(t), "{flight:?}");
    }
    assert_eq!(f["conflict_set"], pair);
    // The sim writes Metal's assertion line to fd 2 before aborting: the signature has it.
    let signature = f["signature"].as_str().unwrap();
    assert!(signature.contains("assertion"), "{signature}");
    let b = &f["bisection"];
    assert!(b["probes"].as_f64().unwrap() < 4.0 * 30f64.log2(), "{b}");
    assert!(b["candidates"].as_u64().unwrap() <= 30);
    assert!(f["reproduction"]["reproduced"].as_u64().unwrap() >= 1);
    assert_eq!(f["minimality"]["minimal"], true, "{}", f["minimality"]);
    assert_eq!(f["minimality"]["members"].as_array().unwrap().len(), 2);
    // One group, each test in it once; the serialization, applied, holds.
    assert_eq!(r["groups"].as_array().unwrap().len(), 1);
    assert_eq!(r["groups"][0]["tests"], pair);
    assert_eq!(r["verify"]["passed"], true, "{}", r["verify"]);
    assert_eq!(r["verify"]["rate_after"]["k"], 0);
    let toml_text = r["fix"]["nextest_toml"].as_str().unwrap();
    let parsed: toml::Table = toml_text.parse().unwrap();
    assert!(parsed.contains_key("test-groups"));
    assert!(toml_text.contains("test(=sampling::top_k_on_default_stream)"));
}

#[test]
fn clean_suite_reports_no_race_and_says_what_that_rules_out() {
    let _one = tools::one_at_a_time();
    // `--json -`: the report on stdout, the summary on stderr.
    let out = racegate()
        .args(["hunt", "--runs", "4", "--jobs", "4", "-q", "--json", "-"])
        .args([
            "--",
            "cargo",
            "test",
            "--manifest-path",
            &manifest("clean-suite"),
        ])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let r: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    assert!(String::from_utf8_lossy(&out.stderr).contains("racegate hunt: CLEAN"));
    assert_eq!(r["verdict"], "clean");
    // The serial run, then the four parallel ones.
    let runs = r["suite_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    assert_eq!(runs[0]["round"], 0);
    assert!(r["findings"].as_array().unwrap().is_empty());
    assert!(r["fix"].as_object().unwrap().is_empty());
    let clean = &r["clean"];
    assert_eq!(clean["runs"], 4);
    assert_eq!(clean["jobs"], 4);
    assert!(clean["statement"]
        .as_str()
        .unwrap()
        .contains("would have shown with 95% probability"));
}

#[test]
fn nextest_isolates_processes_so_the_in_process_race_is_not_a_conflict_there() {
    let _one = tools::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    let mut cmd = racegate();
    tools::nextest().apply_assert(&mut cmd);
    cmd.args(["hunt", "--runs", "2", "--jobs", "4", "-q", "--json"])
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
    let _one = tools::one_at_a_time();
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
            "`--json /nonexistent/dir/h.json`: folder `/nonexistent/dir` does not exist",
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
    let _one = tools::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    let mut cmd = racegate();
    tools::nextest().apply_assert(&mut cmd);
    cmd.args(["hunt", "--runs", "3", "--jobs", "4", "-q"])
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
    let pair = serde_json::json!([
        "nextest-device-suite device::exclusive_download",
        "nextest-device-suite device::exclusive_upload"
    ]);
    // Whichever test loses the device is a finding of its own (same message, another test);
    // both come down to the same pair.
    let findings = r["findings"].as_array().unwrap();
    assert!(!findings.is_empty() && findings.len() <= 2, "{findings:#?}");
    for f in findings {
        assert_eq!(f["kind"], "failure");
        assert_eq!(f["classification"], "race", "{f:#}");
        assert!(f["signature"].as_str().unwrap().contains("device busy"));
        assert_eq!(f["conflict_set"], pair);
        assert_eq!(f["group"], "device");
    }
    // One group, named after the module the two share, applied through nextest's own test
    // groups (a tool config file): the fix holds.
    assert_eq!(r["groups"].as_array().unwrap().len(), 1);
    assert_eq!(r["groups"][0]["name"], "device");
    let toml_text = r["fix"]["nextest_toml"].as_str().unwrap();
    let parsed: toml::Table = toml_text.parse().unwrap();
    assert_eq!(
        parsed["test-groups"]["device"]["max-threads"].as_integer(),
        Some(1)
    );
    assert!(
        toml_text.contains("(binary_id(=nextest-device-suite) & test(=device::exclusive_upload))")
    );
    assert_eq!(r["verify"]["passed"], true, "{}", r["verify"]);
    assert!(r["verify"]["planned_runs"].as_u64().unwrap() >= 3);
}
