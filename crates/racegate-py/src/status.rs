//! `MachineGate.status()`: the machine-wide state of a gate read from its lock directory (every
//! process's holders and waiters, and the history), as `racegate status` shows it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use racegate::machine::{HistorySummary, MachineStatus, Record};

use crate::stats::py_repr_opt;

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A process holding or waiting for a machine-wide gate, from its record (`None` fields: the
/// lane or ticket is locked but its record is missing or stale).
#[pyclass(module = "racegate", name = "MachineHolder", frozen, get_all)]
pub(crate) struct PyMachineHolder {
    /// The lane held (`None` for a waiter).
    lane: Option<u32>,
    /// The waiter's ticket number (`None` for a holder).
    seq: Option<u64>,
    pid: Option<u32>,
    label: Option<String>,
    command: Option<Vec<String>>,
    /// When it started holding or waiting, seconds since the epoch.
    since: Option<f64>,
    /// Seconds it has held or waited so far.
    elapsed: Option<f64>,
    /// Units of the gate it holds (holders whose share is known), else `None`.
    units: Option<u32>,
    /// The devices its units are on (gates with declared devices).
    devices: Vec<String>,
}

impl PyMachineHolder {
    fn new(
        lane: Option<u32>,
        seq: Option<u64>,
        r: Option<&Record>,
        share: (Option<u32>, Vec<String>),
        now: SystemTime,
    ) -> Self {
        PyMachineHolder {
            units: share.0,
            devices: share.1,
            lane,
            seq,
            pid: r.map(|r| r.pid),
            label: r.and_then(|r| r.label.clone()),
            command: r.map(|r| r.command.clone()),
            since: r.map(|r| epoch_secs(r.since())),
            elapsed: r.map(|r| {
                now.duration_since(r.since())
                    .unwrap_or_default()
                    .as_secs_f64()
            }),
        }
    }
}

#[pymethods]
impl PyMachineHolder {
    fn __repr__(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "None".into());
        format!(
            "MachineHolder(lane={}, seq={}, pid={}, label={}, elapsed={})",
            opt(self.lane.map(|l| l.to_string())),
            opt(self.seq.map(|s| s.to_string())),
            opt(self.pid.map(|p| p.to_string())),
            py_repr_opt(self.label.as_deref()),
            opt(self.elapsed.map(|e| format!("{e:.6}")))
        )
    }
}

/// The gate's history log: acquisitions, and wait/hold percentiles (p50, p90, p99, max, in
/// seconds) across every process.
#[pyclass(module = "racegate", name = "HistorySummary", frozen, get_all)]
pub(crate) struct PyHistorySummary {
    count: u64,
    wait: (f64, f64, f64, f64),
    hold: (f64, f64, f64, f64),
}

fn four(p: [Duration; 4]) -> (f64, f64, f64, f64) {
    let s = p.map(|d| d.as_secs_f64());
    (s[0], s[1], s[2], s[3])
}

impl From<&HistorySummary> for PyHistorySummary {
    fn from(h: &HistorySummary) -> Self {
        PyHistorySummary {
            count: h.count,
            wait: four(h.wait),
            hold: four(h.hold),
        }
    }
}

#[pymethods]
impl PyHistorySummary {
    fn __repr__(&self) -> String {
        format!(
            "HistorySummary(count={}, wait={:?}, hold={:?})",
            self.count, self.wait, self.hold
        )
    }
}

/// One declared device of a machine-wide gate: its units in use, and the lanes of its holders.
#[pyclass(module = "racegate", name = "DeviceStatus", frozen, get_all)]
pub(crate) struct PyDeviceStatus {
    id: String,
    used: u32,
    capacity: u32,
    holder_lanes: Vec<u32>,
}

#[pymethods]
impl PyDeviceStatus {
    fn __repr__(&self) -> String {
        format!(
            "DeviceStatus(id={}, used={}, capacity={})",
            py_repr_opt(Some(&self.id)),
            self.used,
            self.capacity
        )
    }
}

/// A machine-wide gate's state across all processes.
#[pyclass(module = "racegate", name = "MachineStatus", frozen, get_all)]
pub(crate) struct PyMachineStatus {
    name: String,
    /// Units per device (of the one device when none are declared).
    capacity: u32,
    devices: Vec<Py<PyDeviceStatus>>,
    units_used: u64,
    units_total: u64,
    holders: Vec<Py<PyMachineHolder>>,
    /// In queue order.
    waiters: Vec<Py<PyMachineHolder>>,
    history: Py<PyHistorySummary>,
}

impl PyMachineStatus {
    pub(crate) fn new(py: Python<'_>, s: &MachineStatus) -> PyResult<Self> {
        let now = SystemTime::now();
        Ok(PyMachineStatus {
            name: s.name.clone(),
            capacity: s.capacity,
            devices: s
                .devices
                .iter()
                .map(|d| {
                    Py::new(
                        py,
                        PyDeviceStatus {
                            id: d.id.clone(),
                            used: d.used,
                            capacity: d.capacity,
                            holder_lanes: d.holder_lanes.clone(),
                        },
                    )
                })
                .collect::<PyResult<_>>()?,
            units_used: s.units_used,
            units_total: s.units_total,
            holders: s
                .holders
                .iter()
                .map(|h| {
                    Py::new(
                        py,
                        PyMachineHolder::new(
                            Some(h.lane),
                            None,
                            h.record.as_ref(),
                            (h.units, h.devices.clone()),
                            now,
                        ),
                    )
                })
                .collect::<PyResult<_>>()?,
            waiters: s
                .waiters
                .iter()
                .map(|w| {
                    Py::new(
                        py,
                        PyMachineHolder::new(
                            None,
                            Some(w.seq),
                            w.record.as_ref(),
                            (None, Vec::new()),
                            now,
                        ),
                    )
                })
                .collect::<PyResult<_>>()?,
            history: Py::new(py, PyHistorySummary::from(&s.history))?,
        })
    }
}

#[pymethods]
impl PyMachineStatus {
    fn __repr__(&self) -> String {
        format!(
            "MachineStatus(name={}, capacity={}, units_used={}, units_total={}, holders={}, waiters={})",
            py_repr_opt(Some(&self.name)),
            self.capacity,
            self.units_used,
            self.units_total,
            self.holders.len(),
            self.waiters.len()
        )
    }
}
