//! Programs from Debian's packages that some tests drive (Chromium, Prometheus): found on
//! `PATH`, or installed once with `apt-get` (as root, behind a file lock under `target/`, so
//! that test binaries running at once install once). `.ci/install-deps` installs them up front;
//! this is what makes `cargo test --workspace` pass on a fresh machine too. Where neither
//! works, the test fails with a message that names the package to install: never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| format!("cannot run `apt-get`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`apt-get {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The path of `program` from the Debian package `package`, installing the package if it is
/// missing.
///
/// # Panics
/// When it is missing and cannot be installed (not root, no `apt-get`, no registry): the
/// message says what to install.
pub fn debian_program(program: &str, package: &str) -> PathBuf {
    if let Some(p) = on_path(program) {
        return p;
    }
    let lock_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(lock_dir).unwrap();
    let lock = std::fs::File::create(lock_dir.join("apt-get.lock")).unwrap();
    // One installer at a time; the others find the program when they get the lock.
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if let Some(p) = on_path(program) {
        return p;
    }
    let hint = format!(
        "this test needs `{program}` from the Debian package `{package}`: install it (`apt-get install -y {package}`, or run `.ci/install-deps` as root) and run the tests again"
    );
    if !rustix::process::geteuid().is_root() {
        panic!("{hint}\n  (not root, so the test cannot install it itself)");
    }
    if on_path("apt-get").is_none() {
        panic!("{hint}\n  (no `apt-get` on this machine)");
    }
    let install = ["install", "-y", "-q", package];
    if let Err(first) = apt_get(&install) {
        // A fresh machine may have no package lists yet.
        if let Err(e) = apt_get(&["update", "-q"]).and_then(|()| apt_get(&install)) {
            panic!("{hint}\n  {first}\n  {e}");
        }
    }
    on_path(program).unwrap_or_else(|| {
        panic!("{hint}\n  (`{package}` installed, but `{program}` is not on PATH)")
    })
}
