//! `racegate demo` end to end: the real binary runs the real sim server (itself, as
//! `sim-serve`) in each dispatch mode on loopback ports.
#![cfg(unix)]

use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

mod common;
use common::alive;

fn pids_of(mode: &Value) -> Vec<u64> {
    mode["target_pids"]
        .as_array()
        .expect("target_pids")
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

#[test]
fn demo_tells_the_story_and_leaves_no_child() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("demo.json");
    let out = assert_cmd::Command::cargo_bin("racegate")
        .unwrap()
        // The racing modes end at their first crash; 6 s leaves room for the dispatches to
        // overlap on a loaded 2-core machine (2 s sometimes saw none there).
        .args(["demo", "--duration", "6s", "--quiet", "--json"])
        .arg(&json)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("as expected"), "{stdout}");
    assert!(stdout.contains("the cost of the fix"), "{stdout}");

    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let modes = doc["modes"].as_array().unwrap();
    let got: Vec<(&str, &str)> = modes
        .iter()
        .map(|m| {
            (
                m["dispatch"].as_str().unwrap(),
                m["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("shared", "FAIL"), ("streams", "FAIL"), ("gated", "PASS")]
    );
    for m in &modes[..2] {
        let crashes = m["crashes"].as_array().unwrap();
        assert!(!crashes.is_empty(), "{m}");
        // The sim's Metal-style assertion, normalized the same way from every channel: its
        // stderr line, its exit signal and its `.ips` report group under one signature.
        for c in crashes {
            assert!(
                c["signature"].as_str().unwrap().starts_with("assertion: "),
                "{c}"
            );
        }
        let sources: Vec<&str> = crashes[0]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for source in ["stderr", "exit_status", "crash_report"] {
            assert!(sources.contains(&source), "{source} missing in {m}");
        }
        // The crashed server is not restarted: its mode ends early, the crash still attributed.
        assert_eq!(m["ended_by"], "target_exited", "{m}");
    }
    assert!(modes[2]["crashes"].as_array().unwrap().is_empty());
    assert_eq!(modes[2]["ended_by"], "duration", "{}", modes[2]);
    // Every stress report field is there, beside `dispatch`.
    for key in [
        "schema_version",
        "duration_s",
        "time_to_first_failure_s",
        "pipelines",
    ] {
        assert!(modes[0].get(key).is_some(), "missing `{key}`");
    }
    let cost = &doc["cost_of_fix"];
    assert!(cost["p50_alone_ms"].as_f64().unwrap() > 0.0, "{cost}");
    assert!(cost["p50_under_load_ms"].as_f64().unwrap() > 0.0, "{cost}");
    assert_eq!(doc["exit_code"], 0);

    for m in modes {
        let pids = pids_of(m);
        assert!(!pids.is_empty(), "no sim server recorded for {m}");
        for pid in pids {
            assert!(
                !alive(pid),
                "sim server {pid} ({}) outlived the demo",
                m["dispatch"]
            );
        }
    }
}

#[test]
fn ctrl_c_stops_the_demo_and_its_server() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("demo.json");
    let child = Command::cargo_bin("racegate")
        .unwrap()
        .args(["demo", "--dispatch", "gated", "--duration", "60s", "--json"])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (server, status) = common::interrupt_once_hammering(child, "sim server started (pid ");
    assert_eq!(status.code(), Some(130));
    assert!(
        !alive(server),
        "sim server {server} outlived an interrupted demo"
    );

    // The report is still written, and says what happened.
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["interrupted"], true);
    assert_eq!(doc["modes"][0]["verdict"], "ABORTED");
    assert_eq!(pids_of(&doc["modes"][0]), [server]);
}

#[test]
fn bad_flags_are_usage_errors() {
    for (args, needle) in [
        (&["demo", "--duration", "0s"][..], "--duration"),
        (&["demo", "--dispatch", "corrupt"][..], "--dispatch"),
        (
            &["demo", "--json", "/nonexistent-dir/x.json"][..],
            "/nonexistent-dir",
        ),
    ] {
        let out = assert_cmd::Command::cargo_bin("racegate")
            .unwrap()
            .args(args)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
