//! The grant path: the one path every acquisition takes, whatever its row in the variant
//! matrix (async, owned, blocking, try, timeout, weighted, labeled, `Gated`, machine-wide).
//!
//! `Inner::grant` (or `Inner::try_grant` for the non-waiting path; a gate without a backend first
//! tries `Inner::grant_now`, the synchronous uncontended fast path with the same steps 1 and 3):
//!   1. takes the units from the semaphore,
//!   2. asks the machine-wide backend, if any, for its lock with the remaining time budget
//!      (`backend.rs`),
//!   3. records stats (the wait includes the backend's wait) and builds the [`Grant`] that both
//!      guard types wrap; dropping the guard releases the backend lock, then the units.
//!
//! A future dropped during step 1 or 2 releases whatever it took: the units are still a
//! `SemaphorePermit` until the grant exists, and there is no `.await` between the grant and the
//! guard's construction, so a grant can never be lost to cancellation.
//!
//! The `Gate::grant_*` entry points below map the grant path's internal [`GrantError`] to the one
//! public error type of each kind of call.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use super::backend::{Backend, BackendError, MachineHold, Mode};
use super::blocking::{assert_blocking_allowed, block_on};
use super::{Gate, GateConfig};
use crate::errors::{
    AcquireError, AcquireTimeoutError, MachineGateError, TooLargeError, TryAcquireError,
};
use crate::holder::Holder;
use crate::stats::{Label, Stamp, Stats, StatsClock, Ticket};

/// The shared state behind every handle on one gate.
pub(crate) struct Inner {
    pub(super) name: Box<str>,
    pub(super) config: GateConfig,
    /// The units. Tokio calls them permits; that word stays inside this module.
    pub(super) sem: Semaphore,
    pub(super) stats: Stats,
    /// The stats' clock; `None` when stats are off (its one-time calibration is then skipped).
    pub(super) clock: Option<StatsClock>,
    pub(super) waiters: AtomicUsize,
    pub(super) timeouts: AtomicU64,
    pub(super) panics: AtomicU64,
    pub(super) backend: Option<Arc<dyn Backend>>,
}

/// What both guard types hold: units, the holder's stats ticket, the machine-wide lock.
pub(crate) struct Grant {
    pub(super) units: u32,
    /// `None` when stats are off.
    ticket: Option<Ticket>,
    machine: Option<MachineHold>,
}

impl Grant {
    /// The devices the machine-wide lock holds (empty: none, or an in-process gate).
    pub(crate) fn devices(&self) -> &[String] {
        self.machine.as_ref().map_or(&[], |m| m.devices())
    }
}

/// One request: how many units, under which label.
pub(crate) struct Request {
    pub(crate) label: Option<Label>,
    pub(crate) units: u32,
}

impl Request {
    #[inline]
    pub(crate) fn unlabeled(units: u32) -> Request {
        Request { label: None, units }
    }
}

/// Internal failure of a grant, mapped to the public error type by each entry point.
#[derive(Debug)]
pub(crate) enum GrantError {
    TooLarge(TooLargeError),
    Machine(MachineGateError),
    /// The deadline passed; holders are the backend's (in-process ones are added on mapping).
    TimedOut(Vec<Holder>),
}

// --- entry points (used by the variant matrix of every front) ------------------------------------

/// Awaits a grant of `$req` from `$gate` (a `&Gate`), bounded by `$timeout`: the synchronous
/// fast path, else the boxed slow path; evaluates to `Result<Grant, AcquireTimeoutError>`.
///
/// A macro rather than an `async fn` or a future type, so that an uncontended acquisition never
/// creates, stores or drops a future of its own: each of those, out of line across the rooms of
/// this module, cost the uncontended acquire 5–25 ns in `benches/gate_ratio.rs`.
macro_rules! grant_async {
    ($gate:expr, $req:expr, $timeout:expr) => {{
        let gate: &$crate::gate::Gate = $gate;
        match gate.grant_now($req) {
            Ok(g) => Ok(g),
            Err(req) => gate.grant_queued(req, $timeout).await,
        }
    }};
}

/// [`grant_async!`] without a deadline, for the calls that cannot fail on an in-process gate
/// (no deadline, units within the capacity): evaluates to the `Grant`, and panics on a
/// machine-wide backend failure, which those calls cannot report.
macro_rules! grant_async_or_panic {
    ($gate:expr, $req:expr) => {{
        let gate: &$crate::gate::Gate = $gate;
        match gate.grant_now($req) {
            Ok(g) => g,
            Err(req) => gate.grant_queued_or_panic(req).await,
        }
    }};
}

pub(crate) use {grant_async, grant_async_or_panic};

impl Gate {
    /// The fast path of every async call (see [`grant_async!`]): grants at once if the units
    /// are free, nobody is queued and there is no backend; otherwise hands the request back.
    #[inline]
    pub(crate) fn grant_now(&self, req: Request) -> Result<Grant, Request> {
        self.inner.grant_now(req)
    }

