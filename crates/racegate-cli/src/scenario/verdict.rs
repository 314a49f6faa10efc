//! Section "verdict": the thresholds of `[verdict]`.

use super::error::{Locator, ScenarioError};
use super::model::RawVerdict;
use super::span;
use crate::verdict::Thresholds;

pub(super) fn resolve(
    raw: Option<&RawVerdict>,
    loc: &Locator<'_>,
) -> Result<Thresholds, ScenarioError> {
    match raw.and_then(|v| v.max_error_rate.as_ref()) {
        Some(r) if !(0.0..=1.0).contains(r.get_ref()) => Err(loc.error(
            span(r),
            "verdict.max_error_rate",
            "must be between 0.0 and 1.0",
        )),
        Some(r) => Ok(Thresholds {
            max_error_rate: *r.get_ref(),
        }),
        None => Ok(Thresholds::default()),
    }
}
