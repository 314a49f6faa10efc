//! [`Gated<T>`]: a resource that can only be reached through a gate.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use crate::errors::{AcquireTimeoutError, TryAcquireError};
use crate::gate::{
    grant_async, grant_async_or_panic, Gate, GateGuard, Grant, Labeled, OwnedGateGuard, Request,
};
use crate::stats::Label;

/// A resource (a GPU stream, a device or command-queue handle) that can only be reached while
/// holding a gate: "operations on the shared stream require external synchronization", enforced
/// by the type system.
///
/// Locking takes the gate's whole capacity, so a `Gated<T>` may share a gate of any capacity with
/// other code (e.g. [`global("gpu")`](crate::global)): while its guard lives, nobody else holds the
/// gate, and the guard derefs to `&mut T`. The gate's FIFO order, timeouts, labels, stats and
/// panic handling all apply.
///
/// # Variant matrix
///
/// `[try_]lock[_owned][_blocking][_timeout]`: [`Gate`]'s names and error types with `lock` for
/// `acquire`, and no weighted forms (a lock always takes the whole capacity). The owned forms
/// take `self: Arc<Self>`, like `tokio::sync::Mutex::lock_owned`. Labels go through the
/// [`labeled`](Gated::labeled) view, as on every front.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// struct Stream { submitted: u32 }
/// let stream = racegate::Gated::new("gpu", Stream { submitted: 0 });
/// stream.lock().await.submitted += 1;
/// assert_eq!(stream.lock().await.submitted, 1);
/// # }
/// ```
pub struct Gated<T: ?Sized> {
    gate: Gate,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard holding the gate's whole capacity, i.e. by
// one holder at a time, exactly like `Mutex<T>`.
unsafe impl<T: ?Sized + Send> Send for Gated<T> {}
// SAFETY: as above; sharing `&Gated<T>` only lets threads queue for exclusive access.
unsafe impl<T: ?Sized + Send> Sync for Gated<T> {}

impl<T> Gated<T> {
    /// Puts `value` behind a new single-holder gate named `name`.
    pub fn new(name: impl Into<String>, value: T) -> Self {
        Gated::with_gate(Gate::new(name), value)
    }

    /// Puts `value` behind an existing gate (for example a [`global`](crate::global) one).
    pub fn with_gate(gate: Gate, value: T) -> Self {
        Gated {
            gate,
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the value back out.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Gated<T> {
    /// The gate that guards the value.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Mutable access without locking: `&mut self` proves nobody else can reach the value.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// A view whose locks carry `label` (shown in stats, errors and hold warnings); it has every
    /// borrowed `lock*` method. For the owned ones, label the `Arc`:
    /// `Labeled::new(&arc, Some(label.into())).lock_owned()`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let stream = racegate::Gated::new("gpu", 0u32);
    /// *stream.labeled("vision").lock().await += 1;
    /// assert_eq!(stream.gate().stats().labels[0].label, "vision");
    /// # }
    /// ```
    pub fn labeled(&self, label: impl Into<Label>) -> Labeled<'_, Gated<T>> {
        Labeled::new(self, Some(label.into()))
    }

    #[inline]
    fn unlabeled(&self) -> Labeled<'_, Gated<T>> {
        Labeled::new(self, None)
    }

    /// The old form of `gated.labeled(label).lock()`.
    #[deprecated(note = "use `gated.labeled(label).lock()`")]
    pub async fn lock_labeled(&self, label: impl Into<Label>) -> GatedGuard<'_, T> {
        self.labeled(label).lock().await
    }

    // --- borrowed ---------------------------------------------------------------------------------

    /// Waits for the whole gate and returns a guard that derefs to the value.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire`].
    pub async fn lock(&self) -> GatedGuard<'_, T> {
        self.unlabeled().lock().await
    }