    /// The slow path of [`grant_async!`], built only when the caller must queue (boxed: one
    /// allocation is noise next to the wait, and the large future is never built or moved on
    /// the fast path).
    pub(crate) fn grant_queued(
        &self,
        req: Request,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = Result<Grant, AcquireTimeoutError>> + Send + '_>> {
        Box::pin(self.grant_slow(req, timeout))
    }

    /// The slow path of [`grant_async_or_panic!`].
    pub(crate) fn grant_queued_or_panic(
        &self,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Grant> + Send + '_>> {
        Box::pin(async move { expect_granted(&self.inner.name, self.grant_slow(req, None).await) })
    }

    async fn grant_slow(
        &self,
        req: Request,
        timeout: Option<Duration>,
    ) -> Result<Grant, AcquireTimeoutError> {
        let start = Instant::now();
        let deadline = timeout.and_then(|t| start.checked_add(t));
        // Only a timeout error names the caller's label.
        let label = deadline.and_then(|_| req.label.clone());
        let at_backend = AtomicBool::new(false);
        let fut = self.inner.grant(req, Mode::Async, deadline, &at_backend);
        let res = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), fut).await {
                Ok(r) => r,
                // The timer can end the wait while the backend's lock call (on the blocking
                // pool, bounded by the same deadline) is about to answer with the machine-wide
                // holders: ask for them here, or the error would name nobody. (A wait that
                // ended in the in-process queue names the in-process holders instead.)
                Err(_) => Err(GrantError::TimedOut(match &self.inner.backend {
                    Some(b) if at_backend.load(Ordering::Relaxed) => b.holders(),
                    _ => Vec::new(),
                })),
            },
            None => fut.await,
        };
        res.map_err(|e| e.into_public(&self.inner, label, start.elapsed()))
    }

    /// Blocking grant, optionally bounded by `timeout`; panics in an async context.
    #[inline]
    pub(crate) fn grant_blocking(
        &self,
        req: Request,
        timeout: Option<Duration>,
    ) -> Result<Grant, AcquireTimeoutError> {
        assert_blocking_allowed();
        let req = match self.inner.grant_now(req) {
            Ok(g) => return Ok(g),
            Err(req) => req,
        };
        let start = Instant::now();
        let deadline = timeout.and_then(|t| start.checked_add(t));
        // Only a timeout error names the caller's label.
        let label = deadline.and_then(|_| req.label.clone());
        let at_backend = AtomicBool::new(false);
        let res = block_on(
            self.inner.grant(req, Mode::Blocking, deadline, &at_backend),
            deadline,
        )
        .unwrap_or(Err(GrantError::TimedOut(Vec::new())));
        res.map_err(|e| e.into_public(&self.inner, label, start.elapsed()))
    }

    /// [`Gate::grant_blocking`] without a deadline, for the infallible calls; panics as
    /// [`Gate::grant_async_or_panic`] does.
    #[inline]
    pub(crate) fn grant_blocking_or_panic(&self, req: Request) -> Grant {
        expect_granted(&self.inner.name, self.grant_blocking(req, None))
    }

    /// Non-waiting grant.
    #[inline]
    pub(crate) fn grant_try(&self, req: Request) -> Result<Grant, TryAcquireError> {
        self.inner.try_grant(req)
    }
}

/// The untimed infallible calls cannot time out and never ask for more than the capacity; only a
/// machine-wide backend failure remains, which they cannot report (documented under `# Panics`).
fn expect_granted(gate: &str, r: Result<Grant, AcquireTimeoutError>) -> Grant {
    match r {
        Ok(g) => g,
        Err(e) => panic!("racegate: gate `{gate}`: {e}"),
    }
}

/// An untimed call's error: without a deadline there is no `TimedOut` (a backend that reports
/// one anyway is a failure of the backend).
pub(super) fn untimed(e: AcquireTimeoutError) -> AcquireError {
    match e {
        AcquireTimeoutError::TooLarge(e) => AcquireError::TooLarge(e),
        AcquireTimeoutError::Machine(e) => AcquireError::Machine(e),
        AcquireTimeoutError::TimedOut { gate, .. } => {
            AcquireError::Machine(MachineGateError::NoAnswer {
                gate,
                reason: "the lock call timed out although no timeout was given".into(),
            })
        }
    }
}

impl GrantError {
    fn into_public(
        self,
        inner: &Inner,
        label: Option<Label>,
        waited: Duration,
    ) -> AcquireTimeoutError {
        match self {
            GrantError::TooLarge(e) => AcquireTimeoutError::TooLarge(e),
            GrantError::Machine(e) => AcquireTimeoutError::Machine(e),
            GrantError::TimedOut(machine_holders) => {
                inner.timeout_error(label, waited, machine_holders)
            }
        }
    }
}

// --- the grant path ----------------------------------------------------------------------------

