//! `racegate demo`: the whole story in one command, on the simulated GPU.
//!
//! The racegate-sim server (the `racegate` binary itself, re-executed as the hidden
//! `racegate sim-serve`) runs in each dispatch mode as the managed target of a stress run with
//! the built-in text + vision scenario ([`Scenario::retarget`]):
//!
//! | mode | what it models | expected verdict |
//! |------|----------------|------------------|
//! | `shared`  | both pipelines dispatch on the device's default stream: the race | FAIL |
//! | `streams` | each pipeline on its own stream: the "clean" fix that hides a second race | FAIL |
//! | `gated`   | every dispatch passes one racegate gate: the fix that works | PASS |
//!
//! Then the cost of the fix: the gated server's p50 under load against one client alone (a
//! short sequential run on a fresh gated server). The sim writes `.ips` crash reports into a
//! temporary folder the run watches, so crashes are seen on stderr, in the exit status and in
//! crash reports, as on a Mac. Every server is stopped when its run ends, and on an interrupt.
//!
//! The engine takes a [`DemoConfig`], emits [`DemoEvent`]s and returns a [`DemoOutcome`];
//! `cli/demo.rs` makes the config and writes the reports.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::events::Event;
use crate::exit;
use crate::plumbing::Control;
use crate::report::demo::{DemoEvent, DemoOutcome, FixCost, Mode, ModeResult};
use crate::report::run::{RunReport, StressRunSummary};
use crate::scenario::{Overrides, Retarget, Scenario, ScenarioError};
use crate::stress::{self, StressError};
use crate::verdict::Verdict;

/// How long the one-client run that measures the cost of the fix lasts at most, and how many
/// requests it sends at most.
const ALONE_DURATION: Duration = Duration::from_secs(2);
const ALONE_REQUESTS: u64 = 200;
/// How long a sim server may take to answer its health check.
const SIM_STARTUP: Duration = Duration::from_secs(20);

/// A resolved demo.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Stress time per mode.
    pub duration: Duration,
    /// Workers per pipeline.
    pub workers: u32,
    /// The modes to run, in story order (at least one).
    pub modes: Vec<Mode>,
    /// The `racegate` binary, re-executed as `racegate sim-serve`.
    pub exe: PathBuf,
}

