//! The test guard proven on real suites under both runners: `cargo test` (GPU tests are threads
//! of one process) and `cargo nextest run` (each test is its own process).
//! - fixtures/test-guard-suite, `racegate::test_guard`: GPU tests never overlap;
//! - fixtures/budget-suite, `racegate::test_guard_with` shares of a 100-unit budget: the shares
//!   inside never exceed it, while several GPU tests run side by side.
//!
//! Each has a control run without the guard that shows the violation, so the check can fail.

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

/// Runs `fixture` with `runner` args and `env`, from the fixture's directory (so its
/// `.cargo/config.toml` applies, as for a user); returns its event log.
fn run_fixture(fixture: &str, runner: Runner, env: &[(&str, &str)]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("events.log");
    let ws = workspace();
    let mut cmd = Command::new(cargo());
    cmd.args(runner.0)
        .arg("--manifest-path")
        .arg(ws.join("fixtures").join(fixture).join("Cargo.toml"))
        .args(runner.1)
        .current_dir(ws.join("fixtures").join(fixture))
        .env("CARGO_TARGET_DIR", ws.join("target/fixtures"))
        .env("RACEGATE_DIR", tmp.path().join("locks"))
        .env("GUARD_SUITE_LOG", &log)
        .env("BUDGET_SUITE_LOG", &log)
        .env("RACEGATE_TEST_GUARD_TIMEOUT", "60s")
        .env_remove("RUSTFLAGS")
        .env_remove("RACEGATE_TEST_GUARD_CAPACITY")
        .env_remove("RACEGATE_TEST_GUARD_DEVICES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{fixture} under {runner:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&log).unwrap()
}

/// From a log of `enter <name> [units]` / `leave <name>` lines: the most GPU tests inside at
/// once, the most units they held at once, and the GPU tests that ran (sorted).
fn peaks(log: &str) -> (usize, u32, Vec<String>) {
    let (mut inside, mut tests, mut units, mut ran) =
        (Vec::<(String, u32)>::new(), 0, 0, Vec::new());
    for line in log.lines() {
        let mut w = line.split(' ');
        match (w.next(), w.next()) {
            (Some("enter"), Some(n)) if n.starts_with("gpu") => {
                let u = w.next().and_then(|u| u.parse().ok()).unwrap_or(1);
                inside.push((n.to_owned(), u));
                ran.push(n.to_owned());
                tests = tests.max(inside.len());
                units = units.max(inside.iter().map(|(_, u)| u).sum());
            }
            (Some("leave"), Some(n)) => inside.retain(|(x, _)| x != n),
            _ => {}
        }
    }
    ran.sort();
    (tests, units, ran)
}

/// Run the test-guard suite; return the largest number of GPU tests inside at once and the GPU
/// tests that ran.
fn run_suite(runner: Runner, guard: bool) -> (usize, Vec<String>) {
    let env: &[(&str, &str)] = if guard {
        // Every GPU test holds this long: with the guard nobody else can be inside.
        &[("GUARD_SUITE_HOLD_MS", "150")]
    } else {
        // Without it, tests wait (up to 2 s) to meet one another: generous, so that processes
        // started far apart on a loaded machine still overlap in the control.
        &[
            ("GUARD_SUITE_NO_GUARD", "1"),
            ("GUARD_SUITE_HOLD_MS", "2000"),
        ]
    };
    let (max, _, ran) = peaks(&run_fixture("test-guard-suite", runner, env));
    (max, ran)
}

type Runner = (&'static [&'static str], &'static [&'static str]);
const CARGO_TEST_8: Runner = (&["test", "-q"], &["--", "--test-threads=8"]);
const NEXTEST_8: Runner = (
    &["nextest", "run"],
    &[
        "--test-threads",
        "8",
        "--no-fail-fast",
        "--status-level",
        "none",
    ],
);
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

/// Whether `cargo nextest` can run here; CI installs it (.ci/install-deps), a developer
/// machine may not have it.
fn have_nextest() -> bool {
    let have = Command::new(cargo())
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "cargo-nextest is required in CI"
        );
        eprintln!("skipped: `cargo nextest` is not installed");
    }
    have
}

#[test]
fn gpu_tests_never_overlap_under_nextest_and_do_without_the_guard() {
    if !have_nextest() {
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

const GPU_SHARE_TESTS: [&str; 12] = [
    "gpu_00", "gpu_01", "gpu_02", "gpu_03", "gpu_04", "gpu_05", "gpu_06", "gpu_07", "gpu_08",
    "gpu_09", "gpu_10", "gpu_11",
];

/// The budget suite with its shares (`test_guard_with`, capacity 100 from the fixture's
/// `.cargo/config.toml`): the units inside never pass 100, several GPU tests share the GPU at
/// once, and the control without the guard passes 100.
fn shares_hold_the_budget(runner: Runner) {
    let (tests, units, ran) = peaks(&run_fixture(
        "budget-suite",
        runner,
        &[("BUDGET_SUITE_WORK_MS", "150")],
    ));
    assert_eq!(ran, GPU_SHARE_TESTS);
    assert!(
        units <= 100,
        "{units} of 100 units were held at once under {runner:?}"
    );
    assert!(
        tests >= 2,
        "no two GPU tests shared the GPU under {runner:?}"
    );
    let (_, control, _) = peaks(&run_fixture(
        "budget-suite",
        runner,
        &[("BUDGET_SUITE_NO_GUARD", "1")],
    ));
    assert!(
        control > 100,
        "control: without the guard the shares should exceed the budget ({control})"
    );
}

#[test]
fn gpu_shares_never_exceed_the_budget_under_cargo_test_and_do_without_the_guard() {
    shares_hold_the_budget(CARGO_TEST_8);
}

#[test]
fn gpu_shares_never_exceed_the_budget_under_nextest_and_do_without_the_guard() {
    if have_nextest() {
        shares_hold_the_budget(NEXTEST_8);
    }
}
