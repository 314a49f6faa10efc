//! The `hunt` engine: find which tests crash or hang when run together, bisect them to the
//! tests that truly conflict, and write a serialization that verifiably holds.
//!
//! The phases, in order, each in its own module:
//!
//! 1. **list** the tests through the runner adapter ([`runner`]);
//! 2. **measure** ([`measure`]): the suite once, one test at a time — what fails without
//!    concurrency is broken or order-dependent, and the hang timeout is derived from how long
//!    the tests take;
//! 3. **discover** ([`discover`]): K parallel runs, every run bounded ([`exec`]; a hang's
//!    stacks are captured before the kill, [`stacks`]), each classified into failures with an
//!    identity ([`classify`], [`model`]); concurrency rises while runs are clean;
//! 4. **analyse** ([`analyse`]) each finding, most frequent first: alone, bisection
//!    ([`bisect`], a pure function), confirmation and measured minimality;
//! 5. **converge** ([`converge`]): serialize what was found and run again, until a round is
//!    clean; with `--verify`, that round has the runs for the stated power ([`stats`]);
//! 6. **conclude** ([`conclude`]): groups named, the fix written ([`emit`]), the verdict.
//!
//! What was found lives in [`state::HuntState`]; a budget that runs out or an interrupt stops
//! the phases ([`engine::Stop`]) and the report is built from what is there. The engine talks
//! to processes only through [`exec::Executor`], so it is tested with a scripted executor:
//!
//! ```
//! use racegate_cli::hunt::bisect::bisect;
//!
//! // Tests 4 and 9 of 16 crash when they overlap; everything else is innocent.
//! let tests: Vec<u32> = (0..16).collect();
//! let found = bisect(&tests, 100, |set: &[u32]| set.contains(&4) && set.contains(&9));
//! assert_eq!(found.conflict_set, vec![4, 9]);
//! assert!(found.probes <= 10);
//! ```

pub mod analyse;
pub mod bisect;
pub mod bystander;
pub mod classify;
pub mod conclude;
pub mod config;
pub mod converge;
pub mod discover;
pub mod emit;
pub mod events;
pub mod exec;
pub mod join;
pub mod measure;
pub mod model;
pub mod probe;
pub mod report;
pub mod runner;
pub mod session;
pub mod stacks;
pub mod state;
pub mod stats;
pub mod summary;
pub mod widen;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod mock;

pub use config::{HuntConfig, Jobs};
pub use events::{HuntEvent, Phase, RunPurpose};
pub use report::{HuntReport, HuntVerdict};

use exec::{Executor, Termination};
use runner::Runner;
use session::{Session, Stop};
use state::HuntState;

/// Why a hunt could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    /// The test command could not be started.
    #[error("could not start `{command}`: {source}; hint: is the runner installed and on PATH?")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// Listing the tests failed.
    #[error("listing tests with `{command}` failed: {detail}")]
    List {
        /// The command.
        command: String,
        /// What went wrong, with the end of its output.
        detail: String,
    },
    /// The suite ran but reported no test result at all.
    #[error("`{command}` reported no test results: {detail}")]
    NoResults {
        /// The command.
        command: String,
        /// The end of its output, and a hint.
        detail: String,
    },
}

/// List the tests.
fn list(session: &mut Session<'_>, state: &mut HuntState) -> Result<(), Stop> {
    let runner = session.runner;
    let spec = runner.list_command();
    let listed = session.execute_plain(&spec)?;
    let fail = |detail: String| {
        Stop::Error(HuntError::List {
            command: spec.display(),
            detail,
        })
    };
    if listed.termination != Termination::Exited(0) {
        let why = match &listed.termination {
            Termination::Exited(code) => format!("it exited with status {code}"),
            Termination::Signaled(sig) => format!("it was killed by signal {sig}"),
            _ => format!(
                "it did not finish within --budget ({})",
                humantime::format_duration(session.cfg.budget)
            ),
        };
        return Err(fail(format!(
            "{why}:\n{}",
            session::tail_of(&listed.output, 15)
        )));
    }
    let tests = runner.parse_list(&listed.output).map_err(fail)?;
    if tests.is_empty() {
        return Err(fail("no tests listed".into()));
    }
    session.emit(HuntEvent::Listed { tests: tests.len() });
    state.tests = tests;
    Ok(())
}

/// Run a whole hunt with `exec`, reporting progress through `on_event`.
///
/// Errors only when nothing could be run at all (the command cannot be started or listed, or
/// runs no test); a hunt stopped later by its budget, an interrupt or a failing command still
/// returns its report, marked `partial`.
pub fn run_hunt(
    cfg: &HuntConfig,
    runner: &dyn Runner,
    exec: &mut dyn Executor,
    on_event: &mut dyn FnMut(HuntEvent<'_>),
) -> Result<HuntReport, HuntError> {
    let mut session = Session::new(cfg, runner, exec, on_event);
    let mut state = HuntState::default();
    let phases = |session: &mut Session<'_>, state: &mut HuntState| -> Result<(), Stop> {
        list(session, state)?;
        measure::measure(session, state)?;
        converge::rounds(session, state)
    };
    match phases(&mut session, &mut state) {
        Ok(()) => Ok(conclude::conclude(&session, state, None)),
        // Nothing ran: there is nothing to report.
        Err(Stop::Error(e)) if state.suite_runs.is_empty() => Err(e),
        Err(stop) => Ok(conclude::conclude(&session, state, Some(&stop))),
    }
}
