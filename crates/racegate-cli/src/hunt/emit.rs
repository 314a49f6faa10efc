//! The fix, written for you: ready-to-paste serialization for each conflict set, in the
//! runner's own terms.

use serde::Serialize;

use super::runner::nextest::filterset;
use super::runner::RunnerKind;

/// A fixture that leaks a background thread, read off the stacks of a hang.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeakingFixture {
    /// The fixture's name.
    pub name: String,
    /// Where it is defined (`conftest.py:25`), as the stack showed it.
    pub location: String,
    /// The innermost frame of the blocked thread (the acquire it waits in).
    pub blocked_in: String,
    /// Every test that uses the fixture (when the runner could tell).
    pub used_by: Vec<String>,
}

/// Serialization in every form that applies to the runner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// `.config/nextest.toml` fragment (Rust suites).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nextest_toml: Option<String>,
    /// The tests to put behind `racegate::test_guard` (or `#[serial]`), with instructions (Rust).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cargo_test_guard: Option<String>,
    /// `conftest.py` fragment applying `xdist_group` marks, and the `--dist loadgroup` flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pytest: Option<String>,
    /// What to fix in the code when the stacks name the culprit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
}

/// The group name of conflict set `i` (0-based).
pub fn group_name(i: usize) -> String {
    format!("racegate-conflict-{}", i + 1)
}

/// Build the fix for `groups` (each a set of tests that must never overlap). `locations`
/// maps Rust test names to `file:line` where they were found (see [`locate_rust_tests`]).
pub fn fix(
    runner: RunnerKind,
    groups: &[Vec<String>],
    leaks: &[LeakingFixture],
    locations: &[(String, String)],
) -> Fix {
    if groups.is_empty() {
        return Fix::default();
    }
    match runner {
        RunnerKind::Cargo | RunnerKind::Nextest => Fix {
            nextest_toml: Some(nextest_toml(groups)),
            cargo_test_guard: Some(cargo_guard(runner, groups, locations)),
            pytest: None,
            root_cause: None,
        },
        RunnerKind::Pytest => Fix {
            nextest_toml: None,
            cargo_test_guard: None,
            pytest: Some(pytest_groups(groups)),
            root_cause: leak_note(leaks),
        },
    }
}

fn nextest_toml(groups: &[Vec<String>]) -> String {
    let mut s = String::from("# .config/nextest.toml\n[test-groups]\n");
    for i in 0..groups.len() {
        s.push_str(&format!("{} = {{ max-threads = 1 }}\n", group_name(i)));
    }
    for (i, g) in groups.iter().enumerate() {
        let refs: Vec<&String> = g.iter().collect();
        s.push_str(&format!(
            "\n[[profile.default.overrides]]\nfilter = '{}'\ntest-group = '{}'\n",
            filterset(&refs),
            group_name(i)
        ));
    }
    s
}

fn cargo_guard(
    runner: RunnerKind,
    groups: &[Vec<String>],
    locations: &[(String, String)],
) -> String {
    let mut s = String::from(
        "Put these tests behind racegate's test guard (first line of each test body), or mark them #[serial]:\n",
    );
    for (i, g) in groups.iter().enumerate() {
        s.push_str(&format!("  # {}\n", group_name(i)));
        for t in g {
            let name = if runner == RunnerKind::Nextest {
                super::runner::nextest::split_id(t).1
            } else {
                t.as_str()
            };
            match locations.iter().find(|(n, _)| n == name) {
                Some((_, at)) => s.push_str(&format!("  {name}  ({at})\n")),
                None => s.push_str(&format!("  {name}\n")),
            }
        }
    }
    s.push_str("\n    let _gpu = racegate::test_guard(\"gpu\");\n");
    s
}

/// Where each Rust test in `names` is defined under `root`: the first `fn LAST_SEGMENT(` in a
/// `.rs` file whose path or text mentions the test's module, as `path:line` (relative to the
/// current directory when under it). Bounded: at most 5,000 files, `target/` and hidden directories skipped.
pub fn locate_rust_tests(root: &std::path::Path, names: &[&str]) -> Vec<(String, String)> {
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
    let texts: Vec<(std::path::PathBuf, String)> = files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect();
    let cwd = std::env::current_dir().ok();
    let mut out = Vec::new();
    for name in names {
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
            out.push((name.to_string(), at));
        }
    }
    out
}

fn pytest_groups(groups: &[Vec<String>]) -> String {
    let mut s =
        String::from("# Run with: pytest -n <N> --dist loadgroup\n# Either mark each test:\n");
    for (i, g) in groups.iter().enumerate() {
        for t in g {
            s.push_str(&format!(
                "#   {t}\n#       @pytest.mark.xdist_group(name=\"{}\")\n",
                group_name(i)
            ));
        }
    }
    s.push_str("# or add this to conftest.py:\nimport pytest\n\n_RACEGATE_GROUPS = {\n");
    for (i, g) in groups.iter().enumerate() {
        for t in g {
            s.push_str(&format!("    {}: \"{}\",\n", py_str(t), group_name(i)));
        }
    }
    s.push_str(
        "}\n\n\ndef pytest_collection_modifyitems(items):\n    for item in items:\n        group = _RACEGATE_GROUPS.get(item.nodeid)\n        if group:\n            item.add_marker(pytest.mark.xdist_group(name=group))\n",
    );
    s
}