    /// Waits at most `timeout` for the whole gate.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GatedGuard<'_, T>, AcquireTimeoutError> {
        self.unlabeled().lock_timeout(timeout).await
    }

    /// Blocks the current thread until the whole gate is granted.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`]: in an async context.
    pub fn lock_blocking(&self) -> GatedGuard<'_, T> {
        self.unlabeled().lock_blocking()
    }

    /// Blocks the current thread at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn lock_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GatedGuard<'_, T>, AcquireTimeoutError> {
        self.unlabeled().lock_blocking_timeout(timeout)
    }

    /// Locks without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] when the gate is held or has waiters.
    pub fn try_lock(&self) -> Result<GatedGuard<'_, T>, TryAcquireError> {
        self.unlabeled().try_lock()
    }

    // --- owned ------------------------------------------------------------------------------------

    /// Waits for the whole gate and returns a guard that owns an `Arc` of this `Gated`, so it can
    /// move into a spawned task (e.g. a streaming response).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// let queue = Arc::new(racegate::Gated::new("gpu", Vec::<u32>::new()));
    /// let mut guard = Arc::clone(&queue).lock_owned().await;
    /// tokio::spawn(async move { guard.push(7) }).await.unwrap();
    /// assert_eq!(*queue.lock().await, [7]);
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
    pub async fn lock_owned(self: Arc<Self>) -> OwnedGatedGuard<T> {
        Labeled::new(&self, None).lock_owned().await
    }

    /// [`Gated::lock_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn lock_owned_timeout(
        self: Arc<Self>,
        timeout: Duration,
    ) -> Result<OwnedGatedGuard<T>, AcquireTimeoutError> {
        Labeled::new(&self, None).lock_owned_timeout(timeout).await
    }

    /// [`Gated::lock_blocking`] with an owned guard (e.g. to hand to another thread).
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn lock_owned_blocking(self: Arc<Self>) -> OwnedGatedGuard<T> {
        Labeled::new(&self, None).lock_owned_blocking()
    }

    /// [`Gated::lock_blocking_timeout`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn lock_owned_blocking_timeout(
        self: Arc<Self>,
        timeout: Duration,
    ) -> Result<OwnedGatedGuard<T>, AcquireTimeoutError> {
        Labeled::new(&self, None).lock_owned_blocking_timeout(timeout)
    }

    /// [`Gated::try_lock`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gated::try_lock`].
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedGatedGuard<T>, TryAcquireError> {
        Labeled::new(&self, None).try_lock_owned()
    }
}

/// The borrowed [`Gated`] locks with this view's label; each behaves exactly like the
/// [`Gated`] method of the same name.
impl<'a, T: ?Sized> Labeled<'a, Gated<T>> {
    /// Every lock takes the whole gate.
    #[inline]
    fn request(self) -> (&'a Gated<T>, Request) {
        let gated = self.front;
        let req = Request {
            label: self.label,
            units: gated.gate.capacity(),
        };
        (gated, req)
    }

    /// [`Gated::lock`] with this label.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire`].
    pub async fn lock(self) -> GatedGuard<'a, T> {
        let (gated, req) = self.request();
        let grant = grant_async_or_panic!(&gated.gate, req);
        GatedGuard::new(GateGuard::new(&gated.gate, grant), gated)
    }

    /// [`Gated::lock_timeout`] with this label; the error names it too.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn lock_timeout(
        self,
        timeout: Duration,
    ) -> Result<GatedGuard<'a, T>, AcquireTimeoutError> {
        let (gated, req) = self.request();
        let grant = grant_async!(&gated.gate, req, Some(timeout))?;
        Ok(GatedGuard::new(GateGuard::new(&gated.gate, grant), gated))
    }

    /// [`Gated::lock_blocking`] with this label.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn lock_blocking(self) -> GatedGuard<'a, T> {
        let (gated, req) = self.request();
        let grant = gated.gate.grant_blocking_or_panic(req);
        GatedGuard::new(GateGuard::new(&gated.gate, grant), gated)
    }

    /// [`Gated::lock_blocking_timeout`] with this label; the error names it too.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn lock_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<GatedGuard<'a, T>, AcquireTimeoutError> {
        let (gated, req) = self.request();
        let grant = gated.gate.grant_blocking(req, Some(timeout))?;
        Ok(GatedGuard::new(GateGuard::new(&gated.gate, grant), gated))
    }

    /// [`Gated::try_lock`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gated::try_lock`].
    pub fn try_lock(self) -> Result<GatedGuard<'a, T>, TryAcquireError> {
        let (gated, req) = self.request();
        let grant = gated.gate.grant_try(req)?;
        Ok(GatedGuard::new(GateGuard::new(&gated.gate, grant), gated))
    }
}

/// The owned [`Gated`] locks with this view's label; each behaves exactly like the [`Gated`]
/// method of the same name. Made by `Labeled::new(&arc, Some(label.into()))`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use racegate::{Gated, Labeled};
/// let queue = Arc::new(Gated::new("gpu", Vec::<u32>::new()));
/// let mut guard = Labeled::new(&queue, Some("stream".into())).lock_owned().await;
/// tokio::spawn(async move { guard.push(7) }).await.unwrap();
/// assert_eq!(queue.gate().stats().labels[0].label, "stream");
/// # }
/// ```
impl<'a, T: ?Sized> Labeled<'a, Arc<Gated<T>>> {
    #[inline]
    fn request(self) -> (Arc<Gated<T>>, Request) {
        let gated = Arc::clone(self.front);
        let req = Request {
            label: self.label,
            units: gated.gate.capacity(),
        };
        (gated, req)
    }

