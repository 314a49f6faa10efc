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


_config = None


def pytest_configure(config):
    global _config
    _config = config


def pytest_runtest_logreport(report):
    # One line per test outcome, with the node id as collected (pytest's own -v lines show
    # paths relative to the invocation directory instead). xdist workers forward their reports
    # to the controller, which prints them.
    if _config is None or hasattr(_config, "workerinput"):
        return
    if report.when == "call" or report.outcome != "passed":
        if report.when == "setup" and report.outcome == "skipped":
            outcome = "skipped"
        elif report.when != "call" and report.failed:
            outcome = "error"
        else:
            outcome = report.outcome
        terminal = _config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.ensure_newline()
            terminal.write_line("racegate-result %s %s" % (outcome, report.nodeid))
            crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
            message = getattr(crash, "message", None) if report.failed else None
            if message:
                # The failure's own message identifies it across tests and runs.
                first = message.strip().splitlines()[0] if message.strip() else ""
                terminal.write_line("racegate-message %s\t%s" % (report.nodeid, first))


def pytest_sessionstart(session):
    if os.environ.get("RACEGATE_HUNT_PROBE") and not hasattr(session.config, "workerinput"):
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            xdist = session.config.pluginmanager.hasplugin("xdist")
            terminal.write_line("racegate-xdist %s" % ("yes" if xdist else "no"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Node ids are relative to the rootdir, not to where pytest was started, so the hunt
    # selects tests here rather than on the command line.
    select = os.environ.get("RACEGATE_HUNT_SELECT")
    if select:
        wanted = set(json.loads(select))
        keep = [item for item in items if item.nodeid in wanted]
        dropped = [item for item in items if item.nodeid not in wanted]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
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
    /// Whether pytest-xdist is loaded, as the listing reported (unknown: assume it is).
    xdist: std::cell::Cell<Option<bool>>,
}

impl Pytest {
    /// Wrap the user's pytest command; writes the helper plugin into `scratch`.
    pub fn new(command: &[OsString], scratch: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(scratch)?;
        std::fs::write(scratch.join(format!("{PLUGIN}.py")), PLUGIN_SOURCE)?;
        Ok(Pytest {
            command: command.to_vec(),
            scratch: scratch.to_path_buf(),
            xdist: std::cell::Cell::new(None),
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

/// Quote `w` for `sh`.
fn sh_quote(w: &str) -> String {
    format!("'{}'", w.replace('\'', r"'\''"))
}

impl Pytest {
    /// Without pytest-xdist, racegate runs the tests concurrently itself: `jobs` pytest
    /// processes, each with a shard of the tests (a serialized group stays in one shard), all
    /// started by one `sh` so that the run is one process group with merged output. A shard
    /// killed by a signal is reported as `racegate-shard-signal N` on stderr.
    fn sharded(&self, plan: &RunPlan<'_>) -> CommandSpec {
        let jobs = plan.jobs as usize;
        let mut units: Vec<Vec<&String>> = plan
            .serialized
            .iter()
            .map(|g| {
                g.iter()
                    .filter(|t| plan.tests.contains(t))
                    .collect::<Vec<_>>()
            })
            .filter(|g: &Vec<&String>| !g.is_empty())
            .collect();
        for t in plan.tests {
            if !plan.serialized.iter().flatten().any(|g| g == t) {
                units.push(vec![t]);
            }
        }
        let mut shards: Vec<Vec<&String>> = vec![Vec::new(); jobs];
        for unit in units {
            // The least loaded shard takes the next unit.
            let i = (0..jobs).min_by_key(|&i| shards[i].len()).unwrap_or(0);
            shards[i].extend(unit);
        }
        let mut words: Vec<String> = self
            .command
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        words.extend(["-p", "no:cacheprovider", "-p", PLUGIN].map(String::from));
        let cmd: Vec<String> = words.iter().map(|w| sh_quote(w)).collect();
        let mut script = String::from("pids=''\n");
        for shard in shards.iter().filter(|s| !s.is_empty()) {
            let select = serde_json::to_string(shard).unwrap_or_default();
            script.push_str(&format!(
                "RACEGATE_HUNT_SELECT={} {} &\npids=\"$pids $!\"\n",
                sh_quote(&select),
                cmd.join(" ")
            ));
        }
        script.push_str(
            "rc=0\nfor p in $pids; do\n  wait \"$p\"; s=$?\n  if [ \"$s\" -gt 128 ]; then echo \"racegate-shard-signal $((s - 128))\" >&2; fi\n  if [ \"$s\" -ne 0 ]; then rc=1; fi\ndone\nexit $rc\n",
        );
        let mut spec = self.base(&[]);
        spec.program = "sh".into();
        spec.args = vec!["-c".into(), script.into()];
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

/// The helper plugin's `racegate-message NODEID<TAB>MESSAGE` line, as `(node id, message)`.
pub fn parse_message_line(line: &str) -> Option<(String, String)> {
    let rest = &line[line.find("racegate-message ")? + "racegate-message ".len()..];
    let (id, message) = rest.split_once('\t')?;
    let (id, message) = (id.trim(), message.trim());
    if id.is_empty() || message.is_empty() {
        return None;
    }
    Some((strip_group(id).to_string(), message.to_string()))
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

/// One result line: the helper plugin's `racegate-result OUTCOME NODEID`, or xdist's
/// `worker 'gw0' crashed while running 'NODEID'`.
pub fn parse_status_line(line: &str) -> Option<(String, TestStatus)> {
    let line = line.trim_end();
    if let Some(rest) = line.split("crashed while running '").nth(1) {
        let id = rest.strip_suffix('\'')?;
        if id.is_empty() {
            return None;
        }
        return Some((
            strip_group(id).to_string(),
            TestStatus::Crashed { signal: None },
        ));
    }
    // Progress characters (`.`, `F`) may precede it on the same line.
    let rest = &line[line.find("racegate-result ")? + "racegate-result ".len()..];
    let (outcome, id) = rest.split_once(' ')?;
    let status = match outcome {
        "passed" => TestStatus::Passed,
        "failed" | "error" => TestStatus::Failed,
        "skipped" => TestStatus::Skipped,
        _ => return None,
    };
    let id = id.trim();
    if id.is_empty() {
        return None;
    }
    Some((strip_group(id).to_string(), status))
}

impl Runner for Pytest {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Pytest
    }

    fn list_command(&self) -> CommandSpec {
        let mut spec = self.base(&[
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            PLUGIN,
        ]);
        spec.env.push(("RACEGATE_HUNT_PROBE".into(), "1".into()));
        spec
    }

    fn parse_list(&self, stdout: &str, _stderr: &str) -> Result<Vec<String>, String> {
        if stdout.lines().any(|l| l.trim() == "racegate-xdist no") {
            self.xdist.set(Some(false));
        } else if stdout.lines().any(|l| l.trim() == "racegate-xdist yes") {
            self.xdist.set(Some(true));
        }
        if stdout.contains("ERROR collecting") || stdout.contains("errors during collection") {
            return Err("pytest reported errors during collection".into());
        }
        Ok(parse_collect(stdout))
    }

    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<CommandSpec> {
        if plan.jobs > 1 && self.xdist.get() == Some(false) {
            return vec![self.sharded(plan)];
        }
        let jobs = plan.jobs.to_string();
        let mut extra: Vec<&str> = vec!["-p", "no:cacheprovider", "-p", PLUGIN];
        if plan.jobs > 1 {
            extra.extend(["-n", &jobs]);
            if !plan.serialized.is_empty() {
                extra.extend(["--dist", "loadgroup"]);
            }
        }
        let mut spec = self.base(&extra);
        if !plan.whole_suite {
            let select = serde_json::to_string(plan.tests).unwrap_or_default();
            spec.env
                .push(("RACEGATE_HUNT_SELECT".into(), select.into()));
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

    fn failure_output(&self, stdout: &str, stderr: &str) -> Vec<(String, String)> {
        stdout
            .lines()
            .chain(stderr.lines())
            .filter_map(parse_message_line)
            .collect()
    }

    fn parse_results(&self, stdout: &str, stderr: &str) -> Vec<(String, TestStatus)> {
        // A test may be reported more than once (a teardown error after a passing call, a
        // worker crash after the failure xdist records for it): the worst report wins.
        let rank = |s: &TestStatus| match s {
            TestStatus::Skipped => 0,
            TestStatus::Passed => 1,
            TestStatus::Failed => 2,
            TestStatus::TimedOut => 3,
            TestStatus::Crashed { .. } => 4,
        };
        let mut out: Vec<(String, TestStatus)> = Vec::new();
        for line in stdout.lines().chain(stderr.lines()) {
            if let Some((id, st)) = parse_status_line(line) {
                match out.iter_mut().find(|(i, _)| *i == id) {
                    Some(entry) if rank(&st) > rank(&entry.1) => entry.1 = st,
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
    fn parses_result_lines() {
        assert_eq!(
            parse_status_line("racegate-result passed tests/test_pool.py::test_a"),
            Some(("tests/test_pool.py::test_a".into(), TestStatus::Passed))
        );
        assert_eq!(
            parse_status_line("racegate-result failed t.py::test_b@racegate-conflict-1"),
            Some(("t.py::test_b".into(), TestStatus::Failed))
        );
        assert_eq!(
            parse_status_line("racegate-result skipped t.py::test_c[1-x y]"),
            Some(("t.py::test_c[1-x y]".into(), TestStatus::Skipped))
        );
        assert_eq!(
            parse_status_line("[gw0] [ 50%] PASSED ../../t.py::test_b"),
            None
        );
        assert_eq!(
            parse_status_line("worker 'gw0' crashed while running 't.py::test_d'"),
            Some(("t.py::test_d".into(), TestStatus::Crashed { signal: None }))
        );
        assert_eq!(parse_status_line("racegate-result weird t.py::x"), None);
        assert_eq!(
            parse_status_line(".Fracegate-result failed t.py::x"),
            Some(("t.py::x".into(), TestStatus::Failed))
        );
        let py = Pytest {
            command: vec![],
            scratch: PathBuf::new(),
            xdist: std::cell::Cell::new(None),
        };
        let out = "racegate-result failed t.py::d\nracegate-result passed t.py::e\nracegate-result error t.py::e\n";
        let err = "worker 'gw1' crashed while running 't.py::d'\n";
        assert_eq!(
            py.parse_results(out, err),
            vec![
                ("t.py::d".to_string(), TestStatus::Crashed { signal: None }),
                ("t.py::e".to_string(), TestStatus::Failed),
            ]
        );
    }

    #[test]
    fn run_commands_select_through_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let py = Pytest::new(&["pytest".into(), "tests".into()], dir.path()).unwrap();
        assert!(dir.path().join("racegate_hunt_plugin.py").is_file());
        let tests = ["t.py::a".to_string(), "t.py::b".to_string()];
        let groups = vec![vec!["t.py::a".to_string()]];
        let plan = RunPlan {
            tests: &tests[..1],
            whole_suite: false,
            jobs: 3,
            serialized: &groups,
        };
        let spec = &py.run_commands(&plan)[0];
        assert_eq!(
            spec.display(),
            "pytest tests -p no:cacheprovider -p racegate_hunt_plugin -n 3 --dist loadgroup"
        );
        let env = |k: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(env("RACEGATE_HUNT_SELECT").unwrap(), r#"["t.py::a"]"#);
        assert_eq!(env("RACEGATE_HUNT_GROUPS").unwrap(), r#"[["t.py::a"]]"#);
        assert!(env("PYTHONPATH")
            .unwrap()
            .starts_with(&dir.path().display().to_string()));
    }

    #[test]
    fn without_xdist_racegate_runs_shards_itself() {
        let dir = tempfile::tempdir().unwrap();
        let py = Pytest::new(
            &["pytest".into(), "-p".into(), "no:xdist".into()],
            dir.path(),
        )
        .unwrap();
        py.parse_list("racegate-xdist no\nt.py::a\n", "").unwrap();
        let tests: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| format!("t.py::{t}"))
            .collect();
        let groups = vec![vec![tests[0].clone(), tests[3].clone()]];
        let plan = RunPlan {
            tests: &tests,
            whole_suite: true,
            jobs: 2,
            serialized: &groups,
        };
        let spec = &py.run_commands(&plan)[0];
        assert_eq!(spec.program, "sh");
        let script = spec.args[1].to_string_lossy().into_owned();
        // The group stays together; the other two tests go to the other shard.
        assert!(
            script.contains(
                r#"RACEGATE_HUNT_SELECT='["t.py::a","t.py::d"]' 'pytest' '-p' 'no:xdist'"#
            ),
            "{script}"
        );
        assert!(
            script.contains(r#"RACEGATE_HUNT_SELECT='["t.py::b","t.py::c"]'"#),
            "{script}"
        );
        assert!(script.contains("racegate-shard-signal"));
        assert!(!script.contains("'-n'"));
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn parses_message_lines() {
        assert_eq!(
            parse_message_line("racegate-message t.py::a@g\tAssertionError: device busy"),
            Some(("t.py::a".into(), "AssertionError: device busy".into()))
        );
        assert_eq!(parse_message_line("racegate-message t.py::a\t "), None);
        assert_eq!(parse_message_line("racegate-result failed t.py::a"), None);
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
            let _ = parse_message_line(&s);
            let _ = strip_group(&s);
        }

        #[test]
        fn result_lines_round_trip(file in "[a-z_]{1,10}", name in "test_[a-z0-9_]{1,12}", param in "[a-z0-9 -]{0,8}") {
            let id = if param.is_empty() {
                format!("{file}.py::{name}")
            } else {
                format!("{file}.py::{name}[{param}]")
            };
            let line = format!("racegate-result passed {id}");
            prop_assert_eq!(parse_status_line(&line), Some((id.trim().to_string(), TestStatus::Passed)));
        }
    }
}
