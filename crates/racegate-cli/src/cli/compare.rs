//! Arguments of `racegate compare`.

use std::path::PathBuf;

use crate::scenario::Overrides;

use super::ScenarioFlags;

fn parse_label(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > 40 {
        return Err("at most 40 characters".into());
    }
    Ok(s.to_string())
}

/// Run two builds of a server through one identical stress test and name the winner.
///
/// Each command is started as the managed target on a free loopback port (its `{port}`
/// placeholders are replaced, and `PORT` is set in its environment), health-checked, stressed
/// with the scenario, and stopped; with `--runs N` the builds alternate A B A B…
///
/// Winner: a build that never crashed beats one that did; then fewer failed checks, then fewer
/// errors; then higher throughput, only when the medians differ by more than the runs' spread
/// (and by at least 5%); otherwise "no clear winner".
///
/// Exit status: 0 when every run of A and of B passed, 1 otherwise, 2 for bad flags or a bad
/// scenario, 130 when interrupted.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Scenario file (TOML); its `target` names the host and path prefix, the port is racegate's.
    /// Without one: the built-in text + vision scenario on `/v1/chat/completions`.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Command line of build A (split like a POSIX shell would; `{port}` is replaced).
    #[arg(long = "a", value_name = "CMD")]
    pub a: String,
    /// Command line of build B.
    #[arg(long = "b", value_name = "CMD")]
    pub b: String,
    /// Name of build A in the report.
    #[arg(long, value_name = "NAME", default_value = "A", value_parser = parse_label)]
    pub label_a: String,
    /// Name of build B in the report.
    #[arg(long, value_name = "NAME", default_value = "B", value_parser = parse_label)]
    pub label_b: String,
    /// Runs per build, alternating A B A B…
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Health path each build must answer 2xx on before it is stressed
    /// (default: the scenario's `target_process.health`, else `/healthz`).
    #[arg(long, value_name = "PATH")]
    pub health: Option<String>,
    /// Flags shared with `racegate stress`.
    #[command(flatten)]
    pub common: ScenarioFlags,
    /// Write the comparison as JSON here (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the side-by-side table as Markdown here (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CompareArgs {
    /// The flags that override the scenario file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            // The port is racegate's, the target is the build it started.
            target: None,
            requests: None,
            keep_going: false,
            ..self.common.overrides()
        }
    }
}
