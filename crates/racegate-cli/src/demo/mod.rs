//! `racegate demo`: the whole story in one command, on the simulated GPU.
//!
//! The racegate-sim server (this same binary, re-executed as the hidden `racegate sim-serve`)
//! runs in each dispatch mode as the managed target of a stress run with the built-in text +
//! vision scenario:
//!
//! | mode | what it models | expected verdict |
//! |------|----------------|------------------|
//! | `shared`  | both pipelines dispatch on the device's default stream: the race | FAIL |
//! | `streams` | each pipeline on its own stream: the "clean" fix that hides a second race | FAIL |
//! | `gated`   | every dispatch passes one racegate gate: the fix that works | PASS |
//!
//! Then the cost of the fix: the gated server's p50 under load against one client alone
//! (a short sequential probe on a fresh gated server). The sim writes `.ips` crash reports into
//! a temporary folder the run watches, so crashes are seen on stderr, in the exit status and
//! in crash reports, as on a Mac. Every target is stopped when its run ends, and on Ctrl-C.

pub mod render;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::demo::DemoArgs;
use crate::compare::children::{self, Children, PidSink};
use crate::compare::summary::RunSummary;
use crate::events::{Event, EventSink};
use crate::exit::CliError;
use crate::report::progress::ProgressLine;
use crate::scenario::{Overrides, Scenario, TargetProcess};
use crate::stress::{self, CancelToken, RunReport};
use crate::verdict::Verdict;

/// The three dispatch modes, in story order, with the verdict each must get.
pub const MODES: [(&str, Verdict); 3] = [
    ("shared", Verdict::Fail),
    ("streams", Verdict::Fail),
    ("gated", Verdict::Pass),
];

/// How long the single-client probe runs at most, and how many requests it sends at most.
const PROBE_DURATION: Duration = Duration::from_secs(2);
const PROBE_REQUESTS: u64 = 200;

/// One dispatch mode's run.
#[derive(Debug, Clone)]
pub struct ModeResult {
    /// `shared`, `streams` or `gated`.
    pub dispatch: &'static str,
    /// The verdict the story needs.
    pub expected: Verdict,
    /// The stress report.
    pub report: RunReport,
    /// Its summary (with the sim server's pids).
    pub summary: RunSummary,
}

/// What the gate costs: one pipeline's p50 under the full load against one client alone.
#[derive(Debug, Clone, PartialEq)]
pub struct FixCost {
    /// The pipeline compared.
    pub pipeline: String,
    /// Its p50 in the gated run, under load.
    pub loaded_p50: Duration,
    /// Concurrent workers in the gated run.
    pub loaded_workers: u32,
    /// Its p50 with one client alone, sequential requests.
    pub alone_p50: Duration,
    /// Requests the probe sent.
    pub alone_requests: u64,
    /// Gated throughput under load (all pipelines), requests per second.
    pub loaded_rps: f64,
    /// The probe's throughput.
    pub alone_rps: f64,
}

impl FixCost {
    /// loaded p50 / alone p50.
    pub fn ratio(&self) -> Option<f64> {
        let alone = self.alone_p50.as_secs_f64();
        (alone > 0.0).then(|| self.loaded_p50.as_secs_f64() / alone)
    }
}

/// Everything the demo produced.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// Stress time per mode.
    pub duration: Duration,
    /// Workers per pipeline.
    pub workers: u32,
    /// Each mode that ran, in order.
    pub modes: Vec<ModeResult>,
    /// The cost of the fix, when the gated run and the probe both succeeded.
    pub cost: Option<FixCost>,
    /// Whether every mode got its expected verdict.
    pub as_expected: bool,
    /// Interrupted by Ctrl-C.
    pub interrupted: bool,
    /// The exit status.
    pub exit_code: u8,
}

/// Whether the story came out as told: every selected mode ran and got its verdict (shared
/// FAIL, streams FAIL, gated PASS).
pub fn as_expected(modes: &[ModeResult], selected: usize) -> bool {
    modes.len() == selected && modes.iter().all(|m| m.report.verdict == m.expected)
}

