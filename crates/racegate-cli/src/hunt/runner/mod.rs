//! Runner adapters: how to list the tests of a suite, run a chosen set with a given
//! parallelism (optionally with groups that must not overlap), read back what happened, and
//! write the serialization — each in the runner's own terms. The phases only see [`Runner`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::emit::{Fix, FixGroup, LeakingFixture};
use super::exec::{CommandSpec, Execution};
use super::model::TestStatus;

pub mod cargo;
pub mod nextest;
pub mod pytest;
pub mod rust;

/// Which test runner a suite uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    /// `cargo test` (libtest): tests are threads of one process per test binary.
    Cargo,
    /// `cargo nextest run`: one process per test.
    Nextest,
    /// `pytest`, with pytest-xdist worker processes for parallel runs.
    Pytest,
}

impl RunnerKind {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerKind::Cargo => "cargo",
            RunnerKind::Nextest => "nextest",
            RunnerKind::Pytest => "pytest",
        }
    }

    /// Recognize the runner from the test command: `cargo nextest …`, `cargo test …`,
    /// `pytest …`, `python -m pytest …`.
    pub fn detect(command: &[OsString]) -> Option<RunnerKind> {
        let words: Vec<String> = command
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        let prog = words.first()?;
        let prog = prog.rsplit('/').next().unwrap_or(prog);
        if prog == "cargo-nextest" {
            return Some(RunnerKind::Nextest);
        }
        if prog == "cargo" {
            // Skip toolchain overrides (`cargo +nightly test`).
            let sub = words[1..].iter().find(|w| !w.starts_with('+'))?;
            return match sub.as_str() {
                "nextest" => Some(RunnerKind::Nextest),
                "test" | "t" => Some(RunnerKind::Cargo),
                _ => None,
            };
        }
        if prog == "pytest" || prog == "py.test" {
            return Some(RunnerKind::Pytest);
        }
        if prog.starts_with("python") {
            let m = words.iter().position(|w| w == "-m")?;
            if words.get(m + 1).map(String::as_str) == Some("pytest") {
                return Some(RunnerKind::Pytest);
            }
        }
        None
    }
}

/// What one run executes.
#[derive(Debug, Clone, Copy)]
pub struct RunPlan<'a> {
    /// The tests to run, in listing order.
    pub tests: &'a [String],
    /// Whether `tests` is the whole listing but `excluded` (a runner may then pass no list).
    pub whole_suite: bool,
    /// Listed tests left out of a whole-suite run (broken tests, a hang already seen).
    pub excluded: &'a [String],
    /// Parallelism: threads (cargo test) or processes (nextest, xdist).
    pub jobs: u32,
    /// Groups whose members must never run at the same time (the serialization under test).
    pub serialized: &'a [Vec<String>],
    /// Which run this is, for runners that rotate something between runs (cargo test puts a
    /// different member of each group beside the rest of the suite each time).
    pub rotation: usize,
}

impl<'a> RunPlan<'a> {
    /// A plain parallel run of `tests` (not the whole suite).
    pub fn subset(tests: &'a [String], jobs: u32) -> Self {
        RunPlan {
            tests,
            whole_suite: false,
            excluded: &[],
            jobs,
            serialized: &[],
            rotation: 0,
        }
    }
}

/// One command of a run, with what it is planned to run.
#[derive(Debug, Clone)]
pub struct RunCommand {
    /// The command.
    pub spec: CommandSpec,
    /// The tests it runs, in the order the runner starts them.
    pub tests: Vec<String>,
    /// Its parallelism.
    pub jobs: u32,
}

/// What a run's output said, in the order it said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// A test started (reported by the runner, or inferred from its scheduling order).
    Started(String),
    /// A test ended.
    Finished(String, TestStatus),
    /// The runner's failure output for a test: panic text, assertion message.
    Message {
        /// The test.
        test: String,
        /// Its failure output.
        text: String,
        /// Where it failed (`tests/test_db.py:40`), when the runner says apart from the text.
        location: Option<String>,
    },
    /// A process died with tests in flight: a cargo test binary, an xdist worker, a pytest
    /// process.
    Died {
        /// Its concurrency domain (see [`Runner::domain`]).
        domain: String,
        /// The test it was running, when the runner names exactly one.
        test: Option<String>,
        /// The normalized message that identifies how it died.
        message: String,
        /// How it died, for people.
        signature: String,
    },
}

