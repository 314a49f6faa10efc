//! `racegate.MachineGate`: the Rust `MachineGate` (same lock directory, protocol and records as
//! `racegate run` and `racegate::test_guard`), a subclass of `Gate` with the same acquisitions.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::PyClassInitializer;
use racegate::MachineGate;

use crate::errors;
use crate::gate::{config, PyGate};
use crate::stats::py_repr_opt;
use crate::status::PyMachineStatus;

/// A gate shared by every process of this user on the machine (OS file locks in the lock
/// directory: `dir`, else `RACEGATE_DIR`, `$XDG_RUNTIME_DIR/racegate`, `/tmp/racegate-<uid>`).
///
/// `MachineGate(name, capacity=1, *, slots=None, devices=None, dir=None, stats=True,
/// hold_warning=None, records=True)`; `slots` is the older name of `capacity`, which is the
/// units per device when `devices` (ids as `CUDA_VISIBLE_DEVICES` takes them) are declared.
#[pyclass(module = "racegate", name = "MachineGate", extends = PyGate, frozen)]
pub(crate) struct PyMachineGate {
    pub(crate) machine: MachineGate,
}

impl PyMachineGate {
    pub(crate) fn initializer(machine: MachineGate) -> PyClassInitializer<Self> {
        PyClassInitializer::from(PyGate {
            gate: machine.gate().clone(),
        })
        .add_subclass(PyMachineGate { machine })
    }
}

#[pymethods]
impl PyMachineGate {
    #[new]
    #[pyo3(signature = (name, capacity = None, *, slots = None, devices = None, dir = None, stats = true, hold_warning = None, records = true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: String,
        capacity: Option<u32>,
        slots: Option<u32>,
        devices: Option<Vec<String>>,
        dir: Option<PathBuf>,
        stats: bool,
        hold_warning: Option<f64>,
        records: bool,
    ) -> PyResult<PyClassInitializer<Self>> {
        let capacity = match (capacity, slots) {
            (Some(c), Some(s)) if c != s => {
                return Err(PyValueError::new_err(format!(
                    "`capacity={c}` and `slots={s}` disagree; hint: `slots` is the older name of `capacity`, pass one"
                )))
            }
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) => 1,
        };
        let mut builder = MachineGate::builder(&name)
            .capacity(capacity)
            .config(config(capacity, stats, hold_warning)?)
            .records(records);
        if let Some(d) = devices {
            builder = builder.devices(d);
        }
        if let Some(d) = dir {
            builder = builder.dir(d);
        }
        let machine = py
            .detach(|| builder.open())
            .map_err(|e| errors::machine(py, e))?;
        Ok(PyMachineGate::initializer(machine))
    }

    /// The devices the gate spans (each with `capacity` units); empty: one device.
    #[getter]
    fn devices(&self) -> Vec<String> {
        self.machine.devices().to_vec()
    }

    /// The gate's directory inside the lock directory.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.machine.dir().to_path_buf()
    }

    /// Holders, waiters and history across every process (read from the lock directory).
    fn status(&self, py: Python<'_>) -> PyResult<PyMachineStatus> {
        let s = py.detach(|| self.machine.status());
        PyMachineStatus::new(py, &s)
    }

    fn __repr__(&self) -> String {
        format!(
            "<racegate.MachineGate {} capacity={} dir='{}'>",
            py_repr_opt(Some(self.machine.name())),
            self.machine.capacity(),
            self.machine.dir().display()
        )
    }
}
