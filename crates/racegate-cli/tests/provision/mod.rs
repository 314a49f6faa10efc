//! Programs from Debian's packages that some tests drive (Chromium, Prometheus): found on
//! `PATH`, or provisioned once by the tests themselves, behind a file lock under `target/` so
//! that test binaries running at once provision once:
//!
//! - as root, `apt-get install` (after `apt-get update` if the first try fails: a fresh machine
//!   may have no package lists);
//! - otherwise, `apt-get download` of the package and of the dependencies that `apt-get
//!   install` would add (its own simulation, which needs no root), unpacked with `dpkg -x` under
//!   `target/tmp/debian/root` and run through a small wrapper that points `LD_LIBRARY_PATH` at
//!   the unpacked libraries. (Fonts unpacked this way are not seen by fontconfig, so a
//!   screenshot may lack glyphs; the page's DOM is the same.)
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
    if let Err(e) = unpack_package(program, package, unpack) {
        panic!(
            "{hint}\n  (not root: unpacking it under {} failed: {e})",
            unpack_dir().display()
        );
    }
    wrapper(program)
}

/// The packages to fetch for `package`: itself and what `apt-get install` would add to this
/// machine. In the check mode (`forced`), where the package is installed already, its sibling
/// packages (same source package, e.g. `chromium-common`) too.
fn packages_to_fetch(package: &str, forced: bool) -> Result<Vec<String>, String> {
    // Simulated against an empty package database: the whole closure, alternatives resolved
    // as apt resolves them.
    let simulated = run(
        "apt-get",
        &[
            "-s",
            "-q",
            "-o",
            "Dir::State::status=/dev/null",
            "--no-install-recommends",
            "install",
            package,
        ],
        None,
    )?;
    let closure: Vec<String> = simulated
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let mut query = vec![
        "-W",
        "-f=${Package} ${db:Status-Abbrev} ${source:Package}\n",
    ];
    query.extend(closure.iter().map(String::as_str));
    // dpkg-query exits 1 when some names are unknown to it (never installed): read its output
    // either way.
    let out = Command::new("dpkg-query")
        .args(&query)
        .output()
        .map_err(|e| format!("cannot run `dpkg-query`: {e}"))?;
    let installed: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (name, status, source) = (f.next()?, f.next()?, f.next().unwrap_or(""));
            status
                .starts_with("ii")
                .then(|| (name.to_string(), source.to_string()))
        })
        .collect();
    let mut fetch: Vec<String> = closure
        .into_iter()
        .filter(|p| {
            p == package
                || match installed.iter().find(|(n, _)| n == p) {
                    None => true,
                    Some((_, source)) => forced && source == package,
                }
        })
        .collect();
    if !fetch.iter().any(|p| p == package) {
        fetch.push(package.to_string());
    }
    Ok(fetch)
}

/// `apt-get download` `package` and the dependencies this machine lacks, `dpkg -x` them under
/// `unpack_dir()/root`, and write the wrapper for `program`.
fn unpack_package(program: &str, package: &str, forced: bool) -> Result<(), String> {
    let dir = unpack_dir();
    let debs = dir.join("debs").join(package);
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&debs);
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let fetch = packages_to_fetch(package, forced)?;
    let mut args = vec!["download", "-q"];
    args.extend(fetch.iter().map(String::as_str));
    run("apt-get", &args, Some(&debs))
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
