//! The guards: a held grant, released when dropped (also during a panic).

use std::fmt;

use super::grant::{Grant, Inner};
use super::Gate;

/// Holds units of a [`Gate`] until dropped; borrows the gate.
///
/// Dropping it (also during a panic) releases the machine-wide lock, if any, then the units.
#[must_use = "the gate is released as soon as the guard is dropped"]
pub struct GateGuard<'a> {
    inner: &'a Inner,
    grant: Grant,
}

impl<'a> GateGuard<'a> {
    #[inline]
    pub(crate) fn new(gate: &'a Gate, grant: Grant) -> Self {
        GateGuard {
            inner: &gate.inner,
            grant,
        }
    }

    /// Units held.
    pub fn units(&self) -> u32 {
        self.grant.units
    }

    /// Units held.
    #[deprecated(note = "renamed to `units`")]
    pub fn weight(&self) -> u32 {
        self.units()
    }

    /// The gate's name.
    pub fn gate_name(&self) -> &str {
        &self.inner.name
    }

    /// The devices this guard holds units on, by id (what `CUDA_VISIBLE_DEVICES` would name):
    /// those of a [`MachineGate`](crate::MachineGate) with declared devices; empty otherwise.
    pub fn devices(&self) -> &[String] {
        self.grant.devices()
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.inner.release(&mut self.grant);
    }
}

impl fmt::Debug for GateGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateGuard")
            .field("gate", &self.gate_name())
            .field("units", &self.grant.units)
            .finish()
    }
}

/// Holds units of a [`Gate`] until dropped; owns a handle on the gate, so it is `Send +
/// 'static` and can move into a spawned task or another thread.
///
/// Dropping it (also during a panic) releases the machine-wide lock, if any, then the units.
#[must_use = "the gate is released as soon as the guard is dropped"]
pub struct OwnedGateGuard {
    gate: Gate,
    grant: Grant,
}

impl OwnedGateGuard {
    #[inline]
    pub(crate) fn new(gate: Gate, grant: Grant) -> Self {
        OwnedGateGuard { gate, grant }
    }

    /// The gate this guard holds.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The gate's name.
    pub fn gate_name(&self) -> &str {
        self.gate.name()
    }

    /// Units held.
    pub fn units(&self) -> u32 {
        self.grant.units
    }

    /// Units held.
    #[deprecated(note = "renamed to `units`")]
    pub fn weight(&self) -> u32 {
        self.units()
    }

    /// The devices this guard holds units on (see [`GateGuard::devices`]).
    pub fn devices(&self) -> &[String] {
        self.grant.devices()
    }
}

impl Drop for OwnedGateGuard {
    fn drop(&mut self) {
        self.gate.inner.release(&mut self.grant);
    }
}

impl fmt::Debug for OwnedGateGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedGateGuard")
            .field("gate", &self.gate.name())
            .field("units", &self.grant.units)
            .finish()
    }
}
