//! `racegate hunt` on the fixtures that reproduce what real suites do (fixtures/README.md):
//! tests that check how their own process was started, many tests rewriting one process
//! environment, tests racing on process-wide signal state, and pytest classes sharing fixed
//! files. Each asserts the outcome the fixture table states, scored against the fixture's
//! `ground-truth.json`: no reported test outside a true group, nothing called broken that
//! passes alone, and a fix that holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

#[path = "common/tools.rs"]
#[allow(dead_code)]
mod tools;

use tools::workspace as root;

fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

fn racegate() -> Command {
    tools::racegate_on_rust_fixtures(Duration::from_secs(600))
}

fn report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The true groups of a fixture, from its `ground-truth.json`.
fn truth(name: &str) -> Vec<Vec<String>> {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("ground-truth.json")).unwrap(),
    )
    .unwrap();
    v["groups"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| {
            g.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// Every test of every race set lies in the true group its set falls in (precision 100%);
/// no finding is called broken, order-dependent or flaky (each fixture test passes alone).
fn assert_precise(r: &Value, groups: &[Vec<String>]) {
    for f in r["findings"].as_array().unwrap() {
        let class = f["classification"].as_str().unwrap();
        assert!(
            class == "race" || class == "unresolved" || class == "covered",
            "a test that passes alone was called {class}: {f:#}"
        );
        if class != "race" {
            continue;
        }
        let set: Vec<&str> = f["conflict_set"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            groups
                .iter()
                .any(|g| set.iter().all(|t| g.iter().any(|x| x == t))),
            "set {set:?} is not inside one true group"
        );
    }
    for g in r["groups"].as_array().unwrap() {
        for t in g["measured"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert!(
                groups.iter().any(|tg| tg.iter().any(|x| x == t)),
                "`{t}` is in group {} but in no true group",
                g["name"]
            );
        }
    }
}

/// Each test in at most one group of the fix.
fn assert_disjoint(r: &Value) {
    let mut seen: Vec<String> = Vec::new();
    for g in r["groups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            let t = t.as_str().unwrap().to_string();
            assert!(!seen.contains(&t), "`{t}` is in two groups");
            seen.push(t);
        }
    }
}

/// The tests check their own signal mask and dispositions, and `terminate()` a helper: they
/// pass when racegate starts them clean, so the hunt is CLEAN.
#[test]
fn children_start_clean_so_the_self_checking_suite_is_clean() {
    let _one = tools::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    let mut cmd = racegate();
    tools::python().apply_assert(&mut cmd);
    cmd.current_dir(fixture("clean-children"))
        .args(["hunt", "-q", "--runs", "2", "--jobs", "3", "--json"])
        .arg(&json)
        .args(["--", "python3", "-m", "pytest", "-p", "no:cacheprovider"])
        .assert()
        .code(0);
    let r = report(&json);
    assert_eq!(r["verdict"], "clean", "{:#}", r["findings"]);
    assert_eq!(r["tests"], 3);
}

/// The control: the same suite started the way the old hunt started it (SIGINT, SIGTERM and
/// SIGHUP blocked in the launcher, passed on by Rust's `Command`) fails.
#[cfg(target_os = "linux")]
#[test]
fn the_self_checking_suite_fails_under_a_launcher_that_leaks_its_mask() {
    let _one = tools::one_at_a_time();
    use nix::sys::signal::{SigSet, Signal};
    let status = std::thread::spawn(|| {
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(s);
        }
        set.thread_block().unwrap();
        let mut cmd = std::process::Command::new("python3");
        tools::python().apply(&mut cmd);
        cmd.current_dir(fixture("clean-children"))
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0"])
            .output()
            .unwrap()
    })
    .join()
    .unwrap();
    let out = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{out}");
    assert!(
        out.contains("test_starts_with_an_empty_signal_mask"),
        "{out}"
    );
}

/// Run `racegate hunt FLAGS -- CMD` in fixture `name`, returning its exit status and report.
fn hunt(name: &str, flags: &[&str], cmd: &[&str], python: bool) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    let mut c = racegate();
    if python {
        tools::python().apply_assert(&mut c);
    }
    let out = c
        .current_dir(fixture(name))
        .arg("hunt")
        .args(flags)
        .arg("--json")
        .arg(&json)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no report ({e}); exit {code}\n{stdout}"));
    // Never a PASS that the runs do not back.
    if r["verify"]["passed"] == true {
        assert_eq!(r["verify"]["rate_after"]["k"], 0, "{}", r["verify"]);
        assert!(stdout.contains("verify: PASS"), "{stdout}");
    } else {
        assert!(!stdout.contains("verify: PASS"), "{stdout}");
    }
    (code, r)
}

