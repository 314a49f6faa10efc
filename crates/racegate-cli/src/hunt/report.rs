//! The hunt's result ([`HuntReport`], serialized as the `--json` file, schema
//! `racegate.hunt.v1`, documented in `docs/hunt.md`) and the terminal printer. The verdict is
//! computed by the engine; printers only format.

use std::io::{self, Write};

use serde::Serialize;

use super::emit::{Fix, LeakingFixture};
use super::model::{FailureKind, ProcessStack};
use super::runner::RunnerKind;

/// The schema identifier written into every JSON report.
pub const SCHEMA: &str = "racegate.hunt.v1";

/// The outcome of a hunt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HuntVerdict {
    /// No failure in any of the K parallel runs.
    Clean,
    /// At least one conflict set was found (and, with `--verify`, its serialization held).
    RacesFound,
    /// Failures, but none needs concurrency: broken, order-dependent or flaky tests.
    BrokenOnly,
    /// `--verify` still saw failures with the serialization applied.
    VerifyFailed,
    /// The budget ran out before the hunt finished; the report holds what was found so far.
    Incomplete,
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
        }
    }
}

/// What a failure turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Needs tests running at the same time: a conflict set was found.
    Race,
    /// Fails when run alone.
    Broken,
    /// Fails in a serial run of the suite but not alone: order pollution, not concurrency.
    OrderDependent,
    /// The bisection ended on a single test that fails only sometimes, even alone.
    Flaky,
    /// Not resolved (budget ran out, or never reproduced again).
    Unresolved,
}

/// One parallel run of the whole suite.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// 1-based.
    pub index: u32,
    /// Wall time.
    pub elapsed_ms: u64,
    /// Tests reported passed.
    pub passed: usize,
    /// Tests reported failed or crashed.
    pub failed: usize,
    /// `crash`/`hang`/`failure` per failure seen.
    pub failures: Vec<FailureKind>,
}

/// The bisection of one finding.
#[derive(Debug, Clone, Serialize)]
pub struct BisectionReport {
    /// Tests it started from (those of the failing run).
    pub candidates: usize,
    /// Probes (oracle calls) spent.
    pub probes: usize,
    /// Runs per probe at most (a probe stops at its first reproduction).
    pub runs_per_probe: u32,
    /// Suite runs actually spent.
    pub runs: u32,
    /// Stated confidence that the whole search ends on the minimal set (each probe is
    /// repeated for `1 - (1 - confidence) / expected probes`).
    pub confidence: f64,
    /// Whether the set is 1-minimal (false: the probe limit stopped the search).
    pub minimal: bool,
}

/// A measured reproduction rate.
#[derive(Debug, Clone, Serialize)]
pub struct Reproduction {
    /// Runs made.
    pub runs: u32,
    /// Runs that showed the failure.
    pub reproduced: u32,
    /// `reproduced / runs`.
    pub rate: f64,
}

/// One distinct failure and what the hunt learned about it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// crash, hang or failure.
    pub kind: FailureKind,
    /// race, broken, order_dependent, flaky or unresolved.
    pub classification: Classification,
    /// Signature of the first occurrence.
    pub signature: String,
    /// Every distinct signature seen for it.
    pub signatures: Vec<String>,
    /// The test it names, when the runner names one.
    pub test: Option<String>,
    /// In how many of the parallel runs it appeared.
    pub seen_in_runs: u32,
    /// Out of how many.
    pub of_runs: u32,
    /// The rate measured in the parallel runs.
    pub parallel_rate: f64,
    /// The conflict set (race), or the broken test.
    pub conflict_set: Vec<String>,
    /// Name of its serialization group in the fix.
    pub group: Option<String>,
    /// How it was bisected.
    pub bisection: Option<BisectionReport>,
    /// The conflict set run on its own, K times.
    pub reproduction: Option<Reproduction>,
    /// For hangs: the most telling frames.
    pub stack_excerpt: Option<String>,
    /// For hangs: every thread of every stuck process, as captured before the kill.
    pub stacks: Vec<ProcessStack>,
    /// For hangs under pytest: the fixture the stuck thread was blocked under.
    pub leaking_fixture: Option<LeakingFixture>,
}

/// The result of `--verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Runs made with the serialization applied.
    pub runs: u32,
    /// Runs without any failure.
    pub clean_runs: u32,
    /// Failures still seen (signatures).
    pub failures: Vec<String>,
    /// `clean_runs == runs`.
    pub passed: bool,
}

