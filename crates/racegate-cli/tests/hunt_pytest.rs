//! `racegate hunt` end to end on `fixtures/pytest-leaky-pool`: the real binary drives real
//! pytest-xdist runs that hang, captures the stuck workers' stacks with py-spy before killing
//! them, bisects to a hanging group, names the leaking fixture, and verifies the emitted
//! `xdist_group` serialization.
//!
//! Needs python3; pytest, pytest-xdist and py-spy are provisioned by the tests themselves
//! (`common/tools.rs`: the pinned `fixtures/requirements.txt` into `target/pytools-hunt`) when the
//! machine lacks them.

use std::path::PathBuf;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

#[path = "common/tools.rs"]
#[allow(dead_code)]
mod tools;

/// `racegate` with the Python tools on its paths.
fn racegate() -> Command {
    let mut cmd = Command::cargo_bin("racegate").unwrap();
    tools::python().apply_assert(&mut cmd);
    cmd
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pytest-leaky-pool")
        .canonicalize()
        .unwrap()
}

/// Command lines of live (not zombie) processes whose working directory is `dir`.
#[cfg(target_os = "linux")]
fn processes_in(dir: &std::path::Path) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .map(|(_, r)| r.starts_with('Z'))
            .unwrap_or(true);
        if cwd.as_deref() == Some(dir) && !zombie {
            let cmd = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
            found.push(cmd.replace('\0', " "));
        }
    }
    found
}

