//! The fix, written for you: ready-to-paste serialization for each group, in the runner's own
//! terms. Groups are disjoint (each test in exactly one), and named after what their tests
//! share — a module or a class — else `racegate-conflict-N`.

use serde::Serialize;

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

/// One group of the fix: tests that must never run at the same time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixGroup {
    /// Its name in every form of the fix (`env-tests`, `test_db-TestUsers`,
    /// `racegate-conflict-2`).
    pub name: String,
    /// Its tests, in listing order.
    pub tests: Vec<String>,
    /// The module or class every test of it shares, when they share one.
    pub shared: Option<String>,
}

/// Serialization in every form that applies to the runner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// `.config/nextest.toml` fragment (Rust suites).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nextest_toml: Option<String>,
    /// The tests to put behind `racegate::test_guard("<group>")` (or `#[serial(<group>)]`),
    /// with instructions (Rust).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cargo_test_guard: Option<String>,
    /// A `conftest.py` applying `xdist_group` marks, and the `--dist loadgroup` flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pytest: Option<String>,
    /// What to fix in the code when the stacks name the culprit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
}

/// The fallback name of group `i` (0-based).
pub fn conflict_name(i: usize) -> String {
    format!("racegate-conflict-{}", i + 1)
}

/// A group name from what its tests share: letters, digits, `_` and `-` only (a valid nextest
/// group, `racegate::test_guard` and `xdist_group` name), at most 64 bytes.
pub fn sanitize_name(shared: &str) -> Option<String> {
    let mut s = String::new();
    for c in shared.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-');
    let s = if s.len() > 64 {
        s[s.len() - 64..].trim_start_matches('-')
    } else {
        s
    };
    (!s.is_empty()).then(|| s.to_string())
}

/// Name `groups` (already disjoint): after the unit all their tests share (`unit` gives a
/// test's module or class and `short` its short form), else `racegate-conflict-N`. Names are
/// made unique.
pub fn name_groups(
    groups: &[Vec<String>],
    unit: &dyn Fn(&str) -> Option<String>,
    short: &dyn Fn(&str) -> String,
) -> Vec<FixGroup> {
    let none = vec![None; groups.len()];
    let units = |t: &str| unit(t).into_iter().collect::<Vec<_>>();
    name_groups_as(groups, &none, &units, short)
}

/// [`name_groups`], with a name to prefer for some groups (a leaking fixture's users are
/// named after the fixture they share).
pub fn name_groups_as(
    groups: &[Vec<String>],
    preferred: &[Option<String>],
    units: &dyn Fn(&str) -> Vec<String>,
    short: &dyn Fn(&str) -> String,
) -> Vec<FixGroup> {
    let mut out: Vec<FixGroup> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        // The narrowest unit (class, module, file) every member is in.
        let lists: Vec<Vec<String>> = g.iter().map(|t| units(t)).collect();
        let shared = lists.first().and_then(|first| {
            first
                .iter()
                .find(|u| lists.iter().all(|l| l.contains(u)))
                .cloned()
        });
        let mut name = preferred
            .get(i)
            .cloned()
            .flatten()
            .and_then(|p| sanitize_name(&p))
            .or_else(|| shared.as_deref().and_then(|u| sanitize_name(&short(u))))
            .unwrap_or_else(|| conflict_name(i));
        if out.iter().any(|o| o.name == name) {
            let mut n = 2;
            while out.iter().any(|o| o.name == format!("{name}-{n}")) {
                n += 1;
            }
            name = format!("{name}-{n}");
        }
        out.push(FixGroup {
            name,
            tests: g.clone(),
            shared,
        });
    }
    out
}

/// A `.config/nextest.toml` fragment: one test group per [`FixGroup`], each with an override
/// whose filter matches exactly its tests (`filter` gives a test's filterset).
pub fn nextest_toml(groups: &[FixGroup], filter: &dyn Fn(&str) -> Option<String>) -> String {
    let mut s = String::from("# .config/nextest.toml\n[test-groups]\n");
    for g in groups {
        s.push_str(&format!("{} = {{ max-threads = 1 }}\n", g.name));
    }
    for g in groups {
        let parts: Vec<String> = g.tests.iter().filter_map(|t| filter(t)).collect();
        if parts.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "\n[[profile.default.overrides]]\nfilter = '{}'\ntest-group = '{}'\n",
            parts.join(" | "),
            g.name
        ));
    }
    s
}

