//! Programs from Debian's packages that some tests drive (Chromium, Prometheus): found on
//! `PATH`, or provisioned once by the tests themselves, behind a file lock under `target/` so
//! that test binaries running at once provision once:
//!
//! - as root, `apt-get install` (after `apt-get update` if the first try fails: a fresh machine
//!   may have no package lists);
//! - otherwise, for the packages whose programs run from anywhere (Prometheus's: static Go
//!   binaries), `apt-get download` and `dpkg -x` under `target/tmp/debian/root`, run through a
//!   small wrapper; Chromium then needs root (or an install by hand).
//!
//! `.ci/install-deps` installs them up front (cheaper than inside a timed test); this is what
//! makes `cargo test --workspace` pass on a fresh machine too. Where neither works (no
//! `apt-get`, no package lists), the test fails with a message that names the package and how
//! to install it: never a skip. `RACEGATE_TEST_PROVISION=unpack` takes the unprivileged way even
//! as root (to check it).

use std::fs::File;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Run `tool args` (in `dir`, if given); its stdout, or a message with its stderr.
fn run(tool: &str, args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new(tool);
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run `{tool}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Packages whose programs run from wherever they are unpacked (Go binaries that need only the
/// C library). Debian's Chromium does not: it reads its data (ICU tables, resources) from
/// paths under /usr compiled into it.
const RUN_UNPACKED: [&str; 2] = ["prometheus", "prometheus-node-exporter"];

/// Where unprivileged provisioning unpacks packages, and its wrappers.
fn unpack_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian")
}

/// The wrapper that runs `program` from the unpacked packages.
fn wrapper(program: &str) -> PathBuf {
    unpack_dir().join("bin").join(program)
}

/// The path of `program` from the Debian package `package`, provisioning the package if it is
/// missing (see the module's documentation).
///
/// # Panics
/// When it is missing and cannot be provisioned: the message says what to install and how.
pub fn debian_program(program: &str, package: &str) -> PathBuf {
    let unpack = std::env::var("RACEGATE_TEST_PROVISION").is_ok_and(|v| v == "unpack");
    let found = || {
        if unpack {
            Some(wrapper(program)).filter(|p| p.is_file())
        } else {
            on_path(program).or_else(|| Some(wrapper(program)).filter(|p| p.is_file()))
        }
    };
    if let Some(p) = found() {
        return p;
    }
    let lock_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(lock_dir).unwrap();
    let lock = File::create(lock_dir.join("apt-get.lock")).unwrap();
    // One provisioner at a time; the others find the program when they get the lock.
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if let Some(p) = found() {
        return p;
    }
    let hint = format!(
        "this test needs `{program}` from the Debian package `{package}`: install it (`apt-get install -y {package}` as root, or `.ci/install-deps`) and run the tests again"
    );
    if on_path("apt-get").is_none() || on_path("dpkg").is_none() {
        panic!("{hint}\n  (no `apt-get` or `dpkg` on this machine, so the test cannot provision it itself)");
    }
    if rustix::process::geteuid().is_root() && !unpack {
        let install = ["install", "-y", "-q", package];
        if let Err(first) = run("apt-get", &install, None) {
            if let Err(e) =
                run("apt-get", &["update", "-q"], None).and_then(|_| run("apt-get", &install, None))
            {
                panic!("{hint}\n  {first}\n  {e}");
            }
        }
        return on_path(program).unwrap_or_else(|| {
            panic!("{hint}\n  (`{package}` installed, but `{program}` is not on PATH)")
        });
    }
    if !RUN_UNPACKED.contains(&package) {
        panic!("{hint}\n  (not root, so the test cannot install it; `{package}` does not run unpacked outside /usr)");
    }
    if let Err(e) = unpack_package(program, package) {
        panic!(
            "{hint}\n  (not root: unpacking it under {} failed: {e})",
            unpack_dir().display()
        );
    }
    wrapper(program)
}

/// `apt-get download` `package`, `dpkg -x` it under `unpack_dir()/root`, and write the
/// wrapper for `program`. Only for [`RUN_UNPACKED`] packages: their dependencies (the C library)
/// are on every Debian system.
fn unpack_package(program: &str, package: &str) -> Result<(), String> {
    let dir = unpack_dir();
    let debs = dir.join("debs").join(package);
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&debs);
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    run("apt-get", &["download", "-q", package], Some(&debs))
        .map_err(|e| format!("{e}\n  (with no package lists, `apt-get update` as root first)"))?;
    for deb in std::fs::read_dir(&debs).map_err(|e| e.to_string())? {
        let deb = deb.map_err(|e| e.to_string())?.path();
        run(
            "dpkg",
            &["-x", &deb.to_string_lossy(), &root.to_string_lossy()],
            None,
        )?;
    }
    let binary = root.join("usr/bin").join(program);
    if !binary.is_file() {
        return Err(format!(
            "`{package}` unpacked, but it holds no `usr/bin/{program}`"
        ));
    }
    let script = format!(
        "#!/bin/sh\n# Written by racegate's tests: `{package}` unpacked without root.\nexec \"{}\" \"$@\"\n",
        binary.display()
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let tmp = bin.join(format!(".{program}.tmp"));
    std::fs::write(&tmp, script).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, wrapper(program)).map_err(|e| e.to_string())?;
    Ok(())
}
