//! `cargo test` (libtest): `--list --format terse` to list, `--exact` names and
//! `--test-threads N` to run, `test NAME ... ok|FAILED|ignored` lines to read.

use std::ffi::OsString;

use super::{split_command, RunPlan, Runner, RunnerKind};
use crate::hunt::exec::CommandSpec;
use crate::hunt::model::TestStatus;

/// The `cargo test` adapter.
#[derive(Debug, Clone)]
pub struct CargoTest {
    /// `cargo test …` up to (not including) `--`.
    cargo: Vec<OsString>,
    /// The user's harness arguments (after `--`).
    harness: Vec<OsString>,
}

impl CargoTest {
    /// Wrap the user's `cargo test …` command.
    ///
    /// `-q`/`--quiet` are dropped: libtest's quiet format prints dots, not the per-test lines
    /// the hunt reads.
    pub fn new(command: &[OsString]) -> Self {
        let (cargo, harness) = match command.iter().position(|a| a == "--") {
            Some(i) => (command[..i].to_vec(), command[i + 1..].to_vec()),
            None => (command.to_vec(), Vec::new()),
        };
        let loud = |a: &OsString| a != "-q" && a != "--quiet";
        CargoTest {
            cargo: cargo.into_iter().filter(loud).collect(),
            harness: harness.into_iter().filter(loud).collect(),
        }
    }

    fn command(&self, extra: impl IntoIterator<Item = OsString>) -> CommandSpec {
        let mut words = self.cargo.clone();
        // A crashed test binary must not stop cargo from running the other binaries.
        if !words.iter().any(|w| w == "--no-fail-fast") {
            words.push("--no-fail-fast".into());
        }
        words.push("--".into());
        words.extend(self.harness.iter().cloned());
        words.extend(extra);
        split_command(&words, None)
    }
}

/// `test NAME ... RESULT` (libtest's pretty format), as `(name, result word)`.
pub fn parse_result_line(line: &str) -> Option<(&str, TestStatus)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.rsplit_once(" ... ")?;
    let status = match result.trim_end() {
        "ok" => TestStatus::Passed,
        "FAILED" => TestStatus::Failed,
        r if r.starts_with("ignored") => TestStatus::Skipped,
        _ => return None,
    };
    if name.is_empty() {
        return None;
    }
    Some((name, status))
}

