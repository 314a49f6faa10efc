//! `Gate.stats()`: the Rust [`GateStats`] snapshot as plain read-only Python objects (durations in
//! seconds, as `float`).

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use racegate::{GateStats, Holder, LabelStats, Percentiles};

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One current holder of a gate: its label, units and how long it has held them.
#[pyclass(module = "racegate", name = "Holder", frozen, get_all)]
pub(crate) struct PyHolder {
    /// The holder's label, or `None`.
    label: Option<String>,
    /// Units of the gate's capacity it holds.
    units: u32,
    /// Seconds it has held them.
    held_for: f64,
}

impl From<&Holder> for PyHolder {
    fn from(h: &Holder) -> Self {
        PyHolder {
            label: h.label.clone(),
            units: h.units,
            held_for: secs(h.held_for),
        }
    }
}

#[pymethods]
impl PyHolder {
    fn __repr__(&self) -> String {
        format!(
            "Holder(label={}, units={}, held_for={:.6})",
            py_repr_opt(self.label.as_deref()),
            self.units,
            self.held_for
        )
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("label", &self.label)?;
        d.set_item("units", self.units)?;
        d.set_item("held_for", self.held_for)?;
        Ok(d)
    }
}

/// Percentiles of one histogram, in seconds.
#[pyclass(module = "racegate", name = "Percentiles", frozen, get_all)]
pub(crate) struct PyPercentiles {
    count: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl From<&Percentiles> for PyPercentiles {
    fn from(p: &Percentiles) -> Self {
        PyPercentiles {
            count: p.count,
            p50: secs(p.p50),
            p90: secs(p.p90),
            p99: secs(p.p99),
            max: secs(p.max),
        }
    }
}

#[pymethods]
impl PyPercentiles {
    fn __repr__(&self) -> String {
        format!(
            "Percentiles(count={}, p50={:.6}, p90={:.6}, p99={:.6}, max={:.6})",
            self.count, self.p50, self.p90, self.p99, self.max
        )
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("count", self.count)?;
        d.set_item("p50", self.p50)?;
        d.set_item("p90", self.p90)?;
        d.set_item("p99", self.p99)?;
        d.set_item("max", self.max)?;
        Ok(d)
    }
}

/// Figures for one label.
#[pyclass(module = "racegate", name = "LabelStats", frozen, get_all)]
pub(crate) struct PyLabelStats {
    label: String,
    acquisitions: u64,
    timeouts: u64,
    wait: Py<PyPercentiles>,
    hold: Py<PyPercentiles>,
}

impl PyLabelStats {
    fn new(py: Python<'_>, l: &LabelStats) -> PyResult<Self> {
        Ok(PyLabelStats {
            label: l.label.clone(),
            acquisitions: l.acquisitions,
            timeouts: l.timeouts,
            wait: Py::new(py, PyPercentiles::from(&l.wait))?,
            hold: Py::new(py, PyPercentiles::from(&l.hold))?,
        })
    }
}

#[pymethods]
impl PyLabelStats {
    fn __repr__(&self) -> String {
        format!(
            "LabelStats(label={}, acquisitions={}, timeouts={})",
            py_repr_opt(Some(&self.label)),
            self.acquisitions,
            self.timeouts
        )
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("label", &self.label)?;
        d.set_item("acquisitions", self.acquisitions)?;
        d.set_item("timeouts", self.timeouts)?;
        d.set_item("wait", self.wait.get().to_dict(py)?)?;
        d.set_item("hold", self.hold.get().to_dict(py)?)?;
        Ok(d)
    }
}

/// A snapshot of one gate's in-process figures: the Rust `GateStats`, field for field.
#[pyclass(module = "racegate", name = "GateStats", frozen)]
pub(crate) struct PyGateStats {
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    capacity: u32,
    #[pyo3(get)]
    available: u32,
    #[pyo3(get)]
    enabled: bool,
    #[pyo3(get)]
    acquisitions: u64,
    #[pyo3(get)]
    timeouts: u64,
    #[pyo3(get)]
    panics_while_held: u64,
    #[pyo3(get)]
    waiters: usize,
    #[pyo3(get)]
    holders: Vec<Py<PyHolder>>,
    #[pyo3(get)]
    wait: Py<PyPercentiles>,
    #[pyo3(get)]
    hold: Py<PyPercentiles>,
    #[pyo3(get)]
    labels: Vec<Py<PyLabelStats>>,
    /// The Rust `Display` of the snapshot, for `str()`.
    text: String,
}

impl PyGateStats {
    pub(crate) fn new(py: Python<'_>, s: &GateStats) -> PyResult<Self> {
        Ok(PyGateStats {
            name: s.name.clone(),
            capacity: s.capacity,
            available: s.available,
            enabled: s.enabled,
            acquisitions: s.acquisitions,
            timeouts: s.timeouts,
            panics_while_held: s.panics_while_held,
            waiters: s.waiters,
            holders: s
                .holders
                .iter()
                .map(|h| Py::new(py, PyHolder::from(h)))
                .collect::<PyResult<_>>()?,
            wait: Py::new(py, PyPercentiles::from(&s.wait))?,
            hold: Py::new(py, PyPercentiles::from(&s.hold))?,
            labels: s
                .labels
                .iter()
                .map(|l| Py::new(py, PyLabelStats::new(py, l)?))
                .collect::<PyResult<_>>()?,
            text: s.to_string(),
        })
    }
}

#[pymethods]
impl PyGateStats {
    fn __str__(&self) -> &str {
        self.text.trim_end()
    }

    fn __repr__(&self) -> String {
        format!(
            "GateStats(name={}, capacity={}, available={}, acquisitions={}, timeouts={}, waiters={}, holders={})",
            py_repr_opt(Some(&self.name)),
            self.capacity,
            self.available,
            self.acquisitions,
            self.timeouts,
            self.waiters,
            self.holders.len()
        )
    }

    /// The snapshot as plain dicts and lists (for JSON).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("name", &self.name)?;
        d.set_item("capacity", self.capacity)?;
        d.set_item("available", self.available)?;
        d.set_item("enabled", self.enabled)?;
        d.set_item("acquisitions", self.acquisitions)?;
        d.set_item("timeouts", self.timeouts)?;
        d.set_item("panics_while_held", self.panics_while_held)?;
        d.set_item("waiters", self.waiters)?;
        let holders = self
            .holders
            .iter()
            .map(|h| h.get().to_dict(py))
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("holders", holders)?;
        d.set_item("wait", self.wait.get().to_dict(py)?)?;
        d.set_item("hold", self.hold.get().to_dict(py)?)?;
        let labels = self
            .labels
            .iter()
            .map(|l| l.get().to_dict(py))
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("labels", labels)?;
        Ok(d)
    }
}

/// `'text'` or `None`, as Python's `repr` writes them (enough for labels and names).
pub(crate) fn py_repr_opt(s: Option<&str>) -> String {
    match s {
        None => "None".into(),
        Some(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
    }
}
