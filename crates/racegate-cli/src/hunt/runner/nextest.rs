//! cargo-nextest: `list --message-format json` to list, filter expressions and
//! `--test-threads N` to run, its status lines (`PASS [ 0.01s] bin test`) to read. A test is
//! named `BINARY_ID TEST_NAME`, as nextest prints it. Serializations are verified through a
//! tool config file (`--tool-config-file racegate:PATH`), so the user's own
//! `.config/nextest.toml` stays in force.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use super::rust::split_id;
use super::{
    split_command, with_inferred_starts, RunCommand, RunEvent, RunPlan, Runner, RunnerKind,
};
use crate::hunt::emit::{Fix, FixGroup, LeakingFixture};
use crate::hunt::exec::{CommandSpec, Execution};
use crate::hunt::model::TestStatus;

/// The nextest adapter.
#[derive(Debug, Clone)]
pub struct Nextest {
    /// `cargo nextest run …` with `run` at `sub`.
    command: Vec<OsString>,
    sub: Option<usize>,
    scratch: PathBuf,
}

impl Nextest {
    /// Wrap the user's `cargo nextest run …` command.
    pub fn new(command: &[OsString], scratch: &Path) -> Self {
        let sub = command.iter().position(|w| w == "run" || w == "r");
        Nextest {
            command: command.to_vec(),
            sub,
            scratch: scratch.to_path_buf(),
        }
    }

    fn with_sub(&self, sub: &str) -> Vec<OsString> {
        let mut words = self.command.clone();
        match self.sub {
            Some(i) => words[i] = sub.into(),
            None => words.push(sub.into()),
        }
        words
    }
}

