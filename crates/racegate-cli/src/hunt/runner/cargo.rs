//! `cargo test` (libtest): `--list --format terse` to list, target selectors plus `--exact`
//! names and `--test-threads N` to run, `test NAME ... ok|FAILED|ignored` lines to read.
//!
//! Each test binary is a process of its own, run one after the other; its tests are threads
//! of it. A test is therefore named by its binary, `BINARY TEST_NAME` (`sim_gpu_suite
//! attention::softmax`, `test/hunt_cargo bad_input`, `bin/racegate cli::parses`), where
//! the binary is read off cargo's `Running … (target/…/deps/NAME-HASH)` lines. libtest starts
//! tests in name order, `N` at a time, a new one each time one finishes; so the tests in flight
//! when a binary dies are known from the results it printed.

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::PathBuf;

use super::rust::{self, split_id};
use super::{
    split_command, with_inferred_starts, RunCommand, RunEvent, RunPlan, Runner, RunnerKind,
};
use crate::hunt::classify::{death_message, reported_exit};
use crate::hunt::emit::{Fix, FixGroup, LeakingFixture};
use crate::hunt::exec::{CommandSpec, Execution};
use crate::hunt::model::TestStatus;

/// The kind of a test binary, as nextest names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinKind {
    Lib,
    Bin,
    Test,
    Bench,
    Example,
    Doc,
}

impl BinKind {
    fn prefix(self) -> &'static str {
        match self {
            BinKind::Lib => "",
            BinKind::Bin => "bin/",
            BinKind::Test => "test/",
            BinKind::Bench => "bench/",
            BinKind::Example => "example/",
            BinKind::Doc => "doc/",
        }
    }
}

/// One test binary seen in cargo's output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binary {
    /// Its id in test ids.
    id: String,
    /// The artifact's file name (`sim_gpu_suite-0f1e…`), or `Doc-tests CRATE`.
    artifact: String,
    kind: BinKind,
    /// The artifact name without its hash: the crate or target name.
    stem: String,
    /// The target name for `--test`/`--bench`/`--example` (from the source file name).
    target: String,
}

impl Binary {
    /// From a `Running DESC (PATH)` line's parts.
    fn running(desc: &str, path: &str) -> Binary {
        let artifact = path.rsplit('/').next().unwrap_or(path).to_string();
        let plain = artifact.strip_suffix(".exe").unwrap_or(&artifact);
        let stem = match plain.rsplit_once('-') {
            Some((s, hash)) if !s.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()) => s,
            _ => plain,
        }
        .to_string();
        let (kind, src) = match desc.strip_prefix("unittests ") {
            Some(src) if src.ends_with("main.rs") || src.contains("/bin/") => (BinKind::Bin, src),
            Some(src) => (BinKind::Lib, src),
            None if desc.starts_with("benches/") => (BinKind::Bench, desc),
            None if desc.starts_with("examples/") => (BinKind::Example, desc),
            None => (BinKind::Test, desc),
        };
        // `tests/foo.rs` → `foo`; `tests/foo/main.rs` → `foo`.
        let file = src.rsplit('/').next().unwrap_or(src);
        let target = match file.strip_suffix(".rs") {
            Some("main") | Some("mod") | None => {
                src.rsplit('/').nth(1).unwrap_or(&stem).to_string()
            }
            Some(f) => f.to_string(),
        };
        Binary {
            id: format!("{}{stem}", kind.prefix()),
            artifact,
            kind,
            stem,
            target,
        }
    }

    fn doc(krate: &str) -> Binary {
        Binary {
            id: format!("doc/{krate}"),
            artifact: format!("Doc-tests {krate}"),
            kind: BinKind::Doc,
            stem: krate.to_string(),
            target: krate.to_string(),
        }
    }

    /// The cargo arguments that select this binary only (or few more).
    fn selector(&self) -> Vec<OsString> {
        let two = |a: &str, b: &str| vec![OsString::from(a), OsString::from(b)];
        match self.kind {
            BinKind::Lib => vec!["--lib".into()],
            BinKind::Bin => vec!["--bins".into()],
            BinKind::Test => two("--test", &self.target),
            BinKind::Bench => two("--bench", &self.target),
            BinKind::Example => two("--example", &self.target),
            BinKind::Doc => vec!["--doc".into()],
        }
    }

    /// The nextest filterset of test `name` of this binary.
    fn filter(&self, name: &str) -> Option<String> {
        let kind = match self.kind {
            BinKind::Lib => "lib",
            BinKind::Bin => "bin",
            BinKind::Test => "test",
            BinKind::Bench => "bench",
            BinKind::Example => "example",
            BinKind::Doc => return None,
        };
        Some(format!(
            "(kind({kind}) & binary(={}) & test(={name}))",
            if self.kind == BinKind::Lib {
                &self.stem
            } else {
                &self.target
            }
        ))
    }
}

