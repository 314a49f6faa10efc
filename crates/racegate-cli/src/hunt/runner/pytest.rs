//! pytest: `--collect-only -q` to list, node ids plus `-n N` (pytest-xdist) to run, `-v` status
//! lines to read. A small plugin, written to a scratch directory and loaded with `-p`, applies
//! `xdist_group` marks by node id (to verify a serialization without editing the suite) and
//! reports which fixtures each test uses (to name the tests behind a leaking fixture).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{split_command, RunPlan, Runner, RunnerKind};
use crate::hunt::exec::CommandSpec;
use crate::hunt::model::TestStatus;

/// Module name of the helper plugin.
const PLUGIN: &str = "racegate_hunt_plugin";

const PLUGIN_SOURCE: &str = r#"# Written by `racegate hunt`; safe to delete.
import json
import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    groups = os.environ.get("RACEGATE_HUNT_GROUPS")
    if groups:
        membership = {}
        for i, group in enumerate(json.loads(groups)):
            for nodeid in group:
                membership[nodeid] = "racegate-conflict-%d" % (i + 1)
        for item in items:
            name = membership.get(item.nodeid)
            if name:
                item.add_marker(pytest.mark.xdist_group(name=name))
    out = os.environ.get("RACEGATE_HUNT_FIXTURES")
    if out:
        with open(out, "w") as f:
            for item in items:
                names = list(getattr(item, "fixturenames", []))
                f.write("%s\t%s\n" % (item.nodeid, ",".join(names)))
"#;

/// The pytest adapter.
#[derive(Debug, Clone)]
pub struct Pytest {
    command: Vec<OsString>,
    scratch: PathBuf,
}

impl Pytest {
    /// Wrap the user's pytest command; writes the helper plugin into `scratch`.
    pub fn new(command: &[OsString], scratch: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(scratch)?;
        std::fs::write(scratch.join(format!("{PLUGIN}.py")), PLUGIN_SOURCE)?;
        Ok(Pytest {
            command: command.to_vec(),
            scratch: scratch.to_path_buf(),
        })
    }

    fn base(&self, extra: &[&str]) -> CommandSpec {
        let mut words = self.command.clone();
        words.extend(extra.iter().map(OsString::from));
        let mut spec = split_command(&words, None);
        let mut path = self.scratch.clone().into_os_string();
        if let Some(old) = std::env::var_os("PYTHONPATH") {
            path.push(":");
            path.push(old);
        }
        spec.env.push(("PYTHONPATH".into(), path));
        spec
    }

    /// The command that writes `nodeid<TAB>fixture,fixture…` lines for every test into `out`.
    pub fn fixture_command(&self, out: &Path) -> CommandSpec {
        let mut spec = self.base(&[
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            PLUGIN,
        ]);
        spec.env
            .push(("RACEGATE_HUNT_FIXTURES".into(), out.as_os_str().to_owned()));
        spec
    }
}

/// Parse the helper plugin's fixture file: `(node id, fixtures)` per test.
pub fn parse_fixture_file(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let (id, fx) = l.split_once('\t')?;
            Some((
                id.to_string(),
                fx.split(',')
                    .filter(|f| !f.is_empty())
                    .map(String::from)
                    .collect(),
            ))
        })
        .collect()
}

/// The node ids in `pytest --collect-only -q` output (the lines before the first blank one
/// that look like node ids).
pub fn parse_collect(stdout: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for line in stdout.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if !ids.is_empty() {
                break;
            }
            continue;
        }
        if line.contains("::") && !line.starts_with(' ') && !line.starts_with('=') {
            ids.push(line.to_string());
        }
    }
    ids
}

const WORDS: [&str; 6] = ["PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"];

fn status_of(word: &str) -> Option<TestStatus> {
    Some(match word {
        "PASSED" | "XFAIL" => TestStatus::Passed,
        "FAILED" | "ERROR" | "XPASS" => TestStatus::Failed,
        "SKIPPED" => TestStatus::Skipped,
        _ => return None,
    })
}

/// Drop the `@group` suffix xdist's `loadgroup` mode appends to node ids.
fn strip_group(id: &str) -> &str {
    match id.rsplit_once('@') {
        Some((base, g))
            if !g.is_empty()
                && g.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                && base.contains("::") =>
        {
            base
        }
        _ => id,
    }
}

/// One `-v` status line: xdist's `[gw0] [ 10%] PASSED id` or plain `id PASSED [ 10%]`; also
/// xdist's `worker 'gw0' crashed while running 'id'`.
pub fn parse_status_line(line: &str) -> Option<(String, TestStatus)> {
    let line = line.trim_end();
    if let Some(rest) = line.split("crashed while running '").nth(1) {
        let id = rest.strip_suffix('\'')?;
        return Some((
            strip_group(id).to_string(),
            TestStatus::Crashed { signal: None },
        ));
    }
    if line.starts_with("[gw") {
        // [gw0] [ 10%] PASSED id
        let after = line.split_once("] ")?.1;
        let after = if after.starts_with('[') {
            after.split_once("] ")?.1
        } else {
            after
        };
        let (word, id) = after.split_once(' ')?;
        let status = status_of(word)?;
        let id = id.trim();
        if !id.contains("::") || id.contains(' ') && !id.contains('[') {
            return None;
        }
        return Some((strip_group(id).to_string(), status));
    }
    // id PASSED [ 10%]
    let before_pct = match line.rfind(" [") {
        Some(i) if line.ends_with("%]") => &line[..i],
        _ => line,
    };
    let (id, rest) = before_pct.trim_end().split_once(' ')?;
    let word = rest.split_whitespace().next()?;
    if !WORDS.contains(&word) || !id.contains("::") {
        return None;
    }
    let status = status_of(word)?;
    Some((strip_group(id.trim()).to_string(), status))
}