/// The names in a `--list --format terse` listing (`NAME: test`), deduplicated, in order.
pub fn parse_terse_list(stdout: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in stdout.lines() {
        if let Some(name) = line.trim_end().strip_suffix(": test") {
            if !name.is_empty() && seen.insert(name.to_string()) {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// libtest's failure sections: `---- NAME stdout ----` up to the next section or the
/// `failures:` list.
pub fn parse_failure_sections(stdout: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in stdout.lines() {
        let header = line
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" ----"))
            .and_then(|r| r.rsplit_once(' '))
            .filter(|(_, stream)| *stream == "stdout" || *stream == "stderr");
        if let Some((name, _)) = header {
            out.extend(current.take());
            current = Some((name.to_string(), String::new()));
        } else if line.starts_with("failures:") || line.starts_with("test result:") {
            out.extend(current.take());
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out.extend(current);
    out
}

impl Runner for CargoTest {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Cargo
    }

    fn list_command(&self) -> CommandSpec {
        self.command(["--list", "--format", "terse"].map(OsString::from))
    }

    fn parse_list(&self, stdout: &str, _stderr: &str) -> Result<Vec<String>, String> {
        Ok(parse_terse_list(stdout))
    }

    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<CommandSpec> {
        let threads = |n: u32| ["--test-threads".into(), n.to_string().into()];
        let grouped: std::collections::HashSet<&String> =
            plan.serialized.iter().flatten().collect();
        let mut cmds = Vec::new();
        if plan.whole_suite && !grouped.is_empty() {
            // Everything else in parallel, as the guard would leave it…
            let mut extra: Vec<OsString> = threads(plan.jobs).into();
            extra.push("--exact".into());
            for t in plan.tests.iter().filter(|t| grouped.contains(t)) {
                extra.push("--skip".into());
                extra.push(t.into());
            }
            cmds.push(self.command(extra));
        } else if plan.whole_suite {
            cmds.push(self.command(threads(plan.jobs)));
        } else {
            let rest: Vec<&String> = plan.tests.iter().filter(|t| !grouped.contains(t)).collect();
            if !rest.is_empty() {
                let mut extra: Vec<OsString> = threads(plan.jobs).into();
                extra.push("--exact".into());
                extra.extend(rest.into_iter().map(OsString::from));
                cmds.push(self.command(extra));
            }
        }
        // …and each guarded group one test at a time.
        for group in plan.serialized {
            let members: Vec<&String> = group.iter().filter(|t| plan.tests.contains(t)).collect();
            if members.is_empty() {
                continue;
            }
            let mut extra: Vec<OsString> = threads(1).into();
            extra.push("--exact".into());
            extra.extend(members.into_iter().map(OsString::from));
            cmds.push(self.command(extra));
        }
        cmds
    }

    fn is_progress(&self, line: &str) -> bool {
        parse_result_line(line).is_some()
    }

    fn parse_results(&self, stdout: &str, _stderr: &str) -> Vec<(String, TestStatus)> {
        stdout
            .lines()
            .filter_map(parse_result_line)
            .map(|(n, s)| (n.to_string(), s))
            .collect()
    }

    fn failure_output(&self, stdout: &str, _stderr: &str) -> Vec<(String, String)> {
        parse_failure_sections(stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(c: &CommandSpec) -> String {
        c.display()
    }

    #[test]
    fn builds_list_and_run_commands() {
        let cmd: Vec<OsString> = "cargo test --manifest-path m/Cargo.toml -- --nocapture"
            .split(' ')
            .map(Into::into)
            .collect();
        let r = CargoTest::new(&cmd);
        assert_eq!(
            words(&r.list_command()),
            "cargo test --manifest-path m/Cargo.toml --no-fail-fast -- --nocapture --list --format terse"
        );
        let tests = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let plan = RunPlan {
            tests: &tests[..2],
            whole_suite: false,
            jobs: 4,
            serialized: &[],
        };
        assert_eq!(
            words(&r.run_commands(&plan)[0]),
            "cargo test --manifest-path m/Cargo.toml --no-fail-fast -- --nocapture --test-threads 4 --exact a b"
        );
        let groups = vec![vec!["a".to_string(), "c".to_string()]];
        let plan = RunPlan {
            tests: &tests,
            whole_suite: true,
            jobs: 4,
            serialized: &groups,
        };
        let cmds: Vec<String> = r.run_commands(&plan).iter().map(words).collect();
        assert_eq!(
            cmds,
            vec![
                "cargo test --manifest-path m/Cargo.toml --no-fail-fast -- --nocapture --test-threads 4 --exact --skip a --skip c",
                "cargo test --manifest-path m/Cargo.toml --no-fail-fast -- --nocapture --test-threads 1 --exact a c",
            ]
        );
    }

    #[test]
    fn parses_results_and_listing() {
        let out = "running 3 tests\ntest gpu::a ... ok\ntest b ... FAILED\ntest c ... ignored, slow\ntest d has been running for over 60 seconds\n";
        let r = CargoTest::new(&["cargo".into(), "test".into()]);
        assert_eq!(
            r.parse_results(out, ""),
            vec![
                ("gpu::a".to_string(), TestStatus::Passed),
                ("b".to_string(), TestStatus::Failed),
                ("c".to_string(), TestStatus::Skipped),
            ]
        );
        let list = "gpu::a: test\nb: test\nbench_x: benchmark\ngpu::a: test\n\n";
        assert_eq!(parse_terse_list(list), vec!["gpu::a", "b"]);
    }

    #[test]
    fn failure_sections_and_quiet_flags() {
        let out = "failures:\n\n---- dev::a stdout ----\n\nthread 'dev::a' (12) panicked at src/lib.rs:37:36:\nbusy\n\n---- dev::b stdout ----\nx\n\nfailures:\n    dev::a\n";
        let s = parse_failure_sections(out);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "dev::a");
        assert!(s[0].1.contains("panicked at src/lib.rs:37:36:\nbusy"));
        assert_eq!(s[1], ("dev::b".to_string(), "x\n\n".to_string()));
        let r = CargoTest::new(&["cargo".into(), "test".into(), "-q".into()]);
        assert_eq!(
            words(&r.list_command()),
            "cargo test --no-fail-fast -- --list --format terse"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_result_line(&s);
            let _ = parse_terse_list(&s);
            let _ = parse_failure_sections(&s);
        }

        #[test]
        fn result_lines_round_trip(name in "[a-z_:]{1,30}", ok in any::<bool>()) {
            let line = format!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
            let (n, st) = parse_result_line(&line).unwrap();
            prop_assert_eq!(n, name.as_str());
            prop_assert_eq!(st, if ok { TestStatus::Passed } else { TestStatus::Failed });
        }
    }
}
