//! The machine-wide seam.
//!
//! A `Gate` may carry a [`Backend`]: a second, machine-wide lock (the OS file locks of
//! [`MachineGate`](crate::MachineGate)) taken by whoever already holds the in-process units.
//! Threads of one process therefore queue fairly on the in-process semaphore first, and only the
//! winner(s) contend with other processes. The grant path (`grant.rs`) asks the backend with
//! the remaining time budget; async callers run the blocking backend call on Tokio's blocking
//! pool, so the runtime is never blocked. A backend result that arrives after its caller left
//! (a cancelled future) is dropped on that pool, which releases the lock at once.

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::grant::{GrantError, Inner, Request};
use crate::errors::MachineGateError;
use crate::holder::Holder;
use crate::stats::Label;

/// What a backend hands back: dropping it releases the machine-wide lock.
pub(crate) type MachineHold = Box<dyn Hold>;

/// A machine-wide lock as held by a guard.
pub(crate) trait Hold: Send + Sync {
    /// The devices it holds (empty for a gate without devices).
    fn devices(&self) -> &[String];
}

/// Why a backend did not grant its lock.
#[derive(Debug)]
pub(crate) enum BackendError {
    /// The time budget ran out (or was zero, for `try_*`); `holders` are the machine-wide holders
    /// the backend knows of.
    Timeout { holders: Vec<Holder> },
    /// The lock could not be taken at all.
    Failed(MachineGateError),
}

/// A machine-wide lock behind a gate (see the module docs).
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Whether a request for `units` can ever be granted; checked before the caller queues
    /// in-process, so a request no placement can satisfy fails at once.
    fn check(&self, units: u32) -> Result<(), MachineGateError>;

    /// Takes the machine-wide lock for `units`, blocking at most `timeout` (`None`: no limit,
    /// `Some(ZERO)`: do not wait). Called only by a caller that holds the in-process units, from
    /// a thread where blocking is allowed.
    fn lock(
        &self,
        gate: &str,
        label: Option<&str>,
        units: u32,
        timeout: Option<Duration>,
    ) -> Result<MachineHold, BackendError>;

    /// The machine-wide holders right now, for a timeout error when the async timer around
    /// [`Backend::lock`] ended the wait before the backend could answer with them.
    fn holders(&self) -> Vec<Holder> {
        Vec::new()
    }
}

/// How the caller waits, which decides where the blocking backend call runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Awaited in an async task: the blocking backend call goes to Tokio's blocking pool.
    Async,
    /// Driven by the private executor on a thread that may block.
    Blocking,
}

impl Inner {
    /// The backend's lock for `req`, by `deadline`.
    pub(super) async fn machine_lock(
        &self,
        backend: &Arc<dyn Backend>,
        req: &Request,
        mode: Mode,
        deadline: Option<Instant>,
    ) -> Result<MachineHold, GrantError> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let no_answer = |reason: String| {
            BackendError::Failed(MachineGateError::NoAnswer {
                gate: self.name.to_string(),
                reason,
            })
        };
        let res = match mode {
            Mode::Blocking => backend.lock(
                &self.name,
                req.label.as_ref().map(Label::as_str),
                req.units,
                timeout,
            ),
            Mode::Async => {
                let backend = Arc::clone(backend);
                let name = self.name.to_string();
                let label = req.label.clone();
                let units = req.units;
                let call =
                    move || backend.lock(&name, label.as_ref().map(Label::as_str), units, timeout);
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => h
                        .spawn_blocking(call)
                        .await
                        .unwrap_or_else(|e| Err(no_answer(e.to_string()))),
                    Err(_) => {
                        // Not on Tokio: run the blocking call on a plain thread.
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        thread::spawn(move || {
                            let _ = tx.send(call());
                        });
                        rx.await
                            .unwrap_or_else(|_| Err(no_answer("its thread ended".into())))
                    }
                }
            }
        };
        res.map_err(|e| match e {
            BackendError::Timeout { holders } => GrantError::TimedOut(holders),
            BackendError::Failed(e) => GrantError::Machine(e),
        })
    }
}