/// A binary header line: `Running DESC (PATH)` or `Doc-tests CRATE`.
fn parse_binary_line(line: &str) -> Option<Binary> {
    let t = line.trim();
    if let Some(krate) = t.strip_prefix("Doc-tests ") {
        let krate = krate.trim();
        return (!krate.is_empty() && !krate.contains(' ')).then(|| Binary::doc(krate));
    }
    let rest = t.strip_prefix("Running ")?;
    let open = rest.rfind(" (")?;
    let path = rest[open + 2..].strip_suffix(')')?;
    let desc = rest[..open].trim();
    if desc.is_empty() || path.is_empty() {
        return None;
    }
    Some(Binary::running(desc, path))
}

/// The `cargo test` adapter.
#[derive(Debug, Clone)]
pub struct CargoTest {
    /// `cargo test …` up to (not including) `--`.
    cargo: Vec<OsString>,
    /// The user's harness arguments (after `--`).
    harness: Vec<OsString>,
    /// The user's whole command.
    command: Vec<OsString>,
    /// The binaries the listing showed, in order.
    binaries: RefCell<Vec<Binary>>,
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
            command: command.to_vec(),
            binaries: RefCell::new(Vec::new()),
        }
    }

    fn spec(
        &self,
        selector: &[OsString],
        extra: impl IntoIterator<Item = OsString>,
    ) -> CommandSpec {
        let mut words = self.cargo.clone();
        words.extend(selector.iter().cloned());
        // A crashed test binary must not stop cargo from running the other binaries.
        if !words.iter().any(|w| w == "--no-fail-fast") && !selector.iter().any(|s| s == "--doc") {
            words.push("--no-fail-fast".into());
        }
        words.push("--".into());
        words.extend(self.harness.iter().cloned());
        words.extend(extra);
        split_command(&words, None)
    }

    /// The binary a header line names, as registered by the listing (same artifact, same id).
    fn resolve(&self, found: Binary) -> Binary {
        let known = self.binaries.borrow();
        known
            .iter()
            .find(|b| b.artifact == found.artifact)
            .cloned()
            .unwrap_or(found)
    }

    fn binary_of(&self, test: &str) -> Option<Binary> {
        let bin = split_id(test).0;
        self.binaries.borrow().iter().find(|b| b.id == bin).cloned()
    }

    fn threads(n: u32) -> [OsString; 2] {
        ["--test-threads".into(), n.to_string().into()]
    }

    /// One command per binary for `tests`, each with `jobs` threads.
    fn per_binary(&self, tests: &[&String], jobs: u32, out: &mut Vec<RunCommand>) {
        let mut bins: Vec<&str> = Vec::new();
        for t in tests {
            let b = split_id(t).0;
            if !bins.contains(&b) {
                bins.push(b);
            }
        }
        for b in bins {
            let mine: Vec<String> = tests
                .iter()
                .filter(|t| split_id(t).0 == b)
                .map(|t| t.to_string())
                .collect();
            let selector = self
                .binary_of(&mine[0])
                .map(|bin| bin.selector())
                .unwrap_or_default();
            let mut extra: Vec<OsString> = Self::threads(jobs).into();
            extra.push("--exact".into());
            extra.extend(mine.iter().map(|t| OsString::from(split_id(t).1)));
            out.push(RunCommand {
                spec: self.spec(&selector, extra),
                tests: sorted_by_binary(&mine),
                jobs,
            });
        }
    }
}

/// Tests in libtest's start order: by binary (as given), by name within one.
fn sorted_by_binary(tests: &[String]) -> Vec<String> {
    let mut bins: Vec<&str> = Vec::new();
    for t in tests {
        let b = split_id(t).0;
        if !bins.contains(&b) {
            bins.push(b);
        }
    }
    let mut out = Vec::with_capacity(tests.len());
    for b in bins {
        let mut mine: Vec<&String> = tests.iter().filter(|t| split_id(t).0 == b).collect();
        mine.sort_by(|x, y| split_id(x).1.cmp(split_id(y).1));
        out.extend(mine.into_iter().cloned());
    }
    out
}

