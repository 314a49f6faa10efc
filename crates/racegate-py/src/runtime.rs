//! The one Tokio runtime of the extension: a current-thread runtime on a daemon thread
//! (`racegate-runtime`), started on first need. It runs the waits of asyncio tasks, and its time
//! driver and blocking pool serve the waits of blocked Python threads too (their timeouts are
//! Tokio timers, and a machine-wide gate's file-lock call runs on the blocking pool).
//!
//! Forks: a child process has none of its parent's threads, so a handle from another pid is
//! never used; the child starts a runtime of its own (the parent's is leaked in the child, never
//! dropped: dropping it would wait for threads that do not exist there).

use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::PyResult;
use tokio::runtime::{Builder, Handle};

static RUNTIME: Mutex<Option<(u32, Handle)>> = Mutex::new(None);

/// The runtime's handle, starting it in this process if needed.
pub(crate) fn handle() -> PyResult<Handle> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if let Some((owner, h)) = slot.as_ref() {
        if *owner == pid {
            return Ok(h.clone());
        }
    }
    let failed = |e: std::io::Error| {
        PyRuntimeError::new_err(format!("racegate: cannot start its runtime thread: {e}"))
    };
    let rt = Builder::new_current_thread()
        .enable_time()
        .thread_name("racegate-blocking")
        .build()
        .map_err(failed)?;
    let h = rt.handle().clone();
    std::thread::Builder::new()
        .name("racegate-runtime".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .map_err(failed)?;
    *slot = Some((pid, h.clone()));
    Ok(h)
}
