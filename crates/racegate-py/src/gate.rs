//! `racegate.Gate`: the in-process gate, and the acquisition methods `MachineGate` inherits.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};
use racegate::{Gate, GateConfig, TryAcquireError};

use crate::errors;
use crate::front::{self, try_now, wait_owned};
use crate::guard::PyGuard;
use crate::stats::{py_repr_opt, PyGateStats};
use crate::wait;
use crate::waiter::{self, PyWaiter};

/// A fair (FIFO), timeout-bounded, observable gate: the one lock all GPU work passes through.
///
/// `Gate(name, capacity=1, *, stats=True, hold_warning=None)`. Threads use
/// `with gate.acquire(...)` (the GIL is released while waiting), asyncio tasks
/// `async with gate.acquire_async(...)` (the event loop is not blocked); both wait in one
/// first-in, first-out queue, and `try_acquire` never overtakes it.
#[pyclass(module = "racegate", name = "Gate", subclass, frozen)]
pub(crate) struct PyGate {
    pub(crate) gate: Gate,
}

pub(crate) fn config(
    capacity: u32,
    stats: bool,
    hold_warning: Option<f64>,
) -> PyResult<GateConfig> {
    let mut c = GateConfig::default()
        .with_capacity(capacity)
        .with_stats(stats);
    if let Some(w) = front::timeout(hold_warning)? {
        crate::logging::install();
        c = c.with_hold_warning(w);
    }
    Ok(c)
}

#[pymethods]
impl PyGate {
    #[new]
    #[pyo3(signature = (name, capacity = 1, *, stats = true, hold_warning = None))]
    fn new(
        py: Python<'_>,
        name: String,
        capacity: u32,
        stats: bool,
        hold_warning: Option<f64>,
    ) -> PyResult<Self> {
        let config = config(capacity, stats, hold_warning)?;
        let gate = Gate::with_config(name, config).map_err(|e| errors::config(py, e))?;
        Ok(PyGate { gate })
    }

    /// The gate's name.
    #[getter]
    fn name(&self) -> &str {
        self.gate.name()
    }

    /// How many units the gate has.
    #[getter]
    fn capacity(&self) -> u32 {
        self.gate.capacity()
    }

    /// Units free right now (a snapshot).
    #[getter]
    fn available(&self) -> u32 {
        self.gate.available()
    }

    /// Waits for `units` (default 1) and returns a `Guard`; the GIL is released while waiting.
    ///
    /// `timeout` in seconds (`None`: no limit) raises `AcquireTimeout` naming the holders.
    #[pyo3(signature = (*, label = None, timeout = None, units = 1))]
    fn acquire(
        &self,
        py: Python<'_>,
        label: Option<&Bound<'_, PyString>>,
        timeout: Option<f64>,
        units: u32,
    ) -> PyResult<PyGuard> {
        let timeout = front::timeout(timeout)?;
        match try_now(&self.gate, front::label(label)?, units) {
            Ok(g) => return Ok(PyGuard::new(g)),
            Err(TryAcquireError::WouldBlock { .. }) => {}
            Err(e) => return Err(errors::would_block(py, e)),
        }
        let gate = self.gate.clone();
        let label = front::label(label)?;
        let res = wait::block_on(
            py,
            async move { wait_owned(&gate, label, units, timeout).await },
        )?;
        res.map(PyGuard::new).map_err(|e| errors::timeout(py, e))
    }

    /// `async with gate.acquire_async(...)` (or `guard = await gate.acquire_async(...)`): waits
    /// without blocking the event loop; cancelling the task gives its place in the queue back.
    #[pyo3(signature = (*, label = None, timeout = None, units = 1))]
    fn acquire_async<'py>(
        slf: &Bound<'py, Self>,
        label: Option<Bound<'py, PyString>>,
        timeout: Option<f64>,
        units: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        static ASYNC_ACQUIRE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        front::timeout(timeout)?;
        ASYNC_ACQUIRE
            .import(slf.py(), "racegate._aio", "AsyncAcquire")?
            .call1((slf, label, timeout, units))
    }

    /// Takes `units` now or raises `WouldBlock` naming the holders; never overtakes a waiter.
    #[pyo3(signature = (*, label = None, units = 1))]
    fn try_acquire(
        &self,
        py: Python<'_>,
        label: Option<&Bound<'_, PyString>>,
        units: u32,
    ) -> PyResult<PyGuard> {
        try_now(&self.gate, front::label(label)?, units)
            .map(PyGuard::new)
            .map_err(|e| errors::would_block(py, e))
    }

    /// A snapshot of this process's figures for the gate (the Rust `GateStats`).
    fn stats(&self, py: Python<'_>) -> PyResult<PyGateStats> {
        PyGateStats::new(py, &self.gate.stats())
    }

    /// The non-waiting grant for `racegate._aio`: `None` when the caller must queue.
    fn _try_now(
        &self,
        py: Python<'_>,
        label: Option<&Bound<'_, PyString>>,
        units: u32,
    ) -> PyResult<Option<PyGuard>> {
        match try_now(&self.gate, front::label(label)?, units) {
            Ok(g) => Ok(Some(PyGuard::new(g))),
            Err(TryAcquireError::WouldBlock { .. }) => Ok(None),
            Err(e) => Err(errors::would_block(py, e)),
        }
    }

    /// Queues an asyncio wait for `racegate._aio`.
    fn _enqueue(
        &self,
        py: Python<'_>,
        label: Option<&Bound<'_, PyString>>,
        timeout: Option<f64>,
        units: u32,
        event_loop: Py<PyAny>,
        fut: Py<PyAny>,
    ) -> PyResult<PyWaiter> {
        let timeout: Option<Duration> = front::timeout(timeout)?;
        waiter::enqueue(
            py,
            &self.gate,
            front::label(label)?,
            units,
            timeout,
            event_loop,
            fut,
        )
    }

    /// Whether `other` is a handle on the same gate.
    fn same_gate(&self, other: &Bound<'_, PyGate>) -> bool {
        self.gate.same_gate(&other.get().gate)
    }

    fn __repr__(&self) -> String {
        format!(
            "<racegate.Gate {} capacity={} available={}>",
            py_repr_opt(Some(self.gate.name())),
            self.gate.capacity(),
            self.gate.available()
        )
    }
}
