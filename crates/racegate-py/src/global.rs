//! Process-wide gates: `global_gate`, `configure` and `configure_machine_wide`, on the Rust
//! registry (`racegate::global`), so a name means one gate in the whole process. Each name keeps
//! one Python object, so `global_gate("gpu") is global_gate("gpu")`.

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyAny;

use crate::errors;
use crate::gate::{config, PyGate};
use crate::machine::PyMachineGate;

/// Name → the Python object handed out for it. Locked only with the GIL held.
static OBJECTS: Mutex<Option<HashMap<String, Py<PyAny>>>> = Mutex::new(None);

fn remembered<'py>(
    py: Python<'py>,
    name: &str,
    make: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut objects = OBJECTS
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let objects = objects.get_or_insert_with(HashMap::new);
    if let Some(o) = objects.get(name) {
        return Ok(o.bind(py).clone());
    }
    let o = make()?;
    objects.insert(name.to_owned(), o.clone().unbind());
    Ok(o)
}

/// The process-wide gate `name`: created on first use with the configuration given to
/// `configure` before, else the defaults (capacity 1, stats on).
#[pyfunction]
pub(crate) fn global_gate<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    remembered(py, name, || {
        let gate = racegate::global(name).clone();
        Ok(Bound::new(py, PyGate { gate })?.into_any())
    })
}

/// Configures the process-wide gate `name` once, before its first `global_gate(name)`, and
/// returns it; again with the same configuration returns the same gate, with another raises
/// `ConfigError`.
#[pyfunction]
#[pyo3(signature = (name, capacity = 1, *, stats = true, hold_warning = None))]
pub(crate) fn configure<'py>(
    py: Python<'py>,
    name: &str,
    capacity: u32,
    stats: bool,
    hold_warning: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let c = config(capacity, stats, hold_warning)?;
    let gate = racegate::configure(name, c)
        .map_err(|e| errors::config(py, e))?
        .clone();
    remembered(py, name, || Ok(Bound::new(py, PyGate { gate })?.into_any()))
}

/// Makes the process-wide gate `name` machine-wide (the gate `racegate::test_guard` and the
/// pytest plugin use) and returns it as a `MachineGate`; `devices` as `MachineGate`'s.
#[pyfunction]
#[pyo3(signature = (name, capacity = 1, *, devices = None))]
pub(crate) fn configure_machine_wide<'py>(
    py: Python<'py>,
    name: &str,
    capacity: u32,
    devices: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyAny>> {
    let devices = devices.unwrap_or_default();
    let global = py
        .detach(|| racegate::machine::machine_wide_on(name, capacity, &devices))
        .map_err(|e| errors::machine(py, e))?;
    remembered(py, name, || {
        Ok(Bound::new(py, PyMachineGate::initializer(global.machine))?.into_any())
    })
}

/// The device ids in `text` (`0,1,2,3`, as `RACEGATE_TEST_GUARD_DEVICES` and `racegate run
/// --devices` take them); `ConfigError` names a bad entry.
#[pyfunction]
pub(crate) fn parse_device_list(py: Python<'_>, text: &str) -> PyResult<Vec<String>> {
    racegate::machine::parse_device_list(text)
        .map_err(|e| errors::config_message(py, e.to_string()))
}

/// The GPUs this process may use: `CUDA_VISIBLE_DEVICES` when set, else those `nvidia-smi -L`
/// lists; empty when neither names any.
#[pyfunction]
pub(crate) fn discover_devices(py: Python<'_>) -> Vec<String> {
    py.detach(|| racegate::machine::discover_devices().devices)
}
