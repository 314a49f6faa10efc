//! The result of `racegate demo`: one stress run per dispatch mode of the simulated server, and
//! the cost of the fix; what the demo engine returns and its reporters read. Also the events it
//! emits while it runs, for the progress printer.

use std::time::Duration;

use super::run::{RunReport, StressRunSummary};
use crate::events::Event;
use crate::verdict::Verdict;

/// A dispatch mode of the simulated server, in story order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Both pipelines on the device's default stream: the race.
    Shared,
    /// One stream per pipeline: the "clean" fix that hides a second race.
    Streams,
    /// Every dispatch through one racegate gate: the fix that works.
    Gated,
}

impl Mode {
    /// Every mode, in story order.
    pub const ALL: [Mode; 3] = [Mode::Shared, Mode::Streams, Mode::Gated];

    /// The sim server's name for it (`shared`, `streams`, `gated`), as in every report.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::Streams => "streams",
            Mode::Gated => "gated",
        }
    }

    /// The verdict the story needs: shared and streams FAIL, gated PASSes.
    pub fn expected(self) -> Verdict {
        match self {
            Mode::Shared | Mode::Streams => Verdict::Fail,
            Mode::Gated => Verdict::Pass,
        }
    }
}

/// One dispatch mode's run.
#[derive(Debug, Clone)]
pub struct ModeResult {
    /// The mode.
    pub mode: Mode,
    /// The verdict the story needs.
    pub expected: Verdict,
    /// The stress report.
    pub report: RunReport,
    /// Its summary (with the sim server's pids).
    pub summary: StressRunSummary,
}

/// What the gate costs: one pipeline's p50 under the full load against one client alone.
#[derive(Debug, Clone, PartialEq)]
pub struct FixCost {
    /// The pipeline compared.
    pub pipeline: String,
    /// Its p50 in the gated run, under load.
    pub loaded_p50: Duration,
    /// Concurrent workers in the gated run.
    pub loaded_workers: u32,
    /// Its p50 with one client alone, sequential requests.
    pub alone_p50: Duration,
    /// Requests the lone client sent.
    pub alone_requests: u64,
    /// Gated throughput under load (all pipelines), requests per second.
    pub loaded_rps: f64,
    /// The lone client's throughput.
    pub alone_rps: f64,
}

impl FixCost {
    /// loaded p50 / alone p50.
    pub fn ratio(&self) -> Option<f64> {
        let alone = self.alone_p50.as_secs_f64();
        (alone > 0.0).then(|| self.loaded_p50.as_secs_f64() / alone)
    }
}

/// Everything the demo produced.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// Stress time per mode.
    pub duration: Duration,
    /// Workers per pipeline.
    pub workers: u32,
    /// The modes that were asked for, in story order.
    pub selected: Vec<Mode>,
    /// Each mode that ran, in order.
    pub modes: Vec<ModeResult>,
    /// The cost of the fix, when the gated run and the lone client both succeeded.
    pub cost: Option<FixCost>,
    /// Whether every selected mode ran and got its expected verdict.
    pub as_expected: bool,
    /// Interrupted.
    pub interrupted: bool,
    /// The exit status.
    pub exit_code: u8,
}

/// What the demo engine emits while it runs, in order.
#[derive(Debug)]
pub enum DemoEvent<'a> {
    /// A mode's stress run is about to start.
    ModeStarting {
        /// The mode.
        mode: Mode,
        /// Workers per pipeline.
        workers: u32,
        /// Its stress time.
        duration: Duration,
    },
    /// The one-client run that measures the cost of the fix is about to start.
    AloneStarting {
        /// The pipeline it sends to.
        pipeline: &'a str,
    },
    /// An event of the stress run in progress.
    Stress(&'a Event),
    /// The one-client run ended.
    AloneEnded {
        /// Its report.
        report: &'a RunReport,
    },
    /// A mode's run ended.
    ModeEnded {
        /// The mode.
        mode: Mode,
        /// Its report.
        report: &'a RunReport,
    },
}
