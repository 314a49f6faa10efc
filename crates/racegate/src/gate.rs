//! [`Gate`]: the lock that all GPU work passes through, and its guards.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::errors::{
    AcquireError, AcquireTimeoutError, ConfigError, HolderInfo, MachineError, TimedAcquireError,
    TooLargeError, TryAcquireError,
};
use crate::stats::{GateStats, Label, Stamp, Stats, StatsClock, Ticket};

// ---------------------------------------------------------------------------------------------
// The machine-wide seam.
//
// A `Gate` may carry a `Backend`: a second, machine-wide lock (e.g. an OS file lock) taken by
// whoever already holds the in-process permits. Threads of one process therefore queue fairly on
// the in-process semaphore first, and only the winner(s) contend with other processes. Every
// acquisition path (async, owned, blocking, try, timeout, weighted) goes through `Inner::grant`
// (or `Inner::try_grant` for the non-waiting path; a gate without a backend first tries
// `Inner::grant_now`, the synchronous uncontended fast path with the same steps 1 and 3), which:
//   1. takes the semaphore permit(s),
//   2. asks the backend, if any, for its lock with the remaining time budget (async callers run
//      the blocking backend call on tokio's blocking pool, so the runtime is never blocked),
//   3. records stats (the wait includes the backend's wait) and builds the `Grant` that both
//      guard types wrap; dropping the guard releases the backend lock, then the permits.
// A future dropped during step 1 or 2 releases whatever it took (the permit is still a
// `SemaphorePermit` until the guard exists, and a backend result that arrives after its caller
// left is dropped on the blocking pool).
//
// The infallible public methods (`acquire`, `acquire_owned`, `acquire_blocking`, ...) cannot report
// a backend I/O error: they panic with a clear message instead (documented under `# Panics`).
// A machine-wide front type should expose the fallible `pub(crate)` entry points
// (`Gate::grant_async`, `Gate::grant_blocking`, `Gate::grant_try`) instead.
// ---------------------------------------------------------------------------------------------

/// What a backend hands back: dropping it releases the machine-wide lock.
pub(crate) type MachineHold = Box<dyn Any + Send + Sync>;

/// Why a backend did not grant its lock.
#[derive(Debug)]
#[allow(dead_code)] // constructed by the machine-wide backend
pub(crate) enum BackendError {
    /// The time budget ran out (or was zero, for `try_*`); `holders` are the machine-wide holders
    /// the backend knows of.
    Timeout { holders: Vec<HolderInfo> },
    /// The lock could not be taken at all.
    Io(std::io::Error),
}

/// A machine-wide lock behind a gate (see the seam comment above).
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Takes the machine-wide lock for `weight` permits, blocking at most `timeout` (`None`: no
    /// limit, `Some(ZERO)`: do not wait). Called only by a caller that holds the in-process
    /// permits, from a thread where blocking is allowed.
    fn lock(
        &self,
        gate: &str,
        label: Option<&str>,
        weight: u32,
        timeout: Option<Duration>,
    ) -> Result<MachineHold, BackendError>;
}

/// Internal failure of a grant, mapped to the public error types by each entry point.
#[derive(Debug)]
pub(crate) enum GrantError {
    TooLarge(TooLargeError),
    Machine(MachineError),
    /// The backend ran out of time; holders are the backend's.
    MachineTimeout(Vec<HolderInfo>),
}

/// Configuration of one gate.
///
/// ```
/// use std::time::Duration;
/// let config = racegate::GateConfig::default()
///     .with_capacity(2)
///     .with_hold_warning(Duration::from_millis(500));
/// let gate = racegate::Gate::with_config("gpu", config).unwrap();
/// assert_eq!(gate.capacity(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GateConfig {
    /// Total permits (lanes, or units of a weighted budget). Default 1.
    pub capacity: u32,
    /// Whether to keep histograms, per-label figures and the holder list. Default on. Off, the
    /// gate is a bare fair semaphore: timeout errors cannot name holders and there are no hold
    /// warnings. The stats' clock (a calibrated CPU counter, via `quanta`) is calibrated once per
    /// process, when the first gate with stats is built: about 0.6 ms of that thread.
    pub stats: bool,
    /// Emit a `tracing` warning, naming the label and duration, when a holder passes this
    /// threshold (once, while it still holds: a stuck holder is reported too) and again when it
    /// releases after holding longer. Default none. Needs stats. A gate with a hold warning runs
    /// one small watchdog thread.
    pub hold_warning: Option<Duration>,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            capacity: 1,
            stats: true,
            hold_warning: None,
        }
    }
}

impl GateConfig {
    /// Sets the capacity.
    pub fn with_capacity(mut self, permits: u32) -> Self {
        self.capacity = permits;
        self
    }

    /// Turns bookkeeping on or off.
    pub fn with_stats(mut self, on: bool) -> Self {
        self.stats = on;
        self
    }

    /// Sets the hold-too-long threshold.
    pub fn with_hold_warning(mut self, threshold: Duration) -> Self {
        self.hold_warning = Some(threshold);
        self
    }

