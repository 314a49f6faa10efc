//! The hunt's result ([`HuntReport`], serialized as the `--json` document, schema
//! `racegate.hunt.v1`, documented in `docs/hunt.md`). The verdict is computed by the engine;
//! the printer ([`super::summary`]) only formats.

use serde::Serialize;

use super::emit::{Fix, FixGroup, LeakingFixture};
use super::model::{FailureKind, ProcessStack};
use super::runner::RunnerKind;
use super::stats::Rate;

/// The schema identifier written into every JSON report.
pub const SCHEMA: &str = "racegate.hunt.v1";
/// The schema version (the `schema_version` field, as the other commands' reports have it).
pub const SCHEMA_VERSION: u32 = 1;

/// The outcome of a hunt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HuntVerdict {
    /// No failure in any parallel run, at any level of concurrency tried.
    Clean,
    /// Conflict sets were found, and the suite ran clean with their serialization applied
    /// (with `--verify`: for the stated power).
    RacesFound,
    /// Failures, but none needs concurrency: broken, order-dependent or flaky tests.
    BrokenOnly,
    /// With the serialization applied the suite still failed (or the fix could not be made
    /// to hold within the rounds allowed).
    VerifyFailed,
    /// The budget ran out (or the test command stopped working) before the hunt finished;
    /// the report holds what was found so far.
    Incomplete,
    /// SIGINT, SIGTERM or SIGHUP stopped the hunt; the report holds what was found so far.
    Interrupted,
}

impl HuntVerdict {
    /// The word printed in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            HuntVerdict::Clean => "CLEAN",
            HuntVerdict::RacesFound => "RACES FOUND",
            HuntVerdict::BrokenOnly => "BROKEN TESTS",
            HuntVerdict::VerifyFailed => "VERIFY FAILED",
            HuntVerdict::Incomplete => "INCOMPLETE",
            HuntVerdict::Interrupted => "INTERRUPTED",
        }
    }
}

/// What a failure turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Needs tests running at the same time: a conflict set was found, reproduced, and each
    /// member was shown necessary.
    Race,
    /// Fails when run alone.
    Broken,
    /// Fails in a serial run of the suite but not alone: order pollution, not concurrency.
    OrderDependent,
    /// The search ended on the failing test alone: it fails alone, sometimes.
    Flaky,
    /// Not resolved: the set did not reproduce, or the budget ran out first. Never in the fix.
    Unresolved,
    /// Not worked out on its own: its test is in a group of the fix, and once the groups were
    /// applied it did not come back (the verifying rounds count it).
    Covered,
}

/// Where a finding was first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundIn {
    /// The serial timing run.
    Serial,
    /// A parallel run of the whole suite.
    Suite,
    /// A probe made for another finding.
    Probe,
}

/// One run of the whole suite (serial timing run, parallel runs of each round).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteRunSummary {
    /// 1-based, over the whole hunt.
    pub index: u32,
    /// Round of find → serialize → rerun (0: the serial timing run).
    pub round: u32,
    /// Workers.
    pub jobs: u32,
    /// Wall time.
    pub elapsed_ms: u64,
    /// Tests reported passed.
    pub passed: usize,
    /// Tests reported failed or crashed.
    pub failed: usize,
    /// `crash`/`hang`/`failure` per failure seen.
    pub failures: Vec<FailureKind>,
}

/// The identity of a finding: a probe reproduces it only when the same test (or process)
/// fails in the same class with the same message.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// crash, hang or failure.
    pub class: FailureKind,
    /// The failing test, when one is named.
    pub test: Option<String>,
    /// The process (a cargo test binary; `""`: the run) that died or hung, when no single
    /// test is to blame.
    pub process: Option<String>,
    /// The normalized message with its location.
    pub message: String,
}

/// The bisection of one finding.
#[derive(Debug, Clone, Serialize)]
pub struct BisectionReport {
    /// Tests it started from: those of the failing process that had started by the time it
    /// failed.
    pub candidates: usize,
    /// Probes (oracle calls) spent.
    pub probes: usize,
    /// Runs per probe at most (a probe stops at its first reproduction).
    pub runs_per_probe: u32,
    /// Suite runs actually spent.
    pub runs: u32,
    /// Confidence of each probe that a reproducing set shows.
    pub confidence: f64,
    /// Whether the search ran to its end (false: the probe limit stopped it).
    pub minimal: bool,
    /// Probes that showed only other failures (counted as not reproduced by the search, which
    /// can only make its result larger; each such failure is a finding of its own).
    pub inconclusive_probes: usize,
    /// The leaking fixture whose users, together, reproduced a hang: the set is all of them
    /// and the search stopped there (not reduced further, on purpose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixture_users_of: Option<String>,
    /// The fixed files the failing test and the rest of the set wrote (in the serial run):
    /// together, without the other candidates, they reproduced it; the set is all of them and
    /// is not reduced (`minimal` false, no member checks). Absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writers_of: Vec<String>,
}

