//! The variant matrix of [`MachineGate`]: [`Gate`]'s names and error types, with fallible
//! untimed calls (the lock directory can fail under any call).
//!
//! As for [`Gate`], the documented methods go through the unlabeled [`Labeled`] view, where each
//! is implemented once.

use std::time::Duration;

use super::MachineGate;
use crate::errors::{AcquireError, AcquireTimeoutError, TryAcquireError};
use crate::gate::{grant_async, untimed, Gate, GateGuard, Labeled, OwnedGateGuard, Request};

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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
    pub fn try_acquire(&self) -> Result<GateGuard<'_>, TryAcquireError> {
        self.unlabeled().try_acquire()
    }

    /// [`MachineGate::try_acquire`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire`].
    #[inline]
    pub fn try_acquire_owned(&self) -> Result<OwnedGateGuard, TryAcquireError> {
        self.unlabeled().try_acquire_owned()
    }
}

/// The [`MachineGate`] variant matrix with this view's label. Each method behaves exactly like
/// the [`MachineGate`] method of the same name: same errors, cancel safety and panics.
impl<'a> Labeled<'a, MachineGate> {
    #[inline]
    fn request(self) -> (&'a Gate, Request) {
        let req = Request {
            label: self.label,
            units: 1,
        };
        (&self.front.gate, req)
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
    #[inline]
    pub async fn acquire(self) -> Result<GateGuard<'a>, AcquireError> {
        let (gate, req) = self.request();
        let g = grant_async!(gate, req, None).map_err(untimed)?;
        Ok(GateGuard::new(gate, g))
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
    #[inline]
    pub async fn acquire_owned(self) -> Result<OwnedGateGuard, AcquireError> {
        let (gate, req) = self.request();
        let g = grant_async!(gate, req, None).map_err(untimed)?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
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
    #[inline]
    pub async fn acquire_timeout(
        self,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        let (gate, req) = self.request();
        let g = grant_async!(gate, req, Some(timeout))?;
        Ok(GateGuard::new(gate, g))
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
    #[inline]
    pub async fn acquire_owned_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let (gate, req) = self.request();
        let g = grant_async!(gate, req, Some(timeout))?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
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
    #[inline]
    pub fn acquire_blocking(self) -> Result<GateGuard<'a>, AcquireError> {
        let (gate, req) = self.request();
        let g = gate.grant_blocking(req, None).map_err(untimed)?;
        Ok(GateGuard::new(gate, g))
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
    #[inline]
    pub fn acquire_owned_blocking(self) -> Result<OwnedGateGuard, AcquireError> {
        let (gate, req) = self.request();
        let g = gate.grant_blocking(req, None).map_err(untimed)?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
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
    #[inline]
    pub fn acquire_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        let (gate, req) = self.request();
        let g = gate.grant_blocking(req, Some(timeout))?;
        Ok(GateGuard::new(gate, g))
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
    #[inline]
    pub fn acquire_owned_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let (gate, req) = self.request();
        let g = gate.grant_blocking(req, Some(timeout))?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
    }

    /// [`MachineGate::try_acquire`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire`].
    #[inline]
    pub fn try_acquire(self) -> Result<GateGuard<'a>, TryAcquireError> {
        let (gate, req) = self.request();
        Ok(GateGuard::new(gate, gate.grant_try(req)?))
    }

    /// [`MachineGate::try_acquire_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`MachineGate::try_acquire`].
    #[inline]
    pub fn try_acquire_owned(self) -> Result<OwnedGateGuard, TryAcquireError> {
        let (gate, req) = self.request();
        Ok(OwnedGateGuard::new(gate.clone(), gate.grant_try(req)?))
    }
}