    pub(crate) fn validate(&self, gate: &str) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::ZeroCapacity { gate: gate.into() });
        }
        if self.capacity as u64 > Semaphore::MAX_PERMITS as u64 {
            return Err(ConfigError::CapacityTooLarge {
                gate: gate.into(),
                requested: self.capacity.into(),
                max: Semaphore::MAX_PERMITS as u64,
            });
        }
        Ok(())
    }
}

impl fmt::Display for GateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capacity `{}`, stats `{}`",
            self.capacity,
            if self.stats { "on" } else { "off" }
        )?;
        if let Some(w) = self.hold_warning {
            write!(f, ", hold warning `{w:?}`")?;
        }
        Ok(())
    }
}

/// A fair, timeout-bounded, observable gate: the one lock that all GPU work passes through.
///
/// A gate has a fixed number of permits (its *capacity*; one by default). Each acquisition takes
/// one permit (a *lane*) or, with the `*_many` methods, a weight of permits (e.g. MiB of a VRAM
/// budget), and the returned guard gives them back when dropped — also when the holder panics
/// (counted in [`GateStats::panics_while_held`]; the gate is never poisoned).
///
/// `Gate` is a cheap handle: clones share one gate. Use [`global`](crate::global) for the same
/// gate from anywhere in a program.
///
/// # Fairness
///
/// Waiters are served strictly first-in, first-out, whether they wait in async tasks or blocked OS
/// threads (both queue on one [`tokio::sync::Semaphore`]). A new caller never overtakes a queued
/// one, not even `try_acquire`, which fails while anyone is queued. A consequence of strict FIFO
/// with weighted requests: a large request at the head of the queue holds back every smaller
/// request behind it until enough permits are free for it, even if the smaller ones would fit
/// now. This prevents starvation of large requests at the price of some idle capacity.
///
/// # Timeouts
///
/// Nothing waits forever unless the caller asks for it: `acquire_timeout` and
/// `acquire_blocking_timeout` bound the wait and their error names the current holders (label,
/// held for how long) and how long the caller waited. A weighted request larger than the capacity
/// fails at once instead of waiting forever.
///
/// # Cost
///
/// An uncontended acquire+release costs about what a `tokio::sync::Mutex` lock+unlock does
/// (1.1× in `BENCHMARKS.md`), plus about 30 ns for the stats (two TSC clock reads, one short
/// lock round trip at the grant, HDR histogram records; the release publishes its hold without
/// the lock); [`GateConfig::stats`] turns them off for gates taken millions of times a second.
/// The uncontended path takes a free permit synchronously, so, like `std::sync::Mutex`
/// and unlike `tokio::sync::Mutex`, it does not spend Tokio's cooperative-scheduling budget.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let gate = racegate::Gate::new("gpu");
/// {
///     let _guard = gate.labeled("vision").acquire().await;
///     // ... dispatch GPU work ...
///     let err = gate.acquire_timeout(Duration::from_millis(10)).await.unwrap_err();
///     assert!(err.to_string().contains("`vision`"));
/// }
/// assert_eq!(gate.stats().acquisitions, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    name: Box<str>,
    config: GateConfig,
    sem: Semaphore,
    stats: Stats,
    /// The stats' clock; `None` when stats are off (its one-time calibration is then skipped).
    clock: Option<StatsClock>,
    waiters: AtomicUsize,
    timeouts: AtomicU64,
    panics: AtomicU64,
    backend: Option<Arc<dyn Backend>>,
}

/// What both guard types hold: permits, the holder's stats ticket, the machine-wide lock.
pub(crate) struct Grant {
    weight: u32,
    /// `None` when stats are off.
    ticket: Option<Ticket>,
    machine: Option<MachineHold>,
}

/// One request: how many permits, under which label.
pub(crate) struct Request {
    pub(crate) label: Option<Label>,
    pub(crate) weight: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Awaited in an async task: the blocking backend call goes to tokio's blocking pool.
    Async,
    /// Driven by `block_on` on a thread that may block.
    Blocking,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("available", &self.available_permits())
            .field("machine_wide", &self.inner.backend.is_some())
            .finish()
    }
}

impl Gate {
    /// A gate with one holder at a time.
    pub fn new(name: impl Into<String>) -> Gate {
        Gate::with_capacity(name, 1)
    }