/// One runner adapter.
pub trait Runner {
    /// Which runner this is.
    fn kind(&self) -> RunnerKind;
    /// The command that lists the tests.
    fn list_command(&self) -> CommandSpec;
    /// Parse the listing. Errors name what was wrong.
    fn parse_list(&self, output: &str) -> Result<Vec<String>, String>;
    /// The commands of one run, executed one after the other.
    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<RunCommand>;
    /// Whether an output line reports a finished test (progress, for hang detection).
    fn is_progress(&self, line: &str) -> bool;
    /// What one command's execution reported, in order.
    fn parse_run(&self, command: &RunCommand, execution: &Execution) -> Vec<RunEvent>;
    /// The concurrency domain of a test: tests of different domains never share a process, so
    /// a failure inside one process is only ever looked for among its own domain's tests.
    /// `""` when every test of a run can meet every other (one process per test or worker).
    fn domain(&self, test: &str) -> String;
    /// What a test shares with its neighbours, to name and widen groups: its module (Rust) or
    /// its class, else its file (pytest). `None` at the crate root.
    fn unit(&self, test: &str) -> Option<String>;
    /// Every unit a test belongs to, narrowest first (pytest: its class, then its file); a
    /// group may be widened to any of them.
    fn units(&self, test: &str) -> Vec<String> {
        self.unit(test).into_iter().collect()
    }
    /// The short form of a unit, for a group name (`env-tests`, `test_db-TestUsers`).
    fn unit_name(&self, unit: &str) -> String {
        unit.to_string()
    }
    /// Started events may lag the failure they explain by up to this many other starts (a
    /// worker's start reaches the controller after another worker's result).
    fn start_slack(&self, _jobs: u32) -> usize {
        0
    }
    /// A hint for a run that failed before any test ran (a missing plugin, say).
    fn no_results_hint(&self, _output: &str) -> Option<String> {
        None
    }
    /// The serialization for `groups`, in this runner's terms.
    fn fix(&self, groups: &[FixGroup], leaks: &[LeakingFixture]) -> Fix;
    /// The files each test wrote, as the serial run's output reports them (pytest's helper
    /// plugin watches opens for writing in that run); empty where the runner cannot tell.
    fn written_paths(&self, _output: &str) -> Vec<(String, Vec<String>)> {
        Vec::new()
    }
    /// A command that writes `test<TAB>fixture,fixture…` lines for every test into `out`, for
    /// runners whose tests have fixtures.
    fn fixtures_command(&self, _out: &Path) -> Option<CommandSpec> {
        None
    }
    /// The file [`Self::fixtures_command`] wrote: `(test, fixtures)` per test.
    fn parse_fixtures(&self, _text: &str) -> Vec<(String, Vec<String>)> {
        Vec::new()
    }
    /// Where each test is defined (`path:line`), when it can be found.
    fn locations(&self, _tests: &[&str]) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Split a test command into program and arguments.
pub(crate) fn split_command(command: &[OsString], cwd: Option<PathBuf>) -> CommandSpec {
    CommandSpec {
        program: command.first().cloned().unwrap_or_default(),
        args: command.iter().skip(1).cloned().collect(),
        env: Vec::new(),
        cwd,
    }
}

/// Build the runner for `kind` around the user's test command; helper files go to `scratch`.
pub fn build(
    kind: RunnerKind,
    command: &[OsString],
    scratch: &Path,
) -> std::io::Result<Box<dyn Runner>> {
    Ok(match kind {
        RunnerKind::Cargo => Box::new(cargo::CargoTest::new(command)),
        RunnerKind::Nextest => Box::new(nextest::Nextest::new(command, scratch)),
        RunnerKind::Pytest => Box::new(pytest::Pytest::new(command, scratch)?),
    })
}

/// The starts of a pool of `jobs` workers taking `planned` tests in order, one new test each
/// time one finishes, as libtest and nextest schedule them: given the finish events of the
/// output, the start events they imply, interleaved. Tests that finished without having been
/// planned (another binary's) are passed through.
pub(crate) fn with_inferred_starts(
    planned: &[String],
    jobs: u32,
    finished: Vec<RunEvent>,
) -> Vec<RunEvent> {
    let jobs = jobs.max(1) as usize;
    let mut out = Vec::new();
    let mut next = 0usize;
    let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
    let start_upto = |n: usize,
                      next: &mut usize,
                      out: &mut Vec<RunEvent>,
                      done: &std::collections::HashSet<String>| {
        while *next < planned.len() && *next < n {
            if !done.contains(&planned[*next]) {
                out.push(RunEvent::Started(planned[*next].clone()));
            }
            *next += 1;
        }
    };
    start_upto(jobs, &mut next, &mut out, &done);
    for ev in finished {
        if let RunEvent::Finished(t, _) = &ev {
            if planned.contains(t) {
                // A finish we did not expect yet (its start was inferred late): it started.
                if !planned[..next].contains(t) {
                    out.push(RunEvent::Started(t.clone()));
                }
                done.insert(t.clone());
                out.push(ev);
                let n = done.len() + jobs;
                start_upto(n, &mut next, &mut out, &done);
                continue;
            }
        }
        out.push(ev);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn detects_runners() {
        assert_eq!(
            RunnerKind::detect(&v("cargo test -p x")),
            Some(RunnerKind::Cargo)
        );
        assert_eq!(
            RunnerKind::detect(&v("cargo +nightly test")),
            Some(RunnerKind::Cargo)
        );
        assert_eq!(
            RunnerKind::detect(&v("cargo nextest run")),
            Some(RunnerKind::Nextest)
        );
        assert_eq!(
            RunnerKind::detect(&v("/usr/bin/pytest -q")),
            Some(RunnerKind::Pytest)
        );
        assert_eq!(
            RunnerKind::detect(&v("python3 -m pytest t")),
            Some(RunnerKind::Pytest)
        );
        assert_eq!(RunnerKind::detect(&v("make test")), None);
        assert_eq!(RunnerKind::detect(&[]), None);
    }

    #[test]
    fn starts_follow_the_worker_pool() {
        let planned: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let fin = |t: &str| RunEvent::Finished(t.into(), TestStatus::Passed);
        let ev = with_inferred_starts(&planned, 2, vec![fin("b"), fin("a")]);
        let started = |e: &RunEvent| match e {
            RunEvent::Started(t) => format!("+{t}"),
            RunEvent::Finished(t, _) => format!("-{t}"),
            _ => "?".into(),
        };
        let seq: Vec<String> = ev.iter().map(started).collect();
        // Two at once; each finish starts the next.
        assert_eq!(seq, ["+a", "+b", "-b", "+c", "-a", "+d"]);
    }
}
