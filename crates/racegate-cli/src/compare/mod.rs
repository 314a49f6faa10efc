//! `racegate compare`: two builds of a server under one identical stress test.
//!
//! "When two fixes disagree, run both through the same test." Each build is started as the
//! managed target on a fresh free loopback port (`{port}` in its command line is replaced and
//! `PORT` is set in its environment), health-checked, stressed with the same scenario by the
//! stress engine, and stopped; with `--runs N` the builds alternate A B A B… so drift (thermal,
//! other load) hits both. The winner is decided in [`summary::decide_winner`]; the printers in
//! [`render`] only lay it out.
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

pub mod children;
pub mod render;
pub mod shell;
pub mod summary;
pub mod table;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::compare::CompareArgs;
use crate::exit::CliError;
use crate::report::progress::ProgressLine;
use crate::scenario::{Overrides, Scenario, TargetProcess};
use crate::stress::{self, CancelToken, RunReport};
use children::{Children, PidSink};
use summary::{RunSummary, SideRuns, WinnerDecision};

/// Default health path when neither the scenario nor `--health` names one.
pub const DEFAULT_HEALTH: &str = "/healthz";

/// One build under comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// Its label.
    pub label: String,
    /// Its command line, split into words (may contain `{port}`).
    pub command: Vec<String>,
}

/// A validated comparison, ready to run (nothing started yet).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The scenario both builds get.
    pub scenario: Scenario,
    /// Build A.
    pub a: Build,
    /// Build B.
    pub b: Build,
    /// Runs per build.
    pub runs: u32,
    /// Health path, with the target's path prefix.
    pub health: String,
}

/// Everything a comparison produced.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The scenario file, if any.
    pub scenario_file: Option<PathBuf>,
    /// Runs per build that were asked for.
    pub runs_requested: u32,
    /// Each run's length bound.
    pub duration: Duration,
    /// Build A, its command and runs.
    pub a: (Build, SideRuns),
    /// Build B.
    pub b: (Build, SideRuns),
    /// Full stress reports, A's then B's, in run order.
    pub reports: (Vec<RunReport>, Vec<RunReport>),
    /// The winner.
    pub decision: WinnerDecision,
    /// Whether the comparison was interrupted.
    pub interrupted: bool,
    /// The exit status.
    pub exit_code: u8,
}

fn usage(message: String) -> CliError {
    CliError::Usage(anyhow::anyhow!(message))
}

/// Parse and validate the arguments into a [`Plan`] (reads the scenario file, starts nothing).
pub fn plan(args: &CompareArgs) -> Result<Plan, CliError> {
    let split = |flag: &str, line: &str| {
        shell::split(line).map_err(|e| usage(format!("`{flag} {line}`: {e}")))
    };
    let a = Build {
        label: args.label_a.clone(),
        command: split("--a", &args.a)?,
    };
    let b = Build {
        label: args.label_b.clone(),
        command: split("--b", &args.b)?,
    };
    if a.label == b.label {
        return Err(usage(format!(
            "`--label-a` and `--label-b` are both `{}`; give the builds different names",
            a.label
        )));
    }
    for (flag, build) in [("--a", &a), ("--b", &b)] {
        check_program(flag, &build.command[0])?;
    }
    let overrides: Overrides = args.overrides();
    let scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path, &overrides)?,
        None => Scenario::builtin(&Overrides {
            // A placeholder port: every start gets its own free port.
            target: Some("http://127.0.0.1:1".into()),
            ..overrides
        })?,
    };
    let health = match (&args.health, &scenario.target_process) {
        (Some(h), _) if !h.starts_with('/') => {
            return Err(usage(format!("`--health {h}`: must start with `/`")))
        }
        (Some(h), _) => format!("{}{h}", scenario.target.base_path),
        (None, Some(tp)) => tp.health.clone(),
        (None, None) => format!("{}{DEFAULT_HEALTH}", scenario.target.base_path),
    };
    Ok(Plan {
        scenario,
        a,
        b,
        runs: args.runs,
        health,
    })
}

fn program_of(command: &[String]) -> Option<String> {
    let first = command.first()?;
    Path::new(first)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
}

