//! Arguments of `racegate demo`.

use std::path::PathBuf;
use std::time::Duration;

/// `--duration`: a stress time per mode long enough to mean something, short enough to be a demo.
fn parse_demo_duration(s: &str) -> Result<Duration, String> {
    let d = super::parse_duration_or_zero(s)?;
    if d < Duration::from_millis(500) {
        return Err("must be at least 500ms".into());
    }
    if d > Duration::from_secs(3600) {
        return Err("must be at most 1h".into());
    }
    Ok(d)
}

/// A dispatch mode of the simulated server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoMode {
    /// Both pipelines on the device's default stream: the race (expected FAIL).
    Shared,
    /// One stream per pipeline: the fix that hides a second race (expected FAIL).
    Streams,
    /// Every dispatch through one racegate gate (expected PASS).
    Gated,
}

impl DemoMode {
    /// The sim's `--dispatch` value.
    pub fn as_str(self) -> &'static str {
        match self {
            DemoMode::Shared => "shared",
            DemoMode::Streams => "streams",
            DemoMode::Gated => "gated",
        }
    }
}

/// Show the whole story on the simulated GPU: the race, the wrong fix, the right fix and its cost.
///
/// Runs the racegate-sim server (this binary, re-executed as `racegate sim-serve`) in `shared`,
/// `streams` and `gated` dispatch modes and stresses each with the built-in text + vision
/// scenario, then measures what the gate costs.
///
/// Exit status: 0 when shared and streams FAIL and gated PASSes (the expected story), 1
/// otherwise, 2 for bad flags, 130 when interrupted.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Stress time per dispatch mode.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_demo_duration)]
    pub duration: Duration,
    /// Workers per pipeline.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: u32,
    /// Run only these dispatch modes (repeatable; default: shared, streams, gated). The exit
    /// status then says whether each mode that ran got its expected verdict.
    #[arg(long = "dispatch", value_name = "MODE", value_enum)]
    pub dispatch: Vec<DemoMode>,
    /// Write the three stress reports as JSON here (`-` for stdout): `{"modes": [...]}`.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the table as Markdown here (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}
