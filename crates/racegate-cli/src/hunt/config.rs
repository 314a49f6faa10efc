//! [`HuntConfig`]: a resolved, validated hunt (the CLI builds it from its flags).

use std::ffi::OsString;
use std::time::Duration;

use super::runner::RunnerKind;

/// How many workers the suite runs get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    /// Exactly this many (`--jobs N`).
    Fixed(u32),
    /// Start at `start`; while every run is clean, double up to `max` before calling the suite
    /// clean. Races need overlap, not cores: a 2-core machine still overlaps 16 workers.
    Escalate {
        /// The first level.
        start: u32,
        /// The last level.
        max: u32,
    },
}

impl Jobs {
    /// The default: twice the cores, at least 4, up to 8 times that.
    pub fn default_for(cores: u32) -> Jobs {
        let start = (2 * cores).max(4);
        Jobs::Escalate {
            start,
            max: (start * 4).min(64),
        }
    }

    /// The levels, in order, for a suite of `tests` tests (never more workers than tests,
    /// never fewer than 2).
    pub fn levels(self, tests: usize) -> Vec<u32> {
        let cap = (tests as u32).max(2);
        match self {
            Jobs::Fixed(n) => vec![n],
            Jobs::Escalate { start, max } => {
                let mut v = Vec::new();
                let mut j = start.min(cap).max(2);
                loop {
                    v.push(j);
                    if j >= max.min(cap) {
                        break;
                    }
                    j = (j * 2).min(max.min(cap));
                }
                v
            }
        }
    }

    /// The first level.
    pub fn first(self) -> u32 {
        match self {
            Jobs::Fixed(n) => n,
            Jobs::Escalate { start, .. } => start,
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
    pub jobs: Jobs,
    /// Suite runs per discovery pass (K).
    pub runs: u32,
    /// The hang threshold when the user gave one; derived from the suite's measured test
    /// durations otherwise.
    pub test_timeout: Option<Duration>,
    /// The hang threshold before anything was measured (the serial timing run).
    pub first_timeout: Duration,
    /// Bound of the whole hunt.
    pub budget: Duration,
    /// Confidence for probes, minimality and verification power.
    pub confidence: f64,
    /// Cap on runs per probe.
    pub max_runs_per_probe: u32,
    /// Verify the serialization with enough runs for the stated power.
    pub verify: bool,
    /// Most find → serialize → rerun rounds.
    pub max_rounds: u32,
    /// CPU cores (to scale timeouts with oversubscription).
    pub cores: u32,
}

impl HuntConfig {
    /// A configuration with the defaults of the CLI, for `runner` and `command`.
    pub fn new(runner: RunnerKind, command: Vec<OsString>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(2);
        HuntConfig {
            runner,
            command,
            jobs: Jobs::default_for(cores),
            runs: 5,
            test_timeout: None,
            first_timeout: Duration::from_secs(60),
            budget: Duration::from_secs(30 * 60),
            confidence: 0.95,
            max_runs_per_probe: 20,
            verify: false,
            max_rounds: 12,
            cores,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_double_up_to_the_cap() {
        assert_eq!(Jobs::default_for(2).levels(100), vec![4, 8, 16]);
        assert_eq!(Jobs::default_for(2).levels(10), vec![4, 8, 10]);
        assert_eq!(Jobs::default_for(2).levels(3), vec![3]);
        assert_eq!(Jobs::default_for(16).levels(1000), vec![32, 64]);
        assert_eq!(Jobs::Fixed(3).levels(100), vec![3]);
    }
}