/// A filterset matching exactly `tests`.
pub fn filterset(tests: &[&String]) -> String {
    tests
        .iter()
        .map(|t| {
            let (bin, name) = split_id(t);
            if bin.is_empty() {
                format!("test(={name})")
            } else {
                format!("(binary_id(={bin}) & test(={name}))")
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Test ids from `cargo nextest list --message-format json`, non-ignored, in order.
pub fn parse_list_json(stdout: &str) -> Result<Vec<String>, String> {
    // Cargo may print other lines; the listing is the JSON object line.
    let json = stdout
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or("no JSON object in `cargo nextest list` output")?;
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("bad `cargo nextest list` JSON: {e}"))?;
    let suites = v
        .get("rust-suites")
        .and_then(|s| s.as_object())
        .ok_or("`rust-suites` missing from `cargo nextest list` JSON")?;
    let mut ids = Vec::new();
    for (bin, suite) in suites {
        let Some(cases) = suite.get("testcases").and_then(|c| c.as_object()) else {
            continue;
        };
        for (name, case) in cases {
            let ignored = case
                .get("ignored")
                .and_then(|i| i.as_bool())
                .unwrap_or(false);
            let matches = case
                .get("filter-match")
                .and_then(|f| f.get("status"))
                .and_then(|s| s.as_str())
                .map(|s| s == "matches")
                .unwrap_or(true);
            if !ignored && matches {
                ids.push(format!("{bin} {name}"));
            }
        }
    }
    Ok(ids)
}

/// One status line: `   STATUS [   0.004s] (1/30) BINARY_ID TEST_NAME` (the counter is optional).
pub fn parse_status_line(line: &str) -> Option<(String, TestStatus)> {
    let line = line.trim();
    let (word, rest) = line.split_once(" [")?;
    let word = word.trim();
    let (time, rest) = rest.split_once(']')?;
    if !time.trim().ends_with('s') || time.trim().trim_end_matches('s').parse::<f64>().is_err() {
        return None;
    }
    let mut rest = rest.trim_start();
    if rest.starts_with('(') {
        rest = rest.split_once(')')?.1.trim_start();
    }
    let (bin, name) = rest.split_once(' ')?;
    if bin.is_empty() || name.trim().is_empty() {
        return None;
    }
    let status = match word {
        "PASS" | "LEAK" | "FLAKY" => TestStatus::Passed,
        "FAIL" | "LEAK-FAIL" => TestStatus::Failed,
        "TIMEOUT" => TestStatus::TimedOut,
        "ABORT" => TestStatus::Crashed { signal: None },
        w if w.starts_with("SIG")
            && w.len() > 3
            && w[3..].chars().all(|c| c.is_ascii_uppercase()) =>
        {
            TestStatus::Crashed {
                signal: Some(w.to_string()),
            }
        }
        _ => return None,
    };
    Some((format!("{bin} {}", name.trim()), status))
}

/// The output nextest prints under each `FAIL`/`SIG…` status line, up to the next status line.
pub fn parse_failure_blocks(stderr: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in stderr.lines() {
        if let Some((id, status)) = parse_status_line(line) {
            out.extend(current.take());
            if !matches!(status, TestStatus::Passed | TestStatus::Skipped) {
                current = Some((id, String::new()));
            }
        } else if line.trim_start().starts_with("Summary [") {
            out.extend(current.take());
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line.trim());
            text.push('\n');
        }
    }
    out.extend(current);
    out
}

/// The tool config that serializes `groups` (names must carry the `@tool:racegate:` prefix).
pub fn tool_config(groups: &[Vec<String>]) -> String {
    let mut s = String::from("[test-groups]\n");
    for i in 0..groups.len() {
        s.push_str(&format!(
            "'@tool:racegate:conflict-{}' = {{ max-threads = 1 }}\n",
            i + 1
        ));
    }
    for (i, g) in groups.iter().enumerate() {
        let refs: Vec<&String> = g.iter().collect();
        s.push_str(&format!(
            "\n[[profile.default.overrides]]\nfilter = '{}'\ntest-group = '@tool:racegate:conflict-{}'\n",
            filterset(&refs),
            i + 1
        ));
    }
    s
}

impl Runner for Nextest {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Nextest
    }

    fn list_command(&self) -> CommandSpec {
        let mut words = self.with_sub("list");
        words.extend(["--message-format", "json"].map(OsString::from));
        split_command(&words, None)
    }

    fn parse_list(&self, output: &str) -> Result<Vec<String>, String> {
        parse_list_json(output)
    }

    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<RunCommand> {
        let mut words = self.command.clone();
        if self.sub.is_none() {
            words.push("run".into());
        }
        words.extend(
            [
                "--no-fail-fast",
                "--color",
                "never",
                "--status-level",
                "pass",
                "--final-status-level",
                "none",
                "--test-threads",
            ]
            .map(OsString::from),
        );
        words.push(plan.jobs.to_string().into());
        if !plan.whole_suite {
            let refs: Vec<&String> = plan.tests.iter().collect();
            words.push("-E".into());
            words.push(filterset(&refs).into());
        } else if !plan.excluded.is_empty() {
            let refs: Vec<&String> = plan.excluded.iter().collect();
            words.push("-E".into());
            words.push(format!("not ({})", filterset(&refs)).into());
        }
        let groups: Vec<Vec<String>> = plan
            .serialized
            .iter()
            .map(|g| {
                g.iter()
                    .filter(|t| plan.tests.contains(t))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect();
        if !groups.is_empty() {
            let path = self.scratch.join("nextest-verify.toml");
            // Best effort: a failed write shows up as nextest's own clear error.
            let _ = std::fs::create_dir_all(&self.scratch);
            let _ = std::fs::write(&path, tool_config(&groups));
            let mut arg = OsString::from("racegate:");
            arg.push(path.as_os_str());
            words.push("--tool-config-file".into());
            words.push(arg);
        }
        vec![RunCommand {
            spec: split_command(&words, None),
            tests: plan.tests.to_vec(),
            jobs: plan.jobs,
        }]
    }

    fn is_progress(&self, line: &str) -> bool {
        parse_status_line(line).is_some()
    }

    fn parse_run(&self, command: &RunCommand, execution: &Execution) -> Vec<RunEvent> {
        let mut finished: Vec<RunEvent> = Vec::new();
        for (id, st) in execution.output.lines().filter_map(parse_status_line) {
            // A retried test reports more than once: its first report is what happened.
            if !finished
                .iter()
                .any(|e| matches!(e, RunEvent::Finished(t, _) if *t == id))
            {
                finished.push(RunEvent::Finished(id, st));
            }
        }
        for (test, text) in parse_failure_blocks(&execution.output) {
            finished.push(RunEvent::Message {
                test,
                text,
                location: None,
            });
        }
        // nextest starts tests in listing order, N at a time; test groups may hold some back,
        // so the inference is allowed a full pool of slack (see `start_slack`).
        with_inferred_starts(&command.tests, command.jobs, finished)
    }

    fn domain(&self, _test: &str) -> String {
        // A process per test: every test of a run can meet every other.
        String::new()
    }

    fn unit(&self, test: &str) -> Option<String> {
        super::rust::module_of(test)
    }

    fn unit_name(&self, unit: &str) -> String {
        super::rust::module_short(unit)
    }

    fn start_slack(&self, jobs: u32) -> usize {
        jobs as usize
    }

    fn fix(&self, groups: &[FixGroup], _leaks: &[LeakingFixture]) -> Fix {
        let tests: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.tests.iter())
            .map(String::as_str)
            .collect();
        let locations = self.locations(&tests);
        super::rust::fix(
            groups,
            &|t| {
                let s = t.to_string();
                Some(filterset(&[&s]))
            },
            &locations,
        )
    }

    fn locations(&self, tests: &[&str]) -> Vec<(String, String)> {
        super::rust::locate_rust_tests(&super::rust::rust_root(&self.command), tests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(
            parse_status_line("        PASS [   0.004s] suite::tests alpha"),
            Some(("suite::tests alpha".into(), TestStatus::Passed))
        );
        assert_eq!(
            parse_status_line("     SIGABRT [   0.104s] (3/30) suite gpu::b"),
            Some((
                "suite gpu::b".into(),
                TestStatus::Crashed {
                    signal: Some("SIGABRT".into())
                }
            ))
        );
        assert_eq!(
            parse_status_line("     Summary [   0.1s] 30 tests run"),
            None
        );
        assert_eq!(
            parse_status_line("    Starting 30 tests across 1 binary"),
            None
        );
    }

    #[test]
    fn failure_blocks() {
        let err = "        FAIL [   0.199s] (11/12) suite dev::up\n  stderr ───\n\n    thread 'dev::up' (1) panicked at src/lib.rs:43:36:\n    busy\n        PASS [   0.4s] (12/12) suite dev::down\n";
        let b = parse_failure_blocks(err);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].0, "suite dev::up");
        assert!(
            b[0].1.contains("panicked at src/lib.rs:43:36:\nbusy\n"),
            "{:?}",
            b[0].1
        );
    }

    #[test]
    fn parses_listing() {
        let json = r#"{"test-count":3,"rust-suites":{"suite":{"binary-id":"suite","testcases":{"a":{"ignored":false,"filter-match":{"status":"matches"}},"b":{"ignored":true,"filter-match":{"status":"matches"}},"c":{"ignored":false,"filter-match":{"status":"mismatch"}}}}}}"#;
        assert_eq!(parse_list_json(json).unwrap(), vec!["suite a"]);
        assert!(parse_list_json("not json").is_err());
        assert!(parse_list_json("{}").is_err());
    }

    #[test]
    fn filters_and_tool_config() {
        let a = "suite gpu::a".to_string();
        assert_eq!(filterset(&[&a]), "(binary_id(=suite) & test(=gpu::a))");
        let cfg = tool_config(&[vec![a.clone()]]);
        assert!(cfg.contains("'@tool:racegate:conflict-1' = { max-threads = 1 }"));
        assert!(cfg.parse::<toml::Table>().is_ok(), "{cfg}");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_status_line(&s);
            let _ = parse_list_json(&s);
            let _ = parse_failure_blocks(&s);
        }
    }
}
