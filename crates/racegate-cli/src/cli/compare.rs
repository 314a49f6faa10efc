//! `racegate compare`: flags, their resolution into a [`CompareConfig`], and the run.

use std::path::{Path, PathBuf};

use super::output::{Output, Outputs};
use super::ScenarioFlags;
use crate::compare::{self, CompareConfig};
use crate::exit::CliError;
use crate::plumbing::Control;
use crate::report::compare::Build;
use crate::reporter::{self, progress::CompareProgress};
use crate::scenario::{Overrides, Scenario};

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
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub json: Option<Output>,
    /// Write the side-by-side table as Markdown here (`-` for stdout).
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub markdown: Option<Output>,
    /// Write the HTML report here (`-` for stdout): A and B over time on the same axes, and
    /// the table.
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub html: Option<Output>,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CompareArgs {
    /// The flags that override the scenario file (the target is each build, on racegate's
    /// port).
    pub fn overrides(&self) -> Overrides {
        self.common.overrides()
    }

    fn outputs(&self) -> Outputs<'_> {
        Outputs::new([
            ("--json", self.json.as_ref()),
            ("--markdown", self.markdown.as_ref()),
            ("--html", self.html.as_ref()),
        ])
    }
}

/// A build whose program does not exist is a usage error now, not N runs of ERROR later.
/// A path is checked as written; a bare name is looked up on `PATH`.
fn check_program(flag: &str, program: &str) -> Result<(), CliError> {
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
    };
    if found {
        return Ok(());
    }
    let where_ = if program.contains('/') {
        ""
    } else {
        " on PATH"
    };
    Err(CliError::usage(format!(
        "`{flag}`: program `{program}` not found{where_}"
    )))
}

/// Validate the flags into a [`CompareConfig`] (reads the scenario file, starts nothing).
///
/// # Errors
/// A usage error naming the flag, or the scenario file's line and key.
pub fn resolve(args: &CompareArgs) -> Result<CompareConfig, CliError> {
    let build = |flag: &str, label: &str, line: &str| -> Result<Build, CliError> {
        let command = super::shell::split(line)
            .map_err(|e| CliError::usage(format!("`{flag} {line}`: {e}")))?;
        check_program(flag, &command[0])?;
        Ok(Build {
            label: label.to_string(),
            command,
        })
    };
    if args.label_a == args.label_b {
        return Err(CliError::usage(format!(
            "`--label-a` and `--label-b` are both `{}`; give the builds different names",
            args.label_a
        )));
    }
    let a = build("--a", &args.label_a, &args.a)?;
    let b = build("--b", &args.label_b, &args.b)?;
    if let Some(h) = args.health.as_ref().filter(|h| !h.starts_with('/')) {
        return Err(CliError::usage(format!(
            "`--health {h}`: must start with `/`"
        )));
    }
    let overrides = args.overrides();
    let scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path, &overrides)?,
        None => Scenario::builtin(&Overrides {
            // A placeholder port: every start gets its own free port.
            target: Some("http://127.0.0.1:1".into()),
            ..overrides
        })?,
    };
    Ok(CompareConfig {
        scenario,
        a,
        b,
        runs: args.runs,
        health: args.health.clone(),
    })
}

/// `racegate compare`: resolve, run both builds, print the table, write the reports, and
/// return 0 when every run of both builds passed, 1 otherwise (130 when interrupted).
pub fn run(args: CompareArgs) -> Result<u8, CliError> {
    let cfg = resolve(&args)?;
    let outputs = args.outputs();
    outputs.check()?;
    let control = Control::new();
    let _policy = super::interrupt::install("compare", &control)?;
    let rt = crate::stress::runtime()?;
    let mut progress = CompareProgress::new(args.quiet);
    let result = rt.block_on(compare::run(&cfg, &control, &mut |e| progress.event(e)));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    let comparison = result?;
    outputs.write(
        &comparison,
        |c, w| reporter::compare::write_terminal(c, w),
        &[
            ("--json", |c, w| reporter::compare::write_json(c, w)),
            ("--markdown", |c, w| reporter::compare::write_markdown(c, w)),
            ("--html", |c, w| reporter::html::write_compare(c, w)),
        ],
    )?;
    Ok(comparison.exit_code)
}