/// The modes `--dispatch` selects, in story order (all three when none is given).
pub fn selected_modes(args: &DemoArgs) -> Vec<(&'static str, Verdict)> {
    MODES
        .into_iter()
        .filter(|(mode, _)| {
            args.dispatch.is_empty() || args.dispatch.iter().any(|d| d.as_str() == *mode)
        })
        .collect()
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

/// Prints when a sim server starts (its pid, so a user can check nothing is left), forwards
/// every event.
struct DemoSink<'a> {
    mode: &'a str,
    inner: PidSink<ProgressLine>,
    quiet: bool,
}

impl EventSink for DemoSink<'_> {
    fn event(&mut self, event: &Event) {
        if let (Event::TargetStarted { pid, .. }, false) = (event, self.quiet) {
            eprintln!(
                "racegate demo: {}: sim server started (pid {pid})",
                self.mode
            );
        }
        self.inner.event(event);
    }
}

/// The scenario for `mode` on `port`: the built-in scenario, the sim as its managed target.
fn mode_scenario(base: &Scenario, exe: &Path, mode: &str, port: u16, crash_dir: &Path) -> Scenario {
    let mut s = base.clone();
    s.target.port = Some(port);
    s.target.url = s.target.base_url(Some(port));
    s.target_process = Some(TargetProcess {
        command: vec![
            exe.display().to_string(),
            "sim-serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--dispatch".into(),
            mode.into(),
            "--crash-dir".into(),
            crash_dir.display().to_string(),
            "--app-name".into(),
            format!("racegate-sim-{mode}"),
        ],
        health: "/healthz".into(),
        // Like a server without KeepAlive: one crash ends it, and the stress run with it
        // (after the crash watchers' settle: `ended_by = target_exited`).
        restart: false,
        startup_timeout: Duration::from_secs(20),
        cwd: None,
        env: vec![("PORT".into(), port.to_string())],
    });
    s
}

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(anyhow::anyhow!("{e}"))
}

async fn run_mode(
    scenario: &Scenario,
    mode: &str,
    cancel: &CancelToken,
    children: &Children,
    quiet: bool,
) -> Result<(RunReport, Vec<u32>), CliError> {
    let mut sink = DemoSink {
        mode,
        inner: PidSink::new(ProgressLine::new(quiet), children.clone()),
        quiet,
    };
    let result = stress::run(scenario, &mut sink, cancel).await;
    children.run_ended();
    let pids = std::mem::take(&mut sink.inner.pids);
    sink.inner.into_inner().finish();
    Ok((result?, pids))
}

