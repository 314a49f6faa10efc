//! `racegate demo`: flags, their resolution into a [`DemoConfig`], and the run.

use std::time::Duration;

use super::output::{Output, Outputs};
use crate::demo::{self, DemoConfig};
use crate::exit::CliError;
use crate::plumbing::Control;
use crate::report::demo::Mode;
use crate::reporter::{self, progress::DemoProgress};

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

impl From<DemoMode> for Mode {
    fn from(m: DemoMode) -> Mode {
        match m {
            DemoMode::Shared => Mode::Shared,
            DemoMode::Streams => Mode::Streams,
            DemoMode::Gated => Mode::Gated,
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
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub json: Option<Output>,
    /// Write the table as Markdown here (`-` for stdout).
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub markdown: Option<Output>,
    /// Write the HTML report here (`-` for stdout): the table, then each mode over time.
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub html: Option<Output>,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Resolve the flags into a [`DemoConfig`]: the selected modes in story order (all three when
/// none is given), and this binary as the sim server.
///
/// # Errors
/// When this binary cannot be found.
pub fn resolve(args: &DemoArgs) -> Result<DemoConfig, CliError> {
    let mut modes: Vec<Mode> = if args.dispatch.is_empty() {
        Mode::ALL.to_vec()
    } else {
        args.dispatch.iter().map(|&m| m.into()).collect()
    };
    modes.sort();
    modes.dedup();
    let exe = std::env::current_exe().map_err(|e| {
        CliError::other(format!(
            "cannot find the racegate binary to run the sim: {e}"
        ))
    })?;
    Ok(DemoConfig {
        duration: args.duration,
        workers: args.workers,
        modes,
        exe,
    })
}

/// `racegate demo`: run the story, print the table and the cost, write the reports; exit 0
/// when shared and streams FAIL and gated PASSes.
pub fn run(args: DemoArgs) -> Result<u8, CliError> {
    let outputs = Outputs::new([
        ("--json", args.json.as_ref()),
        ("--markdown", args.markdown.as_ref()),
        ("--html", args.html.as_ref()),
    ]);
    outputs.check()?;
    let cfg = resolve(&args)?;
    let control = Control::new();
    let _policy = super::interrupt::install("demo", &control)?;
    let rt = crate::stress::runtime()?;
    let mut progress = DemoProgress::new(args.quiet);
    let result = rt.block_on(demo::run(&cfg, &control, &mut |e| progress.event(e)));
    rt.shutdown_timeout(Duration::from_secs(1));
    let outcome = result?;
    outputs.write(
        &outcome,
        |o, w| reporter::demo::write_terminal(o, w),
        &[
            ("--json", |o, w| reporter::demo::write_json(o, w)),
            ("--markdown", |o, w| reporter::demo::write_markdown(o, w)),
            ("--html", |o, w| reporter::html::write_demo(o, w)),
        ],
    )?;
    Ok(outcome.exit_code)
}