    /// A gate with `permits` lanes (or a weighted budget of `permits` units).
    ///
    /// # Panics
    ///
    /// If `permits` is zero or above [`Semaphore::MAX_PERMITS`]; use
    /// [`Gate::with_config`] to get an error instead.
    pub fn with_capacity(name: impl Into<String>, permits: u32) -> Gate {
        match Gate::with_config(name, GateConfig::default().with_capacity(permits)) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// A gate with a full configuration.
    pub fn with_config(name: impl Into<String>, config: GateConfig) -> Result<Gate, ConfigError> {
        Gate::build(name.into(), config, None)
    }

    #[allow(dead_code)] // used by the machine-wide front type
    pub(crate) fn with_backend(
        name: impl Into<String>,
        config: GateConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<Gate, ConfigError> {
        Gate::build(name.into(), config, Some(backend))
    }

    fn build(
        name: String,
        config: GateConfig,
        backend: Option<Arc<dyn Backend>>,
    ) -> Result<Gate, ConfigError> {
        config.validate(&name)?;
        let watch = match config.hold_warning {
            Some(threshold) if config.stats => Some(threshold),
            _ => None,
        };
        let inner = Arc::new(Inner {
            name: name.into_boxed_str(),
            sem: Semaphore::new(config.capacity as usize),
            clock: config.stats.then(StatsClock::get),
            stats: if config.stats {
                Stats::new(config.capacity)
            } else {
                Stats::disabled()
            },
            config,
            waiters: AtomicUsize::new(0),
            timeouts: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            backend,
        });
        if let Some(threshold) = watch {
            spawn_hold_watchdog(Arc::downgrade(&inner), threshold);
        }
        Ok(Gate { inner })
    }

    /// The gate's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Total permits.
    pub fn capacity(&self) -> u32 {
        self.inner.config.capacity
    }

    /// The configuration the gate was built with.
    pub fn config(&self) -> &GateConfig {
        &self.inner.config
    }

    /// Permits free right now (a snapshot; it may change at once).
    pub fn available_permits(&self) -> u32 {
        self.inner.sem.available_permits() as u32
    }

    /// Whether two handles refer to the same gate.
    pub fn same_gate(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A view of this gate whose acquisitions carry `label` (shown in stats, errors and hold
    /// warnings).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let gate = racegate::Gate::new("gpu");
    /// let guard = gate.labeled("text").acquire().await;
    /// assert_eq!(gate.stats().holders[0].label.as_deref(), Some("text"));
    /// # drop(guard); }
    /// ```
    pub fn labeled(&self, label: impl Into<Label>) -> Labeled<'_> {
        Labeled {
            gate: self,
            label: label.into(),
        }
    }

    /// A snapshot of the gate's figures.
    pub fn stats(&self) -> GateStats {
        let inner = &self.inner;
        let mut s = GateStats {
            name: inner.name.to_string(),
            capacity: inner.config.capacity,
            available: inner.sem.available_permits() as u32,
            enabled: inner.config.stats,
            acquisitions: 0,
            timeouts: inner.timeouts.load(Ordering::Relaxed),
            panics_while_held: inner.panics.load(Ordering::Relaxed),
            waiters: inner.waiters.load(Ordering::Relaxed),
            holders: Vec::new(),
            wait: Default::default(),
            hold: Default::default(),
            labels: Vec::new(),
        };
        if let Some(now) = inner.stamp() {
            inner.stats.fill(&mut s, now);
        }
        s
    }

    fn req(&self, weight: u32) -> Request {
        Request {
            label: None,
            weight,
        }
    }

    /// Waits for one permit.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it completes leaves the queue as if the caller had
    /// never asked, and a permit it was about to receive goes to the next waiter.
    ///
    /// # Panics
    ///
    /// Only for a machine-wide gate, if its lock fails with an I/O error.
    pub async fn acquire(&self) -> GateGuard<'_> {
        self.acquire_req(self.req(1)).await
    }

    /// Waits for one permit and returns a guard that owns its handle on the gate (`Send +
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
    /// assert_eq!(gate.available_permits(), 1);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`].
    ///
    /// # Panics
    ///
    /// Only for a machine-wide gate, if its lock fails with an I/O error.
    pub async fn acquire_owned(&self) -> OwnedGateGuard {
        self.acquire_owned_req(self.req(1)).await
    }

    /// Waits for `n` permits (e.g. MiB of a VRAM budget), in FIFO order: see the type's docs on
    /// what a large request at the head of the queue does to smaller ones. `n = 0` is granted
    /// at once, even past a queue, and holds nothing.
    ///
    /// # Errors
    ///
    /// [`AcquireError::TooLarge`] at once if `n` exceeds the capacity; [`AcquireError::Machine`]
    /// if a machine-wide lock fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: permits partly assigned to a dropped request are returned to the queue.
    pub async fn acquire_many(&self, n: u32) -> Result<GateGuard<'_>, AcquireError> {
        self.acquire_many_req(self.req(n)).await
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
        self.acquire_many_owned_req(self.req(n)).await
    }

    /// Waits at most `timeout` for one permit.
    ///
    /// # Errors
    ///
    /// [`AcquireTimeoutError`] naming the current holders, how long they held, and how long the
    /// caller waited.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire`]; a timed-out caller leaves the queue.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with the time driver enabled (as [`tokio::time::timeout`]); for a
    /// machine-wide gate, if its lock fails with an I/O error.
    pub async fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.acquire_timeout_req(self.req(1), timeout).await
    }