/// `test NAME ... RESULT` (libtest's pretty format), as `(name, status)`.
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

/// A listing: `(binary, names)` in order, from the binary header lines and the
/// `NAME: test` lines of `--list --format terse` under each.
fn parse_listing(output: &str) -> Vec<(Option<Binary>, Vec<String>)> {
    let mut out: Vec<(Option<Binary>, Vec<String>)> = vec![(None, Vec::new())];
    for line in output.lines() {
        if let Some(b) = parse_binary_line(line) {
            out.push((Some(b), Vec::new()));
        } else if let Some(name) = line.trim_end().strip_suffix(": test") {
            if !name.is_empty() && !name.starts_with(' ') {
                let names = &mut out.last_mut().expect("never empty").1;
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    out.retain(|(b, names)| b.is_some() || !names.is_empty());
    out
}

/// libtest's failure sections: `---- NAME stdout ----` up to the next section or the
/// `failures:` list.
pub fn parse_failure_sections(output: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in output.lines() {
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
        self.spec(&[], ["--list", "--format", "terse"].map(OsString::from))
    }

    fn parse_list(&self, output: &str) -> Result<Vec<String>, String> {
        let mut binaries: Vec<Binary> = Vec::new();
        let mut ids = Vec::new();
        for (bin, names) in parse_listing(output) {
            let prefix = match bin {
                Some(mut b) => {
                    // Two artifacts with one id (a lib and a bin of one name…): number them.
                    if binaries.iter().any(|x| x.id == b.id) {
                        let mut n = 2;
                        while binaries.iter().any(|x| x.id == format!("{}#{n}", b.id)) {
                            n += 1;
                        }
                        b.id = format!("{}#{n}", b.id);
                    }
                    let id = b.id.clone();
                    binaries.push(b);
                    id
                }
                None => String::new(),
            };
            for n in names {
                ids.push(if prefix.is_empty() {
                    n
                } else {
                    format!("{prefix} {n}")
                });
            }
        }
        *self.binaries.borrow_mut() = binaries;
        Ok(ids)
    }

    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<RunCommand> {
        // Everything in parallel, as the guards would leave it: one member of each group among
        // the rest (a different one each run), the other members held back here…
        let mut held: Vec<&String> = Vec::new();
        let mut later: Vec<Vec<&String>> = Vec::new();
        for g in plan.serialized {
            let members: Vec<&String> = g.iter().filter(|t| plan.tests.contains(t)).collect();
            if members.is_empty() {
                continue;
            }
            let keep = plan.rotation % members.len();
            let others: Vec<&String> = members
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != keep)
                .map(|(_, t)| *t)
                .collect();
            held.extend(others.iter().copied());
            if !others.is_empty() {
                later.push(others);
            }
        }
        let mut cmds = Vec::new();
        let first: Vec<&String> = plan.tests.iter().filter(|t| !held.contains(t)).collect();
        if plan.whole_suite {
            let mut extra: Vec<OsString> = Self::threads(plan.jobs).into();
            let skip: Vec<&String> = plan.excluded.iter().chain(held.iter().copied()).collect();
            if !skip.is_empty() {
                extra.push("--exact".into());
                for t in &skip {
                    extra.push("--skip".into());
                    extra.push(split_id(t).1.into());
                }
            }
            let first: Vec<String> = first.into_iter().cloned().collect();
            cmds.push(RunCommand {
                spec: self.spec(&[], extra),
                tests: sorted_by_binary(&first),
                jobs: plan.jobs,
            });
        } else if !first.is_empty() {
            self.per_binary(&first, plan.jobs, &mut cmds);
        }
        // …then the rest of each group one at a time (the guard's effect: never two at once).
        for members in later {
            self.per_binary(&members, 1, &mut cmds);
        }
        cmds
    }

    fn is_progress(&self, line: &str) -> bool {
        parse_result_line(line).is_some()
    }

    fn parse_run(&self, command: &RunCommand, execution: &Execution) -> Vec<RunEvent> {
        let mut events = Vec::new();
        let mut current: Option<Binary> = None;
        let mut section: Vec<RunEvent> = Vec::new();
        let mut text = String::new();
        let mut done = false;
        let id = |bin: &Option<Binary>, name: &str| match bin {
            Some(b) => format!("{} {name}", b.id),
            None => name.to_string(),
        };
        let flush = |bin: &Option<Binary>,
                     section: &mut Vec<RunEvent>,
                     text: &mut String,
                     events: &mut Vec<RunEvent>| {
            let prefix = bin.as_ref().map(|b| b.id.as_str()).unwrap_or("");
            let planned: Vec<String> = command
                .tests
                .iter()
                .filter(|t| split_id(t).0 == prefix)
                .cloned()
                .collect();
            for (name, body) in parse_failure_sections(text) {
                section.push(RunEvent::Message {
                    test: id(bin, &name),
                    text: body,
                    location: None,
                });
            }
            events.extend(with_inferred_starts(
                &planned,
                command.jobs,
                std::mem::take(section),
            ));
            text.clear();
        };
        for line in execution.output.lines() {
            if let Some(b) = parse_binary_line(line) {
                flush(&current, &mut section, &mut text, &mut events);
                current = Some(self.resolve(b));
                done = false;
                continue;
            }
            text.push_str(line);
            text.push('\n');
            if let Some((name, status)) = parse_result_line(line) {
                section.push(RunEvent::Finished(id(&current, name), status));
            } else if line.starts_with("test result:") {
                done = true;
            } else if line.contains("process didn't exit successfully:") {
                let (signal, exit) = reported_exit(line).unwrap_or((None, None));
                // Exit status 101 after a summary is libtest reporting failed tests.
                if signal.is_some() || !done {
                    let died = line
                        .split('`')
                        .nth(1)
                        .and_then(|cmd| cmd.split_whitespace().next())
                        .map(|path| {
                            let artifact = path.rsplit('/').next().unwrap_or(path);
                            self.binaries
                                .borrow()
                                .iter()
                                .find(|b| b.artifact == artifact)
                                .map(|b| b.id.clone())
                        });
                    let domain = died
                        .flatten()
                        .or_else(|| current.as_ref().map(|b| b.id.clone()))
                        .unwrap_or_default();
                    let (message, signature) =
                        death_message(&text, signal.as_deref(), exit, &execution.native_crashes);
                    section.push(RunEvent::Died {
                        domain,
                        test: None,
                        message,
                        signature,
                    });
                }
            }
        }
        flush(&current, &mut section, &mut text, &mut events);
        events
    }

    fn domain(&self, test: &str) -> String {
        split_id(test).0.to_string()
    }

    fn unit(&self, test: &str) -> Option<String> {
        rust::module_of(test)
    }

    fn unit_name(&self, unit: &str) -> String {
        rust::module_short(unit)
    }

    fn no_results_hint(&self, output: &str) -> Option<String> {
        output
            .contains("could not compile")
            .then(|| "the suite does not build: fix the compile errors above first".to_string())
    }

    fn fix(&self, groups: &[FixGroup], _leaks: &[LeakingFixture]) -> Fix {
        let tests: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.tests.iter())
            .map(String::as_str)
            .collect();
        let locations = self.locations(&tests);
        rust::fix(
            groups,
            &|t| {
                let (_, name) = split_id(t);
                self.binary_of(t).and_then(|b| b.filter(name))
            },
            &locations,
        )
    }

    fn locations(&self, tests: &[&str]) -> Vec<(String, String)> {
        rust::locate_rust_tests(&rust::rust_root(&self.command), tests)
    }
}

impl CargoTest {
    /// The directory of the suite's sources.
    pub fn root(&self) -> PathBuf {
        rust::rust_root(&self.command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hunt::exec::Termination;
    use proptest::prelude::*;
    use std::time::Duration;

    const LISTING: &str = "   Compiling suite v0.1.0\n     Running unittests src/lib.rs (target/debug/deps/suite-0123456789abcdef)\ngpu::b: test\ngpu::a: test\n\n2 tests, 0 benchmarks\n     Running tests/it.rs (target/debug/deps/it-fedcba9876543210)\nsmoke: test\n   Doc-tests suite\nsrc/lib.rs - x (line 3): test\n";

    fn runner() -> CargoTest {
        let cmd: Vec<OsString> = "cargo test --manifest-path m/Cargo.toml -- --nocapture"
            .split(' ')
            .map(Into::into)
            .collect();
        let r = CargoTest::new(&cmd);
        r.parse_list(LISTING).unwrap();
        r
    }

    fn exec(output: &str) -> Execution {
        Execution {
            termination: Termination::Exited(101),
            output: output.into(),
            progress: Vec::new(),
            stacks: Vec::new(),
            native_crashes: Vec::new(),
            elapsed: Duration::from_millis(5),
        }
    }

    #[test]
    fn tests_are_qualified_by_their_binary() {
        let r = CargoTest::new(&["cargo".into(), "test".into()]);
        assert_eq!(
            r.parse_list(LISTING).unwrap(),
            vec![
                "suite gpu::b",
                "suite gpu::a",
                "test/it smoke",
                "doc/suite src/lib.rs - x (line 3)"
            ]
        );
        assert_eq!(r.domain("suite gpu::a"), "suite");
        assert_eq!(r.unit("suite gpu::a").as_deref(), Some("suite gpu"));
        assert_eq!(r.unit("test/it smoke").as_deref(), Some("test/it"));
        let b = parse_binary_line(
            "     Running unittests src/main.rs (target/debug/deps/racegate-00ff)",
        )
        .unwrap();
        assert_eq!(b.id, "bin/racegate");
        assert_eq!(b.selector(), vec![OsString::from("--bins")]);
        let b = parse_binary_line(
            "     Running tests/hunt-cargo/main.rs (target/debug/deps/hunt_cargo-00ff)",
        )
        .unwrap();
        assert_eq!(b.id, "test/hunt_cargo");
        assert_eq!(b.target, "hunt-cargo");
        assert_eq!(
            b.filter("x").unwrap(),
            "(kind(test) & binary(=hunt-cargo) & test(=x))"
        );
    }

    #[test]
    fn probes_select_their_binary() {
        let r = runner();
        let tests = vec!["suite gpu::b".to_string(), "suite gpu::a".to_string()];
        let cmds = r.run_commands(&RunPlan::subset(&tests, 4));
        assert_eq!(cmds.len(), 1);
        assert_eq!(
            cmds[0].spec.display(),
            "cargo test --manifest-path m/Cargo.toml --lib --no-fail-fast -- --nocapture --test-threads 4 --exact gpu::b gpu::a"
        );
        // libtest's start order: by name.
        assert_eq!(cmds[0].tests, vec!["suite gpu::a", "suite gpu::b"]);
        let it = vec!["test/it smoke".to_string()];
        assert_eq!(
            r.run_commands(&RunPlan::subset(&it, 1))[0].spec.display(),
            "cargo test --manifest-path m/Cargo.toml --test it --no-fail-fast -- --nocapture --test-threads 1 --exact smoke"
        );
    }

    #[test]
    fn serialized_runs_rotate_one_member_beside_the_rest() {
        let r = runner();
        let all: Vec<String> = vec![
            "suite gpu::b".into(),
            "suite gpu::a".into(),
            "test/it smoke".into(),
        ];
        let groups = vec![vec!["suite gpu::a".to_string(), "suite gpu::b".to_string()]];
        let plan = RunPlan {
            tests: &all,
            whole_suite: true,
            excluded: &[],
            jobs: 4,
            serialized: &groups,
            rotation: 1,
        };
        let cmds: Vec<String> = r
            .run_commands(&plan)
            .iter()
            .map(|c| c.spec.display())
            .collect();
        assert_eq!(
            cmds,
            vec![
                "cargo test --manifest-path m/Cargo.toml --no-fail-fast -- --nocapture --test-threads 4 --exact --skip gpu::a",
                "cargo test --manifest-path m/Cargo.toml --lib --no-fail-fast -- --nocapture --test-threads 1 --exact gpu::a",
            ]
        );
    }

    #[test]
    fn probes_under_a_serialization_keep_the_chosen_member_beside_the_rest() {
        let r = runner();
        let tests: Vec<String> = vec!["suite gpu::a".into(), "suite gpu::b".into()];
        let groups = vec![tests.clone()];
        let plan = RunPlan {
            tests: &tests,
            whole_suite: false,
            excluded: &[],
            jobs: 4,
            serialized: &groups,
            rotation: 1,
        };
        let cmds: Vec<String> = r
            .run_commands(&plan)
            .iter()
            .map(|c| c.spec.display())
            .collect();
        assert_eq!(
            cmds,
            vec![
                "cargo test --manifest-path m/Cargo.toml --lib --no-fail-fast -- --nocapture --test-threads 4 --exact gpu::b",
                "cargo test --manifest-path m/Cargo.toml --lib --no-fail-fast -- --nocapture --test-threads 1 --exact gpu::a",
            ]
        );
    }

    #[test]
    fn a_dead_binary_names_the_tests_in_flight() {
        let r = runner();
        let tests: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|t| format!("suite gpu::{t}"))
            .collect();
        let cmd = RunCommand {
            spec: r.list_command(),
            tests: tests.clone(),
            jobs: 2,
        };
        // a and b start; a finishes, c starts; b finishes, d starts; then the binary aborts.
        let out = "     Running unittests src/lib.rs (target/debug/deps/suite-0123456789abcdef)\n\nrunning 5 tests\ntest gpu::a ... ok\ntest gpu::b ... ok\n-[SimCommandBuffer commit]:1: failed assertion `commit an already committed command buffer'\nerror: test failed, to rerun pass `--lib`\n\nCaused by:\n  process didn't exit successfully: `/x/target/debug/deps/suite-0123456789abcdef --test-threads 2` (signal: 6, SIGABRT: process abort signal)\n     Running tests/it.rs (target/debug/deps/it-fedcba9876543210)\ntest smoke ... ok\ntest result: ok. 1 passed\n";
        let events = r.parse_run(&cmd, &exec(out));
        let died: Vec<&RunEvent> = events
            .iter()
            .filter(|e| matches!(e, RunEvent::Died { .. }))
            .collect();
        assert_eq!(died.len(), 1, "{events:#?}");
        let RunEvent::Died {
            domain,
            message,
            signature,
            ..
        } = died[0]
        else {
            unreachable!()
        };
        assert_eq!(domain, "suite");
        assert_eq!(message, "signal: SIGABRT");
        assert_eq!(
            signature,
            "signal: SIGABRT, assertion: commit an already committed command buffer"
        );
        let mut failures = Vec::new();
        let results = crate::hunt::classify::classify(&r, 2, &exec(out), &events, &mut failures);
        assert_eq!(results.len(), 3);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].in_flight, vec!["suite gpu::c", "suite gpu::d"]);
        assert_eq!(
            failures[0].candidates,
            vec![
                "suite gpu::a",
                "suite gpu::b",
                "suite gpu::c",
                "suite gpu::d"
            ]
        );
        assert_eq!(failures[0].test, None);
    }

    #[test]
    fn failed_tests_carry_their_panic_message() {
        let r = runner();
        let tests: Vec<String> = vec!["suite gpu::a".into(), "suite gpu::b".into()];
        let cmd = RunCommand {
            spec: r.list_command(),
            tests: tests.clone(),
            jobs: 2,
        };
        let out = "     Running unittests src/lib.rs (target/debug/deps/suite-0123456789abcdef)\ntest gpu::b ... ok\ntest gpu::a ... FAILED\n\nfailures:\n\n---- gpu::a stdout ----\n\nthread 'gpu::a' (12) panicked at src/lib.rs:37:36:\nbusy 17\n\nfailures:\n    gpu::a\n\ntest result: FAILED. 1 passed; 1 failed\nerror: test failed, to rerun pass `--lib`\nCaused by:\n  process didn't exit successfully: `/x/target/debug/deps/suite-0123456789abcdef` (exit status: 101)\n";
        let events = r.parse_run(&cmd, &exec(out));
        let mut failures = Vec::new();
        crate::hunt::classify::classify(&r, 2, &exec(out), &events, &mut failures);
        assert_eq!(failures.len(), 1, "{failures:#?}");
        assert_eq!(failures[0].key.message, "panic: busy <n> at src/lib.rs");
        assert_eq!(failures[0].test.as_deref(), Some("suite gpu::a"));
        // b finished before a failed; both had started.
        assert_eq!(failures[0].candidates, vec!["suite gpu::a", "suite gpu::b"]);
    }

    #[test]
    fn quiet_flags_are_dropped() {
        let r = CargoTest::new(&["cargo".into(), "test".into(), "-q".into()]);
        assert_eq!(
            r.list_command().display(),
            "cargo test --no-fail-fast -- --list --format terse"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_result_line(&s);
            let _ = parse_listing(&s);
            let _ = parse_failure_sections(&s);
            let _ = parse_binary_line(&s);
            let r = CargoTest::new(&["cargo".into(), "test".into()]);
            let _ = r.parse_list(&s);
            let cmd = RunCommand { spec: r.list_command(), tests: vec!["a".into()], jobs: 2 };
            let _ = r.parse_run(&cmd, &exec(&s));
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
