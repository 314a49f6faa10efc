//! The `hunt` engine: find which tests crash or hang when run together, and write the
//! serialization for them.
//!
//! Flow: the runner adapter ([`runner`]) lists the tests → the suite runs in parallel K times,
//! every run bounded ([`exec`]; a hang's stacks are captured before the kill, [`stacks`]) →
//! each run is classified into crash / hang / failure ([`classify`]) → each distinct failure
//! gets a serial baseline (a test that fails without concurrency is *broken*, not a race) →
//! the rest are bisected over the tests of the failing run with repeated probes ([`bisect`], a
//! pure function) → conflict sets → fixes in the runner's terms ([`emit`]) → optional verify →
//! [`report::HuntReport`], with the verdict computed here and printed by [`report`].
//!
//! The engine talks to processes only through [`exec::Executor`], so it is tested with a
//! scripted executor:
//!
//! ```
//! use racegate_cli::hunt::bisect::bisect;
//!
//! // Tests 4 and 9 of 16 crash when they overlap; everything else is innocent.
//! let tests: Vec<u32> = (0..16).collect();
//! let found = bisect(&tests, 100, |set: &[u32]| set.contains(&4) && set.contains(&9));
//! assert_eq!(found.conflict_set, vec![4, 9]);
//! assert!(found.probes <= 10);
//! ```

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::exit::CliError;

pub mod bisect;
pub mod classify;
pub mod emit;
pub mod exec;
pub mod model;
pub mod report;
pub mod runner;
pub mod stacks;

use exec::{Executor, Limits};
use model::{Failure, FailureKey, FailureKind, RunObservation, TestStatus};
use report::{
    BisectionReport, Classification, Finding, HuntReport, HuntVerdict, Reproduction, RunSummary,
    VerifyReport,
};
use runner::{RunPlan, Runner, RunnerKind};

/// Exit status: no failure in any run.
pub const EXIT_CLEAN: u8 = crate::exit::SUCCESS;
/// Exit status: conflict sets found (serialization printed; with `--verify`, it held).
pub const EXIT_RACES: u8 = crate::exit::FAILURE;
/// Exit status: `--verify` still failed with the serialization applied.
pub const EXIT_VERIFY_FAILED: u8 = crate::exit::HUNT_VERIFY_FAILED;
/// Exit status: failures, but none is a race (broken, order-dependent or flaky tests).
pub const EXIT_BROKEN_ONLY: u8 = crate::exit::HUNT_NO_RACE;
/// Exit status: the budget ran out before the hunt finished.
pub const EXIT_INCOMPLETE: u8 = crate::exit::HUNT_INCOMPLETE;

impl HuntVerdict {
    /// The process exit status of this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            HuntVerdict::Clean => EXIT_CLEAN,
            HuntVerdict::RacesFound => EXIT_RACES,
            HuntVerdict::VerifyFailed => EXIT_VERIFY_FAILED,
            HuntVerdict::BrokenOnly => EXIT_BROKEN_ONLY,
            HuntVerdict::Incomplete => EXIT_INCOMPLETE,
        }
    }
}

/// A resolved, validated hunt.
#[derive(Debug, Clone)]
pub struct HuntConfig {
    /// The runner.
    pub runner: RunnerKind,
    /// The user's test command.
    pub command: Vec<OsString>,
    /// Parallelism of suite runs and probes.
    pub jobs: u32,
    /// K.
    pub runs: u32,
    /// Hang threshold.
    pub test_timeout: Duration,
    /// Bound of the whole hunt.
    pub budget: Duration,
    /// Confidence for probe repetition.
    pub confidence: f64,
    /// Cap on runs per probe.
    pub max_runs_per_probe: u32,
    /// Rerun with the serialization applied.
    pub verify: bool,
}

/// Why a hunt could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    /// The test command could not be started.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// Listing the tests failed.
    #[error("listing tests with `{command}` failed: {detail}")]
    List {
        /// The command.
        command: String,
        /// What went wrong, with the end of its output.
        detail: String,
    },
    /// The suite ran but reported no test result at all.
    #[error("`{command}` reported no test results: {detail}")]
    NoResults {
        /// The command.
        command: String,
        /// The end of its output, and a hint.
        detail: String,
    },
}

/// Progress of a hunt, for the printer.
#[derive(Debug)]
pub enum HuntEvent<'a> {
    /// The tests were listed.
    Listed {
        /// How many.
        tests: usize,
    },
    /// A phase began.
    Phase(&'a str),
    /// One execution of the suite (or part of it) ended.
    Run {
        /// What it was for.
        what: &'a str,
        /// Tests in it.
        tests: usize,
        /// What it showed.
        observation: &'a RunObservation,
        /// Its wall time.
        elapsed: Duration,
    },
}

