//! pytest: `--collect-only -q` to list, node ids plus `-n N` (pytest-xdist) to run, `-v` status
//! lines to read. A small plugin, written to a scratch directory and loaded with `-p`, applies
//! `xdist_group` marks by node id (to verify a serialization without editing the suite) and
//! reports which fixtures each test uses (to name the tests behind a leaking fixture).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{split_command, RunCommand, RunEvent, RunPlan, Runner, RunnerKind};
use crate::hunt::classify::crashed_message;
use crate::hunt::emit::{self, Fix, FixGroup, LeakingFixture};
use crate::hunt::exec::{CommandSpec, Execution, Termination};
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


def _emit(terminal, line):
    # Flushed at once: racegate reads these lines as they come, and a run that hangs must
    # not keep the tests it started in stdout's buffer (a pipe is block-buffered).
    terminal.ensure_newline()
    terminal.write_line(line)
    try:
        terminal._tw.flush()
    except Exception:
        pass


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
            _emit(terminal, "racegate-result %s %s" % (outcome, report.nodeid))
            crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
            message = getattr(crash, "message", None) if report.failed else None
            if message:
                # The failure's own message and where it was raised identify it across runs.
                first = message.strip().splitlines()[0] if message.strip() else ""
                where = ""
                path = getattr(crash, "path", None)
                if path:
                    try:
                        path = os.path.relpath(str(path), str(_config.rootpath))
                    except (ValueError, AttributeError):
                        path = str(path)
                    where = "%s:%s" % (path, getattr(crash, "lineno", "?"))
                _emit(terminal, "racegate-message %s\t%s\t%s" % (report.nodeid, where, first))


# Files each test writes, in the serial run only (RACEGATE_HUNT_WRITES): tests that write
# one fixed path are the first suspects when one of them fails in parallel runs. An audit
# hook sees every open for writing, sqlite3.connect, remove and rename of a file, in setup,
# call and teardown alike.
_current = [None]
_writes = {}


def _note_write(path):
    test = _current[0]
    if test is None or path is None or isinstance(path, int):
        return
    try:
        path = os.path.abspath(os.fsdecode(path))
    except Exception:
        return
    if path.endswith(".pyc") or "/__pycache__/" in path or path.startswith(("/dev/", "/proc/")):
        return
    # Files only: a directory several tests clean up (stale run directories) is housekeeping,
    # not state they share.
    if os.path.isdir(path):
        return
    _writes.setdefault(test, set()).add(path)


