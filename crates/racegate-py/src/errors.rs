//! Rust errors as the Python exceptions of `racegate._errors`.
//!
//! The exception classes are defined in Python (multiple bases such as `TimeoutError`, keyword
//! attributes, pickling); this module builds them from the Rust errors, keeping the Rust message
//! (which names the holders, how long they held, and a hint) as the exception's text.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use racegate::{
    AcquireTimeoutError, ConfigError, MachineGateError, TooLargeError, TryAcquireError,
};

use crate::stats::PyHolder;

const MODULE: &str = "racegate._errors";

/// One exception class of `racegate._errors`, imported once.
fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, MODULE, name)
}

/// `cls(message, **attrs)` as a `PyErr`; an error while building it is raised instead.
fn raise(
    py: Python<'_>,
    cls: PyResult<&Bound<'_, PyType>>,
    message: String,
    attrs: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        attrs(&kwargs)?;
        let exc = cls?.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

macro_rules! exception_class {
    ($fn:ident, $name:literal) => {
        fn $fn(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
            static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
            class(py, &CELL, $name)
        }
    };
}

exception_class!(acquire_timeout_class, "AcquireTimeout");
exception_class!(would_block_class, "WouldBlock");
exception_class!(too_large_class, "TooLarge");
exception_class!(machine_class, "MachineGateError");
exception_class!(config_class, "ConfigError");

fn holders(py: Python<'_>, holders: &[racegate::Holder]) -> PyResult<Vec<Py<PyHolder>>> {
    holders
        .iter()
        .map(|h| Py::new(py, PyHolder::from(h)))
        .collect()
}

pub(crate) fn too_large(py: Python<'_>, e: TooLargeError) -> PyErr {
    raise(py, too_large_class(py), e.to_string(), |kw| {
        kw.set_item("gate", &e.gate)?;
        kw.set_item("requested", e.requested)?;
        kw.set_item("capacity", e.capacity)
    })
}

pub(crate) fn machine(py: Python<'_>, e: MachineGateError) -> PyErr {
    raise(py, machine_class(py), e.to_string(), |_| Ok(()))
}

pub(crate) fn config(py: Python<'_>, e: ConfigError) -> PyErr {
    config_message(py, e.to_string())
}

/// `ConfigError(message)`: bad configuration that is not a `racegate::ConfigError`.
pub(crate) fn config_message(py: Python<'_>, message: String) -> PyErr {
    raise(py, config_class(py), message, |_| Ok(()))
}

pub(crate) fn timeout(py: Python<'_>, e: AcquireTimeoutError) -> PyErr {
    let message = e.to_string();
    match e {
        AcquireTimeoutError::TimedOut {
            gate,
            label,
            waited,
            holders: hs,
            waiters,
            ..
        } => raise(py, acquire_timeout_class(py), message, |kw| {
            kw.set_item("gate", gate)?;
            kw.set_item("label", label)?;
            kw.set_item("waited", waited.as_secs_f64())?;
            kw.set_item("holders", holders(py, &hs)?)?;
            kw.set_item("waiters", waiters)
        }),
        AcquireTimeoutError::TooLarge(e) => too_large(py, e),
        AcquireTimeoutError::Machine(e) => machine(py, e),
        other => machine_like(py, other.to_string()),
    }
}

pub(crate) fn would_block(py: Python<'_>, e: TryAcquireError) -> PyErr {
    let message = e.to_string();
    match e {
        TryAcquireError::WouldBlock {
            gate,
            holders: hs,
            waiters,
            ..
        } => raise(py, would_block_class(py), message, |kw| {
            kw.set_item("gate", gate)?;
            kw.set_item("holders", holders(py, &hs)?)?;
            kw.set_item("waiters", waiters)
        }),
        TryAcquireError::TooLarge(e) => too_large(py, e),
        TryAcquireError::Machine(e) => machine(py, e),
        other => machine_like(py, other.to_string()),
    }
}

/// A variant added to a `#[non_exhaustive]` error after this front was written: still an error
/// of the gate, so the base class.
fn machine_like(py: Python<'_>, message: String) -> PyErr {
    static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    raise(py, class(py, &CELL, "RacegateError"), message, |_| Ok(()))
}
