//! `racegate stress`: flags, their resolution into a [`Scenario`], and the run: interrupt
//! policy, the stress engine, the reports.

use std::path::PathBuf;

use super::output::{Output, Outputs};
use super::ScenarioFlags;
use crate::exit::CliError;
use crate::plumbing::Control;
use crate::reporter::{self, progress::ProgressLine};
use crate::scenario::{Overrides, Scenario};
use crate::stress;

/// Hammer a service's pipelines concurrently, watch for crashes, check answers, and return a verdict.
///
/// Exit status: 0 PASS, 1 FAIL, 3 PARTIAL, 2 ERROR (bad flags or scenario, or an unhealthy
/// target: no verdict), 130 interrupted (ABORTED).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 PASS, 1 FAIL, 3 PARTIAL, 2 ERROR (bad flags or scenario, or an unhealthy target: no verdict), 130 interrupted by SIGINT, SIGTERM or SIGHUP (ABORTED, reports written).\nScenario keys and the JSON schema: docs/stress.md."
)]
pub struct StressArgs {
    /// Scenario file (TOML). Without one, `--target` runs the built-in text + vision scenario.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Base URL of the service (overrides `target`).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Bound on the total number of requests, at least 1 (overrides `requests`).
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Flags shared with `racegate compare`.
    #[command(flatten)]
    pub common: ScenarioFlags,
    /// Write the JSON report here (`-` for stdout).
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub json: Option<Output>,
    /// Write the Markdown report here (`-` for stdout).
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub markdown: Option<Output>,
    /// Write the JUnit XML report here (`-` for stdout).
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub junit: Option<Output>,
    /// Write the HTML report here (`-` for stdout): one self-contained page with the verdict,
    /// latency, throughput and errors over time, crash and restart markers, and the tables.
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub html: Option<Output>,
    /// Run the full duration even when the target is down for good (by default the run ends
    /// shortly after a managed target exits and will not be restarted, or an unmanaged one
    /// stops answering; overrides `[target_process] stop_on_exit`).
    #[arg(long)]
    pub keep_going: bool,
    /// No progress line; crashes, restarts and failed smoke probes are still printed.
    #[arg(long, short)]
    pub quiet: bool,
}

impl StressArgs {
    /// The flags that override the scenario file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            target: self.target.clone(),
            requests: self.requests,
            keep_going: self.keep_going,
            ..self.common.overrides()
        }
    }

    fn outputs(&self) -> Outputs<'_> {
        Outputs::new([
            ("--json", self.json.as_ref()),
            ("--markdown", self.markdown.as_ref()),
            ("--junit", self.junit.as_ref()),
            ("--html", self.html.as_ref()),
        ])
    }
}

/// The scenario the flags ask for: the file with the flags over it, or the built-in one for
/// `--target`.
///
/// # Errors
/// A usage error naming the file, line and key, or the flag.
pub fn resolve(args: &StressArgs) -> Result<Scenario, CliError> {
    let overrides = args.overrides();
    match &args.scenario {
        Some(path) => Ok(Scenario::from_file(path, &overrides)?),
        None if args.target.is_none() => Err(CliError::usage(
            "`--target`: no scenario file and no target\n  hint: pass a scenario file or `--target http://127.0.0.1:PORT`",
        )),
        None => Ok(Scenario::builtin(&overrides)?),
    }
}

/// `racegate stress`: resolve, run, report, and return the verdict's exit status.
pub fn run(args: StressArgs) -> Result<u8, CliError> {
    let scenario = resolve(&args)?;
    let outputs = args.outputs();
    outputs.check()?;
    let control = Control::new();
    let _policy = super::interrupt::install("stress", &control)?;
    let mut progress = ProgressLine::new(args.quiet);
    let result = stress::run_blocking(&scenario, &mut progress, &control);
    progress.finish();
    let report = result?;
    // A report written to stdout replaces the table there, so it stays machine-readable.
    outputs.write(
        &report,
        |r, w| reporter::terminal::write(r, w),
        &[
            ("--json", |r, w| reporter::json::write(r, w)),
            ("--markdown", |r, w| reporter::markdown::write(r, w)),
            ("--junit", |r, w| reporter::junit::write(r, w)),
            ("--html", |r, w| reporter::html::write_run(r, w)),
        ],
    )?;
    Ok(report.exit_code())
}
