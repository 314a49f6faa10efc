//! racegate: one gate that all GPU work passes through.
//!
//! GPU runtimes (MLX on Metal, CUDA streams and cuBLAS handles, wgpu queues) crash or corrupt
//! results when several threads dispatch at once. The fix that holds in production is one lock,
//! at the right granularity, that all GPU work passes through. This crate makes that lock a
//! first-class, observable primitive:
//!
//! - [`Gate`]: a fair (FIFO), timeout-bounded gate with a *capacity* of units (one holder at a
//!   time by default). Its acquisitions form a regular matrix, like `tokio::sync`'s: borrowed or
//!   owned guards × async ([`Gate::acquire`]), blocking for FFI threads
//!   ([`Gate::acquire_blocking`]), non-waiting ([`Gate::try_acquire`]) and bounded
//!   ([`Gate::acquire_timeout`], [`Gate::acquire_blocking_timeout`]), each with a weighted
//!   `_many(n)` form that takes `n` units of a budget, and one error type per kind of call.
//! - [`Labeled`]: the one way to label an acquisition, on every front:
//!   `gate.labeled("vision").acquire()`.
//! - [`global`] / [`configure`]: the same process-wide gate from anywhere in a program.
//! - [`Gated<T>`]: a resource (stream, device handle) reachable only through its gate.
//! - [`Gate::stats`]: acquisitions, timeouts, panics while held, current holders, waiters, and
//!   wait/hold percentiles overall and per label; a hold-too-long `tracing` warning.
//! - [`MachineGate`] / [`configure_machine_wide`] / [`test_guard`]: the same gate across every
//!   process of the machine, over OS file locks (a SIGKILLed holder releases it), fair across
//!   processes, with holders and waiters visible to `racegate status` ([`machine`]).
//!
//! - [`metrics`] (feature `metrics`): every gate's figures in OpenMetrics, for Prometheus.
//!
//! A panic while holding releases the gate (and is counted): the gate is never poisoned.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use racegate::{configure, global, GateConfig, Gated};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     // Once, at startup: the process-wide GPU gate, warning about holds over 500 ms.
//!     configure("example-gpu", GateConfig::default().with_hold_warning(Duration::from_millis(500)))
//!         .expect("configured once");
//!
//!     // Anywhere: the same gate. A vision request holds it for one dispatch.
//!     let gpu = global("example-gpu");
//!     {
//!         let _guard = gpu.labeled("vision").acquire().await;
//!         // ... encode and commit GPU work ...
//!     }
//!
//!     // A streaming handler returns at once but must hold the gate until the stream ends:
//!     // move an owned guard into the task that produces the stream.
//!     let guard = gpu.labeled("text").acquire_owned().await;
//!     let stream = tokio::spawn(async move {
//!         let _guard = guard;
//!         // ... generate tokens on the GPU ...
//!     });
//!     stream.await.unwrap();
//!
//!     // A shared stream that can only be reached through the gate.
//!     struct CommandQueue { committed: u64 }
//!     let queue = Arc::new(Gated::with_gate(gpu.clone(), CommandQueue { committed: 0 }));
//!     queue.lock().await.committed += 1;
//!     let mut owned = Arc::clone(&queue).lock_owned().await;
//!     tokio::spawn(async move { owned.committed += 1 }).await.unwrap();
//!
//!     let stats = gpu.stats();
//!     assert_eq!(stats.acquisitions, 4);
//!     assert_eq!(stats.labels.len(), 2);
//!     println!("{stats}");
//! }
//! ```
#![deny(missing_docs)]

mod errors;
mod gate;
mod gated;
mod global;
mod holder;
pub mod machine;
#[cfg(feature = "metrics")]
pub mod metrics;
mod stats;
mod test_guard;

#[allow(deprecated)]
pub use errors::TimedAcquireError;
pub use errors::{
    AcquireError, AcquireTimeoutError, ConfigError, MachineGateError, TooLargeError,
    TryAcquireError,
};
pub use gate::{Gate, GateConfig, GateGuard, Labeled, OwnedGateGuard};
pub use gated::{Gated, GatedGuard, OwnedGatedGuard};
pub use global::{configure, global};
pub use holder::Holder;
#[allow(deprecated)]
pub use holder::HolderInfo;
pub use machine::{configure_machine_wide, MachineGate, MachineGateBuilder};
pub use stats::{GateStats, Label, LabelStats, Percentiles};
pub use test_guard::{
    test_guard, test_guard_with, TestGuard, TEST_GUARD_CAPACITY_ENV, TEST_GUARD_DEVICES_ENV,
    TEST_GUARD_TIMEOUT_ENV,
};

/// The README's Rust examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