/// Tail of a text, for error messages.
fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

struct BudgetExhausted;

struct Engine<'a, E: Executor> {
    cfg: &'a HuntConfig,
    runner: &'a dyn Runner,
    exec: &'a mut E,
    started: Instant,
    total_runs: u32,
    on_event: &'a mut dyn FnMut(HuntEvent<'_>),
}

impl<E: Executor> Engine<'_, E> {
    fn remaining(&self) -> Duration {
        self.cfg.budget.saturating_sub(self.started.elapsed())
    }

    /// Run `tests` once (all commands of the plan) and classify what happened.
    fn run(
        &mut self,
        what: &str,
        tests: &[String],
        whole_suite: bool,
        jobs: u32,
        serialized: &[Vec<String>],
    ) -> Result<Result<RunObservation, BudgetExhausted>, HuntError> {
        let plan = RunPlan {
            tests,
            whole_suite,
            jobs,
            serialized,
        };
        let t0 = Instant::now();
        let mut merged = RunObservation::default();
        let mut stderr_tail = String::new();
        let mut nonzero = false;
        for spec in self.runner.run_commands(&plan) {
            let remaining = self.remaining();
            if remaining < Duration::from_millis(200) {
                return Ok(Err(BudgetExhausted));
            }
            let limits = Limits {
                // Not capped by the budget: a run cut short by the budget is out of time, not hung.
                idle: self.cfg.test_timeout,
                total: remaining,
                capture_stacks: what == "suite",
            };
            let runner = self.runner;
            let ex = self
                .exec
                .execute(&spec, limits, &|l| runner.is_progress(l))
                .map_err(|source| HuntError::Spawn {
                    command: spec.display(),
                    source,
                })?;
            self.total_runs += 1;
            if ex.termination == exec::Termination::OutOfTime {
                return Ok(Err(BudgetExhausted));
            }
            nonzero |= ex.termination != exec::Termination::Exited(0);
            stderr_tail = tail(&format!("{}{}", ex.stdout, ex.stderr), 15);
            let results = self.runner.parse_results(&ex.stdout, &ex.stderr);
            let failure_output = self.runner.failure_output(&ex.stdout, &ex.stderr);
            let obs = classify::classify(&ex, results, &failure_output, tests);
            merged.results.extend(obs.results);
            for f in obs.failures {
                if !merged.has(&f.key) {
                    merged.failures.push(f);
                }
            }
        }
        // Unfinished is relative to the whole plan, not to one of its commands.
        let unfinished: Vec<String> = tests
            .iter()
            .filter(|t| !merged.results.iter().any(|(n, _)| n == *t))
            .cloned()
            .collect();
        for f in &mut merged.failures {
            f.unfinished = unfinished.clone();
        }
        if merged.results.is_empty() && merged.failures.is_empty() && nonzero {
            return Err(HuntError::NoResults {
                command: self.runner.run_commands(&plan)[0].display(),
                detail: format!(
                    "it failed before any test ran{}:\n{stderr_tail}",
                    if self.runner.kind() == RunnerKind::Pytest
                        && stderr_tail.contains("unrecognized arguments: -n")
                    {
                        " (parallel pytest runs need pytest-xdist: `pip install pytest-xdist`)"
                    } else {
                        ""
                    }
                ),
            });
        }
        (self.on_event)(HuntEvent::Run {
            what,
            tests: tests.len(),
            observation: &merged,
            elapsed: t0.elapsed(),
        });
        Ok(Ok(merged))
    }
}

/// A failure seen in the parallel runs, before analysis.
struct Seen {
    first: Failure,
    candidates: Vec<String>,
    signatures: Vec<String>,
    count: u32,
}

