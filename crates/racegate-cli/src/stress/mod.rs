//! `racegate stress`: hammer a service's pipelines concurrently, watch for crashes, check the
//! answers, and return a verdict a deploy pipeline can gate on.
//!
//! The library API is what `racegate compare` and `racegate demo` build on:
//!
//! ```no_run
//! use racegate_cli::scenario::{Overrides, Scenario};
//! use racegate_cli::stress::{self, CancelToken};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let overrides = Overrides {
//!     target: Some("http://127.0.0.1:8080".into()),
//!     duration: Some(std::time::Duration::from_secs(5)),
//!     ..Overrides::default()
//! };
//! let scenario = Scenario::builtin(&overrides)?;
//! let mut events = Vec::new(); // any EventSink
//! let report = stress::run(&scenario, &mut events, &CancelToken::new()).await?;
//! println!("{} in {:?}", report.verdict, report.duration);
//! # Ok(()) }
//! ```

pub mod cancel;
pub mod check;
pub mod client;
mod engine;
pub mod errors;
pub mod stats;
pub mod supervisor;
pub mod watch;

use std::io::Write;
use std::path::Path;

pub use crate::events::EndedBy;
pub use cancel::CancelToken;
pub use engine::{run, Clock};
pub use errors::StressError;
pub use stats::{CrashGroup, LatencySummary, PipelineReport, RestartRecord, RunReport, RunStats};

use crate::cli::stress::StressArgs;
use crate::exit::CliError;
use crate::report;
use crate::scenario::Scenario;

/// Run a scenario on a fresh multi-threaded runtime (for callers that are not async).
pub fn run_blocking<S: crate::events::EventSink + ?Sized>(
    scenario: &Scenario,
    sink: &mut S,
    cancel: &CancelToken,
) -> Result<RunReport, StressError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StressError::Runtime)?;
    let r = rt.block_on(run(scenario, sink, cancel));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    r
}

fn check_output(flag: &str, path: &Path) -> Result<(), CliError> {
    if path == Path::new("-") {
        return Ok(());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent {
        if !dir.is_dir() {
            return Err(CliError::Usage(anyhow::anyhow!(
                "`{flag} {}`: folder `{}` does not exist",
                path.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

fn write_report(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StressError> {
    let err = |source| StressError::Report {
        path: path.to_path_buf(),
        source,
    };
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return f(&mut out).map_err(err);
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    f(&mut file).map_err(err)?;
    file.flush().map_err(err)
}

/// `racegate stress`: parse and validate, run, report, and return the verdict's exit status.
pub fn stress(args: StressArgs) -> Result<u8, CliError> {
    let overrides = args.overrides();
    let scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path, &overrides)?,
        None => Scenario::builtin(&overrides)?,
    };
    for (flag, path) in [
        ("--json", &args.json),
        ("--markdown", &args.markdown),
        ("--junit", &args.junit),
    ] {
        if let Some(p) = path {
            check_output(flag, p)?;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StressError::Runtime)?;
    let cancel = CancelToken::new();
    let mut progress = report::progress::ProgressLine::new(args.quiet);
    let result = rt.block_on(async {
        let c = cancel.clone();
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nracegate: interrupted, stopping and writing reports (Ctrl-C again to quit now)");
                c.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(crate::exit::INTERRUPTED));
                }
            }
        });
        let r = run(&scenario, &mut progress, &cancel).await;
        ctrl_c.abort();
        r
    });
    progress.finish();
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    let report = result?;
    // A report written to stdout replaces the table there, so it stays machine-readable.
    let report_to_stdout = [&args.json, &args.markdown, &args.junit]
        .iter()
        .any(|p| p.as_deref() == Some(Path::new("-")));
    if !report_to_stdout {
        report::terminal::write(&report, std::io::stdout().lock())
            .map_err(|e| CliError::Other(e.into()))?;
    }
    if let Some(p) = &args.json {
        write_report(p, |w| report::json::write(&report, w))?;
    }
    if let Some(p) = &args.markdown {
        write_report(p, |w| report::markdown::write(&report, w))?;
    }
    if let Some(p) = &args.junit {
        write_report(p, |w| report::junit::write(&report, w))?;
    }
    Ok(report.exit_code())
}
