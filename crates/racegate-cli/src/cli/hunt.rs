//! `racegate hunt`: its flags, their resolution into a [`HuntConfig`], the progress printer,
//! the outputs, and the exit status of each verdict.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use super::output::Output;
use crate::exit::{self, CliError};
use crate::hunt::events::{HuntEvent, RunPurpose};
use crate::hunt::report::{HuntReport, HuntVerdict};
use crate::hunt::runner::{self, RunnerKind};
use crate::hunt::{HuntConfig, Jobs};
use crate::plumbing::Control;

/// Which runner drives the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerChoice {
    /// `cargo test`.
    Cargo,
    /// `cargo nextest run`.
    Nextest,
    /// `pytest` (parallel runs use pytest-xdist when it is installed).
    Pytest,
    /// Recognize it from the test command.
    Auto,
}

/// Find which tests crash or hang when run together, and write the serialization for them.
///
/// Lists the tests through the runner, runs the suite once serially (what fails there is not a
/// race; the hang timeout is derived from how long the tests take), then in parallel K times
/// with rising concurrency, classifies every failure (crash, hang, failure), bisects each to
/// the tests that conflict and measures that every one of them is needed, serializes them and
/// runs again until the suite is clean, and prints ready-to-paste serialization.
///
/// Example: racegate hunt --verify -- cargo test -p gpu-kernels
#[derive(Debug, clap::Args)]
pub struct HuntArgs {
    /// The test runner; `auto` recognizes `cargo test`, `cargo nextest run` and `pytest`.
    #[arg(long, value_enum, default_value_t = RunnerChoice::Auto)]
    pub runner: RunnerChoice,

    /// Workers of each parallel run: threads for cargo test, processes for nextest and
    /// pytest-xdist [default: twice the CPUs, at least 4, doubled while runs are clean, up to
    /// --max-jobs]. Given alone, exactly this many.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,

    /// The most workers concurrency is raised to while runs are clean [default: 4 × the first
    /// level, at most 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_jobs: Option<u32>,

    /// Parallel runs of the whole suite per pass (K); each set found is also confirmed in K
    /// runs of its own.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,

    /// A run that finishes no test for this long is hung: its stacks are captured, then it is
    /// killed [default: derived from the serial run, five times its slowest test, at least 3s,
    /// stretched when workers outnumber cores].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub test_timeout: Option<Duration>,

    /// Wall-clock bound of the whole hunt; what was found by then is reported (exit 6).
    #[arg(long, value_name = "DUR", default_value = "30m", value_parser = parse_duration)]
    pub budget: Duration,

    /// Confidence of probes, of the minimality of each set, and the power `--verify` aims at.
    #[arg(long, default_value_t = 0.95, value_parser = parse_confidence)]
    pub confidence: f64,

    /// The most runs one probe may take, whatever the confidence asks.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_runs_per_probe: u32,

    /// Make the last round, with the serialization applied, long enough that a failure at the
    /// lowest rate measured for a race would show with --confidence probability; any crash,
    /// hang or failure in it fails verify (exit 4).
    #[arg(long)]
    pub verify: bool,