fn leak_note(leaks: &[LeakingFixture]) -> Option<String> {
    if leaks.is_empty() {
        return None;
    }
    let mut s = String::new();
    for l in leaks {
        s.push_str(&format!(
            "fixture `{}` ({}) leaves work running after it returns: the hung workers were blocked in `{}` under it. \
             Make it a yield fixture that stops what it started (shut the watcher down, release its buffers) after the test; \
             the xdist_group above only keeps its {} user(s) on one worker.\n",
            l.name,
            l.location,
            l.blocked_in,
            l.used_by.len()
        ));
    }
    Some(s)
}

fn py_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One frame of a py-spy dump: `    name (file:line)`.
fn py_frame(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    let (name, rest) = line.split_once(" (")?;
    let loc = rest.strip_suffix(')')?;
    if name.is_empty() || name.contains(' ') {
        return None;
    }
    Some((name, loc))
}

/// Find fixtures in Python thread dumps: a thread blocked under a fixture function (the frame
/// just inside pytest's `call_fixture_func`) names that fixture.
pub fn leaking_fixtures(stacks: &[super::model::ProcessStack]) -> Vec<LeakingFixture> {
    let mut out: Vec<LeakingFixture> = Vec::new();
    for s in stacks
        .iter()
        .filter(|s| s.tool == "py-spy" || s.tool == "faulthandler")
    {
        for thread in super::stacks::split_threads(&s.text) {
            let frames: Vec<(&str, &str)> =
                thread.iter().skip(1).filter_map(|l| py_frame(l)).collect();
            let Some(i) = frames.iter().position(|(n, _)| *n == "call_fixture_func") else {
                continue;
            };
            if i == 0 {
                continue;
            }
            let (name, loc) = frames[i - 1];
            let (inner, inner_loc) = frames[0];
            if out.iter().any(|l| l.name == name) {
                continue;
            }
            out.push(LeakingFixture {
                name: name.to_string(),
                location: short_path(loc),
                blocked_in: format!("{inner} ({})", short_path(inner_loc)),
                used_by: Vec::new(),
            });
        }
    }
    out
}

fn short_path(loc: &str) -> String {
    // Paths relative to the suite read better than absolute ones.
    let cwd = std::env::current_dir().ok();
    match cwd
        .as_ref()
        .and_then(|c| loc.strip_prefix(&format!("{}/", c.display())))
    {
        Some(rel) => rel.to_string(),
        None => loc.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hunt::model::ProcessStack;

    #[test]
    fn nextest_fix_parses_as_toml() {
        let g = vec![vec!["suite gpu::a".to_string(), "suite gpu::b".to_string()]];
        let f = fix(
            RunnerKind::Nextest,
            &g,
            &[],
            &[("gpu::a".into(), "src/gpu.rs:12".into())],
        );
        let toml_text = f.nextest_toml.unwrap();
        let t: toml::Table = toml_text.parse().unwrap();
        assert!(t["test-groups"]["racegate-conflict-1"]["max-threads"].as_integer() == Some(1));
        assert!(toml_text
            .contains("(binary_id(=suite) & test(=gpu::a)) | (binary_id(=suite) & test(=gpu::b))"));
        assert!(f
            .cargo_test_guard
            .unwrap()
            .contains("  gpu::a  (src/gpu.rs:12)\n"));
    }

    #[test]
    fn pytest_fix_names_groups_and_loadgroup() {
        let g = vec![vec!["t.py::test_a".to_string()]];
        let f = fix(RunnerKind::Pytest, &g, &[], &[]);
        let p = f.pytest.unwrap();
        assert!(p.contains("--dist loadgroup"));
        assert!(p.contains("\"t.py::test_a\": \"racegate-conflict-1\""));
        assert!(f.root_cause.is_none());
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
        let found = locate_rust_tests(dir.path(), &["gpu::run", "missing"]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "gpu::run");
        assert!(found[0].1.ends_with("src/lib.rs:6"), "{found:?}");
    }

    #[test]
    fn finds_the_fixture_under_a_blocked_thread() {
        let text = "Thread 9 (idle): \"MainThread\"\n    acquire (leaky/pool.py:40)\n    solve (leaky/solver.py:22)\n    chunked_solver (conftest.py:18)\n    call_fixture_func (_pytest/fixtures.py:900)\n    pytest_fixture_setup (_pytest/fixtures.py:1100)\n";
        let s = ProcessStack {
            pid: 1,
            command: "python".into(),
            tool: "py-spy".into(),
            text: text.into(),
        };
        let l = leaking_fixtures(&[s]);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "chunked_solver");
        assert_eq!(l[0].location, "conftest.py:18");
        assert_eq!(l[0].blocked_in, "acquire (leaky/pool.py:40)");
    }
}
