//! What a hunt tells its printer while it works: phases and runs. The engine emits them; the
//! CLI decides how to show them.

use std::time::Duration;

use super::model::RunObservation;

/// A phase of the hunt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// One run of the whole suite, one test at a time: what fails without concurrency, and how
    /// long the tests take (the hang timeout is derived from it).
    Measure,
    /// Parallel runs of the whole suite (round 1), or with the serialization found so far
    /// applied (later rounds).
    Discover {
        /// 1-based round of find → serialize → rerun.
        round: u32,
        /// Workers.
        jobs: u32,
    },
    /// Working out one finding: alone, bisection, confirmation, minimality.
    Analyse {
        /// 1-based index of the finding in the report.
        finding: usize,
    },
    /// Reading which tests use a leaking fixture.
    Fixtures,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Measure => f.write_str("serial run (timings, failures without concurrency)"),
            Phase::Discover { round: 1, jobs } => write!(f, "parallel runs, {jobs} jobs"),
            Phase::Discover { round, jobs } => write!(
                f,
                "round {round}: parallel runs with the serialization applied, {jobs} jobs"
            ),
            Phase::Analyse { finding } => write!(f, "finding [{finding}]"),
            Phase::Fixtures => f.write_str("fixture users"),
        }
    }
}

/// What one execution of the suite (or part of it) was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPurpose {
    /// The serial timing run.
    Measure,
    /// A parallel run of the whole suite.
    Discover,
    /// One test alone.
    Alone,
    /// A bisection probe.
    Probe,
    /// A known set tried for a new finding.
    Known,
    /// The final set, run on its own to measure its rate.
    Confirm,
    /// The final set less one member.
    Minimality,
}

impl RunPurpose {
    /// The word printed.
    pub fn as_str(self) -> &'static str {
        match self {
            RunPurpose::Measure => "serial",
            RunPurpose::Discover => "suite",
            RunPurpose::Alone => "alone",
            RunPurpose::Probe => "probe",
            RunPurpose::Known => "known set",
            RunPurpose::Confirm => "confirm",
            RunPurpose::Minimality => "minimality",
        }
    }
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
    Phase(Phase),
    /// One execution ended.
    Run {
        /// What it was for.
        purpose: RunPurpose,
        /// Tests in it.
        tests: usize,
        /// Workers.
        jobs: u32,
        /// What it showed.
        observation: &'a RunObservation,
        /// Its wall time.
        elapsed: Duration,
    },
    /// Something the user should know now (a derived timeout, a widened group).
    Note(&'a str),
}
