//! [`Gate`]: the lock that all GPU work passes through.
//!
//! One concept per room:
//! - `mod.rs`: the [`Gate`] handle, its construction and its figures;
//! - `config.rs`: [`GateConfig`];
//! - `acquire.rs`: the variant matrix, on [`Gate`] and on its [`Labeled`] view;
//! - `labeled.rs`: the [`Labeled`] view shared by every front;
//! - `guard.rs`: [`GateGuard`] and [`OwnedGateGuard`];
//! - `grant.rs`: the grant path every acquisition goes through;
//! - `backend.rs`: the seam where a machine-wide lock plugs in;
//! - `blocking.rs`: the private executor of the blocking calls;
//! - `watchdog.rs`: the hold-warning thread.

mod acquire;
mod backend;
mod blocking;
mod config;
mod grant;
mod guard;
mod labeled;
mod watchdog;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub(crate) use backend::{Backend, BackendError, Hold, MachineHold};
pub use config::GateConfig;
#[cfg(feature = "metrics")]
pub(crate) use grant::Inner as GateInner;
pub(crate) use grant::{grant_async, grant_async_or_panic, Grant, Inner, Request};
pub use guard::{GateGuard, OwnedGateGuard};
pub use labeled::Labeled;

use crate::errors::ConfigError;
use crate::stats::{GateStats, Label, Stats, StatsClock};

/// A fair, timeout-bounded, observable gate: the one lock that all GPU work passes through.
///
/// A gate has a *capacity* of units (one by default): how many callers may hold it at once.
/// Each acquisition takes one unit or, with the `*_many` forms, `n` units of a budget (e.g. MiB
/// of VRAM), and the returned guard gives them back when dropped — also when the holder panics
/// (counted in [`GateStats::panics_while_held`]; the gate is never poisoned).
///
/// `Gate` is a cheap handle: clones share one gate. Use [`global`](crate::global) for the same
/// gate from anywhere in a program, and [`MachineGate`](crate::MachineGate) for one gate across
/// every process of the machine.
///
/// # Variant matrix
///
/// Every acquisition is named `[try_]acquire[_many][_owned][_blocking][_timeout]`:
///
/// | | borrowed guard ([`GateGuard`]) | owned guard ([`OwnedGateGuard`], `Send + 'static`) | error |
/// |---|---|---|---|
/// | async | [`acquire`](Gate::acquire) | [`acquire_owned`](Gate::acquire_owned) | none |
/// | async, bounded | [`acquire_timeout`](Gate::acquire_timeout) | [`acquire_owned_timeout`](Gate::acquire_owned_timeout) | [`AcquireTimeoutError`](crate::AcquireTimeoutError) |
/// | blocking | [`acquire_blocking`](Gate::acquire_blocking) | [`acquire_owned_blocking`](Gate::acquire_owned_blocking) | none |
/// | blocking, bounded | [`acquire_blocking_timeout`](Gate::acquire_blocking_timeout) | [`acquire_owned_blocking_timeout`](Gate::acquire_owned_blocking_timeout) | [`AcquireTimeoutError`](crate::AcquireTimeoutError) |
/// | non-waiting | [`try_acquire`](Gate::try_acquire) | [`try_acquire_owned`](Gate::try_acquire_owned) | [`TryAcquireError`](crate::TryAcquireError) |
///
/// Each has a weighted form taking `n` units, with `_many` after `acquire`
/// ([`acquire_many`](Gate::acquire_many), [`acquire_many_owned_blocking_timeout`](Gate::acquire_many_owned_blocking_timeout),
/// [`try_acquire_many_owned`](Gate::try_acquire_many_owned), ...); the untimed weighted forms
/// return [`AcquireError`](crate::AcquireError), since `n` may exceed the capacity. Every method
/// also exists on the [labeled view](Gate::labeled), whose acquisitions carry a label.
///
/// # Fairness
///
/// Waiters are served strictly first-in, first-out, whether they wait in async tasks or blocked OS
/// threads (both queue on one [`tokio::sync::Semaphore`]). A new caller never overtakes a queued
/// one, not even a `try_*` call, which fails while anyone is queued. A consequence of strict FIFO
/// with weighted requests: a large request at the head of the queue holds back every smaller
/// request behind it until enough units are free for it, even if the smaller ones would fit
/// now. This prevents starvation of large requests at the price of some idle capacity.
///
/// # Timeouts
///
/// Nothing waits forever unless the caller asks for it: the `*_timeout` forms bound the wait and
/// their error names the current holders (label, held for how long) and how long the caller
/// waited. A weighted request larger than the capacity fails at once instead of waiting forever.
///
/// # Cost
///
/// An uncontended acquire+release costs about what a `tokio::sync::Mutex` lock+unlock does
/// (1.1× in `BENCHMARKS.md`), plus about 30 ns for the stats (two TSC clock reads, one short
/// lock round trip at the grant, HDR histogram records; the release publishes its hold without
/// the lock); [`GateConfig::stats`] turns them off for gates taken millions of times a second.
/// The uncontended path takes free units synchronously, so, like `std::sync::Mutex`
/// and unlike `tokio::sync::Mutex`, it does not spend Tokio's cooperative-scheduling budget.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use racegate::AcquireTimeoutError;
/// let gate = racegate::Gate::new("gpu");
/// {
///     let _guard = gate.labeled("vision").acquire().await;
///     // ... dispatch GPU work ...
///     let err = gate.acquire_timeout(Duration::from_millis(10)).await.unwrap_err();
///     assert!(matches!(&err, AcquireTimeoutError::TimedOut { holders, .. } if holders.len() == 1));
///     assert!(err.to_string().contains("`vision`"));
/// }
/// assert_eq!(gate.stats().acquisitions, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Gate {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .field("machine_wide", &self.inner.backend.is_some())
            .finish()
    }
}

