//! Runner adapters: how to list the tests of a suite, run a chosen set with a given
//! parallelism (optionally with groups that must not overlap), and read the results back —
//! each in the runner's own terms.

use std::ffi::OsString;
use std::path::PathBuf;

use super::exec::CommandSpec;
use super::model::TestStatus;

pub mod cargo;
pub mod nextest;
pub mod pytest;

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
#[derive(Debug, Clone)]
pub struct RunPlan<'a> {
    /// The tests to run, in listing order.
    pub tests: &'a [String],
    /// Whether `tests` is the whole listing (a runner may then pass no filter at all).
    pub whole_suite: bool,
    /// Parallelism: threads (cargo test) or processes (nextest, xdist).
    pub jobs: u32,
    /// Groups whose members must never run at the same time (the serialization under
    /// verification). Empty for plain runs.
    pub serialized: &'a [Vec<String>],
}

/// One runner adapter.
pub trait Runner {
    /// Which runner this is.
    fn kind(&self) -> RunnerKind;
    /// The command that lists the tests.
    fn list_command(&self) -> CommandSpec;
    /// Parse the listing. Errors name what was wrong.
    fn parse_list(&self, stdout: &str, stderr: &str) -> Result<Vec<String>, String>;
    /// The commands of one run, executed one after the other.
    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<CommandSpec>;
    /// Whether an output line reports a finished test (progress for hang detection).
    fn is_progress(&self, line: &str) -> bool;
    /// Every per-test result in the output.
    fn parse_results(&self, stdout: &str, stderr: &str) -> Vec<(String, TestStatus)>;
    /// The output the runner printed for each failed test, `(test, text)`, when it prints
    /// one: the failure's message is what identifies "the same failure" across runs (two
    /// tests racing for one resource fail with one message, whichever of them loses).
    fn failure_output(&self, _stdout: &str, _stderr: &str) -> Vec<(String, String)> {
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

/// Build the runner for `kind` around the user's test command.
pub fn build(
    kind: RunnerKind,
    command: &[OsString],
    scratch: &std::path::Path,
) -> std::io::Result<Box<dyn Runner>> {
    Ok(match kind {
        RunnerKind::Cargo => Box::new(cargo::CargoTest::new(command)),
        RunnerKind::Nextest => Box::new(nextest::Nextest::new(command, scratch)),
        RunnerKind::Pytest => Box::new(pytest::Pytest::new(command, scratch)?),
    })
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
}
