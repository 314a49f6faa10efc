//! Arguments of `racegate hunt`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Which runner drives the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerChoice {
    /// `cargo test`.
    Cargo,
    /// `cargo nextest run`.
    Nextest,
    /// `pytest` (parallel runs need pytest-xdist).
    Pytest,
    /// Recognize it from the test command.
    Auto,
}

/// Find which tests crash or hang when run together, and write the serialization for them.
///
/// Lists the tests through the runner, runs the suite in parallel K times, classifies every
/// failure (crash, hang, failure), rules out tests that fail alone, bisects the rest down to
/// the tests that conflict, and prints ready-to-paste serialization.
///
/// Example: racegate hunt --runs 5 --test-timeout 30s -- cargo test -p gpu-kernels
#[derive(Debug, clap::Args)]
pub struct HuntArgs {
    /// The test runner; `auto` recognizes `cargo test`, `cargo nextest run` and `pytest`.
    #[arg(long, value_enum, default_value_t = RunnerChoice::Auto)]
    pub runner: RunnerChoice,

    /// Parallelism of each run: threads for cargo test, processes for nextest and pytest-xdist
    /// [default: the number of CPUs, at least 2].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,

    /// How many parallel runs of the whole suite look for failures (K); `--verify` makes as
    /// many runs with the serialization applied.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,

    /// A run that finishes no test for this long is hung: its stacks are captured, then it is
    /// killed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub test_timeout: Duration,

    /// Wall-clock bound of the whole hunt; what was found by then is reported.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub budget: Duration,

    /// Confidence that a probe of a reproducing set reproduces (sets the runs per probe from
    /// the measured rate).
    #[arg(long, default_value_t = 0.95, value_parser = parse_confidence)]
    pub confidence: f64,

    /// The most runs one probe may take, whatever the confidence asks.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_runs_per_probe: u32,

    /// Rerun the suite K times with the emitted serialization applied and report the outcome.
    #[arg(long)]
    pub verify: bool,

    /// Write the report as JSON (schema `racegate.hunt.v1`, see docs/hunt.md).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,

    /// The test command, after `--`: `cargo test …`, `cargo nextest run …`, `pytest …`.
    #[arg(last = true, required = true, num_args = 1.., value_name = "TEST COMMAND")]
    pub command: Vec<OsString>,
}

use super::parse_duration;

fn parse_confidence(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number (e.g. `0.95`)"))?;
    if !(0.5..=0.9999).contains(&v) {
        return Err(format!("`{s}` must be between 0.5 and 0.9999"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_and_confidence_validation() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("`soon`"));
        assert!(parse_confidence("0.99").is_ok());
        assert!(parse_confidence("1").is_err());
        assert!(parse_confidence("x").is_err());
    }
}