/// Crash-report patterns that were derived from the scenario's program (or from none, for the
/// built-in scenario) are derived again from `build`'s, so another process's crash on the
/// machine is not blamed on the build; patterns the user wrote are kept.
fn rescope_crash_patterns(s: &mut Scenario, base_program: Option<&str>, build: &Build) {
    use crate::stress::watch::{scoped_patterns, REPORT_PATTERNS};
    let program = program_of(&build.command);
    let all: Vec<String> = REPORT_PATTERNS.iter().map(|p| p.to_string()).collect();
    let os_defaults = crate::crash::default_dirs();
    for d in &mut s.crash.dirs {
        let mut candidates = vec![all.clone()];
        candidates.extend(
            os_defaults
                .iter()
                .filter(|o| o.path == d.path)
                .map(|o| o.patterns.clone()),
        );
        if let Some(unscoped) = candidates
            .into_iter()
            .find(|p| scoped_patterns(p, base_program) == d.patterns)
        {
            d.patterns = scoped_patterns(&unscoped, program.as_deref());
        }
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
        Ok(())
    } else {
        Err(usage(format!(
            "`{flag}`: program `{program}` not found{}",
            if program.contains('/') {
                ""
            } else {
                " on PATH"
            }
        )))
    }
}

/// The scenario for one start of `build` on `port`: the plan's scenario with the build as its
/// managed target (restarted on exit only if the scenario file asks for it).
pub fn side_scenario(plan: &Plan, build: &Build, port: u16) -> Scenario {
    let mut s = plan.scenario.clone();
    let base_program = s
        .target_process
        .as_ref()
        .and_then(|tp| program_of(&tp.command));
    rescope_crash_patterns(&mut s, base_program.as_deref(), build);
    s.target.port = Some(port);
    s.target.url = s.target.base_url(Some(port));
    let port_text = port.to_string();
    let base = s.target_process.take();
    let mut env = base.as_ref().map(|tp| tp.env.clone()).unwrap_or_default();
    env.retain(|(k, _)| k != "PORT");
    env.push(("PORT".into(), port_text.clone()));
    s.target_process = Some(TargetProcess {
        command: build
            .command
            .iter()
            .map(|w| w.replace("{port}", &port_text))
            .collect(),
        health: plan.health.clone(),
        restart: base.as_ref().is_some_and(|tp| tp.restart),
        startup_timeout: base
            .as_ref()
            .map_or(Duration::from_secs(30), |tp| tp.startup_timeout),
        cwd: base.as_ref().and_then(|tp| tp.cwd.clone()),
        env,
    });
    s
}