/// The `racegate::test_guard` instructions for Rust tests (`display` gives a test's name as
/// written in its source, `locations` where each is defined).
pub fn cargo_guard(
    groups: &[FixGroup],
    display: &dyn Fn(&str) -> String,
    locations: &[(String, String)],
) -> String {
    let mut s = String::from(
        "Make the first line of each test below take its group's guard (racegate as a dev-dependency),\nor mark the test #[serial(<group>)] (serial_test):\n",
    );
    for g in groups {
        s.push_str(&format!("\n  # {}\n", g.name));
        for t in &g.tests {
            let name = display(t);
            match locations.iter().find(|(n, _)| *n == *t) {
                Some((_, at)) => s.push_str(&format!("  {name}  ({at})\n")),
                None => s.push_str(&format!("  {name}\n")),
            }
        }
        s.push_str(&format!(
            "      let _guard = racegate::test_guard(\"{}\");\n",
            g.name
        ));
    }
    s
}

/// A `conftest.py` that puts each group's tests in one `xdist_group`, and, where the racegate
/// pytest plugin is registered, also marks them `racegate(<group>)`: a machine-wide gate that
/// keeps them apart on any worker, in any process (valid Python as a whole).
/// `verified_with_gate`: whether `--verify` ran with the plugin registered (both marks), or
/// without it (`xdist_group` alone). With `leaks`, the mark alone is not offered.
pub fn pytest_conftest(
    groups: &[FixGroup],
    leaks: &[LeakingFixture],
    verified_with_gate: bool,
) -> String {
    let mut s =
        String::from("# Run with: pytest -n <N> --dist loadgroup\n# Either mark each test:\n");
    for g in groups {
        for t in &g.tests {
            s.push_str(&format!(
                "#   {t}\n#       @pytest.mark.xdist_group(name=\"{}\")\n",
                g.name
            ));
        }
    }
    if leaks.is_empty() {
        s.push_str(
            "# or, with the racegate pytest plugin (pip install racegate), under any `-n` and\n\
             # without --dist (tests of one group may go to any worker, one at a time, also across\n\
             # other pytest runs and Rust tests taking racegate::test_guard of the same name;\n\
             # this form alone was not verified by this hunt):\n",
        );
        for g in groups {
            for t in &g.tests {
                s.push_str(&format!(
                    "#   {t}\n#       @pytest.mark.racegate(\"{}\")\n",
                    g.name
                ));
            }
        }
    } else {
        // A leaking fixture's work outlives its test, and so outlives a gate held for the
        // test: only one worker for the group (or fixing the fixture) keeps the users apart.
        s.push_str(
            "# (the racegate mark alone does not hold here: the leaking fixture's work outlives\n\
             # the test, and the gate with it; keep the xdist_group, or fix the fixture.)\n",
        );
    }
    s.push_str(if verified_with_gate {
        "# --verify ran the conftest below with the racegate plugin registered: both marks.\n"
    } else {
        "# --verify ran the conftest below without the racegate plugin: xdist_group alone.\n"
    });
    s.push_str("# or add this to conftest.py (merge the hook into yours if you have one); it applies\n# both marks, racegate's only where its plugin is registered:\nimport pytest\n\n_RACEGATE_GROUPS = {\n");
    for g in groups {
        for t in &g.tests {
            s.push_str(&format!("    {}: {},\n", py_str(t), py_str(&g.name)));
        }
    }
    s.push_str(
        "}\n\n\ndef pytest_collection_modifyitems(config, items):\n    gate = config.pluginmanager.hasplugin(\"racegate\")\n    for item in items:\n        group = _RACEGATE_GROUPS.get(item.nodeid)\n        if group:\n            item.add_marker(pytest.mark.xdist_group(name=group))\n            if gate:\n                item.add_marker(pytest.mark.racegate(group))\n",
    );
    s
}