impl Gate {
    /// A gate with one holder at a time.
    pub fn new(name: impl Into<String>) -> Gate {
        Gate::with_capacity(name, 1)
    }

    /// A gate of `capacity` units: that many holders at once, or a budget for weighted calls.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero or above [`Semaphore::MAX_PERMITS`]; use [`Gate::with_config`] to
    /// get an error instead.
    pub fn with_capacity(name: impl Into<String>, capacity: u32) -> Gate {
        match Gate::with_config(name, GateConfig::default().with_capacity(capacity)) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// A gate with a full configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroCapacity`] or [`ConfigError::CapacityTooLarge`].
    pub fn with_config(name: impl Into<String>, config: GateConfig) -> Result<Gate, ConfigError> {
        Gate::build(name.into(), config, None)
    }

    /// A gate whose grants also take `backend`'s machine-wide lock.
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
            watchdog::spawn_hold_watchdog(Arc::downgrade(&inner), threshold);
        }
        Ok(Gate { inner })
    }

    /// The gate's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many units the gate has.
    pub fn capacity(&self) -> u32 {
        self.inner.config.capacity
    }

    /// The configuration the gate was built with.
    pub fn config(&self) -> &GateConfig {
        &self.inner.config
    }

    /// Units free right now (a snapshot; it may change at once).
    pub fn available(&self) -> u32 {
        self.inner.sem.available_permits() as u32
    }

    /// Units free right now.
    #[deprecated(note = "renamed to `available`")]
    pub fn available_permits(&self) -> u32 {
        self.available()
    }

    /// Whether two handles refer to the same gate.
    pub fn same_gate(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A view of this gate whose acquisitions carry `label` (shown in stats, errors and hold
    /// warnings). The view has every acquire method of the gate.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let gate = racegate::Gate::new("gpu");
    /// let guard = gate.labeled("text").acquire().await;
    /// assert_eq!(gate.stats().holders[0].label.as_deref(), Some("text"));
    /// # drop(guard); }
    /// ```
    pub fn labeled(&self, label: impl Into<Label>) -> Labeled<'_> {
        Labeled::new(self, Some(label.into()))
    }

    /// A snapshot of the gate's figures.
    pub fn stats(&self) -> GateStats {
        let inner = &self.inner;
        let mut s = GateStats {
            name: inner.name.to_string(),
            capacity: inner.config.capacity,
            available: self.available(),
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
}

/// What the OpenMetrics export reads of a gate (the `metrics` feature).
#[cfg(feature = "metrics")]
impl Gate {
    /// A handle that does not keep the gate alive.
    pub(crate) fn downgrade(&self) -> std::sync::Weak<GateInner> {
        Arc::downgrade(&self.inner)
    }

    /// The gate behind a weak handle, while it lives.
    pub(crate) fn upgrade(weak: &std::sync::Weak<GateInner>) -> Option<Gate> {
        weak.upgrade().map(|inner| Gate { inner })
    }

    /// Waiters, timeouts and panics while held right now, and with stats on, the per-label
    /// figures with histograms as counts per bucket of `bounds_ns`.
    pub(crate) fn scrape(&self, bounds_ns: &[u64]) -> crate::metrics::Scrape {
        let inner = &self.inner;
        crate::metrics::Scrape {
            waiters: inner.waiters.load(Ordering::Relaxed) as u64,
            timeouts: inner.timeouts.load(Ordering::Relaxed),
            panics: inner.panics.load(Ordering::Relaxed),
            families: inner.config.stats.then(|| inner.stats.families(bounds_ns)),
        }
    }
}
