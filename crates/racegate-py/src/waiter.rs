//! The asyncio side of a wait: a task on the extension's runtime waits in the gate's queue (the
//! same FIFO as threads), and wakes the event loop with `call_soon_threadsafe` when it is granted
//! or times out. The event loop is never blocked.
//!
//! Cancel safety: `cancel()` marks the wait finished and aborts the task. Whatever the task holds
//! or later receives is dropped, and so given back: a queue place leaves the queue (the Rust
//! acquisition is cancel safe), a grant that raced with the cancellation goes to the next waiter.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use racegate::{AcquireTimeoutError, Gate, Label, OwnedGateGuard};
use tokio::task::AbortHandle;

use crate::errors;
use crate::front::wait_owned;
use crate::guard::PyGuard;
use crate::runtime;

enum State {
    Waiting,
    Done(Result<OwnedGateGuard, AcquireTimeoutError>),
    Finished,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One asyncio task's place in a gate's queue (internal to `racegate._aio`).
#[pyclass(module = "racegate._native", name = "_Waiter", frozen)]
pub(crate) struct PyWaiter {
    state: Shared,
    task: AbortHandle,
}

/// Starts waiting for `units` of `gate`; `fut` (an asyncio future of `event_loop`) is resolved
/// through `racegate._aio._wake` when the wait ends.
pub(crate) fn enqueue(
    py: Python<'_>,
    gate: &Gate,
    label: Option<Label>,
    units: u32,
    timeout: Option<Duration>,
    event_loop: Py<PyAny>,
    fut: Py<PyAny>,
) -> PyResult<PyWaiter> {
    static WAKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let wake = WAKE.import(py, "racegate._aio", "_wake")?.clone().unbind();
    let state: Shared = Arc::new(Mutex::new(State::Waiting));
    let shared = Arc::clone(&state);
    let gate = gate.clone();
    let task = runtime::handle()?.spawn(async move {
        let res = wait_owned(&gate, label, units, timeout).await;
        {
            let mut st = lock(&shared);
            if !matches!(*st, State::Waiting) {
                // Cancelled meanwhile: `res` is dropped here, which gives a grant back.
                return;
            }
            *st = State::Done(res);
        }
        let delivered = Python::try_attach(|py| {
            event_loop
                .bind(py)
                .call_method1("call_soon_threadsafe", (wake, fut))
                .is_ok()
        })
        .unwrap_or(false);
        if !delivered {
            // The loop is closed (or the interpreter is shutting down): nobody will take the
            // grant, give it back now.
            *lock(&shared) = State::Finished;
        }
    });
    Ok(PyWaiter {
        state,
        task: task.abort_handle(),
    })
}

#[pymethods]
impl PyWaiter {
    /// The guard, or the wait's error; once.
    fn result(&self, py: Python<'_>) -> PyResult<PyGuard> {
        let done = std::mem::replace(&mut *lock(&self.state), State::Finished);
        match done {
            State::Done(Ok(g)) => Ok(PyGuard::new(g)),
            State::Done(Err(e)) => Err(errors::timeout(py, e)),
            State::Waiting | State::Finished => Err(PyRuntimeError::new_err(
                "racegate: the wait has no result (still waiting, cancelled, or already taken)",
            )),
        }
    }

    /// Leaves the queue, or gives back a grant that arrived meanwhile.
    fn cancel(&self) {
        let was = std::mem::replace(&mut *lock(&self.state), State::Finished);
        self.task.abort();
        drop(was);
    }
}