    /// [`Gated::lock_owned`] with this label.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire`].
    pub async fn lock_owned(self) -> OwnedGatedGuard<T> {
        let (gated, req) = self.request();
        let grant = grant_async_or_panic!(&gated.gate, req);
        OwnedGatedGuard::new(grant, gated)
    }

    /// [`Gated::lock_owned_timeout`] with this label; the error names it too.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn lock_owned_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGatedGuard<T>, AcquireTimeoutError> {
        let (gated, req) = self.request();
        let grant = grant_async!(&gated.gate, req, Some(timeout))?;
        Ok(OwnedGatedGuard::new(grant, gated))
    }

    /// [`Gated::lock_owned_blocking`] with this label.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn lock_owned_blocking(self) -> OwnedGatedGuard<T> {
        let (gated, req) = self.request();
        let grant = gated.gate.grant_blocking_or_panic(req);
        OwnedGatedGuard::new(grant, gated)
    }

    /// [`Gated::lock_owned_blocking_timeout`] with this label; the error names it too.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn lock_owned_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGatedGuard<T>, AcquireTimeoutError> {
        let (gated, req) = self.request();
        let grant = gated.gate.grant_blocking(req, Some(timeout))?;
        Ok(OwnedGatedGuard::new(grant, gated))
    }

    /// [`Gated::try_lock_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gated::try_lock`].
    pub fn try_lock_owned(self) -> Result<OwnedGatedGuard<T>, TryAcquireError> {
        let (gated, req) = self.request();
        let grant = gated.gate.grant_try(req)?;
        Ok(OwnedGatedGuard::new(grant, gated))
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Gated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gated")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

/// Exclusive access to the value of a [`Gated`]; releases the gate when dropped.
///
/// Like `MutexGuard`, it is `Send` when `T: Send` and `Sync` only when `T` is also `Sync`:
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<racegate::GatedGuard<'static, std::cell::Cell<u8>>>();
/// ```
///
/// A value that must stay on one thread cannot be gated for others at all:
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<racegate::Gated<std::rc::Rc<u8>>>();
/// ```
///
/// And a guard cannot outlive its `Gated`:
///
/// ```compile_fail
/// # async fn f() {
/// let gated = racegate::Gated::new("gpu", 0u8);
/// let guard = gated.lock().await;
/// drop(gated);
/// drop(guard);
/// # }
/// ```
#[must_use = "the gate is released as soon as the guard is dropped"]
pub struct GatedGuard<'a, T: ?Sized> {
    _guard: GateGuard<'a>,
    gated: &'a Gated<T>,
    // `&Gated<T>` is Sync for any `T: Send`; the guard hands out `&T`, so it must also need `T: Sync`.
    _not_sync_unless_t_is: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> GatedGuard<'a, T> {
    fn new(guard: GateGuard<'a>, gated: &'a Gated<T>) -> Self {
        GatedGuard {
            _guard: guard,
            gated,
            _not_sync_unless_t_is: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for GatedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the gate's whole capacity: no other guard exists.
        unsafe { &*self.gated.value.get() }
    }
}

impl<T: ?Sized> DerefMut for GatedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only live reference.
        unsafe { &mut *self.gated.value.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for GatedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Owned exclusive access to the value of an `Arc<Gated<T>>`: `Send + 'static` when `T: Send`.
#[must_use = "the gate is released as soon as the guard is dropped"]
pub struct OwnedGatedGuard<T: ?Sized> {
    // Field order: the gate is released before the `Arc` (and possibly the value) is dropped.
    _guard: OwnedGateGuard,
    gated: Arc<Gated<T>>,
    _not_sync_unless_t_is: PhantomData<T>,
}

impl<T: ?Sized> OwnedGatedGuard<T> {
    fn new(grant: Grant, gated: Arc<Gated<T>>) -> Self {
        OwnedGatedGuard {
            _guard: OwnedGateGuard::new(gated.gate.clone(), grant),
            gated,
            _not_sync_unless_t_is: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for OwnedGatedGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the gate's whole capacity: no other guard exists.
        unsafe { &*self.gated.value.get() }
    }
}

impl<T: ?Sized> DerefMut for OwnedGatedGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only live reference.
        unsafe { &mut *self.gated.value.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OwnedGatedGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