    /// [`Gate::acquire_timeout`] with an owned guard.
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
    pub async fn acquire_owned_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let g = self
            .grant_async(self.req(1), Some(timeout))
            .await
            .map_err(expect_timeout)?;
        Ok(OwnedGateGuard::new(self.clone(), g))
    }

    /// Waits at most `timeout` for `n` permits.
    ///
    /// # Errors
    ///
    /// [`TimedAcquireError::Timeout`] naming the holders; [`TimedAcquireError::TooLarge`] at once
    /// if `n` exceeds the capacity; [`TimedAcquireError::Machine`] if a machine-wide lock fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with the time driver enabled.
    pub async fn acquire_many_timeout(
        &self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, TimedAcquireError> {
        let g = self.grant_async(self.req(n), Some(timeout)).await?;
        Ok(GateGuard::new(&self.inner, g))
    }

    /// Takes one permit if one is free and nobody is queued, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] naming the holders when the gate is busy.
    pub fn try_acquire(&self) -> Result<GateGuard<'_>, TryAcquireError> {
        self.try_acquire_req(self.req(1))
    }

    /// [`Gate::try_acquire`] with an owned guard.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`].
    pub fn try_acquire_owned(&self) -> Result<OwnedGateGuard, TryAcquireError> {
        let g = self.grant_try(self.req(1))?;
        Ok(OwnedGateGuard::new(self.clone(), g))
    }

    /// Takes `n` permits if they are free and nobody is queued, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::WouldBlock`] when busy, [`TryAcquireError::TooLarge`] if `n` exceeds the
    /// capacity.
    pub fn try_acquire_many(&self, n: u32) -> Result<GateGuard<'_>, TryAcquireError> {
        self.try_acquire_req(self.req(n))
    }

    /// Blocks the current thread until one permit is granted: for synchronous, FFI-heavy threads.
    /// Blocked threads and async tasks share one FIFO queue, so mixing them cannot deadlock.
    ///
    /// # Panics
    ///
    /// When called from an async context (a thread driving a Tokio runtime), like Tokio's
    /// `Mutex::blocking_lock`: blocking there could starve the very task that would release the
    /// gate. Use [`Gate::acquire`] there, or call this inside `tokio::task::spawn_blocking`.
    /// Also, for a machine-wide gate, if its lock fails with an I/O error.
    pub fn acquire_blocking(&self) -> GateGuard<'_> {
        self.acquire_blocking_req(self.req(1))
    }

    /// [`Gate::acquire_blocking`] with an owned guard (e.g. to hand to another thread).
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_owned_blocking(&self) -> OwnedGateGuard {
        let g = expect_untimed(&self.inner.name, self.grant_blocking(self.req(1), None));
        OwnedGateGuard::new(self.clone(), g)
    }

    /// Blocks the current thread at most `timeout` for one permit.
    ///
    /// # Errors
    ///
    /// [`AcquireTimeoutError`] naming the holders.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        self.acquire_blocking_timeout_req(self.req(1), timeout)
    }

    /// Blocks the current thread until `n` permits are granted.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`] (except that backend I/O errors are returned).
    pub fn acquire_many_blocking(&self, n: u32) -> Result<GateGuard<'_>, AcquireError> {
        let g = self.grant_blocking(self.req(n), None).map_err(untimed)?;
        Ok(GateGuard::new(&self.inner, g))
    }

    // --- shared implementations (also used by `Labeled` and `Gated`) ------------------------------

    // The untimed async paths try `grant_now` inline, so the uncontended case is one small
    // state machine with no `Result<Grant, TimedAcquireError>` to move around.

    pub(crate) async fn acquire_req(&self, req: Request) -> GateGuard<'_> {
        let g = match self.inner.grant_now(req) {
            Ok(g) => g,
            Err(req) => expect_untimed(&self.inner.name, self.grant_boxed(req, None).await),
        };
        GateGuard::new(&self.inner, g)
    }

    pub(crate) async fn acquire_owned_req(&self, req: Request) -> OwnedGateGuard {
        let g = match self.inner.grant_now(req) {
            Ok(g) => g,
            Err(req) => expect_untimed(&self.inner.name, self.grant_boxed(req, None).await),
        };
        OwnedGateGuard::new(self.clone(), g)
    }

    pub(crate) async fn acquire_many_req(
        &self,
        req: Request,
    ) -> Result<GateGuard<'_>, AcquireError> {
        let g = self.grant_async(req, None).await.map_err(untimed)?;
        Ok(GateGuard::new(&self.inner, g))
    }

    pub(crate) async fn acquire_many_owned_req(
        &self,
        req: Request,
    ) -> Result<OwnedGateGuard, AcquireError> {
        let g = self.grant_async(req, None).await.map_err(untimed)?;
        Ok(OwnedGateGuard::new(self.clone(), g))
    }

    pub(crate) async fn acquire_timeout_req(
        &self,
        req: Request,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        let g = self
            .grant_async(req, Some(timeout))
            .await
            .map_err(expect_timeout)?;
        Ok(GateGuard::new(&self.inner, g))
    }

    pub(crate) fn try_acquire_req(&self, req: Request) -> Result<GateGuard<'_>, TryAcquireError> {
        let g = self.grant_try(req)?;
        Ok(GateGuard::new(&self.inner, g))
    }

    pub(crate) fn acquire_blocking_req(&self, req: Request) -> GateGuard<'_> {
        let g = expect_untimed(&self.inner.name, self.grant_blocking(req, None));
        GateGuard::new(&self.inner, g)
    }

    pub(crate) fn acquire_blocking_timeout_req(
        &self,
        req: Request,
        timeout: Duration,
    ) -> Result<GateGuard<'_>, AcquireTimeoutError> {
        let g = self
            .grant_blocking(req, Some(timeout))
            .map_err(expect_timeout)?;
        Ok(GateGuard::new(&self.inner, g))
    }

    // --- the one grant path (see the seam comment at the top) -------------------------------------

    /// Async grant, optionally bounded by `timeout` (Tokio time driver needed for a timeout).
    pub(crate) async fn grant_async(
        &self,
        req: Request,
        timeout: Option<Duration>,
    ) -> Result<Grant, TimedAcquireError> {
        // Uncontended fast path: no clock read for the wait, no timer, and the large slow-path
        // future is neither built nor moved (it is boxed: it only runs when the caller queues,
        // where one allocation is noise next to the wait).
        match self.inner.grant_now(req) {
            Ok(g) => Ok(g),
            Err(req) => self.grant_boxed(req, timeout).await,
        }
    }

    fn grant_boxed(
        &self,
        req: Request,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = Result<Grant, TimedAcquireError>> + Send + '_>> {
        Box::pin(self.grant_slow(req, timeout))
    }

    async fn grant_slow(
        &self,
        req: Request,
        timeout: Option<Duration>,
    ) -> Result<Grant, TimedAcquireError> {
        match timeout {
            None => self
                .inner
                .grant(req, Mode::Async, None)
                .await
                .map_err(|e| e.into_timed(&self.inner, None, Duration::ZERO)),
            Some(t) => self.grant_timeout(req, t).await,
        }
    }

    async fn grant_timeout(
        &self,
        req: Request,
        timeout: Duration,
    ) -> Result<Grant, TimedAcquireError> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let label = req.label.clone();
        let fut = self.inner.grant(req, Mode::Async, deadline);
        let res = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), fut).await {
                Ok(r) => r,
                Err(_) => Err(GrantError::MachineTimeout(Vec::new())),
            },
            None => fut.await,
        };
        res.map_err(|e| e.into_timed(&self.inner, label, start.elapsed()))
    }

    /// Blocking grant, optionally bounded by `timeout`; panics in an async context.
    pub(crate) fn grant_blocking(
        &self,
        req: Request,
        timeout: Option<Duration>,
    ) -> Result<Grant, TimedAcquireError> {
        assert_blocking_allowed();
        let req = match self.inner.grant_now(req) {
            Ok(g) => return Ok(g),
            Err(req) => req,
        };
        let start = Instant::now();
        let deadline = timeout.and_then(|t| start.checked_add(t));
        let label = req.label.clone();
        let res = block_on(self.inner.grant(req, Mode::Blocking, deadline), deadline)
            .unwrap_or(Err(GrantError::MachineTimeout(Vec::new())));
        res.map_err(|e| e.into_timed(&self.inner, label, start.elapsed()))
    }

    /// Non-waiting grant.
    pub(crate) fn grant_try(&self, req: Request) -> Result<Grant, TryAcquireError> {
        self.inner.try_grant(req)
    }
}