/// Everything a hunt found (the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct HuntReport {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// The runner used.
    pub runner: RunnerKind,
    /// The test command.
    pub command: String,
    /// Parallelism of the suite runs.
    pub jobs: u32,
    /// K.
    pub runs: u32,
    /// `--test-timeout` in milliseconds.
    pub test_timeout_ms: u64,
    /// `--budget` in milliseconds.
    pub budget_ms: u64,
    /// `--confidence`: for the whole bisection of each finding.
    pub confidence: f64,
    /// Tests listed.
    pub tests: usize,
    /// The K parallel runs.
    pub suite_runs: Vec<RunSummary>,
    /// Distinct failures.
    pub findings: Vec<Finding>,
    /// The serialization for every conflict set.
    pub fix: Fix,
    /// `--verify` result.
    pub verify: Option<VerifyReport>,
    /// Every execution of the test command (listing excluded).
    pub total_runs: u32,
    /// Wall time of the hunt.
    pub elapsed_ms: u64,
    /// The verdict.
    pub verdict: HuntVerdict,
    /// Things the reader should know (budget exhausted, tools missing…).
    pub notes: Vec<String>,
}

/// Print the terminal summary.
pub fn write_summary<W: Write>(w: &mut W, r: &HuntReport) -> io::Result<()> {
    writeln!(w)?;
    writeln!(
        w,
        "racegate hunt: {} — {} tests, {} parallel runs of {} jobs ({}), {} suite runs in {:.1}s",
        r.verdict.as_str(),
        r.tests,
        r.suite_runs.len(),
        r.jobs,
        r.runner.as_str(),
        r.total_runs,
        r.elapsed_ms as f64 / 1000.0
    )?;
    for (i, f) in r.findings.iter().enumerate() {
        writeln!(w)?;
        let label = match f.classification {
            Classification::Race => "race",
            Classification::Broken => "broken test (fails alone)",
            Classification::OrderDependent => "order-dependent (fails in a serial run, not alone)",
            Classification::Flaky => "flaky test (fails alone, sometimes)",
            Classification::Unresolved => "unresolved",
        };
        writeln!(
            w,
            "[{}] {} — {} in {}/{} parallel runs",
            i + 1,
            f.kind.as_str(),
            label,
            f.seen_in_runs,
            f.of_runs
        )?;
        writeln!(w, "    signature: {}", f.signature)?;
        for s in f.signatures.iter().skip(1) {
            writeln!(w, "               {s}")?;
        }
        if !f.conflict_set.is_empty() {
            let what = if f.classification == Classification::Race {
                "conflict set"
            } else {
                "test"
            };
            writeln!(
                w,
                "    {what}{}:",
                f.group
                    .as_ref()
                    .map(|g| format!(" ({g})"))
                    .unwrap_or_default()
            )?;
            for t in &f.conflict_set {
                writeln!(w, "      {t}")?;
            }
        }
        if let Some(b) = &f.bisection {
            writeln!(
                w,
                "    bisection: {} probes over {} tests, ≤{} runs/probe for {:.0}% confidence, {} runs{}",
                b.probes,
                b.candidates,
                b.runs_per_probe,
                b.confidence * 100.0,
                b.runs,
                if b.minimal { "" } else { " (probe limit reached: not minimal)" }
            )?;
        }
        if let Some(rep) = &f.reproduction {
            writeln!(
                w,
                "    reproduction: {}/{} runs of the set alone ({:.0}%)",
                rep.reproduced,
                rep.runs,
                rep.rate * 100.0
            )?;
        }
        if let Some(l) = &f.leaking_fixture {
            writeln!(
                w,
                "    leaking fixture: `{}` ({}), blocked in {}; used by {} tests",
                l.name,
                l.location,
                l.blocked_in,
                l.used_by.len()
            )?;
        }
        if let Some(x) = &f.stack_excerpt {
            writeln!(
                w,
                "    stacks (excerpt; all threads are in the JSON report):"
            )?;
            for line in x.lines() {
                writeln!(w, "      {line}")?;
            }
        }
    }
    let fix_blocks = [
        ("nextest (.config/nextest.toml)", &r.fix.nextest_toml),
        ("cargo test", &r.fix.cargo_test_guard),
        ("pytest", &r.fix.pytest),
        ("root cause", &r.fix.root_cause),
    ];
    if fix_blocks.iter().any(|(_, b)| b.is_some()) {
        writeln!(w)?;
        writeln!(w, "Suggested serialization:")?;
        for (title, block) in fix_blocks {
            if let Some(text) = block {
                writeln!(w, "--- {title} ---")?;
                write!(w, "{text}")?;
                if !text.ends_with('\n') {
                    writeln!(w)?;
                }
            }
        }
    }
    if let Some(v) = &r.verify {
        writeln!(w)?;
        writeln!(
            w,
            "verify: {} — {}/{} runs clean with the serialization applied",
            if v.passed { "PASS" } else { "FAIL" },
            v.clean_runs,
            v.runs
        )?;
        for f in &v.failures {
            writeln!(w, "    still failing: {f}")?;
        }
    }
    for n in &r.notes {
        writeln!(w, "note: {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HuntReport {
        HuntReport {
            schema: SCHEMA,
            runner: RunnerKind::Cargo,
            command: "cargo test".into(),
            jobs: 4,
            runs: 3,
            test_timeout_ms: 60_000,
            budget_ms: 1_800_000,
            confidence: 0.95,
            tests: 30,
            suite_runs: vec![RunSummary {
                index: 1,
                elapsed_ms: 100,
                passed: 28,
                failed: 0,
                failures: vec![FailureKind::Crash],
            }],
            findings: vec![Finding {
                kind: FailureKind::Crash,
                classification: Classification::Race,
                signature: "assertion: commit an already committed command buffer".into(),
                signatures: vec!["assertion: commit an already committed command buffer".into()],
                test: None,
                seen_in_runs: 3,
                of_runs: 3,
                parallel_rate: 1.0,
                conflict_set: vec!["gpu::a".into(), "gpu::b".into()],
                group: Some("racegate-conflict-1".into()),
                bisection: Some(BisectionReport {
                    candidates: 30,
                    probes: 10,
                    runs_per_probe: 1,
                    runs: 10,
                    confidence: 0.95,
                    minimal: true,
                }),
                reproduction: Some(Reproduction {
                    runs: 3,
                    reproduced: 3,
                    rate: 1.0,
                }),
                stack_excerpt: None,
                stacks: Vec::new(),
                leaking_fixture: None,
            }],
            fix: Fix {
                nextest_toml: Some("[test-groups]\n".into()),
                ..Fix::default()
            },
            verify: Some(VerifyReport {
                runs: 3,
                clean_runs: 3,
                failures: Vec::new(),
                passed: true,
            }),
            total_runs: 17,
            elapsed_ms: 2_800,
            verdict: HuntVerdict::RacesFound,
            notes: Vec::new(),
        }
    }

    /// The JSON document has exactly the fields docs/hunt.md lists for schema v1.
    #[test]
    fn json_fields_match_the_documented_schema() {
        let v = serde_json::to_value(sample()).unwrap();
        let mut top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        top.sort_unstable();
        let mut documented = vec![
            "schema",
            "runner",
            "command",
            "jobs",
            "runs",
            "test_timeout_ms",
            "budget_ms",
            "confidence",
            "tests",
            "suite_runs",
            "findings",
            "fix",
            "verify",
            "total_runs",
            "elapsed_ms",
            "verdict",
            "notes",
        ];
        documented.sort_unstable();
        assert_eq!(top, documented);
        let mut finding: Vec<&str> = v["findings"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        finding.sort_unstable();
        let mut documented = vec![
            "kind",
            "classification",
            "signature",
            "signatures",
            "test",
            "seen_in_runs",
            "of_runs",
            "parallel_rate",
            "conflict_set",
            "group",
            "bisection",
            "reproduction",
            "stack_excerpt",
            "stacks",
            "leaking_fixture",
        ];
        documented.sort_unstable();
        assert_eq!(finding, documented);
        assert_eq!(v["schema"], "racegate.hunt.v1");
        assert_eq!(v["verdict"], "races_found");
        assert_eq!(v["findings"][0]["classification"], "race");
        let doc = include_str!("../../../../docs/hunt.md");
        for key in top.iter().chain(finding.iter()) {
            assert!(
                doc.contains(&format!("`{key}")),
                "docs/hunt.md does not document `{key}`"
            );
        }
    }

    #[test]
    fn summary_names_the_set_the_probes_and_the_fix() {
        let mut out = Vec::new();
        write_summary(&mut out, &sample()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("racegate hunt: RACES FOUND — 30 tests"),
            "{text}"
        );
        assert!(text.contains("conflict set (racegate-conflict-1):\n      gpu::a\n      gpu::b"));
        assert!(text.contains("bisection: 10 probes over 30 tests"));
        assert!(text.contains("reproduction: 3/3 runs of the set alone (100%)"));
        assert!(text.contains("--- nextest (.config/nextest.toml) ---\n[test-groups]"));
        assert!(text.contains("verify: PASS — 3/3 runs clean"));
    }
}