    /// Write the report as JSON (schema `racegate.hunt.v1`, see docs/hunt.md); `-` for stdout
    /// (the summary then goes to stderr). Written on interrupts and spent budgets too.
    #[arg(long, value_name = "FILE", value_parser = Output::parse)]
    pub json: Option<Output>,

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

fn usage(msg: String) -> CliError {
    CliError::usage(msg)
}

/// Validate the flags into a [`HuntConfig`] (no side effects).
pub fn resolve(args: &HuntArgs) -> Result<HuntConfig, CliError> {
    let kind = match args.runner {
        RunnerChoice::Cargo => RunnerKind::Cargo,
        RunnerChoice::Nextest => RunnerKind::Nextest,
        RunnerChoice::Pytest => RunnerKind::Pytest,
        RunnerChoice::Auto => RunnerKind::detect(&args.command).ok_or_else(|| {
            usage(format!(
                "--runner auto: cannot tell the runner of `{}`; expected `cargo test …`, `cargo nextest run …` or `pytest …` (or pass --runner)",
                runner::split_command(&args.command, None).display()
            ))
        })?,
    };
    if let Some(t) = args.test_timeout {
        if t > args.budget {
            return Err(usage(format!(
                "--test-timeout ({}) must not exceed --budget ({})",
                humantime::format_duration(t),
                humantime::format_duration(args.budget)
            )));
        }
    }
    if let Some(json) = &args.json {
        // Fail now, not after a half-hour hunt.
        json.check("--json")?;
    }
    let mut cfg = HuntConfig::new(kind, args.command.clone());
    cfg.jobs = match (args.jobs, args.max_jobs) {
        (Some(j), None) => Jobs::Fixed(j),
        (Some(j), Some(m)) if m < j => {
            return Err(usage(format!(
                "--max-jobs ({m}) must not be below --jobs ({j})"
            )))
        }
        (Some(j), Some(m)) => Jobs::Escalate { start: j, max: m },
        (None, Some(m)) => match Jobs::default_for(cfg.cores) {
            Jobs::Escalate { start, .. } => Jobs::Escalate {
                start: start.min(m),
                max: m,
            },
            fixed => fixed,
        },
        (None, None) => Jobs::default_for(cfg.cores),
    };
    cfg.runs = args.runs;
    cfg.test_timeout = args.test_timeout;
    cfg.first_timeout = args
        .test_timeout
        .unwrap_or(Duration::from_secs(60))
        .min(args.budget);
    cfg.budget = args.budget;
    cfg.confidence = args.confidence;
    cfg.max_runs_per_probe = args.max_runs_per_probe;
    cfg.verify = args.verify;
    Ok(cfg)
}

/// The exit status of a verdict: 0 clean, 1 races found (fix held), 4 the fix did not hold,
/// 5 failures but no race, 6 budget spent, 130 interrupted.
pub fn exit_code(verdict: HuntVerdict) -> u8 {
    match verdict {
        HuntVerdict::Clean => exit::SUCCESS,
        HuntVerdict::RacesFound => exit::FAILURE,
        HuntVerdict::VerifyFailed => exit::HUNT_VERIFY_FAILED,
        HuntVerdict::BrokenOnly => exit::HUNT_NO_RACE,
        HuntVerdict::Incomplete => exit::HUNT_INCOMPLETE,
        HuntVerdict::Interrupted => exit::INTERRUPTED,
    }
}

/// Print progress lines to `w`.
pub fn progress_printer<W: Write>(mut w: W) -> impl FnMut(HuntEvent<'_>) {
    let mut probes = 0u32;
    move |ev| {
        let _ = match ev {
            HuntEvent::Listed { tests } => writeln!(w, "hunt: {tests} tests listed"),
            HuntEvent::Phase(p) => {
                probes = 0;
                writeln!(w, "hunt: {p}…")
            }
            HuntEvent::Note(n) => writeln!(w, "hunt:   {n}"),
            HuntEvent::Run {
                purpose,
                tests,
                jobs,
                observation,
                elapsed,
            } => {
                if purpose == RunPurpose::Probe {
                    probes += 1;
                }
                let outcome = if observation.failures.is_empty() {
                    if observation.unreported.is_empty() {
                        "ok".to_string()
                    } else {
                        format!("{} tests unreported", observation.unreported.len())
                    }
                } else {
                    observation
                        .failures
                        .iter()
                        .map(|f| format!("{} ({})", f.key.kind.as_str(), f.signature))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let n = if purpose == RunPurpose::Probe {
                    format!(" #{probes}")
                } else {
                    String::new()
                };
                writeln!(
                    w,
                    "hunt:   {}{n}: {tests} tests, {jobs} jobs, {:.1}s: {outcome}",
                    purpose.as_str(),
                    elapsed.as_secs_f64()
                )
            }
        };
    }
}

/// The JSON document of `report`.
fn json(report: &HuntReport) -> Result<String, CliError> {
    serde_json::to_string_pretty(report)
        .map_err(|e| CliError::other(format!("cannot encode the report: {e}")))
}

/// Run `racegate hunt`.
pub fn run(args: HuntArgs) -> Result<u8, CliError> {
    let cfg = resolve(&args)?;
    let control = Control::new();
    // Until the reports are written: a first signal stops the hunt (the running tests are
    // killed, what was found is reported, exit 130), a second one exits at once.
    let _policy = super::interrupt::install("hunt", &control)?;
    let scratch = std::env::temp_dir().join(format!("racegate-hunt-{}", std::process::id()));
    let runner = runner::build(cfg.runner, &cfg.command, &scratch).map_err(|e| {
        CliError::other(format!(
            "cannot write helper files into `{}`: {e}",
            scratch.display()
        ))
    })?;
    let mut exec = crate::hunt::exec::ProcessExecutor::new(control);
    let mut printer = progress_printer(std::io::stderr());
    let mut quiet = |_: HuntEvent<'_>| {};
    let on_event: &mut dyn FnMut(HuntEvent<'_>) =
        if args.quiet { &mut quiet } else { &mut printer };
    let result = crate::hunt::run_hunt(&cfg, runner.as_ref(), &mut exec, on_event);
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result?;
    if let Some(out) = &args.json {
        let text = json(&report)?;
        out.write(|w| writeln!(w, "{text}"))?;
    }
    let to_stdout = args.json.as_ref().is_some_and(Output::is_stdout);
    let written = if to_stdout {
        crate::hunt::summary::write_summary(&mut std::io::stderr().lock(), &report)
    } else {
        crate::hunt::summary::write_summary(&mut std::io::stdout().lock(), &report)
    };
    match written {
        // `racegate hunt … | head` is fine: the reader has what it wanted.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(CliError::other(format!("cannot write the summary: {e}")))
        }
        _ => {}
    }
    Ok(exit_code(report.verdict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        args: HuntArgs,
    }

    fn parse(s: &str) -> Result<HuntConfig, String> {
        let t = T::try_parse_from(s.split(' ')).map_err(|e| e.to_string())?;
        resolve(&t.args).map_err(|e| e.to_string())
    }

    #[test]
    fn duration_and_confidence_validation() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("`soon`"));
        assert!(parse_confidence("0.99").is_ok());
        assert!(parse_confidence("1").is_err());
        assert!(parse_confidence("x").is_err());
    }

    #[test]
    fn jobs_flags_resolve_to_a_policy() {
        let cfg = parse("x -- cargo test").unwrap();
        assert!(matches!(cfg.jobs, Jobs::Escalate { .. }));
        assert_eq!(cfg.test_timeout, None);
        assert_eq!(
            parse("x --jobs 3 -- cargo test").unwrap().jobs,
            Jobs::Fixed(3)
        );
        assert_eq!(
            parse("x --jobs 3 --max-jobs 12 -- cargo test")
                .unwrap()
                .jobs,
            Jobs::Escalate { start: 3, max: 12 }
        );
        assert!(parse("x --jobs 8 --max-jobs 4 -- cargo test")
            .unwrap_err()
            .contains("--max-jobs (4) must not be below --jobs (8)"));
        assert!(parse("x --test-timeout 5m --budget 1m -- cargo test")
            .unwrap_err()
            .contains("must not exceed --budget"));
        assert!(parse("x --json - -- pytest").is_ok());
        assert!(parse("x -- make test")
            .unwrap_err()
            .contains("--runner auto"));
    }

    #[test]
    fn every_verdict_has_its_documented_status() {
        assert_eq!(exit_code(HuntVerdict::Clean), 0);
        assert_eq!(exit_code(HuntVerdict::RacesFound), 1);
        assert_eq!(exit_code(HuntVerdict::VerifyFailed), 4);
        assert_eq!(exit_code(HuntVerdict::BrokenOnly), 5);
        assert_eq!(exit_code(HuntVerdict::Incomplete), 6);
        assert_eq!(exit_code(HuntVerdict::Interrupted), 130);
    }
}