/// The untimed infallible paths cannot time out and weight 1 always fits; only a backend I/O
/// error remains, which they cannot report.
fn expect_untimed(gate: &str, r: Result<Grant, TimedAcquireError>) -> Grant {
    match r {
        Ok(g) => g,
        Err(e) => panic!("racegate: gate `{gate}`: {e}"),
    }
}

fn untimed(e: TimedAcquireError) -> AcquireError {
    match e {
        TimedAcquireError::TooLarge(e) => AcquireError::TooLarge(e),
        TimedAcquireError::Machine(e) => AcquireError::Machine(e),
        TimedAcquireError::Timeout(e) => AcquireError::Machine(MachineError {
            gate: e.gate.clone(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, e),
        }),
    }
}

fn expect_timeout(e: TimedAcquireError) -> AcquireTimeoutError {
    match e {
        TimedAcquireError::Timeout(e) => e,
        other => panic!("racegate: {other}"),
    }
}

impl GrantError {
    fn into_timed(
        self,
        inner: &Inner,
        label: Option<Label>,
        waited: Duration,
    ) -> TimedAcquireError {
        match self {
            GrantError::TooLarge(e) => TimedAcquireError::TooLarge(e),
            GrantError::Machine(e) => TimedAcquireError::Machine(e),
            GrantError::MachineTimeout(machine_holders) => {
                TimedAcquireError::Timeout(inner.timeout_error(label, waited, machine_holders))
            }
        }
    }
}

impl Inner {
    fn check_weight(&self, weight: u32) -> Result<(), TooLargeError> {
        if weight > self.config.capacity {
            return Err(TooLargeError {
                gate: self.name.to_string(),
                requested: weight,
                capacity: self.config.capacity,
            });
        }
        Ok(())
    }