impl Runner for Pytest {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Pytest
    }

    fn list_command(&self) -> CommandSpec {
        self.base(&["--collect-only", "-q", "-p", "no:cacheprovider"])
    }

    fn parse_list(&self, stdout: &str, _stderr: &str) -> Result<Vec<String>, String> {
        if stdout.contains("ERROR collecting") || stdout.contains("errors during collection") {
            return Err("pytest reported errors during collection".into());
        }
        Ok(parse_collect(stdout))
    }

    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<CommandSpec> {
        let jobs = plan.jobs.to_string();
        let mut extra: Vec<&str> = vec!["-v", "-p", "no:cacheprovider"];
        if plan.jobs > 1 {
            extra.extend(["-n", &jobs]);
            if !plan.serialized.is_empty() {
                extra.extend(["--dist", "loadgroup", "-p", PLUGIN]);
            }
        }
        let mut spec = self.base(&extra);
        if !plan.whole_suite {
            spec.args.extend(plan.tests.iter().map(OsString::from));
        }
        if plan.jobs > 1 && !plan.serialized.is_empty() {
            let groups = serde_json::to_string(plan.serialized).unwrap_or_default();
            spec.env
                .push(("RACEGATE_HUNT_GROUPS".into(), groups.into()));
        }
        vec![spec]
    }

    fn is_progress(&self, line: &str) -> bool {
        parse_status_line(line).is_some()
    }

    fn parse_results(&self, stdout: &str, stderr: &str) -> Vec<(String, TestStatus)> {
        // A test appears once with its final status; later lines (the short summary) repeat
        // failures, so keep the first report per id.
        let mut out: Vec<(String, TestStatus)> = Vec::new();
        for line in stdout.lines().chain(stderr.lines()) {
            if line.starts_with("FAILED ") || line.starts_with("ERROR ") {
                continue; // short test summary lines
            }
            if let Some((id, st)) = parse_status_line(line) {
                match out.iter_mut().find(|(i, _)| *i == id) {
                    Some(entry) if matches!(st, TestStatus::Crashed { .. }) => entry.1 = st,
                    Some(_) => {}
                    None => out.push((id, st)),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_xdist_and_serial_lines() {
        assert_eq!(
            parse_status_line("[gw1] [ 15%] PASSED tests/test_pool.py::test_a "),
            Some(("tests/test_pool.py::test_a".into(), TestStatus::Passed))
        );
        assert_eq!(
            parse_status_line("[gw0] [ 50%] FAILED t.py::test_b@racegate-conflict-1"),
            Some(("t.py::test_b".into(), TestStatus::Failed))
        );
        assert_eq!(
            parse_status_line("t.py::test_c[1-x] SKIPPED (why)                          [ 20%]"),
            Some(("t.py::test_c[1-x]".into(), TestStatus::Skipped))
        );
        assert_eq!(
            parse_status_line("t.py::test_c[1-x] PASSED                          [ 20%]"),
            Some(("t.py::test_c[1-x]".into(), TestStatus::Passed))
        );
        assert_eq!(
            parse_status_line("[gw0] node down: Not properly terminated"),
            None
        );
        assert_eq!(
            parse_status_line("worker 'gw0' crashed while running 't.py::test_d'"),
            Some(("t.py::test_d".into(), TestStatus::Crashed { signal: None }))
        );
        assert_eq!(
            parse_status_line("FAILED t.py::test_b - assert 1 == 2"),
            None
        );
    }

    #[test]
    fn parses_collect_only() {
        let out = "t.py::test_a\nt.py::test_b[1]\n\n2 tests collected in 0.01s\n";
        assert_eq!(parse_collect(out), vec!["t.py::test_a", "t.py::test_b[1]"]);
        assert!(parse_collect("no tests ran in 0.01s\n").is_empty());
    }

    #[test]
    fn fixture_file() {
        let t = "t.py::a\tleaky,tmp_path\nt.py::b\t\n";
        let p = parse_fixture_file(t);
        assert_eq!(p[0].1, vec!["leaky", "tmp_path"]);
        assert!(p[1].1.is_empty());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_status_line(&s);
            let _ = parse_collect(&s);
            let _ = parse_fixture_file(&s);
            let _ = strip_group(&s);
        }

        #[test]
        fn xdist_lines_round_trip(file in "[a-z_]{1,10}", name in "test_[a-z0-9_]{1,12}", gw in 0u8..16, pct in 0u8..=100) {
            let id = format!("{file}.py::{name}");
            let line = format!("[gw{gw}] [{pct:>3}%] PASSED {id}");
            prop_assert_eq!(parse_status_line(&line), Some((id, TestStatus::Passed)));
        }
    }
}
