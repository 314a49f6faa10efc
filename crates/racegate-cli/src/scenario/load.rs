//! Section "load": how long and how much (`duration`, `requests`), the smoke probes sent before
//! it, and the grace given to requests still in flight at its end.

use std::time::Duration;

use super::error::{Locator, ScenarioError, Setting};
use super::model::RawScenario;
use super::{parse_duration, span, Overrides};

const DEFAULT_DURATION: Duration = Duration::from_secs(30);
const DEFAULT_GRACE: Duration = Duration::from_secs(2);
const DEFAULT_SMOKE_PROBES: u32 = 3;
const MAX_SMOKE_PROBES: u32 = 100;

/// The bounds of the load phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Load {
    pub duration: Duration,
    pub requests: Option<u64>,
    pub smoke_probes: u32,
    pub grace: Duration,
}

pub(super) fn resolve(
    raw: &RawScenario,
    loc: &Locator<'_>,
    o: &Overrides,
) -> Result<Load, ScenarioError> {
    let duration = match (o.duration, &raw.duration) {
        (Some(d), _) if d.is_zero() => {
            return Err(ScenarioError::given(
                Setting::Duration,
                "must be greater than zero",
            ))
        }
        (Some(d), _) => d,
        (None, Some(d)) => parse_duration(loc, d, "duration")?,
        (None, None) => DEFAULT_DURATION,
    };
    let requests = match (o.requests, &raw.requests) {
        (Some(0), _) => {
            return Err(ScenarioError::given(
                Setting::Requests,
                "must be at least 1",
            ))
        }
        (Some(n), _) => Some(n),
        (None, Some(n)) if *n.get_ref() == 0 => {
            return Err(loc.error(span(n), "requests", "must be at least 1"))
        }
        (None, Some(n)) => Some(*n.get_ref()),
        (None, None) => None,
    };
    let smoke_probes = match &raw.probes {
        Some(p) if *p.get_ref() > MAX_SMOKE_PROBES => {
            return Err(loc.error(
                span(p),
                "probes",
                format!("at most {MAX_SMOKE_PROBES} smoke probes per pipeline"),
            ))
        }
        Some(p) => *p.get_ref(),
        None => DEFAULT_SMOKE_PROBES,
    };
    let grace = match &raw.grace {
        Some(g) => parse_duration(loc, g, "grace")?,
        None => DEFAULT_GRACE,
    };
    Ok(Load {
        duration,
        requests,
        smoke_probes,
        grace,
    })
}