/// Run a whole hunt with `exec`, reporting progress through `on_event`.
pub fn run_hunt<E: Executor>(
    cfg: &HuntConfig,
    runner: &dyn Runner,
    exec: &mut E,
    on_event: &mut dyn FnMut(HuntEvent<'_>),
) -> Result<HuntReport, HuntError> {
    let mut engine = Engine {
        cfg,
        runner,
        exec,
        started: Instant::now(),
        total_runs: 0,
        on_event,
    };
    let mut notes: Vec<String> = Vec::new();
    let mut incomplete = false;

    // 1. List.
    let list = runner.list_command();
    let remaining = engine.remaining();
    let listed = engine
        .exec
        .execute(
            &list,
            Limits {
                idle: remaining,
                total: remaining,
                capture_stacks: false,
            },
            &|_| false,
        )
        .map_err(|source| HuntError::Spawn {
            command: list.display(),
            source,
        })?;
    if listed.termination != exec::Termination::Exited(0) {
        return Err(HuntError::List {
            command: list.display(),
            detail: format!(
                "{}:\n{}",
                match &listed.termination {
                    exec::Termination::Exited(code) => format!("it exited with status {code}"),
                    exec::Termination::Signaled(sig) => format!("it was killed by signal {sig}"),
                    exec::Termination::Hung { .. } | exec::Termination::OutOfTime => format!(
                        "it did not finish within --budget ({})",
                        humantime::format_duration(cfg.budget)
                    ),
                },
                tail(&format!("{}{}", listed.stdout, listed.stderr), 15)
            ),
        });
    }
    let tests = runner
        .parse_list(&listed.stdout, &listed.stderr)
        .map_err(|detail| HuntError::List {
            command: list.display(),
            detail,
        })?;
    if tests.is_empty() {
        return Err(HuntError::List {
            command: list.display(),
            detail: "no tests listed".into(),
        });
    }
    (engine.on_event)(HuntEvent::Listed { tests: tests.len() });

    // 2. K parallel runs.
    (engine.on_event)(HuntEvent::Phase("parallel runs"));
    let mut suite_runs = Vec::new();
    let mut seen: Vec<Seen> = Vec::new();
    for i in 0..cfg.runs {
        let t0 = Instant::now();
        let obs = match engine.run("suite", &tests, true, cfg.jobs, &[])? {
            Ok(o) => o,
            Err(BudgetExhausted) => {
                incomplete = true;
                break;
            }
        };
        suite_runs.push(RunSummary {
            index: i + 1,
            elapsed_ms: t0.elapsed().as_millis() as u64,
            passed: obs
                .results
                .iter()
                .filter(|(_, s)| *s == TestStatus::Passed)
                .count(),
            failed: obs
                .results
                .iter()
                .filter(|(_, s)| !matches!(s, TestStatus::Passed | TestStatus::Skipped))
                .count(),
            failures: obs.failures.iter().map(|f| f.key.kind()).collect(),
        });
        for f in obs.failures {
            match seen.iter_mut().find(|s| s.first.key.matches(&f.key)) {
                Some(s) => {
                    s.count += 1;
                    if !s.signatures.contains(&f.signature) {
                        s.signatures.push(f.signature.clone());
                    }
                }
                None => seen.push(Seen {
                    signatures: vec![f.signature.clone()],
                    candidates: tests.clone(),
                    first: f,
                    count: 1,
                }),
            }
        }
    }
    let runs_done = suite_runs.len() as u32;
    // Crashes and hangs first: they hide everything else in the runs they end.
    seen.sort_by_key(|s| s.first.key.kind());

    // 3. Analyse each distinct failure.
    let mut findings: Vec<Finding> = Vec::new();
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut leaks: Vec<emit::LeakingFixture> = Vec::new();
    // Failures that are not races (broken tests) do not fail the verification.
    let mut known_broken: Vec<FailureKey> = Vec::new();
    for s in seen {
        let mut finding = Finding {
            kind: s.first.key.kind(),
            classification: Classification::Unresolved,
            signature: s.first.signature.clone(),
            signatures: s.signatures.clone(),
            test: s.first.test.clone(),
            seen_in_runs: s.count,
            of_runs: runs_done,
            parallel_rate: f64::from(s.count) / f64::from(runs_done.max(1)),
            conflict_set: Vec::new(),
            group: None,
            bisection: None,
            reproduction: None,
            stack_excerpt: (!s.first.stacks.is_empty())
                .then(|| stacks::excerpt(&s.first.stacks, 24))
                .filter(|e| !e.is_empty()),
            stacks: s.first.stacks.clone(),
            leaking_fixture: None,
        };
        if finding.kind == FailureKind::Hang && finding.stacks.is_empty() {
            notes.push(
                "no thread dumps for the hang: install gdb (native) or py-spy (Python) to get them"
                    .into(),
            );
        }
        if incomplete {
            findings.push(finding);
            continue;
        }
        match analyse(&mut engine, &s, &mut finding)? {
            Ok(()) => {}
            Err(BudgetExhausted) => {
                incomplete = true;
                findings.push(finding);
                continue;
            }
        }
        if matches!(
            finding.classification,
            Classification::Broken | Classification::OrderDependent | Classification::Flaky
        ) {
            known_broken.push(s.first.key.clone());
        }
        if finding.classification == Classification::Race {
            let mut group = finding.conflict_set.clone();
            if finding.kind == FailureKind::Hang {
                if let Some(mut leak) = emit::leaking_fixtures(&finding.stacks).into_iter().next() {
                    leak.used_by = fixture_users(&mut engine, &leak.name, &tests);
                    // Every user of the leaking fixture belongs in the group, not only the
                    // few the bisection needed to reproduce.
                    for t in &tests {
                        if leak.used_by.contains(t) && !group.contains(t) {
                            group.push(t.clone());
                        }
                    }
                    group.sort_by_key(|t| tests.iter().position(|x| x == t));
                    leaks.push(leak.clone());
                    finding.leaking_fixture = Some(leak);
                }
            }
            match groups.iter().position(|g| *g == group) {
                Some(i) => finding.group = Some(emit::group_name(i)),
                None => {
                    finding.group = Some(emit::group_name(groups.len()));
                    groups.push(group);
                }
            }
        }
        findings.push(finding);
    }

    // 4. Verify.
    let locations = if cfg.runner == RunnerKind::Pytest || groups.is_empty() {
        Vec::new()
    } else {
        let names: Vec<&str> = groups
            .iter()
            .flatten()
            .map(|t| runner::nextest::split_id(t).1)
            .collect();
        emit::locate_rust_tests(&rust_root(&cfg.command), &names)
    };
    let fix = emit::fix(cfg.runner, &groups, &leaks, &locations);
    let mut verify = None;
    if cfg.verify && !groups.is_empty() && !incomplete {
        (engine.on_event)(HuntEvent::Phase("verify"));
        let mut v = VerifyReport {
            runs: 0,
            clean_runs: 0,
            failures: Vec::new(),
            passed: false,
        };
        for _ in 0..cfg.runs {
            match engine.run("verify", &tests, true, cfg.jobs, &groups)? {
                Ok(obs) => {
                    v.runs += 1;
                    let bad: Vec<&Failure> = obs
                        .failures
                        .iter()
                        .filter(|f| !known_broken.iter().any(|k| k.matches(&f.key)))
                        .collect();
                    if bad.is_empty() {
                        v.clean_runs += 1;
                    }
                    for f in bad {
                        if !v.failures.contains(&f.signature) {
                            v.failures.push(f.signature.clone());
                        }
                    }
                }
                Err(BudgetExhausted) => {
                    incomplete = true;
                    break;
                }
            }
        }
        v.passed = v.runs == cfg.runs && v.clean_runs == v.runs;
        verify = Some(v);
    }
    if incomplete {
        notes.push(format!(
            "the budget ({}) ran out before the hunt finished; raise --budget",
            humantime::format_duration(cfg.budget)
        ));
    }

    let any_race = findings
        .iter()
        .any(|f| f.classification == Classification::Race);
    let verdict = if verify.as_ref().is_some_and(|v| !v.passed && v.runs > 0) {
        HuntVerdict::VerifyFailed
    } else if incomplete {
        HuntVerdict::Incomplete
    } else if any_race {
        HuntVerdict::RacesFound
    } else if findings.is_empty() {
        HuntVerdict::Clean
    } else {
        HuntVerdict::BrokenOnly
    };
    Ok(HuntReport {
        schema: report::SCHEMA,
        runner: cfg.runner,
        command: runner::split_command(&cfg.command, None).display(),
        jobs: cfg.jobs,
        runs: cfg.runs,
        test_timeout_ms: cfg.test_timeout.as_millis() as u64,
        budget_ms: cfg.budget.as_millis() as u64,
        confidence: cfg.confidence,
        tests: tests.len(),
        suite_runs,
        findings,
        fix,
        verify,
        total_runs: engine.total_runs,
        elapsed_ms: engine.started.elapsed().as_millis() as u64,
        verdict,
        notes,
    })
}

/// Parallelism of a probe of `tests` tests: at least `--jobs`, and for small sets one worker
/// per test (up to [`PROBE_JOBS_CAP`]). Runners place tests on workers in chunks (xdist sends
/// each worker two consecutive tests first), so with fewer workers than tests two members of
/// a small conflict set can land on one worker and run one after the other; with a worker each
/// they always run at the same time.
pub fn probe_jobs(jobs: u32, tests: usize) -> u32 {
    jobs.max(tests.min(PROBE_JOBS_CAP as usize) as u32)
}

/// The most workers [`probe_jobs`] adds for a small set.
pub const PROBE_JOBS_CAP: u32 = 4;

/// Baseline, bisection and confirmation of one failure.
fn analyse<E: Executor>(
    engine: &mut Engine<'_, E>,
    s: &Seen,
    finding: &mut Finding,
) -> Result<Result<(), BudgetExhausted>, HuntError> {
    let cfg = engine.cfg;
    let key = s.first.key.clone();
    let candidates = &s.candidates;
    (engine.on_event)(HuntEvent::Phase("serial baseline"));

    // Does it need concurrency at all? A test the runner named is first run alone.
    if let Some(test) = s.first.test.clone() {
        let alone = match engine.run("alone", std::slice::from_ref(&test), false, 1, &[])? {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        if alone.has(&key) {
            finding.classification = Classification::Broken;
            finding.conflict_set = vec![test];
            return Ok(Ok(()));
        }
    }
    // Then one serial run of the same tests.
    let serial = match engine.run("serial baseline", candidates, true, 1, &[])? {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(f) = serial.failures.iter().find(|f| f.key.matches(&key)) {
        // Serially, the culprit is the failing test or the first one that never finished.
        let suspect = f
            .test
            .clone()
            .or_else(|| f.unfinished.first().cloned())
            .unwrap_or_default();
        let alone = match engine.run("alone", std::slice::from_ref(&suspect), false, 1, &[])? {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        finding.classification = if alone.has(&key) {
            Classification::Broken
        } else {
            Classification::OrderDependent
        };
        finding.conflict_set = vec![suspect];
        return Ok(Ok(()));
    }

    // Needs concurrency: bisect with repeated probes.
    (engine.on_event)(HuntEvent::Phase("bisection"));
    // The stated confidence is for the whole search, so each probe gets a stricter one.
    let runs_per_probe = bisect::runs_per_probe(
        finding.parallel_rate,
        bisect::probe_confidence(cfg.confidence, candidates.len()),
        cfg.max_runs_per_probe,
    );
    let runs_before = engine.total_runs;
    let mut exhausted = false;
    let mut error: Option<HuntError> = None;
    let limit = bisect::probe_limit(candidates.len(), 8);
    let result = bisect::bisect(candidates, limit, |subset: &[String]| {
        if exhausted || error.is_some() {
            return false;
        }
        for _ in 0..runs_per_probe {
            match engine.run(
                "probe",
                subset,
                false,
                probe_jobs(cfg.jobs, subset.len()),
                &[],
            ) {
                Ok(Ok(o)) if o.has(&key) => return true,
                Ok(Ok(_)) => {}
                Ok(Err(BudgetExhausted)) => {
                    exhausted = true;
                    return false;
                }
                Err(e) => {
                    error = Some(e);
                    return false;
                }
            }
        }
        false
    });
    if let Some(e) = error {
        return Err(e);
    }
    finding.bisection = Some(BisectionReport {
        candidates: candidates.len(),
        probes: result.probes,
        runs_per_probe,
        runs: engine.total_runs - runs_before,
        confidence: cfg.confidence,
        minimal: result.minimal && !exhausted,
    });
    finding.conflict_set = result.conflict_set;
    if exhausted {
        return Ok(Err(BudgetExhausted));
    }

    // Measure how reliably the set reproduces on its own.
    (engine.on_event)(HuntEvent::Phase("reproduction"));
    let mut rep = Reproduction {
        runs: 0,
        reproduced: 0,
        rate: 0.0,
    };
    let set = finding.conflict_set.clone();
    for _ in 0..cfg.runs {
        match engine.run(
            "reproduce",
            &set,
            false,
            probe_jobs(cfg.jobs, set.len()),
            &[],
        )? {
            Ok(o) => {
                rep.runs += 1;
                if o.has(&key) {
                    rep.reproduced += 1;
                }
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    rep.rate = f64::from(rep.reproduced) / f64::from(rep.runs.max(1));
    let every_time = rep.reproduced == rep.runs;
    finding.reproduction = Some(rep);
    finding.classification = match (set.len(), every_time) {
        // One test, failing on its own: every time (broken), or only sometimes (flaky).
        (1, true) => Classification::Broken,
        (1, false) => Classification::Flaky,
        _ => Classification::Race,
    };
    Ok(Ok(()))
}

/// Tests that use pytest fixture `name` (empty when the runner cannot tell).
fn fixture_users<E: Executor>(
    engine: &mut Engine<'_, E>,
    name: &str,
    tests: &[String],
) -> Vec<String> {
    if engine.cfg.runner != RunnerKind::Pytest {
        return Vec::new();
    }
    let scratch = scratch_dir();
    let out = scratch.join("fixtures.tsv");
    let py = match runner::pytest::Pytest::new(&engine.cfg.command, &scratch) {
        Ok(p) => p,
        Err(_) => return Vec::new(),
    };
    let spec = py.fixture_command(&out);
    let remaining = engine.remaining();
    let limits = Limits {
        idle: remaining,
        total: remaining,
        capture_stacks: false,
    };
    if engine.exec.execute(&spec, limits, &|_| false).is_err() {
        return Vec::new();
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    runner::pytest::parse_fixture_file(&text)
        .into_iter()
        .filter(|(id, fx)| fx.iter().any(|f| f == name) && tests.contains(id))
        .map(|(id, _)| id)
        .collect()
}

/// The directory holding the suite's sources: that of `--manifest-path`, else the current one.
fn rust_root(command: &[OsString]) -> PathBuf {
    let manifest = command
        .iter()
        .position(|a| a == "--manifest-path")
        .and_then(|i| command.get(i + 1))
        .map(PathBuf::from)
        .or_else(|| {
            command.iter().find_map(|a| {
                a.to_str()
                    .and_then(|s| s.strip_prefix("--manifest-path="))
                    .map(PathBuf::from)
            })
        });
    match manifest.as_ref().and_then(|m| m.parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// A private scratch directory for helper files (pytest plugin, nextest tool config).
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("racegate-hunt-{}", std::process::id()))
}

/// Validate the arguments into a [`HuntConfig`] (no side effects).
pub fn resolve(args: &crate::cli::hunt::HuntArgs) -> Result<HuntConfig, CliError> {
    use crate::cli::hunt::RunnerChoice;
    let runner = match args.runner {
        RunnerChoice::Cargo => RunnerKind::Cargo,
        RunnerChoice::Nextest => RunnerKind::Nextest,
        RunnerChoice::Pytest => RunnerKind::Pytest,
        RunnerChoice::Auto => RunnerKind::detect(&args.command).ok_or_else(|| {
            CliError::Usage(anyhow::anyhow!(
                "--runner auto: cannot tell the runner of `{}`; expected `cargo test …`, `cargo nextest run …` or `pytest …` (or pass --runner)",
                runner::split_command(&args.command, None).display()
            ))
        })?,
    };
    if args.test_timeout > args.budget {
        return Err(CliError::Usage(anyhow::anyhow!(
            "--test-timeout ({}) must not exceed --budget ({})",
            humantime::format_duration(args.test_timeout),
            humantime::format_duration(args.budget)
        )));
    }
    if let Some(json) = &args.json {
        // Fail now, not after a half-hour hunt.
        let dir = json
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(CliError::Usage(anyhow::anyhow!(
                "--json `{}`: directory `{}` does not exist",
                json.display(),
                dir.display()
            )));
        }
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(2)
            .max(2)
    });
    Ok(HuntConfig {
        runner,
        command: args.command.clone(),
        jobs,
        runs: args.runs,
        test_timeout: args.test_timeout,
        budget: args.budget,
        confidence: args.confidence,
        max_runs_per_probe: args.max_runs_per_probe,
        verify: args.verify,
    })
}

/// Print progress lines to `w`.
pub fn progress_printer<W: std::io::Write>(mut w: W) -> impl FnMut(HuntEvent<'_>) {
    let mut probes = 0u32;
    move |ev| {
        let _ = match ev {
            HuntEvent::Listed { tests } => writeln!(w, "hunt: {tests} tests listed"),
            HuntEvent::Phase(p) => {
                probes = 0;
                writeln!(w, "hunt: {p}…")
            }
            HuntEvent::Run {
                what,
                tests,
                observation,
                elapsed,
            } => {
                if what == "probe" {
                    probes += 1;
                }
                let outcome = if observation.failures.is_empty() {
                    "ok".to_string()
                } else {
                    observation
                        .failures
                        .iter()
                        .map(|f| format!("{} ({})", f.key.kind().as_str(), f.signature))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let n = if what == "probe" {
                    format!(" #{probes}")
                } else {
                    String::new()
                };
                writeln!(
                    w,
                    "hunt:   {what}{n}: {tests} tests, {:.1}s: {outcome}",
                    elapsed.as_secs_f64()
                )
            }
        };
    }
}

/// Run `racegate hunt`.
pub fn hunt(args: crate::cli::hunt::HuntArgs) -> Result<u8, CliError> {
    let cfg = resolve(&args)?;
    exec::kill_children_on_interrupt();
    let scratch = scratch_dir();
    let runner = runner::build(cfg.runner, &cfg.command, &scratch).map_err(|e| {
        CliError::Other(anyhow::anyhow!(
            "cannot write helper files into `{}`: {e}",
            scratch.display()
        ))
    })?;
    let mut exec = exec::ProcessExecutor::new();
    let mut printer = progress_printer(std::io::stderr());
    let mut quiet = |_: HuntEvent<'_>| {};
    let on_event: &mut dyn FnMut(HuntEvent<'_>) =
        if args.quiet { &mut quiet } else { &mut printer };
    let result = run_hunt(&cfg, runner.as_ref(), &mut exec, on_event);
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::Other(anyhow::anyhow!("cannot encode the report: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|e| {
            CliError::Other(anyhow::anyhow!(
                "cannot write --json `{}`: {e}",
                path.display()
            ))
        })?;
    }
    let stdout = std::io::stdout();
    match report::write_summary(&mut stdout.lock(), &report) {
        // `racegate hunt … | head` is fine: the reader has what it wanted.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(CliError::Other(anyhow::anyhow!(
                "cannot write the summary: {e}"
            )))
        }
        _ => {}
    }
    Ok(report.verdict.exit_code())
}

#[cfg(test)]
mod tests {
    use super::exec::{CommandSpec, Execution, Termination};
    use super::*;

    /// A scripted `cargo test`: tests in `conflict` crash the binary when they run together with
    /// more than one thread; tests in `broken` always fail; `hang_with` hangs like `conflict`.
    struct MockCargo {
        tests: Vec<String>,
        conflict: Vec<String>,
        broken: Vec<String>,
        hang: bool,
        executions: u32,
    }

    impl MockCargo {
        fn new(n: usize, conflict: &[usize], broken: &[usize], hang: bool) -> Self {
            let tests: Vec<String> = (0..n).map(|i| format!("mod{}::t{i:03}", i % 3)).collect();
            MockCargo {
                conflict: conflict.iter().map(|&i| tests[i].clone()).collect(),
                broken: broken.iter().map(|&i| tests[i].clone()).collect(),
                tests,
                hang,
                executions: 0,
            }
        }
    }

    impl Executor for MockCargo {
        fn execute(
            &mut self,
            spec: &CommandSpec,
            _limits: Limits,
            _is_progress: &dyn Fn(&str) -> bool,
        ) -> std::io::Result<Execution> {
            self.executions += 1;
            let args: Vec<String> = spec
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let done = |stdout: String, stderr: &str, termination| Execution {
                termination,
                stdout,
                stderr: stderr.to_string(),
                stacks: Vec::new(),
                native_crashes: Vec::new(),
                elapsed: Duration::from_millis(5),
            };
            if args.iter().any(|a| a == "--list") {
                let out: String = self.tests.iter().map(|t| format!("{t}: test\n")).collect();
                return Ok(done(out, "", Termination::Exited(0)));
            }
            let threads: u32 = args
                .iter()
                .position(|a| a == "--test-threads")
                .and_then(|i| args[i + 1].parse().ok())
                .unwrap_or(1);
            let mut skip = Vec::new();
            let mut selected = Vec::new();
            let mut i = args.iter().position(|a| a == "--").unwrap() + 1;
            while i < args.len() {
                match args[i].as_str() {
                    "--test-threads" => i += 1,
                    "--skip" => {
                        skip.push(args[i + 1].clone());
                        i += 1;
                    }
                    a if a.starts_with("--") => {}
                    a => selected.push(a.to_string()),
                }
                i += 1;
            }
            let run: Vec<&String> = self
                .tests
                .iter()
                .filter(|t| selected.is_empty() || selected.contains(t))
                .filter(|t| !skip.contains(t))
                .collect();
            let collide = threads > 1
                && !self.conflict.is_empty()
                && self.conflict.iter().all(|c| run.contains(&c));
            let mut out = String::new();
            for t in &run {
                if collide && self.conflict.contains(t) {
                    break;
                }
                let verdict = if self.broken.contains(t) {
                    "FAILED"
                } else {
                    "ok"
                };
                out.push_str(&format!("test {t} ... {verdict}\n"));
            }
            Ok(if collide && self.hang {
                done(
                    out,
                    "",
                    Termination::Hung {
                        idle: Duration::from_secs(1),
                    },
                )
            } else if collide {
                done(
                    out,
                    "-[SimCommandBuffer commit]:1: failed assertion `commit an already committed command buffer'\n  process didn't exit successfully: `x` (signal: 6, SIGABRT: process abort signal)\n",
                    Termination::Exited(101),
                )
            } else {
                let code = if run.iter().any(|t| self.broken.contains(t)) {
                    101
                } else {
                    0
                };
                done(out, "", Termination::Exited(code))
            })
        }
    }

    fn cfg(verify: bool) -> HuntConfig {
        HuntConfig {
            runner: RunnerKind::Cargo,
            command: vec!["cargo".into(), "test".into()],
            jobs: 4,
            runs: 3,
            test_timeout: Duration::from_secs(5),
            budget: Duration::from_secs(600),
            confidence: 0.95,
            max_runs_per_probe: 5,
            verify,
        }
    }

    fn hunt_with(mock: &mut MockCargo, verify: bool) -> HuntReport {
        let runner = runner::cargo::CargoTest::new(&cfg(verify).command);
        run_hunt(&cfg(verify), &runner, mock, &mut |_| {}).unwrap()
    }

    #[test]
    fn finds_the_conflicting_pair_and_verifies_the_fix() {
        let mut mock = MockCargo::new(40, &[7, 31], &[], false);
        let r = hunt_with(&mut mock, true);
        assert_eq!(r.verdict, HuntVerdict::RacesFound);
        assert_eq!(r.findings.len(), 1);
        let f = &r.findings[0];
        assert_eq!(f.kind, FailureKind::Crash);
        assert_eq!(f.classification, Classification::Race);
        assert_eq!(
            f.conflict_set,
            vec![mock.tests[7].clone(), mock.tests[31].clone()]
        );
        assert!(
            f.signature.contains("commit an already committed"),
            "{}",
            f.signature
        );
        let b = f.bisection.as_ref().unwrap();
        assert!((b.probes as f64) < 4.0 * 40f64.log2());
        assert_eq!(b.runs_per_probe, 1); // reproduced in 3/3 runs
        assert_eq!(f.reproduction.as_ref().unwrap().reproduced, 3);
        assert!(r.verify.as_ref().unwrap().passed);
        assert!(r
            .fix
            .nextest_toml
            .as_ref()
            .unwrap()
            .contains(&mock.tests[31]));
        assert_eq!(r.total_runs, mock.executions - 1); // every execution but the listing
    }

    #[test]
    fn a_test_that_fails_alone_is_broken_not_a_race() {
        let mut mock = MockCargo::new(12, &[], &[5], false);
        let r = hunt_with(&mut mock, true);
        assert_eq!(r.verdict, HuntVerdict::BrokenOnly);
        assert_eq!(r.findings[0].classification, Classification::Broken);
        assert_eq!(r.findings[0].conflict_set, vec![mock.tests[5].clone()]);
        assert!(r.verify.is_none());
        assert!(r.fix.nextest_toml.is_none());
    }

    #[test]
    fn hangs_are_bisected_too() {
        let mut mock = MockCargo::new(20, &[2, 3, 11], &[], true);
        let r = hunt_with(&mut mock, false);
        assert_eq!(r.verdict, HuntVerdict::RacesFound);
        assert_eq!(r.findings[0].kind, FailureKind::Hang);
        assert_eq!(r.findings[0].conflict_set.len(), 3);
    }

    #[test]
    fn clean_suite_is_clean() {
        let mut mock = MockCargo::new(10, &[], &[], false);
        let r = hunt_with(&mut mock, true);
        assert_eq!(r.verdict, HuntVerdict::Clean);
        assert_eq!(r.total_runs, 3);
        assert_eq!(r.verdict.exit_code(), 0);
    }

    #[test]
    fn small_probes_get_a_worker_per_test() {
        assert_eq!(probe_jobs(2, 1), 2);
        assert_eq!(probe_jobs(2, 3), 3);
        assert_eq!(probe_jobs(2, 30), 4);
        assert_eq!(probe_jobs(8, 3), 8);
    }

    #[test]
    fn sources_are_found_next_to_the_manifest() {
        let words = |s: &str| -> Vec<OsString> { s.split(' ').map(OsString::from).collect() };
        assert_eq!(
            rust_root(&words("cargo test --manifest-path a/b/Cargo.toml")),
            PathBuf::from("a/b")
        );
        assert_eq!(
            rust_root(&words("cargo test --manifest-path=x/Cargo.toml -p y")),
            PathBuf::from("x")
        );
        assert_eq!(
            rust_root(&words("cargo test")),
            std::env::current_dir().unwrap()
        );
    }

    #[test]
    fn a_spent_budget_gives_an_incomplete_report() {
        let mut mock = MockCargo::new(10, &[1, 2], &[], false);
        let mut c = cfg(false);
        c.budget = Duration::from_millis(1);
        let runner = runner::cargo::CargoTest::new(&c.command);
        let r = run_hunt(&c, &runner, &mut mock, &mut |_| {}).unwrap();
        assert_eq!(r.verdict, HuntVerdict::Incomplete);
        assert!(r.notes.iter().any(|n| n.contains("budget")));
    }
}