    /// Now on the stats' clock; `None` when stats are off.
    #[inline]
    fn stamp(&self) -> Option<Stamp> {
        self.clock.as_ref().map(StatsClock::now)
    }

    fn holders_now(&self) -> Vec<HolderInfo> {
        match self.stamp() {
            Some(now) => self.stats.holders(now),
            None => Vec::new(),
        }
    }

    fn timeout_error(
        &self,
        label: Option<Label>,
        waited: Duration,
        machine_holders: Vec<HolderInfo>,
    ) -> AcquireTimeoutError {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        let mut holders = if let Some(now) = self.stamp() {
            self.stats.timed_out(label.as_ref(), now)
        } else {
            Vec::new()
        };
        holders.extend(machine_holders);
        AcquireTimeoutError {
            gate: self.name.to_string(),
            label: label.map(|l| l.as_str().to_owned()),
            waited,
            holders,
            waiters: self.waiters.load(Ordering::Relaxed),
        }
    }

    async fn grant(
        &self,
        req: Request,
        mode: Mode,
        deadline: Option<Instant>,
    ) -> Result<Grant, GrantError> {
        self.check_weight(req.weight)
            .map_err(GrantError::TooLarge)?;
        // Fast path first: it cannot barge (the semaphore hands released permits straight to
        // queued waiters), and when it succeeds the wait is zero without reading the clock.
        let (permit, asked_at) = match self.sem.try_acquire_many(req.weight) {
            Ok(p) => (p, None),
            Err(_) => {
                let asked_at = self.stamp();
                let mut acquire = pin!(self.sem.acquire_many(req.weight));
                // Count the caller as a waiter only once its first poll has put it in the
                // semaphore's queue, so `waiters` means "queued", exactly.
                let first = std::future::poll_fn(|cx| Poll::Ready(acquire.as_mut().poll(cx))).await;
                let p = match first {
                    Poll::Ready(p) => p,
                    Poll::Pending => {
                        let _queued = Queued::new(&self.waiters);
                        acquire.await
                    }
                }
                .expect("the gate's semaphore is never closed");
                (p, asked_at)
            }
        };
        let machine = match &self.backend {
            None => None,
            Some(b) => {
                let asked_at = asked_at.or_else(|| self.stamp());
                let hold = {
                    let _queued = Queued::new(&self.waiters);
                    self.machine_lock(b, &req, mode, deadline).await?
                };
                return Ok(self.register(permit, req, asked_at, Some(hold)));
            }
        };
        Ok(self.register(permit, req, asked_at, machine))
    }

    /// Grants at once if the permits are free, nobody is queued and there is no backend;
    /// otherwise hands the request back for the full path.
    #[inline]
    fn grant_now(&self, req: Request) -> Result<Grant, Request> {
        if self.backend.is_some() || req.weight > self.config.capacity {
            return Err(req);
        }
        match self.sem.try_acquire_many(req.weight) {
            Ok(p) => Ok(self.register(p, req, None, None)),
            Err(_) => Err(req),
        }
    }

    fn try_grant(&self, req: Request) -> Result<Grant, TryAcquireError> {
        self.check_weight(req.weight)?;
        let permit =
            self.sem
                .try_acquire_many(req.weight)
                .map_err(|_| TryAcquireError::WouldBlock {
                    gate: self.name.to_string(),
                    holders: self.holders_now(),
                    waiters: self.waiters.load(Ordering::Relaxed),
                })?;
        let machine = match &self.backend {
            None => None,
            Some(b) => Some(
                b.lock(
                    &self.name,
                    req.label.as_ref().map(Label::as_str),
                    req.weight,
                    Some(Duration::ZERO),
                )
                .map_err(|e| match e {
                    BackendError::Timeout { holders } => TryAcquireError::WouldBlock {
                        gate: self.name.to_string(),
                        holders,
                        waiters: self.waiters.load(Ordering::Relaxed),
                    },
                    BackendError::Io(source) => TryAcquireError::Machine(MachineError {
                        gate: self.name.to_string(),
                        source,
                    }),
                })?,
            ),
        };
        Ok(self.register(permit, req, None, machine))
    }

