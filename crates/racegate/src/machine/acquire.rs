//! The variant matrix of [`MachineGate`]: [`Gate`]'s names and error types, with fallible
//! untimed calls (the lock directory can fail under any call).
//!
//! Every method goes through the [`Labeled`] view of the in-process gate in front of the file
//! locks: the timed, non-waiting and weighted forms are the gate's own, and the untimed unit
//! forms are its fallible weighted forms with `n = 1`.

use std::time::Duration;

use super::MachineGate;
use crate::errors::{AcquireError, AcquireTimeoutError, TryAcquireError};
use crate::gate::{Gate, GateGuard, Labeled, OwnedGateGuard};

impl MachineGate {
    /// Waits for the gate.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Machine`] if the lock directory fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves the queue (in-process and machine-wide); a file
    /// lock that arrives after the future was dropped is released at once.
    pub async fn acquire(&self) -> Result<GateGuard<'_>, AcquireError> {
        self.unlabeled().acquire().await
    }

    /// [`MachineGate::acquire`] with an owned guard (`Send + 'static`).
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    pub async fn acquire_owned(&self) -> Result<OwnedGateGuard, AcquireError> {
        self.unlabeled().acquire_owned().await
    }

    /// Waits at most `timeout` for the gate.
    ///
    /// # Errors
    ///
    /// [`AcquireTimeoutError::TimedOut`] naming the holders in this and other processes;
    /// [`AcquireTimeoutError::Machine`] if the lock directory fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with the time driver enabled.
    pub async fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.unlabeled().acquire_timeout(timeout).await
    }

    /// [`MachineGate::acquire_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_timeout`].
    pub async fn acquire_owned_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.unlabeled().acquire_owned_timeout(timeout).await
    }

    /// Blocks the current thread until the gate is granted.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// When called from an async context (use [`MachineGate::acquire`] there), as
    /// [`Gate::acquire_blocking`].
    pub fn acquire_blocking(&self) -> Result<GateGuard<'_>, AcquireError> {
        self.unlabeled().acquire_blocking()
    }

    /// [`MachineGate::acquire_blocking`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_owned_blocking(&self) -> Result<OwnedGateGuard, AcquireError> {
        self.unlabeled().acquire_owned_blocking()
    }

    /// Blocks the current thread at most `timeout` for the gate.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.unlabeled().acquire_blocking_timeout(timeout)
    }

    /// [`MachineGate::acquire_blocking_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_owned_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.unlabeled().acquire_owned_blocking_timeout(timeout)
    }

    /// Takes the gate only if a lane is free and nobody is queued for it, in any process.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] naming the holders; [`TryAcquireError::Machine`] if the
    /// lock directory fails.
    pub fn try_acquire(&self) -> Result<GateGuard<'_>, TryAcquireError> {
        self.unlabeled().try_acquire()
    }

    /// [`MachineGate::try_acquire`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire`].
    pub fn try_acquire_owned(&self) -> Result<OwnedGateGuard, TryAcquireError> {
        self.unlabeled().try_acquire_owned()
    }

    // --- weighted -----------------------------------------------------------------------------

    /// Waits for `n` units of the gate's budget: on one device if `n` is at most the
    /// [capacity](MachineGate::capacity), else `n / capacity` whole devices (see
    /// [`MachineGateBuilder::devices`](super::MachineGateBuilder::devices)). First-in, first-out
    /// across processes: a large request at the head of the queue holds back smaller ones
    /// behind it until it fits, so it is never starved. `n = 0` is granted at once and holds
    /// nothing.
    ///
    /// # Errors
    ///
    /// At once: [`AcquireError::TooLarge`] if `n` exceeds all devices' units together,
    /// [`AcquireError::Machine`] with [`MachineGateError::Unplaceable`] if it is neither at most
    /// one device's units nor whole devices. Later, [`AcquireError::Machine`] if the lock
    /// directory fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// [`MachineGateError::Unplaceable`]: crate::MachineGateError::Unplaceable
    pub async fn acquire_many(&self, n: u32) -> Result<GateGuard<'_>, AcquireError> {
        self.unlabeled().acquire_many(n).await
    }

    /// [`MachineGate::acquire_many`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    pub async fn acquire_many_owned(&self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        self.unlabeled().acquire_many_owned(n).await
    }

    /// Waits at most `timeout` for `n` units (see [`MachineGate::acquire_many`]).
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many`], and [`AcquireTimeoutError::TimedOut`] naming the
    /// holders and their shares.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_timeout`].
    pub async fn acquire_many_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.unlabeled().acquire_many_timeout(n, timeout).await
    }

    /// [`MachineGate::acquire_many_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_timeout`].
    pub async fn acquire_many_owned_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.unlabeled()
            .acquire_many_owned_timeout(n, timeout)
            .await
    }

    /// Blocks the current thread until `n` units are granted (see
    /// [`MachineGate::acquire_many`]).
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_many_blocking(&self, n: u32) -> Result<GateGuard<'_>, AcquireError> {
        self.unlabeled().acquire_many_blocking(n)
    }

    /// [`MachineGate::acquire_many_blocking`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_many_owned_blocking(&self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        self.unlabeled().acquire_many_owned_blocking(n)
    }

    /// Blocks the current thread at most `timeout` for `n` units.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_many_blocking_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.unlabeled().acquire_many_blocking_timeout(n, timeout)
    }

    /// [`MachineGate::acquire_many_blocking_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_many_owned_blocking_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.unlabeled()
            .acquire_many_owned_blocking_timeout(n, timeout)
    }

    /// Takes `n` units only if they fit now and nobody is queued for the gate, in any process.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] naming the holders and their shares; otherwise as
    /// [`MachineGate::acquire_many`].
    pub fn try_acquire_many(&self, n: u32) -> Result<GateGuard<'_>, TryAcquireError> {
        self.unlabeled().try_acquire_many(n)
    }

    /// [`MachineGate::try_acquire_many`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire_many`].
    pub fn try_acquire_many_owned(&self, n: u32) -> Result<OwnedGateGuard, TryAcquireError> {
        self.unlabeled().try_acquire_many_owned(n)
    }
}

