//! `racegate stress`: hammer a service's pipelines concurrently, watch for crashes, check the
//! answers, and return a report with the verdict a deploy pipeline can gate on.
//!
//! The engine takes a resolved [`Scenario`], emits [`Event`](crate::events::Event)s to a sink
//! and returns a [`RunReport`]; `cli/stress.rs` resolves the flags and writes the reports, and
//! `compare` and `demo` drive it the same way:
//!
//! ```no_run
//! use racegate_cli::plumbing::Control;
//! use racegate_cli::scenario::{Overrides, Scenario};
//! use racegate_cli::stress;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let overrides = Overrides {
//!     target: Some("http://127.0.0.1:8080".into()),
//!     duration: Some(std::time::Duration::from_secs(5)),
//!     ..Overrides::default()
//! };
//! let scenario = Scenario::builtin(&overrides)?;
//! let mut events = Vec::new(); // any EventSink
//! let report = stress::run(&scenario, &mut events, &Control::new()).await?;
//! println!("{} in {:?}", report.verdict, report.duration);
//! # Ok(()) }
//! ```

pub mod check;
pub mod client;
mod engine;
pub mod errors;
pub mod stats;
pub mod supervisor;
pub mod timeline;
pub mod watch;

pub use crate::events::EndedBy;
pub use crate::report::run::RunReport;
pub use engine::{run, Clock};
pub use errors::StressError;
pub use stats::RunStats;

use crate::events::{Event, FnSink};
use crate::plumbing::Control;
use crate::scenario::Scenario;

/// [`run`], handing every event to `forward`, and also returning the pids the managed target
/// ran as (one per start): `compare` and `demo` list them in their reports so that a user can
/// check that none outlived the run.
pub async fn run_listing_pids(
    scenario: &Scenario,
    control: &Control,
    forward: &mut (dyn FnMut(&Event) + Send),
) -> Result<(RunReport, Vec<u32>), StressError> {
    let mut pids = Vec::new();
    let mut sink = FnSink(|e: &Event| {
        if let Event::TargetStarted { pid, .. } = e {
            if *pid != 0 {
                pids.push(*pid);
            }
        }
        forward(e);
    });
    let report = run(scenario, &mut sink, control).await?;
    Ok((report, pids))
}

/// Run a scenario on a fresh multi-threaded runtime (for callers that are not async).
pub fn run_blocking<S: crate::events::EventSink + ?Sized>(
    scenario: &Scenario,
    sink: &mut S,
    control: &Control,
) -> Result<RunReport, StressError> {
    let rt = runtime()?;
    let r = rt.block_on(run(scenario, sink, control));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    r
}

/// The multi-threaded runtime every async engine runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, StressError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StressError::Runtime)
}