    async fn machine_lock(
        &self,
        backend: &Arc<dyn Backend>,
        req: &Request,
        mode: Mode,
        deadline: Option<Instant>,
    ) -> Result<MachineHold, GrantError> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let res = match mode {
            Mode::Blocking => backend.lock(
                &self.name,
                req.label.as_ref().map(Label::as_str),
                req.weight,
                timeout,
            ),
            Mode::Async => {
                let backend = Arc::clone(backend);
                let name = self.name.to_string();
                let label = req.label.clone();
                let weight = req.weight;
                let call =
                    move || backend.lock(&name, label.as_ref().map(Label::as_str), weight, timeout);
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => h.spawn_blocking(call).await.unwrap_or_else(|e| {
                        Err(BackendError::Io(std::io::Error::other(format!(
                            "machine-wide lock call failed: {e}"
                        ))))
                    }),
                    Err(_) => {
                        // Not on Tokio: run the blocking call on a plain thread.
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        thread::spawn(move || {
                            let _ = tx.send(call());
                        });
                        rx.await.unwrap_or_else(|_| {
                            Err(BackendError::Io(std::io::Error::other(
                                "machine-wide lock thread ended without an answer",
                            )))
                        })
                    }
                }
            }
        };
        res.map_err(|e| match e {
            BackendError::Timeout { holders } => GrantError::MachineTimeout(holders),
            BackendError::Io(source) => GrantError::Machine(MachineError {
                gate: self.name.to_string(),
                source,
            }),
        })
    }

    /// Turns held permits into a `Grant`; no `.await` between this and the guard's construction,
    /// so a grant can never be lost to cancellation. `asked_at` is `None` for a grant that did
    /// not queue (the permits were free on the first try): its wait is recorded as zero without a
    /// clock read, which is honest (the only time spent is the `try_acquire` itself, tens of ns).
    fn register(
        &self,
        permit: SemaphorePermit<'_>,
        req: Request,
        asked_at: Option<Stamp>,
        machine: Option<MachineHold>,
    ) -> Grant {
        permit.forget();
        let ticket = self.stamp().map(|now| {
            let waited = asked_at.map_or(Duration::ZERO, |a| now.saturating_duration_since(a));
            self.stats.granted(req.label, req.weight, waited, now)
        });
        Grant {
            weight: req.weight,
            ticket,
            machine,
        }
    }

    fn release(&self, grant: &mut Grant) {
        // Machine-wide lock first, so the next in-process holder finds it free.
        drop(grant.machine.take());
        if thread::panicking() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
        // A ticket exists only with stats on. One clock read at release: it ends the hold and is
        // all the warning needs.
        let warn = match (grant.ticket.take(), self.stamp()) {
            (Some(ticket), Some(now)) => {
                let threshold = self.config.hold_warning;
                self.stats.released(ticket, now, threshold).zip(threshold)
            }
            _ => None,
        };
        self.sem.add_permits(grant.weight as usize);
        if let Some(((label, held), threshold)) = warn {
            tracing::warn!(
                gate = %self.name,
                label = label.as_ref().map(Label::as_str).unwrap_or("(unlabeled)"),
                held_ms = held.as_secs_f64() * 1e3,
                threshold_ms = threshold.as_secs_f64() * 1e3,
                "gate held too long"
            );
        }
    }
}

/// Reports holders that exceed the hold warning *while they still hold*: a holder that is stuck
/// (a hung kernel, a guard leaked into a forgotten task) never reaches the release-time warning.
/// One thread per gate that has a hold warning; it ends within one interval after the last
/// handle on the gate is dropped. The interval is a polling period, not synchronization: a
/// holder is reported between `threshold` and `threshold + interval` into its hold.
fn spawn_hold_watchdog(gate: Weak<Inner>, threshold: Duration) {
    let interval = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
    let spawned = thread::Builder::new()
        .name("racegate-hold-watchdog".into())
        .spawn(move || loop {
            thread::sleep(interval);
            let Some(inner) = gate.upgrade() else { return };
            let Some(now) = inner.stamp() else { return };
            let overdue = inner.stats.overdue(threshold, now);
            for h in overdue {
                tracing::warn!(
                    gate = %inner.name,
                    label = h.label.as_deref().unwrap_or("(unlabeled)"),
                    held_ms = h.held_for.as_secs_f64() * 1e3,
                    threshold_ms = threshold.as_secs_f64() * 1e3,
                    waiters = inner.waiters.load(Ordering::Relaxed),
                    "gate still held past the hold warning"
                );
            }
        });
    if let Err(e) = spawned {
        // The gate works without it; only the while-held warning is lost.
        tracing::warn!(error = %e, "racegate: could not start the hold-warning watchdog thread");
    }
}

/// Counts a queued caller for as long as it waits (dropped with a cancelled future too).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Queued(c)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Panics (with Tokio's own message) when the current thread drives a Tokio runtime. Tokio's
/// check is private; its `blocking_recv` on a ready channel runs that check and nothing else.
fn assert_blocking_allowed() {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let _ = tx.send(());
    let _ = rx.blocking_recv();
}

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `fut` on the current thread, parking between polls; `None` when `deadline` passes
/// (the future is then dropped, which is how a blocking caller leaves the queue).
fn block_on<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                thread::park_timeout(d - now);
            }
        }
    }
}

/// A view of a [`Gate`] whose acquisitions carry a label; from [`Gate::labeled`].
///
/// Each method behaves exactly like the [`Gate`] method of the same name (same errors, cancel
/// safety and panics).
#[derive(Debug)]
#[must_use = "a labeled view does nothing until one of its acquire methods is called"]
pub struct Labeled<'a> {
    gate: &'a Gate,
    label: Label,
}

impl<'a> Labeled<'a> {
    /// Moves the label into the request (no clone: an owned label is not reallocated).
    fn req(self, weight: u32) -> Request {
        Request {
            label: Some(self.label),
            weight,
        }
    }

