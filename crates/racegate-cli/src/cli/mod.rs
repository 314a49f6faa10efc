//! The command line: clap definitions, resolution of flags into the engines' configs, the one
//! place where errors become exit statuses ([`errors`]), and the plumbing every command shares
//! ([`output`] for report files, [`interrupt`] for signals). The only code that ends the
//! process. Each subcommand's flags and driver live in their own file; its engine lives in its
//! own module and never imports this one.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub mod compare;
pub mod demo;
pub mod errors;
pub mod hunt;
pub mod interrupt;
pub mod output;
pub mod run;
pub mod shell;
pub mod sim_serve;
pub mod status;
pub mod stress;

use crate::exit::CliError;
use crate::scenario::{Overrides, Setting};

/// A `DUR` flag value: a humantime duration (`500ms`, `30s`, `5m`), zero allowed. Every
/// subcommand parses durations here, so they accept and word errors the same way.
pub(crate) fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write it like 500ms, 30s, 5m"))
}

/// A `DUR` flag value that must be greater than zero.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(s)?;
    if d.is_zero() {
        return Err(format!("`{s}` must be greater than zero"));
    }
    Ok(d)
}

/// The flag that gives a scenario [`Setting`]: how errors about it are worded on the command
/// line.
pub fn flag_of(setting: Setting) -> &'static str {
    match setting {
        Setting::Target => "--target",
        Setting::Duration => "--duration",
        Setting::Requests => "--requests",
        Setting::Workers => "--workers",
        Setting::CrashDirs => "--crash-dir",
        Setting::CrashPatterns => "--crash-pattern",
        Setting::AllowRemote => "--allow-remote",
        Setting::KeepGoing => "--keep-going",
    }
}

/// The flags that override a scenario file in both `racegate stress` and `racegate compare`.
/// Only their syntax is checked here; their values pass the scenario's own checks, the same as
/// the file's (an error names the flag).
#[derive(Debug, clap::Args)]
pub struct ScenarioFlags {
    /// Length of the run, e.g. 30s, 5m (overrides the scenario's `duration`).
    #[arg(long, value_name = "DUR", value_parser = parse_duration_or_zero)]
    pub duration: Option<Duration>,
    /// Workers per pipeline, 1 to 10000 (overrides every pipeline's `workers`).
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Crash-report folder to watch (repeatable; replaces `[crash] dirs` and the OS defaults).
    #[arg(long = "crash-dir", value_name = "DIR")]
    pub crash_dirs: Vec<PathBuf>,
    /// Crash-report file-name glob (repeatable; replaces `[crash] patterns`).
    #[arg(long = "crash-pattern", value_name = "GLOB")]
    pub crash_patterns: Vec<String>,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
}

impl ScenarioFlags {
    /// These flags as scenario overrides; the subcommand fills in the rest.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            duration: self.duration,
            workers: self.workers,
            crash_dirs: self.crash_dirs.clone(),
            crash_patterns: self.crash_patterns.clone(),
            allow_remote: self.allow_remote,
            ..Overrides::default()
        }
    }
}

/// racegate: serialize GPU work, stress-test services for dispatch races, and hunt racing tests.
#[derive(Debug, Parser)]
#[command(name = "racegate", version, about, propagate_version = true)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `racegate` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hammer a service's pipelines concurrently, watch for crashes, check answers, and return a verdict.
    Stress(stress::StressArgs),
    /// Run two builds of a server through one identical stress test and name the winner.
    Compare(compare::CompareArgs),
    /// Show the whole story on the simulated GPU: the race, the wrong fix, the right fix and its cost.
    Demo(demo::DemoArgs),
    /// Find which tests crash or hang when run together, and write the serialization for them.
    Hunt(hunt::HuntArgs),
    /// Run a command while holding a machine-wide gate.
    Run(run::RunArgs),
    /// Show holders, waiters and recent history of machine-wide gates.
    Status(status::StatusArgs),
    /// Serve the demo inference server on the simulated GPU (what `racegate demo` runs).
    #[command(hide = true)]
    SimServe(racegate_sim::server::ServeArgs),
}

/// Parse `args` (including the program name), run the chosen subcommand and return its exit
/// status; errors are printed to stderr here, once.
pub fn main<I, T>(args: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    errors::finish(parse_and_run(args))
}

/// Parse `args` and run the chosen subcommand, returning its exit status.
pub fn parse_and_run<I, T>(args: I) -> Result<u8, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // `run` wraps short commands, where building every subcommand's parser would show: a
    // quarter of a `racegate run -- true` process. Same help, errors and exit codes.
    if args.get(1).is_some_and(|a| a == "run") {
        return match run::parse_run(args) {
            Ok(args) => run::run(args),
            Err(e) => {
                e.print().ok();
                Ok(e.exit_code() as u8)
            }
        };
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version itself and picks its own status (0 for --help, 2 for
            // usage errors), which matches our table.
            e.print().ok();
            return Ok(e.exit_code() as u8);
        }
    };
    match cli.command {
        Command::Stress(args) => stress::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Hunt(args) => hunt::run(args),
        Command::Run(args) => run::run(args),
        Command::Status(args) => status::run(args),
        Command::SimServe(args) => sim_serve::sim_serve(args),
    }
}