/// What to change in a fixture whose leak the stacks show.
pub fn leak_note(leaks: &[LeakingFixture]) -> Option<String> {
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

/// A Python string literal.
pub fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

    fn groups() -> Vec<FixGroup> {
        let unit = |t: &str| t.rsplit_once("::").map(|(m, _)| m.to_string());
        let short = |u: &str| u.to_string();
        name_groups(
            &[
                vec!["env::a".into(), "env::b".into()],
                vec!["x::a".into(), "y::b".into()],
                vec!["env::c".into()],
            ],
            &unit,
            &short,
        )
    }

    #[test]
    fn groups_are_named_after_what_they_share() {
        let g = groups();
        assert_eq!(g[0].name, "env");
        assert_eq!(g[0].shared.as_deref(), Some("env"));
        assert_eq!(g[1].name, "racegate-conflict-2");
        assert_eq!(g[2].name, "env-2");
        assert_eq!(
            sanitize_name("tests/test_db.py::TestUsers").unwrap(),
            "tests-test_db-py-TestUsers"
        );
        assert_eq!(sanitize_name("::"), None);
        assert!(sanitize_name(&"a".repeat(100)).unwrap().len() <= 64);
    }

    #[test]
    fn nextest_fix_parses_as_toml_with_each_test_in_one_group() {
        let g = groups();
        let text = nextest_toml(&g, &|t| Some(format!("test(={t})")));
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(t["test-groups"]["env"]["max-threads"].as_integer(), Some(1));
        let overrides = t["profile"]["default"]["overrides"].as_array().unwrap();
        assert_eq!(overrides.len(), 3);
        let mut seen = Vec::new();
        for o in overrides {
            let group = o["test-group"].as_str().unwrap();
            assert!(t["test-groups"].get(group).is_some(), "{group}");
            for part in o["filter"].as_str().unwrap().split(" | ") {
                assert!(!seen.contains(&part.to_string()), "{part} in two groups");
                seen.push(part.to_string());
            }
        }
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn cargo_guard_names_the_group() {
        let text = cargo_guard(
            &groups(),
            &|t| t.to_string(),
            &[("env::a".into(), "src/env.rs:12".into())],
        );
        assert!(text.contains("  env::a  (src/env.rs:12)\n"), "{text}");
        assert!(text.contains("racegate::test_guard(\"env\")"), "{text}");
        assert!(text.contains("racegate::test_guard(\"racegate-conflict-2\")"));
        assert!(!text.contains("\"gpu\""));
    }

    #[test]
    fn conftest_is_valid_python_mapping_each_test_once() {
        let g = groups();
        let text = pytest_conftest(&g, &[], false);
        assert!(text.contains("--dist loadgroup"));
        assert!(
            text.contains("#       @pytest.mark.racegate(\"env\")\n"),
            "{text}"
        );
        assert!(text.contains("without the racegate plugin"));
        assert!(pytest_conftest(&g, &[], true).contains("racegate plugin registered: both marks"));
        assert!(text.contains("    \"env::a\": \"env\",\n"));
        let have_python = std::process::Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if have_python {
            let check = "import ast, sys\nsrc = sys.stdin.read()\ntree = ast.parse(src)\nns = {}\nexec(compile('\\n'.join(l for l in src.splitlines() if not l.startswith('import pytest')), 'c', 'exec'), ns)\nprint(len(ns['_RACEGATE_GROUPS']))\n";
            let mut child = std::process::Command::new("python3")
                .args(["-c", check])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{text}");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
        }
        assert_eq!(py_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
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

    proptest::proptest! {
        #[test]
        fn sanitized_names_are_valid(s in "\\PC{0,100}") {
            if let Some(n) = sanitize_name(&s) {
                proptest::prop_assert!(n.len() <= 64 && !n.is_empty());
                proptest::prop_assert!(n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                proptest::prop_assert!(!n.starts_with('-') && !n.ends_with('-'));
            }
        }
    }
}