/// Counts a queued caller for as long as it waits (dropped with a cancelled future too).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Waiting(c)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    fn check_units(&self, units: u32) -> Result<(), TooLargeError> {
        if units > self.config.capacity {
            return Err(TooLargeError {
                gate: self.name.to_string(),
                requested: units,
                capacity: self.config.capacity,
            });
        }
        Ok(())
    }

    /// Now on the stats' clock; `None` when stats are off.
    #[inline]
    pub(super) fn stamp(&self) -> Option<Stamp> {
        self.clock.as_ref().map(StatsClock::now)
    }

    fn holders_now(&self) -> Vec<Holder> {
        match self.stamp() {
            Some(now) => self.stats.holders(now),
            None => Vec::new(),
        }
    }

    fn timeout_error(
        &self,
        label: Option<Label>,
        waited: Duration,
        machine_holders: Vec<Holder>,
    ) -> AcquireTimeoutError {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        let mut holders = if let Some(now) = self.stamp() {
            self.stats.timed_out(label.as_ref(), now)
        } else {
            Vec::new()
        };
        holders.extend(machine_holders);
        AcquireTimeoutError::TimedOut {
            gate: self.name.to_string(),
            label: label.map(|l| l.as_str().to_owned()),
            waited,
            holders,
            waiters: self.waiters.load(Ordering::Relaxed),
        }
    }

    /// Sets `at_backend` once the in-process units are held and the wait is the backend's.
    async fn grant(
        &self,
        req: Request,
        mode: Mode,
        deadline: Option<Instant>,
        at_backend: &AtomicBool,
    ) -> Result<Grant, GrantError> {
        self.check_units(req.units).map_err(GrantError::TooLarge)?;
        if let Some(b) = &self.backend {
            b.check(req.units).map_err(GrantError::Machine)?;
        }
        // Fast path first: it cannot barge (the semaphore hands released units straight to
        // queued waiters), and when it succeeds the wait is zero without reading the clock.
        let (permit, asked_at) = match self.sem.try_acquire_many(req.units) {
            Ok(p) => (p, None),
            Err(_) => {
                let asked_at = self.stamp();
                let mut acquire = pin!(self.sem.acquire_many(req.units));
                // Count the caller as a waiter only once its first poll has put it in the
                // semaphore's queue, so `waiters` means "queued", exactly.
                let first = std::future::poll_fn(|cx| Poll::Ready(acquire.as_mut().poll(cx))).await;
                let p = match first {
                    Poll::Ready(p) => p,
                    Poll::Pending => {
                        let _queued = Waiting::new(&self.waiters);
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
                at_backend.store(true, Ordering::Relaxed);
                let hold = {
                    let _queued = Waiting::new(&self.waiters);
                    self.machine_lock(b, &req, mode, deadline).await?
                };
                return Ok(self.register(permit, req, asked_at, Some(hold)));
            }
        };
        Ok(self.register(permit, req, asked_at, machine))
    }

    /// Grants at once if the units are free, nobody is queued and there is no backend;
    /// otherwise hands the request back for the full path.
    #[inline]
    fn grant_now(&self, req: Request) -> Result<Grant, Request> {
        if self.backend.is_some() || req.units > self.config.capacity {
            return Err(req);
        }
        match self.sem.try_acquire_many(req.units) {
            Ok(p) => Ok(self.register(p, req, None, None)),
            Err(_) => Err(req),
        }
    }

    fn try_grant(&self, req: Request) -> Result<Grant, TryAcquireError> {
        self.check_units(req.units)?;
        if let Some(b) = &self.backend {
            b.check(req.units)?;
        }
        let busy = |holders| TryAcquireError::WouldBlock {
            gate: self.name.to_string(),
            holders,
            waiters: self.waiters.load(Ordering::Relaxed),
        };
        let permit = self
            .sem
            .try_acquire_many(req.units)
            .map_err(|_| busy(self.holders_now()))?;
        let machine = match &self.backend {
            None => None,
            Some(b) => Some(
                b.lock(
                    &self.name,
                    req.label.as_ref().map(Label::as_str),
                    req.units,
                    Some(Duration::ZERO),
                )
                .map_err(|e| match e {
                    BackendError::Timeout { holders } => busy(holders),
                    BackendError::Failed(e) => TryAcquireError::Machine(e),
                })?,
            ),
        };
        Ok(self.register(permit, req, None, machine))
    }

    /// Turns held units into a `Grant`; no `.await` between this and the guard's construction,
    /// so a grant can never be lost to cancellation. `asked_at` is `None` for a grant that did
    /// not queue (the units were free on the first try): its wait is recorded as zero without a
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
            self.stats.granted(req.label, req.units, waited, now)
        });
        Grant {
            units: req.units,
            ticket,
            machine,
        }
    }

    pub(super) fn release(&self, grant: &mut Grant) {
        // Machine-wide lock first, so the next in-process holder finds it free.
        drop(grant.machine.take());
        if thread::panicking() {
            self.panics.fetch_add(1, Ordering::Relaxed);
            if let Some(ticket) = &grant.ticket {
                self.stats.panicked(ticket);
            }
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
        self.sem.add_permits(grant.units as usize);
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
