//! Python packages the tests need, installed by the tests themselves: `pip install --target
//! <workspace>/target/pytools-<name>`, once per requirement set, behind a file lock so parallel
//! test binaries wait for one install instead of racing it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's `target/` folder.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/racegate-cli is two levels down")
        .join("target")
}

/// Install `requirements` (pip specifiers) into `target/pytools-<name>` unless a previous run
/// did, and return that folder (for `PYTHONPATH`). Panics with pip's output when pip fails: the
/// test cannot run without them.
pub fn provision(name: &str, requirements: &[&str]) -> PathBuf {
    let dir = target_dir().join(format!("pytools-{name}"));
    std::fs::create_dir_all(target_dir()).expect("target/ is writable");
    let lock_path = target_dir().join(format!("pytools-{name}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("lock file");
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .expect("flock on the pytools lock");
    let stamp = dir.join(".racegate-installed");
    let want = requirements.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(&dir)
        .args(requirements)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pip install --target {} {requirements:?} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut f = std::fs::File::create(&stamp).expect("stamp");
    f.write_all(want.as_bytes()).expect("stamp written");
    dir
}
