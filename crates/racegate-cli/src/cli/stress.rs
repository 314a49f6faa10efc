//! Arguments of `racegate stress`.

use std::path::PathBuf;

use crate::scenario::Overrides;

use super::ScenarioFlags;

/// Hammer a service's pipelines concurrently, watch for crashes, check answers, and return a verdict.
///
/// Exit status: 0 PASS, 1 FAIL, 3 PARTIAL, 2 usage/configuration error or unhealthy target
/// (ERROR), 130 interrupted (ABORTED).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 PASS, 1 FAIL, 3 PARTIAL, 2 bad flags or scenario, or an unhealthy target (ERROR), 130 interrupted (ABORTED).\nScenario keys and the JSON schema: docs/stress.md."
)]
pub struct StressArgs {
    /// Scenario file (TOML). Without one, `--target` runs the built-in text + vision scenario.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Base URL of the service (overrides `target`).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Bound on the total number of requests (overrides `requests`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Flags shared with `racegate compare`.
    #[command(flatten)]
    pub common: ScenarioFlags,
    /// Write the JSON report here (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the Markdown report here (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the JUnit XML report here (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run the full duration even when the target is down for good (by default the run ends
    /// shortly after a managed target exits and will not be restarted, or an unmanaged one
    /// stops answering; overrides `[target_process] stop_on_exit`).
    #[arg(long)]
    pub keep_going: bool,
    /// No progress line; crashes, restarts and failed probes are still printed.
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
}
