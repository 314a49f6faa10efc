//! The variant matrix of [`Gate`]: `[try_]acquire[_many][_owned][_blocking][_timeout]`.
//!
//! Each method, on [`Gate`] and on its [`Labeled`] view, is one expression: a [`Request`], one
//! grant entry point of `grant.rs` (`grant_async!`, `grant_blocking`, `grant_try` and their
//! infallible forms, which fix the error type of the kind of call), and the guard. The gate's
//! methods do not go through the view: one more `async fn` layer between the caller and the
//! grant's fast path kept its poll out of line and cost the uncontended acquire about 15 ns
//! (`benches/gate_ratio.rs`).

use std::time::Duration;

use super::grant::{grant_async, grant_async_or_panic, untimed, Request};
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
        GateGuard::new(self, grant_async_or_panic!(self, Request::unlabeled(1)))
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
        let g = grant_async_or_panic!(self, Request::unlabeled(1));
        OwnedGateGuard::new(self.clone(), g)
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
        let g = grant_async!(self, Request::unlabeled(n), None);
        Ok(GateGuard::new(self, g.map_err(untimed)?))
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
        let g = grant_async!(self, Request::unlabeled(n), None);
        Ok(OwnedGateGuard::new(self.clone(), g.map_err(untimed)?))
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
        let g = grant_async!(self, Request::unlabeled(1), Some(timeout));
        Ok(GateGuard::new(self, g?))
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
        let g = grant_async!(self, Request::unlabeled(1), Some(timeout));
        Ok(OwnedGateGuard::new(self.clone(), g?))
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
        let g = grant_async!(self, Request::unlabeled(n), Some(timeout));
        Ok(GateGuard::new(self, g?))
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
        let g = grant_async!(self, Request::unlabeled(n), Some(timeout));
        Ok(OwnedGateGuard::new(self.clone(), g?))
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
    #[inline]
    pub fn acquire_blocking(&self) -> GateGuard<'_> {
        GateGuard::new(self, self.grant_blocking_or_panic(Request::unlabeled(1)))
    }

    /// [`Gate::acquire_blocking`] with an owned guard (e.g. to hand to another thread).
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    #[inline]
    pub fn acquire_owned_blocking(&self) -> OwnedGateGuard {
        let g = self.grant_blocking_or_panic(Request::unlabeled(1));
        OwnedGateGuard::new(self.clone(), g)
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
    #[inline]
    pub fn acquire_many_blocking(&self, n: u32) -> Result<GateGuard<'_>, AcquireError> {
        let g = self.grant_blocking(Request::unlabeled(n), None);
        Ok(GateGuard::new(self, g.map_err(untimed)?))
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
    #[inline]
    pub fn acquire_many_owned_blocking(&self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        let g = self.grant_blocking(Request::unlabeled(n), None);
        Ok(OwnedGateGuard::new(self.clone(), g.map_err(untimed)?))
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
    #[inline]
    pub fn acquire_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        let g = self.grant_blocking(Request::unlabeled(1), Some(timeout));
        Ok(GateGuard::new(self, g?))
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
    #[inline]
    pub fn acquire_owned_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let g = self.grant_blocking(Request::unlabeled(1), Some(timeout));
        Ok(OwnedGateGuard::new(self.clone(), g?))
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
    #[inline]
    pub fn acquire_many_blocking_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        let g = self.grant_blocking(Request::unlabeled(n), Some(timeout));
        Ok(GateGuard::new(self, g?))
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
    #[inline]
    pub fn acquire_many_owned_blocking_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let g = self.grant_blocking(Request::unlabeled(n), Some(timeout));
        Ok(OwnedGateGuard::new(self.clone(), g?))
    }

    // --- non-waiting ------------------------------------------------------------------------------

    /// Takes one unit if one is free and nobody is queued, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] naming the holders when the gate is busy;
    /// [`TryAcquireError::Machine`] if the machine-wide lock behind the gate fails.
    #[inline]
    pub fn try_acquire(&self) -> Result<GateGuard<'_>, TryAcquireError> {
        Ok(GateGuard::new(self, self.grant_try(Request::unlabeled(1))?))
    }

    /// [`Gate::try_acquire`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`].
    #[inline]
    pub fn try_acquire_owned(&self) -> Result<OwnedGateGuard, TryAcquireError> {
        Ok(OwnedGateGuard::new(
            self.clone(),
            self.grant_try(Request::unlabeled(1))?,
        ))
    }

    /// Takes `n` units if they are free and nobody is queued, without waiting.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`], and [`TryAcquireError::TooLarge`] if `n` exceeds the capacity.
    #[inline]
    pub fn try_acquire_many(&self, n: u32) -> Result<GateGuard<'_>, TryAcquireError> {
        Ok(GateGuard::new(self, self.grant_try(Request::unlabeled(n))?))
    }

    /// [`Gate::try_acquire_many`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire_many`].
    #[inline]
    pub fn try_acquire_many_owned(&self, n: u32) -> Result<OwnedGateGuard, TryAcquireError> {
        Ok(OwnedGateGuard::new(
            self.clone(),
            self.grant_try(Request::unlabeled(n))?,
        ))
    }
}

/// The [`Gate`] variant matrix with this view's label. Each method behaves exactly like the
/// [`Gate`] method of the same name: same errors, cancel safety and panics.
impl<'a> Labeled<'a, Gate> {
    /// Moves the label into the request (no clone: an owned label is not reallocated).
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
        GateGuard::new(gate, grant_async_or_panic!(gate, req))
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
        OwnedGateGuard::new(gate.clone(), grant_async_or_panic!(gate, req))
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
        let g = grant_async!(gate, req, None).map_err(untimed)?;
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
        let g = grant_async!(gate, req, None).map_err(untimed)?;
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
        let g = grant_async!(gate, req, Some(timeout))?;
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
        let g = grant_async!(gate, req, Some(timeout))?;
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
        let g = grant_async!(gate, req, Some(timeout))?;
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
        let g = grant_async!(gate, req, Some(timeout))?;
        Ok(OwnedGateGuard::new(gate.clone(), g))
    }

    /// [`Gate::acquire_blocking`] with this label.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    #[inline]
    pub fn acquire_blocking(self) -> GateGuard<'a> {
        let (gate, req) = self.request(1);
        GateGuard::new(gate, gate.grant_blocking_or_panic(req))
    }

    /// [`Gate::acquire_owned_blocking`] with this label.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
    pub fn try_acquire(self) -> Result<GateGuard<'a>, TryAcquireError> {
        let (gate, req) = self.request(1);
        Ok(GateGuard::new(gate, gate.grant_try(req)?))
    }

    /// [`Gate::try_acquire_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`].
    #[inline]
    pub fn try_acquire_owned(self) -> Result<OwnedGateGuard, TryAcquireError> {
        let (gate, req) = self.request(1);
        Ok(OwnedGateGuard::new(gate.clone(), gate.grant_try(req)?))
    }

    /// [`Gate::try_acquire_many`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire_many`].
    #[inline]
    pub fn try_acquire_many(self, n: u32) -> Result<GateGuard<'a>, TryAcquireError> {
        let (gate, req) = self.request(n);
        Ok(GateGuard::new(gate, gate.grant_try(req)?))
    }

    /// [`Gate::try_acquire_many_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire_many`].
    #[inline]
    pub fn try_acquire_many_owned(self, n: u32) -> Result<OwnedGateGuard, TryAcquireError> {
        let (gate, req) = self.request(n);
        Ok(OwnedGateGuard::new(gate.clone(), gate.grant_try(req)?))
    }
}
