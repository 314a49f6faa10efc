//! The variant matrix of [`Gate`]: `[try_]acquire[_many][_owned][_blocking][_timeout]`.
//!
//! The documented methods on [`Gate`] go through its unlabeled [`Labeled`] view, where each is
//! implemented once, in three lines: a [`Request`], one grant entry point of `grant.rs` (which
//! fixes the error type of the kind of call), and the guard.

use std::time::Duration;

use super::grant::{untimed, Request};
use super::{Gate, GateGuard, Labeled, OwnedGateGuard};
use crate::errors::{AcquireError, AcquireTimeoutError, TryAcquireError};

impl Gate {
    // --- async ------------------------------------------------------------------------------------

    /// Waits for one unit.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it completes leaves the queue as if the caller had
    /// never asked, and a unit it was about to receive goes to the next waiter.
    ///
    /// # Panics
    ///
    /// Only for the in-process face of a machine-wide gate
    /// ([`configure_machine_wide`](crate::configure_machine_wide)), if its lock directory fails;
    /// [`MachineGate::acquire`](crate::MachineGate::acquire) returns that error instead.
    pub async fn acquire(&self) -> GateGuard<'_> {
        self.unlabeled().acquire().await
    }

    /// Waits for one unit and returns a guard that owns its handle on the gate (`Send +
    /// 'static`), so it can move into a spawned task: a streaming response keeps the gate until
    /// the stream ends.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let gate = racegate::Gate::new("gpu");
    /// let guard = gate.acquire_owned().await;
    /// let stream = tokio::spawn(async move {
    ///     // ... produce tokens on the GPU ...
    ///     drop(guard); // released when the stream ends, not when the handler returned
    /// });
    /// stream.await.unwrap();
    /// assert_eq!(gate.available(), 1);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire`].
    pub async fn acquire_owned(&self) -> OwnedGateGuard {
        self.unlabeled().acquire_owned().await
    }

    /// Waits for `n` units (e.g. MiB of a VRAM budget), in FIFO order: see the type's docs on
    /// what a large request at the head of the queue does to smaller ones. `n = 0` is granted
    /// at once, even past a queue, and holds nothing.
    ///
    /// # Errors
    ///
    /// [`AcquireError::TooLarge`] at once if `n` exceeds the capacity; [`AcquireError::Machine`]
    /// if the machine-wide lock behind the gate fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: units partly assigned to a dropped request are returned to the queue.
    pub async fn acquire_many(&self, n: u32) -> Result<GateGuard<'_>, AcquireError> {
        self.unlabeled().acquire_many(n).await
    }

    /// [`Gate::acquire_many`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_many`].
    pub async fn acquire_many_owned(&self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        self.unlabeled().acquire_many_owned(n).await
    }

    // --- async, bounded ---------------------------------------------------------------------------

    /// Waits at most `timeout` for one unit.
    ///
    /// # Errors
    ///
    /// [`AcquireTimeoutError::TimedOut`] naming the current holders, how long they held, and how
    /// long the caller waited; [`AcquireTimeoutError::Machine`] if the machine-wide lock behind
    /// the gate fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`]; a timed-out caller leaves the queue.
    ///
    /// # Panics
    ///
    /// If it has to wait outside a Tokio runtime with the time driver enabled (as
    /// [`tokio::time::timeout`]).
    pub async fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.unlabeled().acquire_timeout(timeout).await
    }

    /// [`Gate::acquire_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_owned_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.unlabeled().acquire_owned_timeout(timeout).await
    }

    /// Waits at most `timeout` for `n` units.
    ///
    /// # Errors
    ///
    /// [`AcquireTimeoutError::TimedOut`] naming the holders; [`AcquireTimeoutError::TooLarge`] at
    /// once if `n` exceeds the capacity; [`AcquireTimeoutError::Machine`] if the machine-wide lock
    /// behind the gate fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_many_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.unlabeled().acquire_many_timeout(n, timeout).await
    }

    /// [`Gate::acquire_many_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_many_owned_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.unlabeled()
            .acquire_many_owned_timeout(n, timeout)
            .await
    }

    // --- blocking ---------------------------------------------------------------------------------

    /// Blocks the current thread until one unit is granted: for synchronous, FFI-heavy threads.
    /// Blocked threads and async tasks share one FIFO queue, so mixing them cannot deadlock.
    ///
    /// # Panics
    ///
    /// When called from an async context (a thread driving a Tokio runtime), like Tokio's
    /// `Mutex::blocking_lock`: blocking there could starve the very task that would release the
    /// gate. Use [`Gate::acquire`] there, or call this inside `tokio::task::spawn_blocking`.
    /// Also as [`Gate::acquire`], for the in-process face of a machine-wide gate.
    pub fn acquire_blocking(&self) -> GateGuard<'_> {
        self.unlabeled().acquire_blocking()
    }

    /// [`Gate::acquire_blocking`] with an owned guard (e.g. to hand to another thread).
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_owned_blocking(&self) -> OwnedGateGuard {
        self.unlabeled().acquire_owned_blocking()
    }

    /// Blocks the current thread until `n` units are granted.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_many_blocking(&self, n: u32) -> Result<GateGuard<'_>, AcquireError> {
        self.unlabeled().acquire_many_blocking(n)
    }

    /// [`Gate::acquire_many_blocking`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_many_owned_blocking(&self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        self.unlabeled().acquire_many_owned_blocking(n)
    }

    // --- blocking, bounded ------------------------------------------------------------------------

    /// Blocks the current thread at most `timeout` for one unit; a timed-out caller leaves the
    /// queue.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.unlabeled().acquire_blocking_timeout(timeout)
    }

    /// [`Gate::acquire_blocking_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_owned_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.unlabeled().acquire_owned_blocking_timeout(timeout)
    }

    /// Blocks the current thread at most `timeout` for `n` units.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_many_blocking_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.unlabeled().acquire_many_blocking_timeout(n, timeout)
    }

    /// [`Gate::acquire_many_blocking_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_many_owned_blocking_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        self.unlabeled()
            .acquire_many_owned_blocking_timeout(n, timeout)
    }

    // --- non-waiting ------------------------------------------------------------------------------

    /// Takes one unit if one is free and nobody is queued, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] naming the holders when the gate is busy;
    /// [`TryAcquireError::Machine`] if the machine-wide lock behind the gate fails.
    pub fn try_acquire(&self) -> Result<GateGuard<'_>, TryAcquireError> {
        self.unlabeled().try_acquire()
    }

    /// [`Gate::try_acquire`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`].
    pub fn try_acquire_owned(&self) -> Result<OwnedGateGuard, TryAcquireError> {
        self.unlabeled().try_acquire_owned()
    }

    /// Takes `n` units if they are free and nobody is queued, without waiting.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`], and [`TryAcquireError::TooLarge`] if `n` exceeds the capacity.
    pub fn try_acquire_many(&self, n: u32) -> Result<GateGuard<'_>, TryAcquireError> {
        self.unlabeled().try_acquire_many(n)
    }

    /// [`Gate::try_acquire_many`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire_many`].
    pub fn try_acquire_many_owned(&self, n: u32) -> Result<OwnedGateGuard, TryAcquireError> {
        self.unlabeled().try_acquire_many_owned(n)
    }
}

