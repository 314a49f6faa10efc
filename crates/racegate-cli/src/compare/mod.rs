//! `racegate compare`: two builds of a server under one identical stress test.
//!
//! "When two fixes disagree, run both through the same test." Each build is started as the
//! managed target on a fresh free loopback port ([`Scenario::retarget`]: `{port}` in its
//! command line is replaced and `PORT` is set in its environment), health-checked, stressed
//! with the same scenario by the stress engine, and stopped; with `runs` the builds alternate
//! A B A B… so drift (thermal, other load) hits both. The winner is decided in
//! [`winner::decide_winner`]; the reporters only lay it out.
//!
//! The engine takes a resolved [`CompareConfig`] (`cli/compare.rs` makes it from the flags),
//! emits [`CompareEvent`]s and returns a [`Comparison`]:
//!
//! ```no_run
//! // racegate compare --a 'racegate sim-serve --listen 127.0.0.1:{port} --dispatch streams' \
//! //                  --b 'racegate sim-serve --listen 127.0.0.1:{port} --dispatch gated' \
//! //                  --label-a streams --label-b gated --runs 3 --duration 5s
//! let code = racegate_cli::main_with_args([
//!     "racegate", "compare",
//!     "--a", "./server-a --port {port}",
//!     "--b", "./server-b --port {port}",
//! ]);
//! ```

pub mod winner;

use crate::events::Event;
use crate::exit;
use crate::plumbing::Control;
use crate::report::compare::{Build, CompareEvent, Comparison, SideRuns, WinnerDecision};
use crate::report::run::{RunReport, StressRunSummary};
use crate::scenario::{Retarget, Scenario};
use crate::stress::{self, StressError};

/// A validated comparison, ready to run (nothing started yet).
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The scenario both builds get.
    pub scenario: Scenario,
    /// Build A.
    pub a: Build,
    /// Build B.
    pub b: Build,
    /// Runs per build.
    pub runs: u32,
    /// Health path below the target's path prefix; default: the scenario's, else `/healthz`.
    pub health: Option<String>,
}

/// A comparison that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// No free loopback port for a build.
    #[error("cannot find a free loopback port: {0}")]
    Port(#[source] std::io::Error),
    /// A stress run could not be attempted.
    #[error(transparent)]
    Stress(#[from] StressError),
}

/// Run one build once on a fresh port; returns its report and the pids it ran as.
async fn run_once(
    cfg: &CompareConfig,
    build: &Build,
    control: &Control,
    on_event: &mut (dyn FnMut(CompareEvent<'_>) + Send),
) -> Result<(RunReport, Vec<u32>), CompareError> {
    let port = stress::supervisor::free_port().map_err(CompareError::Port)?;
    let scenario = cfg.scenario.retarget(&Retarget {
        command: build.command.clone(),
        port,
        health: cfg.health.clone(),
        startup_timeout: None,
        restart: None,
    });
    let forward = &mut |e: &Event| on_event(CompareEvent::Stress(e));
    Ok(stress::run_listing_pids(&scenario, control, forward).await?)
}

/// Run the comparison: A then B, `runs` times, stopping early when `control` is cancelled
/// (the result is then marked interrupted and names no winner).
pub async fn run(
    cfg: &CompareConfig,
    control: &Control,
    on_event: &mut (dyn FnMut(CompareEvent<'_>) + Send),
) -> Result<Comparison, CompareError> {
    let cancel = &control.cancel;
    let mut sides: [(Vec<RunReport>, Vec<StressRunSummary>); 2] = Default::default();
    'runs: for i in 0..cfg.runs {
        for (k, build) in [&cfg.a, &cfg.b].into_iter().enumerate() {
            if cancel.is_cancelled() {
                break 'runs;
            }
            on_event(CompareEvent::RunStarting {
                index: i + 1,
                of: cfg.runs,
                build,
            });
            let (report, pids) = run_once(cfg, build, control, on_event).await?;
            on_event(CompareEvent::RunEnded {
                build,
                report: &report,
            });
            sides[k]
                .1
                .push(StressRunSummary::from_report(&report, pids));
            sides[k].0.push(report);
        }
    }
    let [(ra, sa), (rb, sb)] = sides;
    let a = SideRuns {
        label: cfg.a.label.clone(),
        runs: sa,
    };
    let b = SideRuns {
        label: cfg.b.label.clone(),
        runs: sb,
    };
    let interrupted = cancel.is_cancelled();
    let (decision, exit_code) = if interrupted {
        let none = WinnerDecision {
            winner: None,
            reason: "no clear winner: the comparison was interrupted".into(),
        };
        (none, exit::INTERRUPTED)
    } else {
        (winner::decide_winner(&a, &b), winner::exit_code(&a, &b))
    };
    Ok(Comparison {
        scenario_file: cfg.scenario.source.clone(),
        runs_requested: cfg.runs,
        duration: cfg.scenario.duration,
        a: (cfg.a.clone(), a),
        b: (cfg.b.clone(), b),
        reports: (ra, rb),
        decision,
        interrupted,
        exit_code,
    })
}