/// A measured reproduction rate of a set run on its own.
#[derive(Debug, Clone, Serialize)]
pub struct Reproduction {
    /// Runs made.
    pub runs: u32,
    /// Runs that showed the finding.
    pub reproduced: u32,
    /// `reproduced / runs`.
    pub rate: f64,
    /// 95% interval of the rate (Clopper-Pearson).
    pub low: f64,
    /// 95% interval of the rate (Clopper-Pearson).
    pub high: f64,
    /// Runs that showed another failure instead.
    pub other_failures: u32,
}

/// The set less one member, run on its own.
#[derive(Debug, Clone, Serialize)]
pub struct MemberCheck {
    /// The member removed.
    pub test: String,
    /// Runs made without it.
    pub runs: u32,
    /// Runs that still showed the finding.
    pub reproduced: u32,
    /// Runs that showed another failure instead (not evidence either way).
    pub other_failures: u32,
}

/// Whether every member of the set is needed, as measured.
#[derive(Debug, Clone, Serialize)]
pub struct Minimality {
    /// One check per member.
    pub members: Vec<MemberCheck>,
    /// The failing test, whose removal stops the finding by definition (not run).
    pub failing_test: Option<String>,
    /// The rate the runs were planned for: the lower end of the 95% interval of the set's
    /// rate (what it fails at, at least, with 97.5% confidence).
    pub planning_rate: f64,
    /// Probability that a member whose removal still failed at that rate would have shown it.
    pub confidence: f64,
    /// Every member checked, none still reproducing.
    pub minimal: bool,
    /// Members run again with an uninvolved test in their place
    /// ([`bystander`](super::bystander)); one that still reproduced was a bystander, left
    /// out of the set. Absent when none was checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stand_ins: Vec<StandIn>,
}

/// A member of a set replaced by a test implicated in nothing, the rest of the set unchanged.
#[derive(Debug, Clone, Serialize)]
pub struct StandIn {
    /// The member replaced.
    pub test: String,
    /// The test put in its place.
    pub replaced_by: String,
    /// Runs made with it in place.
    pub runs: u32,
    /// Runs that still showed the finding: any at all make the member a bystander.
    pub reproduced: u32,
}

/// One distinct failure and what the hunt learned about it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// crash, hang or failure.
    pub kind: FailureKind,
    /// race, broken, order_dependent, flaky or unresolved.
    pub classification: Classification,
    /// Its identity.
    pub identity: Identity,
    /// Signature of the first occurrence.
    pub signature: String,
    /// Every distinct signature seen for it.
    pub signatures: Vec<String>,
    /// The test it names, when one is named.
    pub test: Option<String>,
    /// Tests in flight when its process died or hung.
    pub in_flight: Vec<String>,
    /// Where it was first seen.
    pub found_in: FoundIn,
    /// The round it was found in.
    pub round: u32,
    /// Workers of the runs it was seen in.
    pub jobs: u32,
    /// In how many of the runs of its pass it appeared.
    pub seen_in_runs: u32,
    /// Out of how many.
    pub of_runs: u32,
    /// `seen_in_runs / of_runs`.
    pub parallel_rate: f64,
    /// The same, with its 95% interval.
    pub parallel: Rate,
    /// The conflict set (race), the broken test, or the last set tried (unresolved).
    pub conflict_set: Vec<String>,
    /// Name of its group in the fix (races only).
    pub group: Option<String>,
    /// How it was bisected.
    pub bisection: Option<BisectionReport>,
    /// The final set run on its own.
    pub reproduction: Option<Reproduction>,
    /// Each member shown necessary.
    pub minimality: Option<Minimality>,
    /// What the classification rests on, in words.
    pub evidence: Vec<String>,
    /// For hangs: the most telling frames.
    pub stack_excerpt: Option<String>,
    /// For hangs: every thread of every stuck process, as captured before the kill.
    pub stacks: Vec<ProcessStack>,
    /// For hangs under pytest: the fixture the stuck thread was blocked under.
    pub leaking_fixture: Option<LeakingFixture>,
}

/// Why a group holds its tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupOrigin {
    /// Measured conflict sets (overlapping ones merged).
    Measured,
    /// Widened to the module or class most of its tests share (or where several of its tests
    /// failed, with no set measured: `seen_failing`), and kept because the suite then ran
    /// clean.
    Unit,
    /// Widened to every user of a leaking fixture.
    Fixture,
    /// Every test that wrote one fixed file in the serial run (`file`): found so, or widened
    /// to them from a set whose members all wrote it.
    Writers,
}

/// A group of the fix.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// Name, tests and shared unit.
    #[serde(flatten)]
    pub group: FixGroup,
    /// Why.
    pub origin: GroupOrigin,
    /// The measured members (those of conflict sets).
    pub measured: Vec<String>,
    /// Whether the suite ran clean with it applied.
    pub verified: bool,
    /// For a unit tried from failures alone (no set measured): its tests seen failing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seen_failing: Vec<String>,
    /// For [`GroupOrigin::Writers`]: the file its tests wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Tests that joined it: each failed with the groups applied where no probe under them
    /// brought it back, and came back among this group's tests run unserialized.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<String>,
    /// For a group not verified (the hunt ended without a clean round): the suite runs it
    /// was applied in, in a row, in which none of its own tests failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_runs: Option<u32>,
}

