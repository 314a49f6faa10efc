//! The report of one stress run: what [`crate::stress::run`] returns and every reporter reads
//! (terminal, JSON, Markdown, JUnit; compare and demo embed it). Data only: the figures are
//! folded by the stress engine's aggregator, the verdict decided by [`crate::verdict`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::crash::CrashSource;
use crate::events::EndedBy;
use crate::verdict::{Facts, Verdict};

/// Latency percentiles of successful requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// One pipeline's results.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// Name.
    pub name: String,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests (failed checks included).
    pub errors: u64,
    /// Errors by kind (`connect_refused`, `status_500`, `check_failed`, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Answers that failed the check.
    pub failed_checks: u64,
    /// The first few check failures, in words.
    pub check_messages: Vec<String>,
    /// Latency of successful requests.
    pub latency: LatencySummary,
    /// Successful requests per second of run time.
    pub throughput_rps: f64,
    /// Latency histogram of successful requests, in microseconds.
    pub histogram: Histogram<u64>,
    /// Why this pipeline alone would not pass (never succeeded, failed checks, error rate),
    /// decided here so reporters (JUnit) do not judge.
    pub problem: Option<String>,
}

/// One crash signature and how often it was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct CrashGroup {
    /// Every channel it was seen through, e.g. `[stderr, exit_status, crash_report]`.
    pub sources: Vec<CrashSource>,
    /// The normalized signature.
    pub signature: String,
    /// Occurrences: the most any one channel saw (each channel sees each crash once).
    pub count: u64,
    /// First sighting, since the run started.
    pub first_at: Duration,
    /// The first report file, if any.
    pub path: Option<PathBuf>,
    /// Extra words from the first sighting.
    pub detail: Option<String>,
    /// Where it happened: frames, heap message, thread stacks (the first sighting that had
    /// any), or why there are no frames.
    pub evidence: crate::crash::Evidence,
}

impl CrashGroup {
    /// The sources joined with `+` (`stderr+exit_status`), as in every report.
    pub fn source_label(&self) -> String {
        self.sources
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// One restart of the managed target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartRecord {
    /// When it exited, since the run started.
    pub at: Duration,
    /// From exit to healthy again.
    pub time_to_recover: Option<Duration>,
}

/// Everything a stress run produced, with its verdict.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The verdict, computed by [`crate::verdict::decide`].
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
    /// The target's base URL.
    pub target: String,
    /// Length of the load phase.
    pub duration: Duration,
    /// Why the load phase ended (its duration, or early: the target went down for good).
    pub ended_by: EndedBy,
    /// First failed request or crash, since the run started.
    pub time_to_first_failure: Option<Duration>,
    /// Per pipeline, in scenario order.
    pub pipelines: Vec<PipelineReport>,
    /// Crashes grouped by signature, in order of first sighting.
    pub crashes: Vec<CrashGroup>,
    /// Restarts of the managed target.
    pub restarts: Vec<RestartRecord>,
    /// Smoke-probe failures (verdict ERROR).
    pub probe_failures: Vec<String>,
    /// Things that may make the run see less than it should (an unreadable crash folder).
    pub warnings: Vec<String>,
    /// The facts the verdict was computed from.
    pub facts: Facts,
    /// What happened when: per-interval figures of each pipeline, and the crashes, exits,
    /// restarts and failed smoke probes.
    pub timeline: super::timeline::Timeline,
}

impl RunReport {
    /// Total requests sent during the run.
    pub fn requests(&self) -> u64 {
        self.pipelines.iter().map(|p| p.ok + p.errors).sum()
    }

    /// Total errors.
    pub fn errors(&self) -> u64 {
        self.pipelines.iter().map(|p| p.errors).sum()
    }

    /// The process exit status of this report's verdict.
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }
}

/// One pipeline of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSummary {
    /// Pipeline name.
    pub name: String,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub errors: u64,
    /// Median latency of successful requests.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Successful requests per second.
    pub throughput_rps: f64,
}

/// What one row of `compare` and `demo` needs from a stress run (the full [`RunReport`] is kept
/// beside it for the JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct StressRunSummary {
    /// The run's verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
    /// Length of the load phase.
    pub duration: Duration,
    /// Per pipeline, in scenario order.
    pub pipelines: Vec<PipelineSummary>,
    /// Crash signatures and how often each was seen.
    pub signatures: Vec<(String, u64)>,
    /// Distinct crashes.
    pub crashes: u64,
    /// Restarts of the target.
    pub restarts: u64,
    /// Answers that failed their check.
    pub failed_checks: u64,
    /// Failed requests (failed checks included).
    pub errors: u64,
    /// Requests sent.
    pub requests: u64,
    /// Successful requests per second, all pipelines.
    pub throughput_rps: f64,
    /// First failure since the run started.
    pub time_to_first_failure: Option<Duration>,
    /// Process ids the target ran as (one per start).
    pub target_pids: Vec<u32>,
}

impl StressRunSummary {
    /// Summarize a stress report; `target_pids` come from its `TargetStarted` events.
    pub fn from_report(r: &RunReport, target_pids: Vec<u32>) -> StressRunSummary {
        StressRunSummary {
            verdict: r.verdict,
            reason: r.reason.clone(),
            duration: r.duration,
            pipelines: r
                .pipelines
                .iter()
                .map(|p| PipelineSummary {
                    name: p.name.clone(),
                    ok: p.ok,
                    errors: p.errors,
                    p50: p.latency.p50,
                    p99: p.latency.p99,
                    throughput_rps: p.throughput_rps,
                })
                .collect(),
            signatures: r
                .crashes
                .iter()
                .map(|c| (c.signature.clone(), c.count))
                .collect(),
            crashes: r.facts.crashes.max(r.crashes.iter().map(|c| c.count).sum()),
            restarts: r.restarts.len() as u64,
            failed_checks: r.pipelines.iter().map(|p| p.failed_checks).sum(),
            errors: r.errors(),
            requests: r.requests(),
            throughput_rps: r.pipelines.iter().map(|p| p.throughput_rps).sum(),
            time_to_first_failure: r.time_to_first_failure,
            target_pids,
        }
    }

    /// Whether the target crashed or was restarted during the run.
    pub fn crashed(&self) -> bool {
        self.crashes > 0 || self.restarts > 0
    }
}