#[test]
fn finds_the_hanging_group_with_the_blocked_pool_acquire_and_verifies_the_groups() {
    let _one = tools::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hunt.json");
    let out = racegate()
        .current_dir(fixture())
        .timeout(Duration::from_secs(540))
        .args(["hunt", "--runs", "2", "--jobs", "2"])
        .args(["--budget", "8m", "--verify", "--json"])
        .arg(&json)
        .args(["--", "python3", "-m", "pytest"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--dist loadgroup"), "{stdout}");
    assert!(
        stdout.contains("leaking fixture: `chunked_solved_solver`"),
        "{stdout}"
    );

    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["runner"], "pytest");
    assert_eq!(r["tests"], 20);
    assert_eq!(r["verdict"], "races_found");
    // The hang timeout came from the suite's own speed, not a minute.
    assert_eq!(r["test_timeout_derived"], true);
    assert!(
        r["test_timeout_ms"].as_u64().unwrap() <= 10_000,
        "{}",
        r["test_timeout_ms"]
    );
    let findings = r["findings"].as_array().unwrap();
    let hangs: Vec<&Value> = findings.iter().filter(|f| f["kind"] == "hang").collect();
    assert_eq!(hangs.len(), 1, "{findings:#?}");
    let f = hangs[0];
    assert_eq!(f["classification"], "race");
    assert!(!f["in_flight"].as_array().unwrap().is_empty());

    // The stacks were taken before the kill and show the workers blocked in the pool.
    let stacks = f["stacks"].as_array().unwrap();
    assert!(stacks.iter().any(|s| s["tool"] == "py-spy"
        && s["text"].as_str().unwrap().contains("PinnedPool.acquire")
        && s["text"]
            .as_str()
            .unwrap()
            .contains("chunked_solved_solver")));

    // The hanging set is the leaking fixture's users, found in one probe and confirmed; it is
    // not reduced to a "minimal" few (every user leaks, any few of them hang together).
    let leak = &f["leaking_fixture"];
    assert_eq!(leak["name"], "chunked_solved_solver");
    let users: Vec<&str> = leak["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 6, "{users:?}");
    let set = f["conflict_set"].as_array().unwrap();
    assert!(set.len() >= 2, "{set:?}");
    assert!(
        set.iter().all(|t| users.contains(&t.as_str().unwrap())),
        "{set:?}"
    );
    assert_eq!(
        f["bisection"]["fixture_users_of"], "chunked_solved_solver",
        "{}",
        f["bisection"]
    );
    assert!(f["minimality"].is_null(), "{}", f["minimality"]);
    assert!(
        f["reproduction"]["reproduced"].as_u64().unwrap() >= 1,
        "{}",
        f["reproduction"]
    );

    // The group is every user, named after the fixture.
    assert_eq!(r["groups"].as_array().unwrap().len(), 1);
    assert_eq!(r["groups"][0]["origin"], "fixture");
    let pytest_fix = r["fix"]["pytest"].as_str().unwrap();
    for u in &users {
        assert!(
            pytest_fix.contains(&format!("\"{u}\": \"chunked_solved_solver\"")),
            "{pytest_fix}"
        );
    }
    assert!(r["fix"]["root_cause"]
        .as_str()
        .unwrap()
        .contains("yield fixture"));
    assert_eq!(r["verify"]["passed"], true, "{}", r["verify"]);

    // No process of the hunt outlives it: nothing (but zombies) still runs in the fixture.
    #[cfg(target_os = "linux")]
    {
        let orphans = processes_in(&fixture());
        assert!(orphans.is_empty(), "orphans: {orphans:?}");
    }
}

/// With pytest-xdist (worker processes) and without it (racegate's own concurrent pytest
/// processes), tests that fail alone are broken, not races: exit 5, no conflict set, no fix.
#[test]
fn tests_that_fail_alone_are_broken_not_races_with_and_without_xdist() {
    let _one = tools::one_at_a_time();
    let suite = fixture()
        .join("../pytest-broken-suite")
        .canonicalize()
        .unwrap();
    for extra in [&[][..], &["-p", "no:xdist"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("hunt.json");
        racegate()
            .current_dir(&suite)
            .timeout(Duration::from_secs(180))
            .args(["hunt", "--runs", "2", "--jobs", "2", "-q"])
            .arg("--json")
            .arg(&json)
            .args(["--", "python3", "-m", "pytest"])
            .args(extra)
            .assert()
            .code(5);
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(r["tests"], 8);
        assert_eq!(r["verdict"], "broken_only", "{extra:?}");
        let mut found: Vec<(String, String, String)> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                assert_eq!(f["classification"], "broken", "{extra:?}: {f:#}");
                (
                    f["kind"].as_str().unwrap().to_string(),
                    f["conflict_set"][0].as_str().unwrap().to_string(),
                    f["signature"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        found.sort();
        assert_eq!(found.len(), 2, "{extra:?}: {found:?}");
        assert_eq!(found[0].0, "crash");
        assert_eq!(found[0].1, "test_broken.py::test_native_abort_always");
        assert!(found[0].2.contains("SIGABRT"), "{found:?}");
        assert_eq!(found[1].0, "failure");
        assert_eq!(found[1].1, "test_broken.py::test_assertion_always");
        assert!(r["fix"].as_object().unwrap().is_empty());
    }
}

/// Ctrl-C in the middle of a hung run: racegate kills the whole test tree, still writes the
/// report (partial, with what was found so far), and exits 130.
#[cfg(target_os = "linux")]
#[test]
fn an_interrupted_hunt_leaves_no_test_process_behind() {
    let _one = tools::one_at_a_time();
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    // Its own copy of the suite, so that the processes it starts are told apart by directory.
    let copy = dir.path().join("suite");
    for sub in ["", "leaky_pool", "tests"] {
        std::fs::create_dir_all(copy.join(sub)).unwrap();
        for e in std::fs::read_dir(fixture().join(sub)).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), copy.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    let copy = copy.canonicalize().unwrap();
    let json = dir.path().join("hunt.json");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("racegate"));
    tools::python().apply(&mut cmd);
    let mut hunt = cmd
        .current_dir(&copy)
        .args(["hunt", "-q", "--runs", "1", "--jobs", "2"])
        .args(["--test-timeout", "120s", "--json"])
        .arg(&json)
        .args(["--", "python3", "-m", "pytest"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the suite is running: the xdist workers sit in the copy.
    let deadline = Instant::now() + Duration::from_secs(60);
    // The two xdist workers (execnet starts them reading their code from stdin).
    let workers = || {
        processes_in(&copy)
            .into_iter()
            .filter(|c| c.contains("sys.stdin.readline"))
            .count()
    };
    while workers() < 2 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let running = processes_in(&copy);
    assert!(workers() >= 2, "the suite never started: {running:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hunt.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = hunt.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "racegate did not exit after SIGINT"
        );
        std::thread::yield_now();
    };
    assert_eq!(status.code(), Some(130));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["partial"], true);
    assert_eq!(r["verdict"], "interrupted");
    assert_eq!(r["tests"], 20);
    // The serial run had finished: its timings are in.
    assert!(
        r["measure"]["elapsed_ms"].as_u64().is_some(),
        "{}",
        r["measure"]
    );
    // SIGKILL delivery is asynchronous: give the kernel a bounded moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_in(&copy).is_empty() && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let left = processes_in(&copy);
    assert!(left.is_empty(), "left behind: {left:?}");
}
