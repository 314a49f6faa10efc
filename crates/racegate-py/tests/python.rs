//! The Python front's tests: builds the `racegate` wheel with maturin, installs it into a venv
//! under `target/`, and runs the pytest suite in `tests/python` against it (the in-process gate,
//! the machine-wide gate against the real `racegate` binary, and the pytest plugin on real
//! pytest-xdist runs, beside Rust tests that use `racegate::test_guard`).
//!
//! Needs only `python3` (with `venv`) and the package registry: the venv (`target/py-venv`, pinned
//! tools from `tests/python/requirements.txt`) is created once, behind a file lock, and rebuilt
//! when the requirements change; the wheel is built into `target/py-build` (its own target
//! directory: maturin's environment differs from cargo's, and sharing one would rebuild PyO3 at
//! every switch). The `racegate` binary is the workspace's own, from
//! `cargo test --workspace --no-run` (a no-op after the README's `cargo test --workspace`
//! built it), or `RACEGATE_BIN`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `<target>/<profile>/deps/<this test>`: the target directory and the profile directory's name.
fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (profile_dir.parent().unwrap().to_path_buf(), profile)
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes what cargo sets for a test process (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, ...) from
/// `cmd`'s environment: build scripts such as ring's rerun when these change, so a nested cargo
/// that inherited this test's values would rebuild them, and the next plain `cargo test` again.
fn without_test_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        if ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"]
            .iter()
            .any(|p| k.starts_with(p))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&k)
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Holds an exclusive `flock` on `path` while alive: one provisioner at a time across processes.
struct FileLock(#[allow(dead_code)] File);

impl FileLock {
    fn take(path: &Path) -> FileLock {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap();
        loop {
            match flock(&f, FlockOperation::LockExclusive) {
                Err(rustix::io::Errno::INTR) => continue,
                r => r.unwrap(),
            }
            return FileLock(f);
        }
    }
}

struct Env {
    python: PathBuf,
    racegate: PathBuf,
}

/// The venv with the freshly built wheel installed, and the `racegate` binary: once per test
/// process, and behind a file lock across processes.
fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let (target, _) = target_and_profile();
        fs::create_dir_all(&target).unwrap();
        let _lock = FileLock::take(&target.join("py-venv.lock"));
        let python = venv(&target);
        install_wheel(&target, &python);
        Env {
            python,
            racegate: racegate_binary(&target),
        }
    })
}

fn venv(target: &Path) -> PathBuf {
    let dir = target.join("py-venv");
    let python = dir.join("bin/python");
    let reqs = workspace().join("crates/racegate-py/tests/python/requirements.txt");
    let wanted = fs::read_to_string(&reqs).unwrap();
    let stamp = dir.join("racegate-requirements.txt");
    if python.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return python;
    }
    let _ = fs::remove_dir_all(&dir);
    // Debian ships `ensurepip` apart (python3-venv): without it, a venv without pip, and pip
    // put in by the system's pip (python3-pip, which the other Python tools' tests use too).
    let with_pip = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !with_pip {
        let _ = fs::remove_dir_all(&dir);
        run_ok(
            Command::new("python3")
                .args(["-m", "venv", "--without-pip"])
                .arg(&dir),
            "creating the venv (needs python3 with its venv module)",
        );
        run_ok(
            Command::new("python3")
                .args(["-m", "pip", "--python"])
                .arg(&python)
                .args(["install", "-q", "--disable-pip-version-check", "pip"]),
            "putting pip into the venv (needs python3's ensurepip or pip: Debian's python3-venv \
             or python3-pip)",
        );
    }
    run_ok(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&reqs),
        "installing the Python test tools",
    );
    fs::write(&stamp, wanted).unwrap();
    python
}

fn install_wheel(target: &Path, python: &Path) {
    let out = target.join("py-wheels/test");
    let _ = fs::remove_dir_all(&out);
    let bin = python.parent().unwrap();
    let mut maturin = Command::new(bin.join("maturin"));
    without_test_env(&mut maturin)
        .arg("build")
        .arg("-m")
        .arg(workspace().join("crates/racegate-py/Cargo.toml"))
        .arg("--target-dir")
        .arg(target.join("py-build"))
        .arg("--out")
        .arg(&out)
        .arg("-i")
        .arg(python)
        .env("VIRTUAL_ENV", bin.parent().unwrap());
    run_ok(&mut maturin, "building the wheel with maturin");
    let wheels: Vec<PathBuf> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "maturin built {wheels:?}");
    run_ok(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(&wheels[0]),
        "installing the wheel",
    );
}

/// The workspace's `racegate` binary, as `cargo test --workspace` builds it (same flags, so
/// nothing is rebuilt), unless `RACEGATE_BIN` names one.
fn racegate_binary(target: &Path) -> PathBuf {
    if let Some(b) = std::env::var_os("RACEGATE_BIN") {
        return b.into();
    }
    let (_, profile) = target_and_profile();
    let mut cmd = Command::new(cargo());
    without_test_env(&mut cmd)
        .current_dir(workspace())
        .args(["test", "--workspace", "--no-run", "--message-format=json"])
        .arg("--target-dir")
        .arg(target)
        .stderr(Stdio::inherit());
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "building the racegate binary failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(r#""reason":"compiler-artifact""#))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["target"]["name"] == "racegate"
                && v["target"]["kind"][0] == "bin"
                && v["profile"]["test"] == false
        })
        .and_then(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no `racegate` executable")
}

/// Kills the child if the test panics or overruns.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one file of the pytest suite; fails with its output unless every test passed.
fn pytest(file: &str, limit: Duration) {
    let env = env();
    let dir = workspace().join("crates/racegate-py/tests/python");
    let child = without_test_env(&mut Command::new(&env.python))
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", file])
        .current_dir(&dir)
        .env("RACEGATE_BIN", &env.racegate)
        .env("RACEGATE_WORKSPACE", workspace())
        .env("CARGO", cargo())
        .env_remove("RACEGATE_DIR")
        .env_remove("RACEGATE_PYTEST_GROUPS")
        .env_remove("RACEGATE_TEST_GUARD_TIMEOUT")
        .env_remove("RACEGATE_TEST_GUARD_CAPACITY")
        .env_remove("RACEGATE_TEST_GUARD_DEVICES")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= end {
            let _ = child.0.kill();
            panic!("pytest {file} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap();
    assert!(
        status.success(),
        "pytest {file} failed ({status:?}):\n{text}"
    );
    assert!(
        text.lines().any(|l| l.contains(" passed")),
        "pytest {file} ran no test:\n{text}"
    );
}

#[test]
fn in_process_gate_from_python() {
    pytest("test_gate.py", Duration::from_secs(300));
}

#[test]
fn machine_wide_gate_from_python_with_racegate_run_and_status() {
    pytest("test_machine.py", Duration::from_secs(300));
}

#[test]
fn pytest_plugin_on_xdist_runs_and_beside_rust_test_guard() {
    pytest("test_plugin.py", Duration::from_secs(600));
}

#[test]
fn plugin_parsers_take_any_input() {
    pytest("test_plugin_inputs.py", Duration::from_secs(300));
}

#[test]
fn type_stubs_match_the_extension_and_type_check() {
    pytest("test_typing.py", Duration::from_secs(600));
}

#[test]
fn readme_examples_run() {
    pytest("test_examples.py", Duration::from_secs(300));
}