fn check_output(flag: &str, path: &Path) -> Result<(), CliError> {
    if path == Path::new("-") {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(usage(format!(
                "`{flag} {}`: folder `{}` does not exist",
                path.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Write to `path` (`-` is stdout) with `f`; errors name the file.
pub(crate) fn write_to(
    path: &Path,
    f: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    use std::io::Write;
    let err = |e: std::io::Error| {
        CliError::Other(anyhow::anyhow!("cannot write `{}`: {e}", path.display()))
    };
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return f(&mut out).map_err(err);
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    f(&mut file).map_err(err)?;
    file.flush().map_err(err)
}

/// Run one build once on a fresh port.
async fn run_once(
    plan: &Plan,
    build: &Build,
    cancel: &CancelToken,
    children: &Children,
    quiet: bool,
) -> Result<(RunReport, Vec<u32>), CliError> {
    let port = stress::supervisor::free_port()
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot find a free loopback port: {e}")))?;
    let scenario = side_scenario(plan, build, port);
    let mut sink = PidSink::new(ProgressLine::new(quiet), children.clone());
    if !quiet {
        sink = sink.announce(format!("racegate compare: {}", build.label));
    }
    let result = stress::run(&scenario, &mut sink, cancel).await;
    children.run_ended();
    let pids = std::mem::take(&mut sink.pids);
    sink.into_inner().finish();
    Ok((result?, pids))
}

/// Run the plan: A then B, `runs` times, stopping early when interrupted.
pub async fn run_plan(
    plan: &Plan,
    cancel: &CancelToken,
    children: &Children,
    quiet: bool,
) -> Result<Comparison, CliError> {
    let mut sides = [
        (Vec::new(), Vec::new()), // (reports, summaries) for A
        (Vec::new(), Vec::new()),
    ];
    'runs: for i in 0..plan.runs {
        for (k, build) in [&plan.a, &plan.b].into_iter().enumerate() {
            if cancel.is_cancelled() {
                break 'runs;
            }
            if !quiet {
                eprintln!(
                    "racegate compare: run {}/{} of {} ({})",
                    i + 1,
                    plan.runs,
                    build.label,
                    build.command.join(" ")
                );
            }
            let (report, pids) = run_once(plan, build, cancel, children, quiet).await?;
            if !quiet {
                eprintln!(
                    "racegate compare: {}: {} ({})",
                    build.label, report.verdict, report.reason
                );
            }
            sides[k].1.push(RunSummary::from_report(&report, pids));
            sides[k].0.push(report);
        }
    }
    let [(ra, sa), (rb, sb)] = sides;
    let a = SideRuns {
        label: plan.a.label.clone(),
        runs: sa,
    };
    let b = SideRuns {
        label: plan.b.label.clone(),
        runs: sb,
    };
    let interrupted = cancel.is_cancelled();
    let decision = if interrupted {
        WinnerDecision {
            winner: None,
            reason: "no clear winner: the comparison was interrupted".into(),
        }
    } else {
        summary::decide_winner(&a, &b)
    };
    let exit_code = if interrupted {
        crate::exit::INTERRUPTED
    } else {
        summary::exit_code(&a, &b)
    };
    Ok(Comparison {
        scenario_file: plan.scenario.source.clone(),
        runs_requested: plan.runs,
        duration: plan.scenario.duration,
        a: (plan.a.clone(), a),
        b: (plan.b.clone(), b),
        reports: (ra, rb),
        decision,
        interrupted,
        exit_code,
    })
}

/// `racegate compare`: validate, run both builds, print the table, write the reports, and
/// return 0 when every run of both builds passed, 1 otherwise (130 when interrupted).
pub fn compare(args: CompareArgs) -> Result<u8, CliError> {
    let plan = plan(&args)?;
    for (flag, path) in [("--json", &args.json), ("--markdown", &args.markdown)] {
        if let Some(p) = path {
            check_output(flag, p)?;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot start the async runtime: {e}")))?;
    let cancel = CancelToken::new();
    let children = Children::default();
    let result = rt.block_on(async {
        let handler =
            children::spawn_interrupt_handler("compare", cancel.clone(), children.clone());
        let r = run_plan(&plan, &cancel, &children, args.quiet).await;
        handler.abort();
        r
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    let comparison = result?;
    let to_stdout = [&args.json, &args.markdown]
        .iter()
        .any(|p| p.as_deref() == Some(Path::new("-")));
    if !to_stdout {
        render::write_terminal(&comparison, std::io::stdout().lock())
            .map_err(|e| CliError::Other(e.into()))?;
    }
    if let Some(p) = &args.json {
        write_to(p, |w| render::write_json(&comparison, w))?;
    }
    if let Some(p) = &args.markdown {
        write_to(p, |w| render::write_markdown(&comparison, w))?;
    }
    Ok(comparison.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::CrashDir;

    fn plan_with(dirs: Vec<CrashDir>) -> Plan {
        let mut scenario = Scenario::builtin(&Overrides {
            target: Some("http://127.0.0.1:1".into()),
            ..Overrides::default()
        })
        .unwrap();
        scenario.crash.dirs = dirs;
        Plan {
            scenario,
            a: Build {
                label: "A".into(),
                command: vec![
                    "/opt/builds/server-a".into(),
                    "--port".into(),
                    "{port}".into(),
                ],
            },
            b: Build {
                label: "B".into(),
                command: vec!["./server-b".into()],
            },
            runs: 1,
            health: "/healthz".into(),
        }
    }

    #[test]
    fn each_start_gets_its_port_in_command_url_and_env() {
        let plan = plan_with(Vec::new());
        let s = side_scenario(&plan, &plan.a, 40123);
        let tp = s.target_process.unwrap();
        assert_eq!(tp.command, ["/opt/builds/server-a", "--port", "40123"]);
        assert!(tp.env.contains(&("PORT".into(), "40123".into())));
        assert_eq!(tp.health, "/healthz");
        assert!(!tp.restart);
        assert_eq!(s.target.base_url(None), "http://127.0.0.1:40123");
        // A build without `{port}` still learns it from `PORT`.
        let s = side_scenario(&plan, &plan.b, 40124);
        let tp = s.target_process.unwrap();
        assert_eq!(tp.command, ["./server-b"]);
        assert!(tp.env.contains(&("PORT".into(), "40124".into())));
    }

    #[test]
    fn default_crash_patterns_follow_the_build() {
        let plan = plan_with(vec![
            CrashDir {
                path: "/reports".into(),
                patterns: vec!["*.ips".into(), "*.crash".into(), "core.*".into()],
            },
            CrashDir {
                path: "/mine".into(),
                patterns: vec!["sanctum-*.ips".into()],
            },
        ]);
        let s = side_scenario(&plan, &plan.a, 1);
        assert_eq!(
            s.crash.dirs[0].patterns,
            ["server-a*.ips", "*server-a*.crash", "core.server-a.*"]
        );
        assert_eq!(
            s.crash.dirs[1].patterns,
            ["sanctum-*.ips"],
            "written patterns are kept"
        );
        let s = side_scenario(&plan, &plan.b, 1);
        assert_eq!(s.crash.dirs[0].patterns[0], "server-b*.ips");
    }
}