/// The [`Gate`] variant matrix with this view's label. Each method behaves exactly like the
/// [`Gate`] method of the same name: same errors, cancel safety and panics.
impl<'a> Labeled<'a, Gate> {
    /// Moves the label into the request (no clone: an owned label is not reallocated).
    #[inline]
    fn request(self, units: u32) -> (&'a Gate, Request) {
        let req = Request {
            label: self.label,
            units,
        };
        (self.front, req)
    }

    /// [`Gate::acquire`] with this label.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire`].
    pub async fn acquire(self) -> GateGuard<'a> {
        let (gate, req) = self.request(1);
        GateGuard::new(gate, gate.grant_async_or_panic(req).await)
    }

    /// [`Gate::acquire_owned`] with this label.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire`].
    pub async fn acquire_owned(self) -> OwnedGateGuard {
        let (gate, req) = self.request(1);
        OwnedGateGuard::new(gate.clone(), gate.grant_async_or_panic(req).await)
    }

    /// [`Gate::acquire_many`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_many`].
    pub async fn acquire_many(self, n: u32) -> Result<GateGuard<'a>, AcquireError> {
        let (gate, req) = self.request(n);
        let g = gate.grant_async(req, None).await.map_err(untimed)?;
        Ok(GateGuard::new(gate, g))
    }

    /// [`Gate::acquire_many_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_many`].
    pub async fn acquire_many_owned(self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        let (gate, req) = self.request(n);
        let g = gate.grant_async(req, None).await.map_err(untimed)?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
    }

    /// [`Gate::acquire_timeout`] with this label; the error names it too.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_timeout(
        self,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        let (gate, req) = self.request(1);
        let g = gate.grant_async(req, Some(timeout)).await?;
        Ok(GateGuard::new(gate, g))
    }

    /// [`Gate::acquire_owned_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_owned_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let (gate, req) = self.request(1);
        let g = gate.grant_async(req, Some(timeout)).await?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
    }

    /// [`Gate::acquire_many_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_many_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        let (gate, req) = self.request(n);
        let g = gate.grant_async(req, Some(timeout)).await?;
        Ok(GateGuard::new(gate, g))
    }

    /// [`Gate::acquire_many_owned_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_many_owned_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let (gate, req) = self.request(n);
        let g = gate.grant_async(req, Some(timeout)).await?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
    }

    /// [`Gate::acquire_blocking`] with this label.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_blocking(self) -> GateGuard<'a> {
        let (gate, req) = self.request(1);
        GateGuard::new(gate, gate.grant_blocking_or_panic(req))
    }

    /// [`Gate::acquire_owned_blocking`] with this label.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_owned_blocking(self) -> OwnedGateGuard {
        let (gate, req) = self.request(1);
        OwnedGateGuard::new(gate.clone(), gate.grant_blocking_or_panic(req))
    }

    /// [`Gate::acquire_many_blocking`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_many_blocking(self, n: u32) -> Result<GateGuard<'a>, AcquireError> {
        let (gate, req) = self.request(n);
        let g = gate.grant_blocking(req, None).map_err(untimed)?;
        Ok(GateGuard::new(gate, g))
    }

    /// [`Gate::acquire_many_owned_blocking`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_many_owned_blocking(self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        let (gate, req) = self.request(n);
        let g = gate.grant_blocking(req, None).map_err(untimed)?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
    }

    /// [`Gate::acquire_blocking_timeout`] with this label; the error names it too.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        let (gate, req) = self.request(1);
        let g = gate.grant_blocking(req, Some(timeout))?;
        Ok(GateGuard::new(gate, g))
    }

    /// [`Gate::acquire_owned_blocking_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_owned_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let (gate, req) = self.request(1);
        let g = gate.grant_blocking(req, Some(timeout))?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
    }

    /// [`Gate::acquire_many_blocking_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_many_blocking_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        let (gate, req) = self.request(n);
        let g = gate.grant_blocking(req, Some(timeout))?;
        Ok(GateGuard::new(gate, g))
    }

    /// [`Gate::acquire_many_owned_blocking_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// When called from an async context, as [`Gate::acquire_blocking`].
    pub fn acquire_many_owned_blocking_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let (gate, req) = self.request(n);
        let g = gate.grant_blocking(req, Some(timeout))?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
    }

    /// [`Gate::try_acquire`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`].
    pub fn try_acquire(self) -> Result<GateGuard<'a>, TryAcquireError> {
        let (gate, req) = self.request(1);
        Ok(GateGuard::new(gate, gate.grant_try(req)?))
    }

    /// [`Gate::try_acquire_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`].
    pub fn try_acquire_owned(self) -> Result<OwnedGateGuard, TryAcquireError> {
        let (gate, req) = self.request(1);
        Ok(OwnedGateGuard::new(gate.clone(), gate.grant_try(req)?))
    }

    /// [`Gate::try_acquire_many`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire_many`].
    pub fn try_acquire_many(self, n: u32) -> Result<GateGuard<'a>, TryAcquireError> {
        let (gate, req) = self.request(n);
        Ok(GateGuard::new(gate, gate.grant_try(req)?))
    }

    /// [`Gate::try_acquire_many_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire_many`].
    pub fn try_acquire_many_owned(self, n: u32) -> Result<OwnedGateGuard, TryAcquireError> {
        let (gate, req) = self.request(n);
        Ok(OwnedGateGuard::new(gate.clone(), gate.grant_try(req)?))
    }
}