/// Run the three modes and the probe.
pub async fn run_demo(
    args: &DemoArgs,
    cancel: &CancelToken,
    children: &Children,
) -> Result<DemoOutcome, CliError> {
    let exe = std::env::current_exe().map_err(|e| {
        other(format!(
            "cannot find the racegate binary to run the sim: {e}"
        ))
    })?;
    let crash_dir =
        TempDir::new().map_err(|e| other(format!("cannot create a crash-report folder: {e}")))?;
    let base = Scenario::builtin(&Overrides {
        target: Some("http://127.0.0.1:1".into()),
        duration: Some(args.duration),
        workers: Some(args.workers),
        crash_dirs: vec![crash_dir.0.clone()],
        crash_patterns: vec!["*.ips".into()],
        ..Overrides::default()
    })?;
    let selected = selected_modes(args);
    let mut modes = Vec::new();
    for &(mode, expected) in &selected {
        if cancel.is_cancelled() {
            break;
        }
        if !args.quiet {
            eprintln!(
                "racegate demo: {mode} dispatch, {} workers per pipeline, {}",
                args.workers,
                humantime::format_duration(args.duration)
            );
        }
        let port = stress::supervisor::free_port()
            .map_err(|e| other(format!("cannot find a free loopback port: {e}")))?;
        let scenario = mode_scenario(&base, &exe, mode, port, &crash_dir.0);
        let (report, pids) = run_mode(&scenario, mode, cancel, children, args.quiet).await?;
        if !args.quiet {
            eprintln!(
                "racegate demo: {mode}: {} ({})",
                report.verdict, report.reason
            );
        }
        let summary = RunSummary::from_report(&report, pids);
        modes.push(ModeResult {
            dispatch: mode,
            expected,
            report,
            summary,
        });
    }
    let cost = match modes.iter().find(|m| m.dispatch == "gated") {
        Some(gated) if gated.report.verdict == Verdict::Pass && !cancel.is_cancelled() => {
            probe_alone(&base, &exe, gated, &crash_dir.0, cancel, children, args).await?
        }
        _ => None,
    };
    let interrupted = cancel.is_cancelled();
    let as_expected = !interrupted && as_expected(&modes, selected.len());
    let exit_code = if interrupted {
        crate::exit::INTERRUPTED
    } else if as_expected {
        crate::exit::SUCCESS
    } else {
        crate::exit::FAILURE
    };
    Ok(DemoOutcome {
        duration: args.duration,
        workers: args.workers,
        modes,
        cost,
        as_expected,
        interrupted,
        exit_code,
    })
}

/// One client alone on a fresh gated server: sequential requests on the first pipeline.
async fn probe_alone(
    base: &Scenario,
    exe: &Path,
    gated: &ModeResult,
    crash_dir: &Path,
    cancel: &CancelToken,
    children: &Children,
    args: &DemoArgs,
) -> Result<Option<FixCost>, CliError> {
    let Some(loaded) = gated.report.pipelines.first() else {
        return Ok(None);
    };
    let port = stress::supervisor::free_port()
        .map_err(|e| other(format!("cannot find a free loopback port: {e}")))?;
    let mut s = mode_scenario(base, exe, "gated", port, crash_dir);
    s.pipelines.retain(|p| p.name == loaded.name);
    for p in &mut s.pipelines {
        p.workers = 1;
        p.rate = None;
    }
    s.duration = PROBE_DURATION.min(args.duration);
    s.requests = Some(PROBE_REQUESTS);
    if !args.quiet {
        eprintln!(
            "racegate demo: the cost of the fix: one client alone on `{}`",
            loaded.name
        );
    }
    let (report, _) = run_mode(&s, "gated, one client", cancel, children, true).await?;
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

/// `racegate demo`: run the story, print the table and the cost, write the reports; exit 0
/// when shared and streams FAIL and gated PASSes.
pub fn demo(args: DemoArgs) -> Result<u8, CliError> {
    for (flag, path) in [("--json", &args.json), ("--markdown", &args.markdown)] {
        if let Some(p) = path.as_deref().filter(|p| *p != Path::new("-")) {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    return Err(CliError::Usage(anyhow::anyhow!(
                        "`{flag} {}`: folder `{}` does not exist",
                        p.display(),
                        dir.display()
                    )));
                }
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| other(format!("cannot start the async runtime: {e}")))?;
    let cancel = CancelToken::new();
    let kids = Children::default();
    let result = rt.block_on(async {
        let handler = children::spawn_interrupt_handler("demo", cancel.clone(), kids.clone());
        let r = run_demo(&args, &cancel, &kids).await;
        handler.abort();
        r
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    let outcome = result?;
    let to_stdout = [&args.json, &args.markdown]
        .iter()
        .any(|p| p.as_deref() == Some(Path::new("-")));
    if !to_stdout {
        render::write_terminal(&outcome, std::io::stdout().lock()).map_err(other)?;
    }
    if let Some(p) = &args.json {
        crate::compare::write_to(p, |w| render::write_json(&outcome, w))?;
    }
    if let Some(p) = &args.markdown {
        crate::compare::write_to(p, |w| render::write_markdown(&outcome, w))?;
    }
    Ok(outcome.exit_code)
}
