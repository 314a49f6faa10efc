//! The result of `racegate compare`: two builds, the summaries of their stress runs, and the
//! winner; what the compare engine returns and its reporters read. Also the events it emits
//! while it runs, for the progress printer.

use std::path::PathBuf;
use std::time::Duration;

use super::run::{RunReport, StressRunSummary};
use crate::events::Event;
use crate::verdict::Verdict;

/// Minimum, median and maximum of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Smallest.
    pub min: f64,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl Stat {
    /// The statistics of `values`, or `None` when there are none (NaNs are ignored).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Stat> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            min: v[0],
            median,
            max: v[n - 1],
        })
    }

    /// max − min.
    pub fn spread(&self) -> f64 {
        self.max - self.min
    }
}

/// One of the two builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// `--a`.
    A,
    /// `--b`.
    B,
}

impl Side {
    /// `a` or `b`, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// A build and its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SideRuns {
    /// Its label.
    pub label: String,
    /// Its runs, in order.
    pub runs: Vec<StressRunSummary>,
}

impl SideRuns {
    /// Runs that crashed.
    pub fn crashed_runs(&self) -> usize {
        self.runs.iter().filter(|r| r.crashed()).count()
    }

    /// Runs whose target was never healthy.
    pub fn unhealthy_runs(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| r.verdict == Verdict::Error)
            .count()
    }

    /// Failed checks over all runs.
    pub fn failed_checks(&self) -> u64 {
        self.runs.iter().map(|r| r.failed_checks).sum()
    }

    /// Errors over all runs.
    pub fn errors(&self) -> u64 {
        self.runs.iter().map(|r| r.errors).sum()
    }

    /// Crashes over all runs.
    pub fn crashes(&self) -> u64 {
        self.runs.iter().map(|r| r.crashes).sum()
    }

    /// Throughput across runs.
    pub fn throughput(&self) -> Option<Stat> {
        Stat::of(self.runs.iter().map(|r| r.throughput_rps))
    }

    /// Every signature with its total count, in order of first appearance.
    pub fn signatures(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for (sig, n) in self.runs.iter().flat_map(|r| &r.signatures) {
            match out.iter_mut().find(|(s, _)| s == sig) {
                Some((_, total)) => *total += n,
                None => out.push((sig.clone(), *n)),
            }
        }
        out
    }

    /// Whether every run passed.
    pub fn all_passed(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(|r| r.verdict == Verdict::Pass)
    }
}

/// The winner, or none, and why in one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct WinnerDecision {
    /// The better build; `None` is "no clear winner".
    pub winner: Option<Side>,
    /// Why.
    pub reason: String,
}

/// One build under comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// Its label.
    pub label: String,
    /// Its command line, split into words (may contain `{port}`).
    pub command: Vec<String>,
}

/// Everything a comparison produced.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The scenario file, if any.
    pub scenario_file: Option<PathBuf>,
    /// Runs per build that were asked for.
    pub runs_requested: u32,
    /// Each run's length bound.
    pub duration: Duration,
    /// Build A, its command and runs.
    pub a: (Build, SideRuns),
    /// Build B.
    pub b: (Build, SideRuns),
    /// Full stress reports, A's then B's, in run order.
    pub reports: (Vec<RunReport>, Vec<RunReport>),
    /// The winner.
    pub decision: WinnerDecision,
    /// Whether the comparison was interrupted.
    pub interrupted: bool,
    /// The exit status.
    pub exit_code: u8,
}

/// What the compare engine emits while it runs, in order.
#[derive(Debug)]
pub enum CompareEvent<'a> {
    /// Run `index` (from 1) of `of` is about to start `build`.
    RunStarting {
        /// 1-based.
        index: u32,
        /// Runs per build.
        of: u32,
        /// The build.
        build: &'a Build,
    },
    /// An event of the stress run in progress.
    Stress(&'a Event),
    /// The run of `build` ended with `report`.
    RunEnded {
        /// The build.
        build: &'a Build,
        /// Its report.
        report: &'a RunReport,
    },
}
