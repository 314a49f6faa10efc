//! `racegate::test_guard` proven on a real suite (fixtures/test-guard-suite) under both runners:
//! `cargo test` (GPU tests are threads of one process) and `cargo nextest run` (each test is
//! its own process). GPU tests must never overlap; the control run without the guard must
//! show them overlapping, so the check can fail.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Run the suite with `runner` args; return the largest number of GPU tests inside at once and
/// the GPU tests that ran.
fn run_suite(runner: (&[&str], &[&str]), guard: bool) -> (usize, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("events.log");
    let ws = workspace();
    let mut cmd = Command::new(cargo());
    cmd.args(runner.0)
        .arg("--manifest-path")
        .arg(ws.join("fixtures/test-guard-suite/Cargo.toml"))
        .args(runner.1)
        .env("CARGO_TARGET_DIR", ws.join("target/fixtures"))
        .env("RACEGATE_DIR", tmp.path().join("locks"))
        .env("GUARD_SUITE_LOG", &log)
        .env("RACEGATE_TEST_GUARD_TIMEOUT", "60s")
        .env_remove("RUSTFLAGS");
    if guard {
        // Every GPU test holds this long: with the guard nobody else can be inside.
        cmd.env("GUARD_SUITE_HOLD_MS", "150");
    } else {
        // Without it, tests wait (up to 2 s) to meet one another: generous, so that processes
        // started far apart on a loaded machine still overlap in the control.
        cmd.env("GUARD_SUITE_NO_GUARD", "1")
            .env("GUARD_SUITE_HOLD_MS", "2000");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{runner:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let (mut inside, mut max, mut ran) = (Vec::<String>::new(), 0, Vec::new());
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("enter", n)) if n.starts_with("gpu") => {
                inside.push(n.to_owned());
                ran.push(n.to_owned());
                max = max.max(inside.len());
            }
            Some(("leave", n)) => inside.retain(|x| x != n),
            _ => {}
        }
    }
    ran.sort();
    (max, ran)
}

type Runner = (&'static [&'static str], &'static [&'static str]);
const CARGO_TEST: Runner = (&["test", "-q"], &["--", "--test-threads=4"]);
const NEXTEST: Runner = (
    &["nextest", "run"],
    &[
        "--test-threads",
        "4",
        "--no-fail-fast",
        "--status-level",
        "none",
    ],
);

#[test]
fn gpu_tests_never_overlap_under_cargo_test_and_do_without_the_guard() {
    let (max, ran) = run_suite(CARGO_TEST, true);
    assert_eq!(ran, ["gpu_a", "gpu_b", "gpu_c", "gpu_d"]);
    assert_eq!(max, 1, "two GPU tests ran at once under cargo test");
    let (control, _) = run_suite(CARGO_TEST, false);
    assert!(
        control >= 2,
        "control: without the guard the GPU tests should overlap"
    );
}

#[test]
fn gpu_tests_never_overlap_under_nextest_and_do_without_the_guard() {
    let have_nextest = Command::new(cargo())
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_nextest {
        // CI installs it (.ci/install-deps); a developer machine may not have it.
        assert!(
            std::env::var_os("CI").is_none(),
            "cargo-nextest is required in CI"
        );
        eprintln!("skipped: `cargo nextest` is not installed");
        return;
    }
    let (max, ran) = run_suite(NEXTEST, true);
    assert_eq!(ran, ["gpu_a", "gpu_b", "gpu_c", "gpu_d"]);
    assert_eq!(
        max, 1,
        "two GPU tests ran at once under nextest (one process per test)"
    );
    let (control, _) = run_suite(NEXTEST, false);
    assert!(
        control >= 2,
        "control: without the guard the GPU tests should overlap"
    );
}
