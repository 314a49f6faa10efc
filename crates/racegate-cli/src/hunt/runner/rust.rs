//! What `cargo test` and nextest share: test ids `BINARY TEST_NAME`, modules, finding a test's
//! source, and the Rust forms of the fix.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::hunt::emit::{self, Fix, FixGroup};

/// Split a test id `BINARY TEST_NAME` (nextest's form, which cargo test ids share).
pub fn split_id(id: &str) -> (&str, &str) {
    id.split_once(' ').unwrap_or(("", id))
}

/// The module of a Rust test: its binary and module path (`bin a::b` for `bin a::b::t`). A
/// test at the crate root is in its binary's root module, named by the binary alone
/// (`test/signals` for `test/signals t`): an integration-test file often holds all its tests
/// there. `None` for a doctest (each is a process of its own) or an id without a binary.
pub fn module_of(id: &str) -> Option<String> {
    let (bin, name) = split_id(id);
    match name.rsplit_once("::") {
        Some((module, _)) if bin.is_empty() => Some(module.to_string()),
        Some((module, _)) => Some(format!("{bin} {module}")),
        None if bin.is_empty() || bin.starts_with("doc/") => None,
        None => Some(bin.to_string()),
    }
}

/// The short form of a module for a group name: its path without the binary; a binary's root
/// module is the binary's name without its kind (`signals` for `test/signals`).
pub fn module_short(unit: &str) -> String {
    let path = split_id(unit).1;
    let path = path.rsplit_once('/').map_or(path, |(_, name)| name);
    path.replace("::", "-")
}

/// The directory holding the suite's sources: that of `--manifest-path`, else the current one.
pub fn rust_root(command: &[OsString]) -> PathBuf {
    let manifest = command
        .iter()
        .position(|a| a == "--manifest-path")
        .and_then(|i| command.get(i + 1))
        .map(PathBuf::from)
        .or_else(|| {
            command.iter().find_map(|a| {
                a.to_str()
                    .and_then(|s| s.strip_prefix("--manifest-path="))
                    .map(PathBuf::from)
            })
        });
    match manifest.as_ref().and_then(|m| m.parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// Where each Rust test id is defined under `root`: the first `fn LAST_SEGMENT(` in a `.rs`
/// file whose path or text mentions the test's module, as `path:line` (relative to the current
/// directory when under it). Bounded: at most 5,000 files, `target/` and hidden directories
/// skipped.
pub fn locate_rust_tests(root: &Path, ids: &[&str]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".rs") && files.len() < 5_000 {
                files.push(path);
            }
        }
    }
    files.sort();
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect();
    let cwd = std::env::current_dir().ok();
    let mut out = Vec::new();
    for id in ids {
        let name = split_id(id).1;
        let mut segments: Vec<&str> = name.split("::").collect();
        let Some(func) = segments.pop() else { continue };
        let needle = format!("fn {func}(");
        let module = segments.last().copied();
        let mut best: Option<(bool, String)> = None;
        for (path, text) in &texts {
            let lines: Vec<&str> = text.lines().collect();
            // Inside `mod m` when the file declares it, else anywhere.
            let mod_line = module.and_then(|m| {
                lines.iter().position(|l| {
                    let l = l.trim_start();
                    l.starts_with(&format!("mod {m} ")) || l.starts_with(&format!("mod {m}{{"))
                })
            });
            let start = mod_line.unwrap_or(0);
            let Some(line) = lines[start..]
                .iter()
                .position(|l| l.contains(&needle))
                .map(|i| i + start)
            else {
                continue;
            };
            // Relative to where the user stands, so the path can be opened as printed.
            let rel = cwd
                .as_ref()
                .and_then(|c| path.strip_prefix(c).ok())
                .unwrap_or(path)
                .display()
                .to_string();
            let mentions = module.map_or(true, |m| mod_line.is_some() || rel.contains(m));
            let at = format!("{rel}:{}", line + 1);
            if best.as_ref().map_or(true, |(m, _)| !m && mentions) {
                best = Some((mentions, at));
            }
        }
        if let Some((_, at)) = best {
            out.push((id.to_string(), at));
        }
    }
    out
}

/// The Rust fix: the nextest fragment (with `filter` giving each test's filterset) and the
/// test-guard instructions.
pub fn fix(
    groups: &[FixGroup],
    filter: &dyn Fn(&str) -> Option<String>,
    locations: &[(String, String)],
) -> Fix {
    if groups.is_empty() {
        return Fix::default();
    }
    Fix {
        nextest_toml: Some(emit::nextest_toml(groups, filter)),
        cargo_test_guard: Some(emit::cargo_guard(
            groups,
            &|t| split_id(t).1.to_string(),
            locations,
        )),
        pytest: None,
        root_cause: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_and_ids() {
        assert_eq!(split_id("suite gpu::a"), ("suite", "gpu::a"));
        assert_eq!(split_id("gpu::a"), ("", "gpu::a"));
        assert_eq!(
            module_of("suite env::tests::a").as_deref(),
            Some("suite env::tests")
        );
        assert_eq!(module_of("suite a").as_deref(), Some("suite"));
        assert_eq!(module_of("test/signals a").as_deref(), Some("test/signals"));
        assert_eq!(module_of("doc/suite src/lib.rs - x (line 3)"), None);
        assert_eq!(module_of("a"), None);
        assert_eq!(module_short("suite env::tests"), "env-tests");
        assert_eq!(module_short("test/signals"), "signals");
    }

    #[test]
    fn sources_are_found_next_to_the_manifest() {
        let words = |s: &str| -> Vec<OsString> { s.split(' ').map(OsString::from).collect() };
        assert_eq!(
            rust_root(&words("cargo test --manifest-path a/b/Cargo.toml")),
            PathBuf::from("a/b")
        );
        assert_eq!(
            rust_root(&words("cargo test --manifest-path=x/Cargo.toml -p y")),
            PathBuf::from("x")
        );
        assert_eq!(
            rust_root(&words("cargo test")),
            std::env::current_dir().unwrap()
        );
    }

    #[test]
    fn locates_rust_tests_by_module() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("src/lib.rs"),
            "mod other {\n    fn run() {}\n}\nmod gpu {\n    #[test]\n    fn run() {}\n}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("src/a.rs"), "fn run() {}\n").unwrap();
        let found = locate_rust_tests(dir.path(), &["suite gpu::run", "missing"]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "suite gpu::run");
        assert!(found[0].1.ends_with("src/lib.rs:6"), "{found:?}");
    }
}
