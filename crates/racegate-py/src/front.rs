//! What `Gate` and `MachineGate` share: the acquisition paths, on the Rust gate's fallible
//! weighted forms (`*_many`), which report a machine-wide failure instead of panicking.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use racegate::{AcquireTimeoutError, Gate, Label, Labeled, OwnedGateGuard, TryAcquireError};

/// The queued wait of every blocking thread and asyncio task: one FIFO queue for both.
pub(crate) async fn wait_owned(
    gate: &Gate,
    label: Option<Label>,
    units: u32,
    timeout: Option<Duration>,
) -> Result<OwnedGateGuard, AcquireTimeoutError> {
    let view = Labeled::new(gate, label);
    match timeout {
        Some(t) => view.acquire_many_owned_timeout(units, t).await,
        None => view.acquire_many_owned(units).await.map_err(Into::into),
    }
}

/// The non-waiting grant: never overtakes a queued waiter.
pub(crate) fn try_now(
    gate: &Gate,
    label: Option<Label>,
    units: u32,
) -> Result<OwnedGateGuard, TryAcquireError> {
    Labeled::new(gate, label).try_acquire_many_owned(units)
}

/// How many distinct label objects keep a cached Rust label (the leak is bounded by it).
const LABEL_CACHE: usize = 64;

/// A Python label (`str` or `None`) as a Rust one.
///
/// Labels are usually string literals, one object per call site: the first [`LABEL_CACHE`]
/// label objects seen map to a `&'static str` copy by object identity (the cache keeps them
/// alive, so an address is never reused), which makes the label a pointer copy instead of an
/// UTF-8 encode and an allocation per acquisition, and lets the stats match it by pointer.
pub(crate) fn label(l: Option<&Bound<'_, PyString>>) -> PyResult<Option<Label>> {
    static CACHE: Mutex<Vec<(Py<PyString>, &'static str)>> = Mutex::new(Vec::new());
    let Some(s) = l else { return Ok(None) };
    // Only ever locked with the GIL held and released before anything that could block.
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, text)) = cache.iter().find(|(k, _)| k.as_ptr() == s.as_ptr()) {
        return Ok(Some(Label::from(*text)));
    }
    let text = s.to_cow()?.into_owned();
    if cache.len() < LABEL_CACHE {
        let leaked: &'static str = Box::leak(text.into_boxed_str());
        cache.push((s.clone().unbind(), leaked));
        return Ok(Some(Label::from(leaked)));
    }
    Ok(Some(Label::from(text)))
}

/// A timeout in seconds: `None` or infinity waits for ever; negative or NaN is refused.
pub(crate) fn timeout(secs: Option<f64>) -> PyResult<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) if s == f64::INFINITY => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "timeout must be a number of seconds `>= 0`, got `{s}`; hint: pass `None` to wait without a limit"
            ))
        }),
    }
}
