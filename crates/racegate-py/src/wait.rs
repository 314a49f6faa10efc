//! Waiting in a Python thread: the GIL is released, the thread parks on the gate's queue, and
//! Ctrl-C still works.
//!
//! The wait is the Rust async acquisition (so threads and asyncio tasks queue in one FIFO), driven
//! on the calling thread with a park/unpark waker inside the runtime's context (for its timers).
//! On the main thread it wakes every 50 ms to let Python run its signal handlers: a
//! `KeyboardInterrupt` drops the future, which leaves the queue, and propagates.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::runtime;

/// How often the main thread looks for pending signals while it waits.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Whether the calling Python thread is the main thread (the only one signal handlers run in).
fn on_main_thread(py: Python<'_>) -> PyResult<bool> {
    static MAIN_THREAD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static CURRENT_THREAD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let main = MAIN_THREAD
        .import(py, "threading", "main_thread")?
        .call0()?;
    let current = CURRENT_THREAD
        .import(py, "threading", "current_thread")?
        .call0()?;
    Ok(main.is(&current))
}

/// Drives `fut` to completion with the GIL released; `Err` only for a Python signal handler's
/// exception (the future is then dropped first).
pub(crate) fn block_on<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let handle = runtime::handle()?;
    let check_signals = on_main_thread(py)?;
    py.detach(move || {
        let _in_runtime = handle.enter();
        let mut fut = pin!(fut);
        let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return Ok(v);
            }
            if check_signals {
                thread::park_timeout(SIGNAL_CHECK);
                Python::attach(|py| py.check_signals())?;
            } else {
                thread::park();
            }
        }
    })
}