/// 44 unit tests, 30 of them in two dense groups rewriting one process environment (every
/// pair inside a group conflicts): the rounds converge to exactly the two groups (widened to
/// the modules where the whole module conflicts, never to `paths::tests`, where only 2 of its
/// tests do), and the fix holds.
#[test]
fn dense_environment_rewriting_converges_to_the_true_groups() {
    let _one = tools::one_at_a_time();
    let (code, r) = hunt(
        "env-dense-suite",
        &[
            "-q", "--runs", "3", "--jobs", "4", "--verify", "--budget", "8m",
        ],
        &["cargo", "test"],
        false,
    );
    let truth = truth("env-dense-suite");
    assert_precise(&r, &truth);
    assert_disjoint(&r);
    assert_eq!(code, 1, "{:#} {:#}", r["rounds"], r["notes"]);
    assert_eq!(r["verdict"], "races_found");
    assert_eq!(r["verify"]["passed"], true, "{}", r["verify"]);
    // Every test of every group is a true member (the widening stayed inside the truth).
    for g in r["groups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert!(
                truth.iter().any(|tg| tg.iter().any(|x| x == t)),
                "`{t}` (group {}) is innocent",
                g["name"]
            );
        }
    }
    // The rounds took the serialization further than one pair at a time.
    let grouped: usize = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["tests"].as_array().unwrap().len())
        .sum();
    assert!(grouped >= 20, "{:#}", r["groups"]);
}

/// Tests racing on process-wide signal state, one pair of which can kill the whole binary:
/// whatever the budget allows, every set lies in one true group, no test that passes alone is
/// called broken (the clean-children checks among them pass: their process starts clean), a
/// dead binary names the tests in flight, and the verdict is backed by the runs.
#[test]
#[ignore = "slow tier (3-5 min): cargo test -p racegate-cli --test hunt_fixtures -- --ignored"]
fn process_wide_signal_races_are_found_precisely() {
    let _one = tools::one_at_a_time();
    let (code, r) = hunt(
        "signal-suite",
        &[
            "-q", "--runs", "4", "--jobs", "4", "--verify", "--budget", "5m",
        ],
        &["cargo", "test"],
        false,
    );
    assert_precise(&r, &truth("signal-suite"));
    assert_disjoint(&r);
    assert!([1, 4, 6].contains(&code), "exit {code}: {:#}", r["verdict"]);
    let findings = r["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["classification"] == "race"),
        "{findings:#?}"
    );
    for f in findings {
        if f["kind"] == "crash" && f["identity"]["process"].is_string() {
            assert!(
                !f["in_flight"].as_array().unwrap().is_empty(),
                "a dead binary names its tests in flight: {f:#}"
            );
        }
    }
    if code == 1 {
        assert_eq!(r["verify"]["passed"], true);
    }
}

/// pytest classes sharing fixed files (and a leaked lock that can hang a run): the sets found
/// within the budget are precise, the fix is a valid conftest with each test in one group, and
/// a hang, if one showed, has its stacks.
#[test]
#[ignore = "slow tier (3-5 min): cargo test -p racegate-cli --test hunt_fixtures -- --ignored"]
fn pytest_classes_sharing_files_are_found_precisely() {
    let _one = tools::one_at_a_time();
    let (code, r) = hunt(
        "pytest-shared-file",
        &[
            "-q", "--runs", "3", "--jobs", "4", "--verify", "--budget", "5m",
        ],
        &["python3", "-m", "pytest", "-p", "no:cacheprovider"],
        true,
    );
    assert_precise(&r, &truth("pytest-shared-file"));
    assert_disjoint(&r);
    assert!([1, 4, 6].contains(&code), "exit {code}: {:#}", r["verdict"]);
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["classification"] == "race"),
        "{:#}",
        r["findings"]
    );
    // The serial run saw which fixed files the tests write: a race's set is a file's writers.
    assert!(
        r["findings"].as_array().unwrap().iter().any(|f| {
            f["bisection"]["writers_of"].as_array().is_some_and(|w| {
                w.iter().any(|p| {
                    let p = p.as_str().unwrap_or_default();
                    p.ends_with("ledger.db") || p.ends_with("settings.json")
                })
            })
        }),
        "{:#}",
        r["findings"]
    );
    for f in r["findings"].as_array().unwrap() {
        if f["kind"] == "hang" && f["found_in"] == "suite" {
            assert!(!f["stacks"].as_array().unwrap().is_empty(), "{f:#}");
        }
    }
    if let Some(conftest) = r["fix"]["pytest"].as_str() {
        let out = std::process::Command::new("python3")
            .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(conftest.as_bytes())?;
                c.wait()
            })
            .unwrap();
        assert!(out.success(), "{conftest}");
    }
}