/// A demo that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The temporary crash-report folder.
    #[error("cannot create a crash-report folder: {0}")]
    CrashDir(#[source] std::io::Error),
    /// No free loopback port for a sim server.
    #[error("cannot find a free loopback port: {0}")]
    Port(#[source] std::io::Error),
    /// The built-in scenario rejected the demo's settings.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A stress run could not be attempted.
    #[error(transparent)]
    Stress(#[from] StressError),
}

/// Whether the story came out as told: every selected mode ran and got its verdict.
pub fn as_expected(modes: &[ModeResult], selected: usize) -> bool {
    modes.len() == selected && modes.iter().all(|m| m.report.verdict == m.expected)
}

/// A temporary crash-report folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("racegate-demo-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sim server of `mode`, as the managed target on `port`.
fn sim(exe: &Path, mode: Mode, port: u16, crash_dir: &Path) -> Retarget {
    Retarget {
        command: vec![
            exe.display().to_string(),
            "sim-serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--dispatch".into(),
            mode.as_str().into(),
            "--crash-dir".into(),
            crash_dir.display().to_string(),
            "--app-name".into(),
            format!("racegate-sim-{}", mode.as_str()),
        ],
        port,
        health: None,
        startup_timeout: Some(SIM_STARTUP),
        // Like a server without KeepAlive: one crash ends it, and the stress run with it
        // (after the crash watchers' settle: `ended_by = target_exited`).
        restart: Some(false),
    }
}

/// One stress run; returns the report and the pids the server ran as.
async fn stress_once(
    scenario: &Scenario,
    control: &Control,
    on_event: &mut (dyn FnMut(DemoEvent<'_>) + Send),
) -> Result<(RunReport, Vec<u32>), DemoError> {
    let forward = &mut |e: &Event| on_event(DemoEvent::Stress(e));
    Ok(stress::run_listing_pids(scenario, control, forward).await?)
}

/// Run the selected modes, then measure the cost of the fix; stops early when `control` is
/// cancelled (the outcome is then marked interrupted).
pub async fn run(
    cfg: &DemoConfig,
    control: &Control,
    on_event: &mut (dyn FnMut(DemoEvent<'_>) + Send),
) -> Result<DemoOutcome, DemoError> {
    let cancel = &control.cancel;
    let crash_dir = TempDir::new().map_err(DemoError::CrashDir)?;
    let base = Scenario::builtin(&Overrides {
        // A placeholder port: every mode gets its own.
        target: Some("http://127.0.0.1:1".into()),
        duration: Some(cfg.duration),
        workers: Some(cfg.workers),
        crash_dirs: vec![crash_dir.0.clone()],
        crash_patterns: vec!["*.ips".into()],
        ..Overrides::default()
    })?;
    let mut modes = Vec::new();
    for &mode in &cfg.modes {
        if cancel.is_cancelled() {
            break;
        }
        on_event(DemoEvent::ModeStarting {
            mode,
            workers: cfg.workers,
            duration: cfg.duration,
        });
        let port = stress::supervisor::free_port().map_err(DemoError::Port)?;
        let scenario = base.retarget(&sim(&cfg.exe, mode, port, &crash_dir.0));
        let (report, pids) = stress_once(&scenario, control, on_event).await?;
        on_event(DemoEvent::ModeEnded {
            mode,
            report: &report,
        });
        let summary = StressRunSummary::from_report(&report, pids);
        modes.push(ModeResult {
            mode,
            expected: mode.expected(),
            report,
            summary,
        });
    }
    let cost = match modes.iter().find(|m| m.mode == Mode::Gated) {
        Some(gated) if gated.report.verdict == Verdict::Pass && !cancel.is_cancelled() => {
            let port = stress::supervisor::free_port().map_err(DemoError::Port)?;
            let sim = sim(&cfg.exe, Mode::Gated, port, &crash_dir.0);
            measure_alone(&base, sim, gated, control, on_event).await?
        }
        _ => None,
    };
    let interrupted = cancel.is_cancelled();
    let as_expected = !interrupted && as_expected(&modes, cfg.modes.len());
    let exit_code = if interrupted {
        exit::INTERRUPTED
    } else if as_expected {
        exit::SUCCESS
    } else {
        exit::FAILURE
    };
    Ok(DemoOutcome {
        duration: cfg.duration,
        workers: cfg.workers,
        selected: cfg.modes.clone(),
        modes,
        cost,
        as_expected,
        interrupted,
        exit_code,
    })
}

/// One client alone on a fresh gated server: sequential requests on the first pipeline.
async fn measure_alone(
    base: &Scenario,
    sim: Retarget,
    gated: &ModeResult,
    control: &Control,
    on_event: &mut (dyn FnMut(DemoEvent<'_>) + Send),
) -> Result<Option<FixCost>, DemoError> {
    let Some(loaded) = gated.report.pipelines.first() else {
        return Ok(None);
    };
    let mut s = base.retarget(&sim);
    s.pipelines.retain(|p| p.name == loaded.name);
    for p in &mut s.pipelines {
        p.workers = 1;
        p.rate = None;
    }
    s.duration = ALONE_DURATION.min(base.duration);
    s.requests = Some(ALONE_REQUESTS);
    on_event(DemoEvent::AloneStarting {
        pipeline: &loaded.name,
    });
    let (report, _) = stress_once(&s, control, on_event).await?;
    on_event(DemoEvent::AloneEnded { report: &report });
    let Some(alone) = report.pipelines.first().filter(|p| p.ok > 0) else {
        return Ok(None);
    };
    Ok(Some(FixCost {
        pipeline: loaded.name.clone(),
        loaded_p50: loaded.latency.p50,
        loaded_workers: base.total_workers(),
        alone_p50: alone.latency.p50,
        alone_requests: alone.ok,
        loaded_rps: gated.summary.throughput_rps,
        alone_rps: alone.throughput_rps,
    }))
}
