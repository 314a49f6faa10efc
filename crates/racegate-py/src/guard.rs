//! `Guard`: a held acquisition, released by `release()`, at the end of a `with` block, or when
//! the object is garbage-collected (like the Rust guard when dropped).

use pyo3::prelude::*;
use racegate::OwnedGateGuard;

/// Holds units of a gate until released.
///
/// A context manager: `with gate.acquire(): ...` releases at the end of the block, also when it
/// raises. `release()` is idempotent.
// A free list: guards are created and dropped at every acquisition.
#[pyclass(module = "racegate", name = "Guard", freelist = 64)]
pub(crate) struct PyGuard {
    guard: Option<OwnedGateGuard>,
}

impl PyGuard {
    pub(crate) fn new(guard: OwnedGateGuard) -> Self {
        PyGuard { guard: Some(guard) }
    }
}

#[pymethods]
impl PyGuard {
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (_exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &mut self,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.guard = None;
        false
    }

    /// Gives the units back now (the next waiter in the queue gets them). Idempotent.
    fn release(&mut self) {
        self.guard = None;
    }

    /// Whether this guard still holds its units.
    #[getter]
    fn held(&self) -> bool {
        self.guard.is_some()
    }

    /// Units held (0 once released).
    #[getter]
    fn units(&self) -> u32 {
        self.guard.as_ref().map_or(0, OwnedGateGuard::units)
    }

    /// The devices this guard's units are on (a machine-wide gate with declared devices), else
    /// empty.
    #[getter]
    fn devices(&self) -> Vec<String> {
        self.guard
            .as_ref()
            .map_or_else(Vec::new, |g| g.devices().to_vec())
    }

    /// The gate's name.
    #[getter]
    fn gate_name(&self) -> Option<&str> {
        self.guard.as_ref().map(OwnedGateGuard::gate_name)
    }

    fn __repr__(&self) -> String {
        match &self.guard {
            Some(g) => format!(
                "<racegate.Guard of gate '{}', {} unit(s)>",
                g.gate_name(),
                g.units()
            ),
            None => "<racegate.Guard (released)>".into(),
        }
    }
}