/// One level of concurrency tried in the first round.
#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    /// Workers.
    pub jobs: u32,
    /// Runs of the whole suite.
    pub runs: u32,
    /// Runs that showed a failure.
    pub failing_runs: u32,
    /// The smallest per-run failure rate these runs rule out (95%), when all were clean.
    pub rules_out: Option<f64>,
}

/// One round of find → serialize → rerun.
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    /// 1-based.
    pub round: u32,
    /// Workers.
    pub jobs: u32,
    /// Runs of the whole suite.
    pub runs: u32,
    /// Runs that showed a failure.
    pub failing_runs: u32,
    /// Groups applied in this round's runs.
    pub groups_applied: usize,
    /// Findings first seen in it.
    pub new_findings: usize,
}

/// The serial timing run.
#[derive(Debug, Clone, Serialize)]
pub struct MeasureReport {
    /// Wall time.
    pub elapsed_ms: u64,
    /// The longest time between two finished tests.
    pub slowest_test_ms: u64,
    /// Time to the first finished test.
    pub startup_ms: u64,
    /// Tests that failed in it.
    pub failed: usize,
}

/// A test left out of parallel runs and verification.
#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    /// The test.
    pub test: String,
    /// Why.
    pub why: String,
}

/// The result of `--verify`: the last round's runs, with the serialization applied.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Runs made with the serialization applied.
    pub runs: u32,
    /// Runs without any failure (every test reported, none failed, crashed or hung).
    pub clean_runs: u32,
    /// Failures still seen (signatures).
    pub failures: Vec<String>,
    /// Every run clean and the planned runs all made.
    pub passed: bool,
    /// Runs planned: enough for a failure at the lowest rate measured before to show with
    /// `target_power`.
    pub planned_runs: u32,
    /// The power aimed at.
    pub target_power: f64,
    /// The rate planned for, measured before the fix was applied: the lowest of the suite's
    /// failing-run rate and the rates of the findings in the fix.
    pub target_rate: f64,
    /// The probability that a failure at `target_rate` would have shown in the runs made.
    pub power: f64,
    /// Suite failure rate before the fix (first round).
    pub rate_before: Rate,
    /// Suite failure rate with the fix applied.
    pub rate_after: Rate,
    /// Tests not run (broken, order-dependent, flaky: they fail with or without the fix).
    pub excluded: Vec<String>,
}

impl VerifyReport {
    /// Whether any verify run failed (a crash, a hang, a failure, a test that never reported).
    pub fn failing(&self) -> bool {
        self.clean_runs < self.runs
    }
}

/// What a clean result rules out.
#[derive(Debug, Clone, Serialize)]
pub struct CleanStatement {
    /// Runs at the highest concurrency tried.
    pub runs: u32,
    /// That concurrency.
    pub jobs: u32,
    /// The smallest per-run failure rate that would have shown with 95% probability.
    pub rules_out: f64,
    /// The statement, in words.
    pub statement: String,
}

/// Everything a hunt found (the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct HuntReport {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Whether the hunt stopped early (budget, interrupt, a test command that stopped
    /// working): the report holds what was found so far.
    pub partial: bool,
    /// The runner used.
    pub runner: RunnerKind,
    /// The test command.
    pub command: String,
    /// Workers of the suite runs (the level at which failures showed, else the highest tried).
    pub jobs: u32,
    /// Runs per pass (K).
    pub runs: u32,
    /// The hang timeout in force at one worker per core, in milliseconds.
    pub test_timeout_ms: u64,
    /// Whether it was derived from the measured test durations (no `--test-timeout`).
    pub test_timeout_derived: bool,
    /// `--budget` in milliseconds.
    pub budget_ms: u64,
    /// `--confidence`.
    pub confidence: f64,
    /// Tests listed.
    pub tests: usize,
    /// The serial timing run.
    pub measure: Option<MeasureReport>,
    /// Levels of concurrency tried in the first round.
    pub levels: Vec<LevelReport>,
    /// Rounds of find → serialize → rerun.
    pub rounds: Vec<RoundReport>,
    /// Every run of the whole suite.
    pub suite_runs: Vec<SuiteRunSummary>,
    /// Suite failure rate in the first round, before any serialization.
    pub rate_before: Option<Rate>,
    /// Distinct failures.
    pub findings: Vec<Finding>,
    /// The groups of the fix.
    pub groups: Vec<GroupReport>,
    /// The serialization for every group.
    pub fix: Fix,
    /// `--verify` result.
    pub verify: Option<VerifyReport>,
    /// What a clean result rules out.
    pub clean: Option<CleanStatement>,
    /// Tests left out of parallel runs, and why.
    pub excluded: Vec<Excluded>,
    /// Every execution of the test command (listing excluded).
    pub total_runs: u32,
    /// Wall time of the hunt.
    pub elapsed_ms: u64,
    /// The verdict.
    pub verdict: HuntVerdict,
    /// Things the reader should know (budget exhausted, tools missing…).
    pub notes: Vec<String>,
}
