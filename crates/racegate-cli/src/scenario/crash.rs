//! Section "crash watching": the crash-report folders a run watches and the report names in
//! each. What the user gave (folders, patterns) is kept beside what was derived from it and
//! from the target's program, so that a scenario aimed at another program
//! ([`Scenario::retarget`](super::Scenario::retarget)) derives its folders again instead of
//! guessing which patterns were the user's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Locator, ScenarioError, Setting};
use super::model::RawCrash;
use super::{parse_duration, resolve_path, span, Overrides};
use crate::crash::{self, CrashDir};

const DEFAULT_SETTLE: Duration = Duration::from_secs(3);
const DEFAULT_POLL: Duration = Duration::from_millis(150);

/// What the user asked to watch, before any default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashGiven {
    /// Folders (given, else the file's `[crash] dirs`); `None`: the OS defaults.
    pub dirs: Option<Vec<PathBuf>>,
    /// Report-name globs (given, else the file's `[crash] patterns`); `None`: every format the
    /// parsers read, narrowed to the managed target's program.
    pub patterns: Option<Vec<String>>,
}

/// Crash-report folders to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashWatch {
    /// Folders and the report names in each (missing folders are skipped), derived from
    /// [`given`](Self::given) and the managed target's program.
    pub dirs: Vec<CrashDir>,
    /// After the run, how long to wait for the report of a crash already seen elsewhere.
    pub settle: Duration,
    /// Polling interval.
    pub poll: Duration,
    /// What the user gave.
    pub given: CrashGiven,
}

impl CrashWatch {
    /// The folders to watch for `given`, when the managed target runs `program` (`None`: no
    /// managed target, so no narrowing).
    pub fn derive(given: &CrashGiven, program: Option<&str>) -> Vec<CrashDir> {
        match &given.dirs {
            // Named folders get the named patterns, else every report format (whatever the OS:
            // a Linux CI job may collect `.ips` files from a simulator).
            Some(paths) => {
                let patterns = given
                    .patterns
                    .clone()
                    .unwrap_or_else(|| crash::scoped_patterns(&crash::report_patterns(), program));
                paths
                    .iter()
                    .map(|path| CrashDir {
                        path: path.clone(),
                        patterns: patterns.clone(),
                    })
                    .collect()
            }
            None => crash::default_crash_dirs(program)
                .into_iter()
                .map(|mut d| {
                    if let Some(p) = &given.patterns {
                        d.patterns = p.clone();
                    }
                    d
                })
                .collect(),
        }
    }
}

/// `[crash]` and the given folders and patterns; globs are checked here.
pub(super) fn resolve(
    raw: Option<&RawCrash>,
    program: Option<&str>,
    loc: &Locator<'_>,
    o: &Overrides,
) -> Result<CrashWatch, ScenarioError> {
    let empty = RawCrash::default();
    let raw = raw.unwrap_or(&empty);
    let patterns = if !o.crash_patterns.is_empty() {
        for p in &o.crash_patterns {
            globset::Glob::new(p).map_err(|e| {
                ScenarioError::given(Setting::CrashPatterns, format!("`{p}` is not a glob: {e}"))
            })?;
        }
        Some(o.crash_patterns.clone())
    } else if let Some(p) = &raw.patterns {
        for g in p.get_ref() {
            globset::Glob::new(g).map_err(|e| {
                loc.error(
                    span(p),
                    "crash.patterns",
                    format!("`{g}` is not a glob: {e}"),
                )
            })?;
        }
        Some(p.get_ref().clone())
    } else {
        None
    };
    let dirs = if !o.crash_dirs.is_empty() {
        Some(o.crash_dirs.clone())
    } else {
        raw.dirs.as_ref().map(|d| {
            d.get_ref()
                .iter()
                .map(|s| resolve_path(loc.file, &expand_home(s)))
                .collect()
        })
    };
    let settle = match &raw.settle {
        Some(s) => parse_duration(loc, s, "crash.settle")?,
        None => DEFAULT_SETTLE,
    };
    let poll = match &raw.poll {
        Some(s) => parse_duration(loc, s, "crash.poll")?,
        None => DEFAULT_POLL,
    };
    let given = CrashGiven { dirs, patterns };
    Ok(CrashWatch {
        dirs: CrashWatch::derive(&given, program),
        settle,
        poll,
        given,
    })
}

fn expand_home(s: &str) -> String {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest).to_string_lossy().into_owned(),
        _ => s.to_string(),
    }
}