    /// [`Gate::acquire`] with this label.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn acquire(self) -> GateGuard<'a> {
        let gate = self.gate;
        gate.acquire_req(self.req(1)).await
    }

    /// [`Gate::acquire_owned`] with this label.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn acquire_owned(self) -> OwnedGateGuard {
        let gate = self.gate;
        gate.acquire_owned_req(self.req(1)).await
    }

    /// [`Gate::acquire_many`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn acquire_many(self, n: u32) -> Result<GateGuard<'a>, AcquireError> {
        let gate = self.gate;
        gate.acquire_many_req(self.req(n)).await
    }

    /// [`Gate::acquire_many_owned`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn acquire_many_owned(self, n: u32) -> Result<OwnedGateGuard, AcquireError> {
        let gate = self.gate;
        gate.acquire_many_owned_req(self.req(n)).await
    }

    /// [`Gate::acquire_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`]; the error names this label too.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_timeout(
        self,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        let gate = self.gate;
        gate.acquire_timeout_req(self.req(1), timeout).await
    }

    /// [`Gate::acquire_owned_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_owned_timeout(
        self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, AcquireTimeoutError> {
        let gate = self.gate;
        let g = self
            .gate
            .grant_async(self.req(1), Some(timeout))
            .await
            .map_err(expect_timeout)?;
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
    /// Cancel safe.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_timeout`].
    pub async fn acquire_many_timeout(
        self,
        n: u32,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, TimedAcquireError> {
        let gate = self.gate;
        let g = gate.grant_async(self.req(n), Some(timeout)).await?;
        Ok(GateGuard::new(&gate.inner, g))
    }

    /// [`Gate::try_acquire`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire`].
    pub fn try_acquire(self) -> Result<GateGuard<'a>, TryAcquireError> {
        let gate = self.gate;
        gate.try_acquire_req(self.req(1))
    }

    /// [`Gate::try_acquire_many`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::try_acquire_many`].
    pub fn try_acquire_many(self, n: u32) -> Result<GateGuard<'a>, TryAcquireError> {
        let gate = self.gate;
        gate.try_acquire_req(self.req(n))
    }

    /// [`Gate::acquire_blocking`] with this label.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_blocking(self) -> GateGuard<'a> {
        let gate = self.gate;
        gate.acquire_blocking_req(self.req(1))
    }

    /// [`Gate::acquire_owned_blocking`] with this label.
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_owned_blocking(self) -> OwnedGateGuard {
        let gate = self.gate;
        let g = expect_untimed(&gate.inner.name, gate.grant_blocking(self.req(1), None));
        OwnedGateGuard::new(gate.clone(), g)
    }

    /// [`Gate::acquire_blocking_timeout`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_blocking_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_blocking_timeout(
        self,
        timeout: Duration,
    ) -> Result<GateGuard<'a>, AcquireTimeoutError> {
        let gate = self.gate;
        gate.acquire_blocking_timeout_req(self.req(1), timeout)
    }

    /// [`Gate::acquire_many_blocking`] with this label.
    ///
    /// # Errors
    ///
    /// As [`Gate::acquire_many`].
    ///
    /// # Panics
    ///
    /// As [`Gate::acquire_blocking`].
    pub fn acquire_many_blocking(self, n: u32) -> Result<GateGuard<'a>, AcquireError> {
        let gate = self.gate;
        let g = self
            .gate
            .grant_blocking(self.req(n), None)
            .map_err(untimed)?;
        Ok(GateGuard::new(&gate.inner, g))
    }
}

/// Holds permits of a [`Gate`] until dropped; borrowed from the gate.
///
/// Dropping it (also during a panic) releases the permits and any machine-wide lock.
#[must_use = "the gate is released as soon as the guard is dropped"]
pub struct GateGuard<'a> {
    inner: &'a Inner,
    grant: Grant,
}

impl<'a> GateGuard<'a> {
    pub(crate) fn new(inner: &'a Inner, grant: Grant) -> Self {
        GateGuard { inner, grant }
    }

    /// Permits held.
    pub fn weight(&self) -> u32 {
        self.grant.weight
    }

    /// The gate's name.
    pub fn gate_name(&self) -> &str {
        &self.inner.name
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
            .field("weight", &self.grant.weight)
            .finish()
    }
}

/// Holds permits of a [`Gate`] until dropped; owns a handle on the gate, so it is `Send +
/// 'static` and can move into a spawned task or another thread.
#[must_use = "the gate is released as soon as the guard is dropped"]
pub struct OwnedGateGuard {
    gate: Gate,
    grant: Grant,
}

impl OwnedGateGuard {
    pub(crate) fn new(gate: Gate, grant: Grant) -> Self {
        OwnedGateGuard { gate, grant }
    }

    /// The gate this guard holds.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Permits held.
    pub fn weight(&self) -> u32 {
        self.grant.weight
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
            .field("weight", &self.grant.weight)
            .finish()
    }
}
