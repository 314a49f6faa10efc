//! The tools the hunt tests need beside Rust, provisioned by the tests themselves: on a fresh
//! machine with only Rust and python3, `cargo test --workspace` installs the pinned pytest,
//! pytest-xdist and py-spy (`fixtures/requirements.txt`) into `target/pytools-hunt` with
//! `pip install --target` (tests/pytools), and cargo-nextest into `target/tools`, once per machine, behind a
//! file lock (test binaries and their threads run at the same time). Tools already installed
//! (`bash .ci/install-deps`, a developer's own) are used as they are;
//! `RACEGATE_TEST_TOOLS=python,nextest` (or either) ignores them, to exercise the fresh-machine
//! path.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};

#[path = "../pytools/mod.rs"]
mod pytools;

/// Environment to give a `racegate hunt` (and anything it runs) so that it finds the tools.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    /// `(name, value)` pairs: `PATH`, `PYTHONPATH`.
    pub env: Vec<(String, OsString)>,
}

impl Tools {
    /// Apply to a command.
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Apply to an `assert_cmd` command.
    pub fn apply_assert<'a>(
        &self,
        cmd: &'a mut assert_cmd::Command,
    ) -> &'a mut assert_cmd::Command {
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The real `racegate` binary, set up to hunt the Rust fixtures: they build into
/// `target/fixtures` (not the workspace's own target dir, whose lock the outer `cargo test`
/// may hold), without the outer build's RUSTFLAGS, bounded by `timeout`.
pub fn racegate_on_rust_fixtures(timeout: std::time::Duration) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("racegate").unwrap();
    cmd.env("CARGO_TARGET_DIR", workspace().join("target/fixtures"))
        .env_remove("RUSTFLAGS")
        .timeout(timeout);
    cmd
}

/// Hold an exclusive lock on `target/<name>.lock` while `f` runs.
fn locked<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let dir = workspace().join("target");
    std::fs::create_dir_all(&dir).expect("target/ is writable");
    let file = File::create(dir.join(format!("{name}.lock"))).expect("lock file");
    let _lock = Flock::lock(file, FlockArg::LockExclusive).expect("flock");
    f()
}

fn prepend(var: &str, dir: &Path) -> OsString {
    let mut v = dir.as_os_str().to_owned();
    if let Some(old) = std::env::var_os(var).filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

fn python_ok(extra_path: Option<&Path>) -> bool {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import pytest, xdist, sys; sys.exit(0 if pytest.__version__.startswith('8.') else 1)",
    ]);
    if let Some(p) = extra_path {
        cmd.env("PYTHONPATH", prepend("PYTHONPATH", p));
    }
    let modules = cmd.output().is_ok_and(|o| o.status.success());
    let spy = match extra_path {
        Some(p) => p.join("bin/py-spy").is_file(),
        None => on_path("py-spy"),
    };
    modules && spy
}

/// Whether the machine's own `tool` is to be ignored (`RACEGATE_TEST_TOOLS=python,nextest`).
fn force_provision(tool: &str) -> bool {
    std::env::var("RACEGATE_TEST_TOOLS").is_ok_and(|v| v.split(',').any(|t| t.trim() == tool))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// pytest 8.x, pytest-xdist and py-spy: the machine's own when it has them, else the pins of
/// `fixtures/requirements.txt` installed into `target/pytools-hunt` once (the provisioning the
/// other Python tests share, [`pytools::provision`]).
pub fn python() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        if !force_provision("python") && python_ok(None) {
            return Tools::default();
        }
        let req = workspace().join("fixtures/requirements.txt");
        let text = std::fs::read_to_string(&req).expect("fixtures/requirements.txt");
        let pins: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let dir = pytools::provision("hunt", &pins);
        assert!(
            python_ok(Some(&dir)),
            "pytest, pytest-xdist and py-spy are still not usable from `{}`",
            dir.display()
        );
        Tools {
            env: vec![
                ("PYTHONPATH".into(), prepend("PYTHONPATH", &dir)),
                ("PATH".into(), prepend("PATH", &dir.join("bin"))),
            ],
        }
    })
}

/// The cargo-nextest version `.ci/install-deps` pins.
const NEXTEST_VERSION: &str = "0.9.143";

/// cargo-nextest: the machine's own when `cargo nextest` works, else built into `target/tools`
/// once (`cargo install --locked`, several minutes the first time).
pub fn nextest() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let works = |path: Option<&Path>| {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["nextest", "--version"]);
            if let Some(p) = path {
                cmd.env("PATH", prepend("PATH", p));
            }
            cmd.output().is_ok_and(|o| o.status.success())
        };
        if !force_provision("nextest") && works(None) {
            return Tools::default();
        }
        let root = workspace().join("target/tools");
        let bin = root.join("bin");
        locked("tools", || {
            if !works(Some(&bin)) {
                let out = Command::new(env!("CARGO"))
                    .args(["install", "cargo-nextest", "--locked", "--version", NEXTEST_VERSION])
                    .arg("--root")
                    .arg(&root)
                    .env_remove("CARGO_TARGET_DIR")
                    .output()
                    .expect("cargo runs");
                assert!(
                    out.status.success(),
                    "`cargo install cargo-nextest --version {NEXTEST_VERSION}` into `{}` failed\n{}",
                    root.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        });
        assert!(works(Some(&bin)), "cargo nextest still does not run from `{}`", bin.display());
        Tools {
            env: vec![("PATH".into(), prepend("PATH", &bin))],
        }
    })
}

/// One hunt at a time per test binary: hunts measure timings and rates, and two of them at
/// once on a small machine slow each other into timeouts.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
