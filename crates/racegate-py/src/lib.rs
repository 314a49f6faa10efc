//! racegate's Python front: the extension module `racegate._native` of the `racegate` Python
//! package (built with maturin; the Python layer is in `python/racegate`).
//!
//! It wraps the Rust gate rather than re-implementing it, so Python callers get the same FIFO
//! queue (threads and asyncio tasks in one), the same stats, the same timeout errors, and, for
//! `MachineGate`, the same lock directory, protocol and records as `racegate run`,
//! `racegate status` and `racegate::test_guard`.
//!
//! Rooms: `gate.rs` the `Gate` class and its acquisitions; `machine.rs` and `status.rs`
//! `MachineGate` and its status; `global.rs` the process-wide gates; `guard.rs` `Guard`;
//! `front.rs` the acquisition paths both classes share; `wait.rs` a blocked thread's wait (GIL
//! released, Ctrl-C honoured); `waiter.rs` an asyncio task's wait; `runtime.rs` the runtime
//! thread behind both; `errors.rs` the Python exceptions; `stats.rs` `Gate.stats()`;
//! `logging.rs` hold warnings into Python's `logging`.
//!
//! ```python
//! import racegate
//!
//! gpu = racegate.Gate("gpu")
//! with gpu.acquire(label="vision", timeout=5.0):
//!     ...  # one dispatch at a time
//! print(gpu.stats())
//! ```

use pyo3::prelude::*;

mod errors;
mod front;
mod gate;
mod global;
mod guard;
mod logging;
mod machine;
mod runtime;
mod stats;
mod status;
mod wait;
mod waiter;

/// The native half of the `racegate` package.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<gate::PyGate>()?;
    m.add_class::<machine::PyMachineGate>()?;
    m.add_class::<guard::PyGuard>()?;
    m.add_class::<stats::PyGateStats>()?;
    m.add_class::<stats::PyLabelStats>()?;
    m.add_class::<stats::PyPercentiles>()?;
    m.add_class::<stats::PyHolder>()?;
    m.add_class::<status::PyMachineStatus>()?;
    m.add_class::<status::PyMachineHolder>()?;
    m.add_class::<status::PyHistorySummary>()?;
    m.add_class::<status::PyDeviceStatus>()?;
    m.add_class::<waiter::PyWaiter>()?;
    m.add_function(wrap_pyfunction!(global::global_gate, m)?)?;
    m.add_function(wrap_pyfunction!(global::configure, m)?)?;
    m.add_function(wrap_pyfunction!(global::parse_device_list, m)?)?;
    m.add_function(wrap_pyfunction!(global::discover_devices, m)?)?;
    m.add_function(wrap_pyfunction!(global::configure_machine_wide, m)?)?;
    m.add("RUST_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
