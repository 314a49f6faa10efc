//! Section "target process": a `[target_process]` racegate starts, health-checks, watches and
//! restarts, and whether the run ends early once it is down for good.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Locator, ScenarioError};
use super::model::RawScenario;
use super::target::Target;
use super::{parse_duration, resolve_path, span, Overrides};

/// How long a managed target may take to become healthy, unless the file says.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A target process racegate manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetProcess {
    /// Program and arguments (may contain `{port}`).
    pub command: Vec<String>,
    /// Health path, with the target's path prefix.
    pub health: String,
    /// Restart on exit.
    pub restart: bool,
    /// Bound on becoming healthy.
    pub startup_timeout: Duration,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl TargetProcess {
    /// Whether racegate must pick a free port for it.
    pub fn wants_port(&self) -> bool {
        self.command.iter().any(|a| a.contains("{port}"))
    }

    /// The program's file name (what crash reports are named after).
    pub fn program(&self) -> Option<String> {
        program_of(&self.command)
    }
}

/// The file name of a command's program.
pub fn program_of(command: &[String]) -> Option<String> {
    let first = command.first()?;
    Path::new(first)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
}

/// `[target_process]`, checked against the target (a `{port}` on one side needs it on the
/// other).
pub(super) fn resolve(
    raw: &RawScenario,
    target: &Target,
    loc: &Locator<'_>,
) -> Result<Option<TargetProcess>, ScenarioError> {
    let Some(tp) = &raw.target_process else {
        if target.port.is_none() {
            return Err(loc.error(
                raw.target.as_ref().and_then(span),
                "target",
                "`{port}` in the target needs a `[target_process]` whose command has `{port}`",
            ));
        }
        return Ok(None);
    };
    let command = match &tp.command {
        Some(c) if !c.get_ref().is_empty() && !c.get_ref()[0].is_empty() => c.get_ref().clone(),
        Some(c) => return Err(loc.error(span(c), "target_process.command", "must name a program")),
        None => {
            return Err(loc.error(
                None,
                "target_process.command",
                "missing key: `[target_process]` needs a `command`",
            ))
        }
    };
    let health = match &tp.health {
        Some(h) if !h.get_ref().starts_with('/') => {
            return Err(loc.error(span(h), "target_process.health", "must start with `/`"))
        }
        Some(h) => format!("{}{}", target.base_path, h.get_ref()),
        None => format!("{}/", target.base_path),
    };
    let startup_timeout = match &tp.startup_timeout {
        Some(t) => parse_duration(loc, t, "target_process.startup_timeout")?,
        None => DEFAULT_STARTUP_TIMEOUT,
    };
    let tp = TargetProcess {
        command,
        health,
        restart: tp.restart.as_ref().is_some_and(|r| *r.get_ref()),
        startup_timeout,
        cwd: tp.cwd.as_ref().map(|c| resolve_path(loc.file, c.get_ref())),
        env: tp
            .env
            .as_ref()
            .map(|e| {
                e.get_ref()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if target.port.is_none() && !tp.wants_port() {
        return Err(loc.error(
            raw.target.as_ref().and_then(span),
            "target",
            "the target uses `{port}` but `target_process.command` has no `{port}`",
        ));
    }
    Ok(Some(tp))
}

/// Whether the run ends early when the target is down for good: `stop_on_exit` (default
/// true), unless keeping going was asked for.
pub(super) fn stop_on_exit(raw: &RawScenario, o: &Overrides) -> bool {
    !o.keep_going
        && raw
            .target_process
            .as_ref()
            .and_then(|tp| tp.stop_on_exit.as_ref())
            .map_or(true, |s| *s.get_ref())
}