def _audit(event, args):
    try:
        if event == "open":
            path, mode, flags = args
            if mode is not None:
                if not any(c in mode for c in "wax+"):
                    return
            elif not (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                return
            _note_write(path)
        elif event == "sqlite3.connect":
            database = args[0]
            if str(database) not in ("", ":memory:") and not str(database).startswith("file::memory:"):
                _note_write(database)
        elif event in ("os.remove", "os.rename"):
            _note_write(args[0])
    except Exception:
        pass


if os.environ.get("RACEGATE_HUNT_WRITES"):
    import sys

    # Audit hooks came with Python 3.8; before it, no writes are seen.
    if hasattr(sys, "addaudithook"):
        sys.addaudithook(_audit)


def pytest_runtest_logfinish(nodeid, location):
    if not os.environ.get("RACEGATE_HUNT_WRITES"):
        return
    _current[0] = None
    paths = _writes.pop(nodeid, None)
    terminal = _config.pluginmanager.get_plugin("terminalreporter") if _config else None
    if paths and terminal is not None:
        _emit(terminal, "racegate-writes %s\t%s" % (nodeid, "\t".join(sorted(paths))))


def pytest_runtest_logstart(nodeid, location):
    _current[0] = nodeid
    # On the controller too: xdist forwards each worker's start, so the tests in flight are
    # known when a worker dies or the run hangs.
    if _config is None or hasattr(_config, "workerinput"):
        return
    terminal = _config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        _emit(terminal, "racegate-start %s" % nodeid)


def pytest_sessionstart(session):
    if os.environ.get("RACEGATE_HUNT_PROBE") and not hasattr(session.config, "workerinput"):
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            xdist = session.config.pluginmanager.hasplugin("xdist")
            _emit(terminal, "racegate-xdist %s" % ("yes" if xdist else "no"))
            gate = session.config.pluginmanager.hasplugin("racegate")
            _emit(terminal, "racegate-gate %s" % ("yes" if gate else "no"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Node ids are relative to the rootdir, not to where pytest was started, so the hunt
    # selects tests here rather than on the command line.
    select = os.environ.get("RACEGATE_HUNT_SELECT")
    skip = os.environ.get("RACEGATE_HUNT_SKIP")
    if select or skip:
        wanted = set(json.loads(select)) if select else None
        unwanted = set(json.loads(skip)) if skip else set()

        def keep_it(item):
            return (wanted is None or item.nodeid in wanted) and item.nodeid not in unwanted

        keep = [item for item in items if keep_it(item)]
        dropped = [item for item in items if not keep_it(item)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    groups = os.environ.get("RACEGATE_HUNT_GROUPS")
    if groups:
        # As the emitted conftest does: the xdist_group mark, and the racegate gate mark where
        # the racegate plugin is registered.
        gate = config.pluginmanager.hasplugin("racegate")
        membership = {}
        for i, group in enumerate(json.loads(groups)):
            for nodeid in group:
                membership[nodeid] = "racegate-conflict-%d" % (i + 1)
        for item in items:
            name = membership.get(item.nodeid)
            if name:
                item.add_marker(pytest.mark.xdist_group(name=name))
                if gate:
                    item.add_marker(pytest.mark.racegate(name))
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
    /// Whether the racegate pytest plugin is registered, as the listing reported.
    gate: std::cell::Cell<bool>,
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
            gate: std::cell::Cell::new(false),
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
}

/// Quote `w` for `sh`.
fn sh_quote(w: &str) -> String {
    format!("'{}'", w.replace('\'', r"'\''"))
}

impl Pytest {
    /// Without pytest-xdist, racegate runs the tests concurrently itself: `jobs` pytest
    /// processes, each with a shard of the tests (a serialized group stays in one shard), all
    /// started by one `sh` so that the run is one process group with one output. A shard
    /// killed by a signal is reported as `racegate-shard-signal N`.
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

/// The helper plugin's `racegate-writes NODEID<TAB>PATH<TAB>PATH…` lines: the files each test
/// wrote in the serial run.
pub fn parse_writes(output: &str) -> Vec<(String, Vec<String>)> {
    output
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("racegate-writes "))
        .filter_map(|rest| {
            let mut fields = rest.split('\t');
            let id = fields.next().filter(|id| !id.is_empty())?;
            let paths: Vec<String> = fields.filter(|p| !p.is_empty()).map(String::from).collect();
            (!paths.is_empty()).then(|| (id.to_string(), paths))
        })
        .collect()
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

/// The helper plugin's `racegate-message NODEID<TAB>PATH:LINE<TAB>MESSAGE` line (the
/// location may be empty; older plugins wrote no location field), as `(node id, location,
/// message)`.
pub fn parse_message_line(line: &str) -> Option<(String, Option<String>, String)> {
    let rest = &line[line.find("racegate-message ")? + "racegate-message ".len()..];
    let (id, rest) = rest.split_once('\t')?;
    let (location, message) = match rest.split_once('\t') {
        Some((loc, msg)) => (Some(loc.trim()).filter(|l| !l.is_empty()), msg),
        None => (None, rest),
    };
    let (id, message) = (id.trim(), message.trim());
    if id.is_empty() || message.is_empty() {
        return None;
    }
    Some((
        strip_group(id).to_string(),
        location.map(str::to_string),
        message.to_string(),
    ))
}

/// The helper plugin's `racegate-start NODEID`.
pub fn parse_start_line(line: &str) -> Option<String> {
    let rest = &line[line.find("racegate-start ")? + "racegate-start ".len()..];
    let id = rest.trim();
    (!id.is_empty()).then(|| strip_group(id).to_string())
}

/// A test's class (`tests/test_db.py::TestUsers`) or, outside a class, its file.
pub fn unit_of(id: &str) -> Option<String> {
    let base = id.split('[').next().unwrap_or(id);
    let parts: Vec<&str> = base.split("::").collect();
    match parts.len() {
        0 | 1 => None,
        2 => Some(parts[0].to_string()),
        n => Some(parts[..n - 1].join("::")),
    }
}

/// The short form of a unit for a group name: `test_db-TestUsers`, `test_db`.
pub fn unit_short(unit: &str) -> String {
    let mut parts = unit.split("::");
    let file = parts.next().unwrap_or(unit);
    let stem = file.rsplit('/').next().unwrap_or(file);
    let stem = stem.strip_suffix(".py").unwrap_or(stem);
    std::iter::once(stem)
        .chain(parts)
        .collect::<Vec<_>>()
        .join("-")
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

    fn parse_list(&self, output: &str) -> Result<Vec<String>, String> {
        self.gate
            .set(output.lines().any(|l| l.trim() == "racegate-gate yes"));
        if output.lines().any(|l| l.trim() == "racegate-xdist no") {
            self.xdist.set(Some(false));
        } else if output.lines().any(|l| l.trim() == "racegate-xdist yes") {
            self.xdist.set(Some(true));
        }
        if output.contains("ERROR collecting") || output.contains("errors during collection") {
            return Err("pytest reported errors during collection".into());
        }
        Ok(parse_collect(output))
    }

    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<RunCommand> {
        // More workers than tests only cost start-up time.
        let jobs = plan.jobs.min(plan.tests.len().max(1) as u32);
        let planned = plan.tests.to_vec();
        if jobs > 1 && self.xdist.get() == Some(false) {
            let mut plan = *plan;
            plan.jobs = jobs;
            return vec![RunCommand {
                spec: self.sharded(&plan),
                tests: planned,
                jobs,
            }];
        }
        let n = jobs.to_string();
        let mut extra: Vec<&str> = vec!["-p", "no:cacheprovider", "-p", PLUGIN];
        if jobs > 1 {
            extra.extend(["-n", &n]);
            if !plan.serialized.is_empty() {
                extra.extend(["--dist", "loadgroup"]);
            }
        } else if self.xdist.get() != Some(false) {
            // One process, whatever `-n` the suite's own configuration adds.
            extra.extend(["-n", "0"]);
        }
        let mut spec = self.base(&extra);
        if jobs == 1 && plan.whole_suite {
            // The serial run: which files each test writes (`written_paths`).
            spec.env.push(("RACEGATE_HUNT_WRITES".into(), "1".into()));
        }
        if !plan.whole_suite {
            let select = serde_json::to_string(plan.tests).unwrap_or_default();
            spec.env
                .push(("RACEGATE_HUNT_SELECT".into(), select.into()));
        } else if !plan.excluded.is_empty() {
            let skip = serde_json::to_string(plan.excluded).unwrap_or_default();
            spec.env.push(("RACEGATE_HUNT_SKIP".into(), skip.into()));
        }
        if jobs > 1 && !plan.serialized.is_empty() {
            let groups = serde_json::to_string(plan.serialized).unwrap_or_default();
            spec.env
                .push(("RACEGATE_HUNT_GROUPS".into(), groups.into()));
            if self.gate.get() {
                // The gates of this hunt's runs only: not another user's, not another hunt's.
                spec.env.push((
                    "RACEGATE_DIR".into(),
                    self.scratch.join("gates").into_os_string(),
                ));
            }
        }
        vec![RunCommand {
            spec,
            tests: planned,
            jobs,
        }]
    }

    fn is_progress(&self, line: &str) -> bool {
        parse_status_line(line).is_some()
    }

    fn parse_run(&self, _command: &RunCommand, execution: &Execution) -> Vec<RunEvent> {
        // A test may be reported more than once (a teardown error after a passing call, a
        // worker crash after the failure xdist records for it): the worst report wins, at the
        // place of the first.
        let rank = |s: &TestStatus| match s {
            TestStatus::Skipped => 0,
            TestStatus::Passed => 1,
            TestStatus::Failed => 2,
            TestStatus::TimedOut => 3,
            TestStatus::Crashed { .. } => 4,
        };
        let mut events: Vec<RunEvent> = Vec::new();
        let mut shard_signal: Option<i32> = None;
        for line in execution.output.lines() {
            if let Some(id) = parse_start_line(line) {
                events.push(RunEvent::Started(id));
            } else if let Some((id, st)) = parse_status_line(line) {
                let earlier = events
                    .iter_mut()
                    .find(|e| matches!(e, RunEvent::Finished(t, _) if *t == id));
                match earlier {
                    Some(RunEvent::Finished(_, old)) => {
                        if rank(&st) > rank(old) {
                            *old = st;
                        }
                    }
                    _ => events.push(RunEvent::Finished(id, st)),
                }
            } else if let Some((test, location, text)) = parse_message_line(line) {
                events.push(RunEvent::Message {
                    test,
                    text,
                    location,
                });
            } else if let Some(n) = line.trim().strip_prefix("racegate-shard-signal ") {
                shard_signal = n.trim().parse().ok();
            }
        }
        // A pytest process (not a worker: xdist names those) that died: its test in flight.
        let signal = match execution.termination {
            Termination::Signaled(s) => Some(s),
            _ => shard_signal,
        };
        if let Some(sig) = signal {
            let finished: Vec<&String> = events
                .iter()
                .filter_map(|e| match e {
                    RunEvent::Finished(t, _) => Some(t),
                    _ => None,
                })
                .collect();
            let flight: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    RunEvent::Started(t) if !finished.contains(&t) => Some(t.clone()),
                    _ => None,
                })
                .collect();
            let name = crate::crash::signal::signal_name(sig).unwrap_or("a signal");
            for t in flight {
                events.push(RunEvent::Died {
                    domain: String::new(),
                    message: crashed_message(None),
                    signature: format!("`{t}` crashed: its pytest process was killed by {name}"),
                    test: Some(t),
                });
            }
        }
        events
    }

    fn domain(&self, _test: &str) -> String {
        // xdist workers and racegate's shards are processes side by side: every test of a run
        // can meet every other.
        String::new()
    }

    fn unit(&self, test: &str) -> Option<String> {
        unit_of(test)
    }

    fn unit_name(&self, unit: &str) -> String {
        unit_short(unit)
    }

    fn units(&self, test: &str) -> Vec<String> {
        let mut v: Vec<String> = unit_of(test).into_iter().collect();
        let file = test.split("::").next().unwrap_or(test);
        if file != test && !v.iter().any(|u| u == file) {
            v.push(file.to_string());
        }
        v
    }

    fn start_slack(&self, jobs: u32) -> usize {
        // A worker's start can reach the controller after another worker's result.
        jobs as usize
    }

    fn no_results_hint(&self, output: &str) -> Option<String> {
        output.contains("unrecognized arguments: -n").then(|| {
            "parallel pytest runs need pytest-xdist: `pip install pytest-xdist`".to_string()
        })
    }

    fn fix(&self, groups: &[FixGroup], leaks: &[LeakingFixture]) -> Fix {
        if groups.is_empty() {
            return Fix::default();
        }
        Fix {
            nextest_toml: None,
            cargo_test_guard: None,
            pytest: Some(emit::pytest_conftest(groups, leaks, self.gate.get())),
            root_cause: emit::leak_note(leaks),
        }
    }

    fn written_paths(&self, output: &str) -> Vec<(String, Vec<String>)> {
        parse_writes(output)
    }

    fn fixtures_command(&self, out: &Path) -> Option<CommandSpec> {
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
        Some(spec)
    }

    fn parse_fixtures(&self, text: &str) -> Vec<(String, Vec<String>)> {
        parse_fixture_file(text)
    }

    fn locations(&self, tests: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for t in tests {
            let base = t.split('[').next().unwrap_or(t);
            let mut parts = base.split("::");
            let (Some(file), Some(func)) = (parts.next(), base.rsplit("::").next()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            let needle = format!("def {func}(");
            if let Some(line) = text.lines().position(|l| l.contains(&needle)) {
                out.push((t.to_string(), format!("{file}:{}", line + 1)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn exec(t: Termination, output: &str) -> Execution {
        Execution {
            termination: t,
            output: output.into(),
            progress: Vec::new(),
            stacks: Vec::new(),
            native_crashes: Vec::new(),
            elapsed: Duration::from_millis(5),
        }
    }

    fn bare() -> Pytest {
        Pytest {
            command: vec![],
            scratch: PathBuf::new(),
            xdist: std::cell::Cell::new(None),
            gate: std::cell::Cell::new(false),
        }
    }

    fn cmd(tests: &[&str], jobs: u32) -> RunCommand {
        RunCommand {
            spec: bare().base(&[]),
            tests: tests.iter().map(|t| t.to_string()).collect(),
            jobs,
        }
    }

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
        let out = "racegate-start t.py::d\nracegate-result failed t.py::d\nracegate-start t.py::e\nracegate-result passed t.py::e\nracegate-result error t.py::e\nworker 'gw1' crashed while running 't.py::d'\n";
        let ev = bare().parse_run(
            &cmd(&["t.py::d", "t.py::e"], 2),
            &exec(Termination::Exited(1), out),
        );
        assert_eq!(
            ev,
            vec![
                RunEvent::Started("t.py::d".into()),
                RunEvent::Finished("t.py::d".into(), TestStatus::Crashed { signal: None }),
                RunEvent::Started("t.py::e".into()),
                RunEvent::Finished("t.py::e".into(), TestStatus::Failed),
            ]
        );
    }

    #[test]
    fn a_killed_pytest_process_names_its_test_in_flight() {
        let out = "racegate-start t.py::a\nracegate-result passed t.py::a\nracegate-start t.py::b\nFatal Python error: Aborted\n";
        let ev = bare().parse_run(
            &cmd(&["t.py::a", "t.py::b"], 1),
            &exec(Termination::Signaled(6), out),
        );
        let mut failures = Vec::new();
        crate::hunt::classify::classify(
            &bare(),
            1,
            &exec(Termination::Signaled(6), out),
            &ev,
            &mut failures,
        );
        assert_eq!(failures.len(), 1, "{failures:#?}");
        let f = &failures[0];
        assert_eq!(f.key.kind, crate::hunt::model::FailureKind::Crash);
        assert_eq!(f.key.test(), Some("t.py::b"));
        // The same identity as an xdist worker crash of the same test.
        let xdist = "racegate-start t.py::b\nworker 'gw0' crashed while running 't.py::b'\n";
        let ev2 = bare().parse_run(&cmd(&["t.py::b"], 2), &exec(Termination::Exited(1), xdist));
        let mut f2 = Vec::new();
        crate::hunt::classify::classify(
            &bare(),
            2,
            &exec(Termination::Exited(1), xdist),
            &ev2,
            &mut f2,
        );
        assert_eq!(f2[0].key, f.key);
    }

    #[test]
    fn run_commands_select_through_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let py = Pytest::new(&["pytest".into(), "tests".into()], dir.path()).unwrap();
        assert!(dir.path().join("racegate_hunt_plugin.py").is_file());
        let tests = ["t.py::a".to_string(), "t.py::b".to_string()];
        let groups = vec![vec!["t.py::a".to_string()]];
        let plan = RunPlan {
            tests: &tests,
            whole_suite: false,
            excluded: &[],
            jobs: 3,
            serialized: &groups,
            rotation: 0,
        };
        let spec = &py.run_commands(&plan)[0].spec;
        // Never more workers than tests.
        assert_eq!(
            spec.display(),
            "pytest tests -p no:cacheprovider -p racegate_hunt_plugin -n 2 --dist loadgroup"
        );
        let env = |k: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(
            env("RACEGATE_HUNT_SELECT").unwrap(),
            r#"["t.py::a","t.py::b"]"#
        );
        assert_eq!(env("RACEGATE_HUNT_GROUPS").unwrap(), r#"[["t.py::a"]]"#);
        assert!(env("PYTHONPATH")
            .unwrap()
            .starts_with(&dir.path().display().to_string()));
        // One worker: no xdist distribution, whatever the suite's own `-n`.
        let one = &py.run_commands(&RunPlan::subset(&tests[..1], 1))[0].spec;
        assert!(
            one.display().ends_with("racegate_hunt_plugin -n 0"),
            "{}",
            one.display()
        );
    }

    #[test]
    fn without_xdist_racegate_runs_shards_itself() {
        let dir = tempfile::tempdir().unwrap();
        let py = Pytest::new(
            &["pytest".into(), "-p".into(), "no:xdist".into()],
            dir.path(),
        )
        .unwrap();
        py.parse_list("racegate-xdist no\nt.py::a\n").unwrap();
        let tests: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| format!("t.py::{t}"))
            .collect();
        let groups = vec![vec![tests[0].clone(), tests[3].clone()]];
        let plan = RunPlan {
            tests: &tests,
            whole_suite: true,
            excluded: &[],
            jobs: 2,
            serialized: &groups,
            rotation: 0,
        };
        let spec = &py.run_commands(&plan)[0].spec;
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
    fn parses_message_and_start_lines() {
        assert_eq!(
            parse_message_line("racegate-message t.py::a@g\tt.py:40\tAssertionError: device busy"),
            Some((
                "t.py::a".into(),
                Some("t.py:40".into()),
                "AssertionError: device busy".into()
            ))
        );
        assert_eq!(
            parse_message_line("racegate-message t.py::a\tAssertionError: x"),
            Some(("t.py::a".into(), None, "AssertionError: x".into()))
        );
        assert_eq!(parse_message_line("racegate-message t.py::a\t "), None);
        assert_eq!(parse_message_line("racegate-result failed t.py::a"), None);
        assert_eq!(
            parse_start_line("racegate-start t.py::a@g").as_deref(),
            Some("t.py::a")
        );
    }

    #[test]
    fn units_are_classes_else_files() {
        assert_eq!(
            unit_of("tests/test_db.py::TestUsers::test_a[1]").as_deref(),
            Some("tests/test_db.py::TestUsers")
        );
        assert_eq!(
            unit_of("tests/test_db.py::test_a").as_deref(),
            Some("tests/test_db.py")
        );
        assert_eq!(
            unit_short("tests/test_db.py::TestUsers"),
            "test_db-TestUsers"
        );
        assert_eq!(unit_short("tests/test_db.py"), "test_db");
        let py = bare();
        assert_eq!(
            py.units("tests/test_db.py::TestUsers::test_a"),
            vec!["tests/test_db.py::TestUsers", "tests/test_db.py"]
        );
        assert_eq!(
            py.units("tests/test_db.py::test_a"),
            vec!["tests/test_db.py"]
        );
    }

    #[test]
    fn parses_collect_only() {
        let out = "t.py::test_a\nt.py::test_b[1]\n\n2 tests collected in 0.01s\n";
        assert_eq!(parse_collect(out), vec!["t.py::test_a", "t.py::test_b[1]"]);
        assert!(parse_collect("no tests ran in 0.01s\n").is_empty());
    }

    /// A scratch directory holding the helper plugin, where python3 has pytest; `None` (the
    /// test skipped, and says so) where it has not.
    fn dir_with_plugin() -> Option<tempfile::TempDir> {
        let has_pytest = std::process::Command::new("python3")
            .args(["-c", "import pytest"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_pytest {
            eprintln!("skipped: no pytest for python3 (tests/hunt_pytest.rs provisions it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{PLUGIN}.py")), PLUGIN_SOURCE).unwrap();
        Some(dir)
    }

    /// In the serial run the helper plugin reports the files each test writes — by `open`,
    /// `sqlite3.connect` or `os.remove`, in setup as in the test — and no file only read.
    #[test]
    fn the_serial_run_reports_the_files_each_test_writes() {
        let Some(dir) = dir_with_plugin() else {
            return;
        };
        let d = dir.path();
        std::fs::create_dir(d.join("data")).unwrap();
        std::fs::write(d.join("data/readme.txt"), "read only\n").unwrap();
        std::fs::write(
            d.join("test_files.py"),
            "import os\nimport sqlite3\n\nDB = os.path.join(os.path.dirname(__file__), 'data', 'shared.db')\n\n\ndef test_a():\n    sqlite3.connect(DB).close()\n\n\nclass TestB:\n    def setup_method(self):\n        with open(DB, 'ab'):\n            pass\n\n    def test_b(self):\n        os.remove(DB)\n\n\ndef test_reads():\n    with open(os.path.join(os.path.dirname(__file__), 'data', 'readme.txt')) as f:\n        assert f.read()\n\n\ndef test_memory():\n    sqlite3.connect(':memory:').close()\n",
        )
        .unwrap();
        let out = std::process::Command::new("python3")
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
            ])
            .args(["-p", PLUGIN])
            .current_dir(d)
            .env("PYTHONPATH", d)
            .env("RACEGATE_HUNT_WRITES", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        let writes = parse_writes(&text);
        let db = d.join("data/shared.db").display().to_string();
        let of = |t: &str| {
            writes
                .iter()
                .find(|(id, _)| id == t)
                .map(|(_, p)| p.clone())
                .unwrap_or_default()
        };
        assert_eq!(of("test_files.py::test_a"), vec![db.clone()], "{text}");
        assert_eq!(of("test_files.py::TestB::test_b"), vec![db], "{text}");
        assert!(of("test_files.py::test_reads").is_empty(), "{text}");
        assert!(of("test_files.py::test_memory").is_empty(), "{text}");
        // Without the variable, no report and no hook.
        let out = std::process::Command::new("python3")
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
            ])
            .args(["-p", PLUGIN])
            .current_dir(d)
            .env("PYTHONPATH", d)
            .output()
            .unwrap();
        assert!(parse_writes(&String::from_utf8_lossy(&out.stdout)).is_empty());
    }

    #[test]
    fn write_lines_parse_and_never_panic() {
        assert_eq!(
            parse_writes("x\nracegate-writes t.py::a\t/d/f.db\t/d/g\nracegate-writes t.py::b\n"),
            vec![(
                "t.py::a".to_string(),
                vec!["/d/f.db".to_string(), "/d/g".to_string()]
            )]
        );
        proptest::proptest!(|(text in "(racegate-writes [ -~\t]{0,40}\n|[ -~]{0,20}\n){0,8}")| {
            for (id, paths) in parse_writes(&text) {
                proptest::prop_assert!(!id.is_empty() && !paths.is_empty());
            }
        });
    }

    /// The helper plugin (in `--verify` runs) and the emitted conftest apply the racegate gate
    /// mark beside `xdist_group` exactly when the racegate plugin is registered (a stand-in
    /// registered under its name here), and the listing probe says whether it is.
    #[test]
    fn the_gate_mark_goes_beside_xdist_group_where_the_racegate_plugin_is_registered() {
        let Some(dir) = dir_with_plugin() else {
            return;
        };
        let d = dir.path();
        std::fs::write(
            d.join("standin_gate.py"),
            "class _Gate:\n    pass\n\n\ndef pytest_configure(config):\n    config.pluginmanager.register(_Gate(), \"racegate\")\n",
        )
        .unwrap();
        std::fs::write(
            d.join("test_marks.py"),
            "import os\n\n\ndef test_a(request):\n    group = request.node.get_closest_marker(\"xdist_group\")\n    assert group is not None and group.kwargs[\"name\"] == os.environ[\"WANT\"]\n    gate = request.node.get_closest_marker(\"racegate\")\n    if os.environ[\"WANT_GATE\"] == \"1\":\n        assert gate is not None and gate.args == (os.environ[\"WANT\"],)\n    else:\n        assert gate is None\n\n\ndef test_b(request):\n    assert request.node.get_closest_marker(\"racegate\") is None\n",
        )
        .unwrap();
        let run = |standin: bool, conftest: bool, want: &str| {
            let mut cmd = std::process::Command::new("python3");
            cmd.args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
            ])
            .args(["-p", PLUGIN])
            .current_dir(d)
            .env("PYTHONPATH", d)
            .env("RACEGATE_HUNT_PROBE", "1")
            .env("WANT", want)
            .env("WANT_GATE", if standin { "1" } else { "0" });
            if standin {
                cmd.args(["-p", "standin_gate"]);
            }
            if conftest {
                let g = [FixGroup {
                    name: want.into(),
                    tests: vec!["test_marks.py::test_a".into()],
                    shared: None,
                }];
                std::fs::write(
                    d.join("conftest.py"),
                    emit::pytest_conftest(&g, &[], standin),
                )
                .unwrap();
            } else {
                let _ = std::fs::remove_file(d.join("conftest.py"));
                cmd.env("RACEGATE_HUNT_GROUPS", r#"[["test_marks.py::test_a"]]"#);
            }
            let out = cmd.output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            text
        };
        // --verify runs: racegate's groups by index.
        let with = run(true, false, "racegate-conflict-1");
        assert!(with.contains("racegate-gate yes"), "{with}");
        let without = run(false, false, "racegate-conflict-1");
        assert!(without.contains("racegate-gate no"), "{without}");
        // The emitted conftest, by the group's name.
        run(true, true, "ledger");
        run(false, true, "ledger");
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
            let _ = parse_start_line(&s);
            let _ = strip_group(&s);
            let _ = unit_of(&s);
            let _ = unit_short(&s);
            let _ = bare().parse_run(&cmd(&["a"], 2), &exec(Termination::Signaled(6), &s));
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
