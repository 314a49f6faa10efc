//! Process-wide machine-wide gates: [`configure_machine_wide`] and [`machine_wide`], which the
//! test guard is built on.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use super::{MachineGate, MachineGateError};
use crate::gate::Gate;

/// Makes the process-wide gate `name` (see [`crate::global`]) machine-wide with `capacity`
/// holders at once, and returns it: threads of this process queue on it in-process, and the one
/// holding a unit queues with other processes for a lane. Call it once at startup, before the
/// first `global(name)`; calling it again with the same capacity returns the same gate.
///
/// The `Gate` methods that cannot return errors panic if the lock directory fails under them;
/// [`machine_wide`] returns the [`MachineGate`] whose methods report such errors instead.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_var("RACEGATE_DIR", dir.path());
/// let gpu = racegate::configure_machine_wide("doc-global-gpu", 1).unwrap();
/// assert!(gpu.same_gate(racegate::global("doc-global-gpu")));
/// drop(gpu.acquire_blocking());
/// ```
///
/// # Errors
///
/// As [`MachineGateBuilder::open`](super::MachineGateBuilder::open), and
/// [`MachineGateError::GlobalConflict`] if the global gate `name` already exists in-process or
/// with another capacity.
pub fn configure_machine_wide(
    name: &str,
    capacity: u32,
) -> Result<&'static Gate, MachineGateError> {
    machine_wide(name, capacity).map(|m| m.global)
}

/// The machine-wide global gate `name` as a [`MachineGate`] (fallible acquisitions, status),
/// configuring it like [`configure_machine_wide`] if needed.
///
/// # Errors
///
/// As [`configure_machine_wide`].
pub fn machine_wide(name: &str, capacity: u32) -> Result<GlobalMachineGate, MachineGateError> {
    machine_wide_on(name, capacity, &[])
}

/// [`machine_wide`] for a gate that spans `devices`, each with `capacity` units (see
/// [`MachineGateBuilder::devices`](super::MachineGateBuilder::devices)): the gate
/// [`test_guard`](crate::test_guard) takes with `RACEGATE_TEST_GUARD_DEVICES` set, and the
/// Python pytest plugin's.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_var("RACEGATE_DIR", dir.path());
/// let gpus = racegate::machine::machine_wide_on("doc-global-gpus", 1, &["0".into(), "1".into()]).unwrap();
/// let both = gpus.machine.acquire_many_blocking(2).unwrap();
/// assert_eq!(both.devices(), ["0", "1"]);
/// ```
///
/// # Errors
///
/// As [`machine_wide`], and [`MachineGateError::DevicesMismatch`] if the gate `name` is already
/// configured in this process with other devices.
pub fn machine_wide_on(
    name: &str,
    capacity: u32,
    devices: &[String],
) -> Result<GlobalMachineGate, MachineGateError> {
    static MACHINE: OnceLock<Mutex<HashMap<String, MachineGate>>> = OnceLock::new();
    let mut reg = MACHINE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = reg.get(name) {
        if m.capacity() != capacity {
            return Err(MachineGateError::GlobalConflict {
                gate: name.to_owned(),
                existing: m.capacity(),
            });
        }
        if m.devices() != devices {
            return Err(MachineGateError::DevicesMismatch {
                gate: name.to_owned(),
                existing: m.devices().to_vec(),
                requested: devices.to_vec(),
            });
        }
        let (global, _) =
            crate::global::get_or_try_register(name, || Ok::<_, MachineGateError>(m.gate.clone()))?;
        return Ok(GlobalMachineGate {
            machine: m.clone(),
            global,
        });
    }
    let mut built = None;
    let (global, created) = crate::global::get_or_try_register(name, || {
        let m = MachineGate::builder(name)
            .capacity(capacity)
            .devices(devices.iter().cloned())
            .open()?;
        let gate = m.gate.clone();
        built = Some(m);
        Ok::<_, MachineGateError>(gate)
    })?;
    match (created, built) {
        (true, Some(m)) => {
            reg.insert(name.to_owned(), m.clone());
            Ok(GlobalMachineGate { machine: m, global })
        }
        _ => Err(MachineGateError::GlobalConflict {
            gate: name.to_owned(),
            existing: global.capacity(),
        }),
    }
}

/// A machine-wide global gate: the [`MachineGate`] and the `&'static Gate` that
/// [`crate::global`] returns for the same name.
#[derive(Clone, Debug)]
pub struct GlobalMachineGate {
    /// Fallible acquisitions and machine-wide status.
    pub machine: MachineGate,
    /// The same gate as `racegate::global(name)`.
    pub global: &'static Gate,
}