/// The [`MachineGate`] variant matrix with this view's label. Each method behaves exactly like
/// the [`MachineGate`] method of the same name: same errors, cancel safety and panics.
impl<'a> Labeled<'a, MachineGate> {
    /// The same label on the in-process gate in front of the file locks, whose weighted
    /// untimed forms are the fallible untimed forms needed here (`n = 1`).
    #[inline]
    fn on_gate(self) -> Labeled<'a, Gate> {
        Labeled::new(&self.front.gate, self.label)
    }

    /// [`MachineGate::acquire`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    pub async fn acquire(self) -> Result<GateGuard<'a>, AcquireError> {
        self.on_gate().acquire_many(1).await
    }

    /// [`MachineGate::acquire_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    pub async fn acquire_owned(self) -> Result<OwnedGateGuard, AcquireError> {
        self.on_gate().acquire_many_owned(1).await
    }

    /// [`MachineGate::acquire_timeout`] with this label; the error names it too.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_timeout`].
    pub async fn acquire_timeout(
        self,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        self.on_gate().acquire_timeout(timeout).await
    }

    /// [`MachineGate::acquire_owned_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_timeout`].
    pub async fn acquire_owned_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.on_gate().acquire_owned_timeout(timeout).await
    }

    /// [`MachineGate::acquire_blocking`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_blocking(self) -> Result<GateGuard<'a>, AcquireError> {
        self.on_gate().acquire_many_blocking(1)
    }

    /// [`MachineGate::acquire_owned_blocking`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_owned_blocking(self) -> Result<OwnedGateGuard, AcquireError> {
        self.on_gate().acquire_many_owned_blocking(1)
    }

    /// [`MachineGate::acquire_blocking_timeout`] with this label; the error names it too.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        self.on_gate().acquire_blocking_timeout(timeout)
    }

    /// [`MachineGate::acquire_owned_blocking_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_owned_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.on_gate().acquire_owned_blocking_timeout(timeout)
    }

    /// [`MachineGate::try_acquire`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire`].
    pub fn try_acquire(self) -> Result<GateGuard<'a>, TryAcquireError> {
        self.on_gate().try_acquire()
    }

    /// [`MachineGate::try_acquire_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire`].
    pub fn try_acquire_owned(self) -> Result<OwnedGateGuard, TryAcquireError> {
        self.on_gate().try_acquire_owned()
    }

    /// [`MachineGate::acquire_many`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    pub async fn acquire_many(self, n: u32) -> Result<GateGuard<'a>, AcquireError> {
        self.on_gate().acquire_many(n).await
    }

    /// [`MachineGate::acquire_many_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    pub async fn acquire_many_owned(self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        self.on_gate().acquire_many_owned(n).await
    }

    /// [`MachineGate::acquire_many_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_timeout`].
    pub async fn acquire_many_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        self.on_gate().acquire_many_timeout(n, timeout).await
    }

    /// [`MachineGate::acquire_many_owned_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`MachineGate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_timeout`].
    pub async fn acquire_many_owned_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.on_gate().acquire_many_owned_timeout(n, timeout).await
    }

    /// [`MachineGate::acquire_many_blocking`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_many_blocking(self, n: u32) -> Result<GateGuard<'a>, AcquireError> {
        self.on_gate().acquire_many_blocking(n)
    }

    /// [`MachineGate::acquire_many_owned_blocking`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_many_owned_blocking(self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        self.on_gate().acquire_many_owned_blocking(n)
    }

    /// [`MachineGate::acquire_many_blocking_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_many_blocking_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        self.on_gate().acquire_many_blocking_timeout(n, timeout)
    }

    /// [`MachineGate::acquire_many_owned_blocking_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// As [`MachineGate::acquire_blocking`].
    pub fn acquire_many_owned_blocking_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.on_gate()
            .acquire_many_owned_blocking_timeout(n, timeout)
    }

    /// [`MachineGate::try_acquire_many`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire_many`].
    pub fn try_acquire_many(self, n: u32) -> Result<GateGuard<'a>, TryAcquireError> {
        self.on_gate().try_acquire_many(n)
    }

    /// [`MachineGate::try_acquire_many_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire_many`].
    pub fn try_acquire_many_owned(self, n: u32) -> Result<OwnedGateGuard, TryAcquireError> {
        self.on_gate().try_acquire_many_owned(n)
    }
}
