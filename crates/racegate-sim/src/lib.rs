//! racegate-sim: a simulated GPU command queue that fails like Metal under concurrent misuse,
//! and a demo inference server on it.
//!
//! The device model ([`SimDevice`], [`Stream`], [`CommandBuffer`], [`CommandEncoder`],
//! [`SharedEvent`]) obeys Metal's command-buffer lifecycle (encoding → committed → completed)
//! and checks its rules with Metal's own assertion texts. Its lifecycle state is shared and
//! unsynchronized, as in the runtimes it models, so the races are real: two dispatchers on the
//! device's default stream break a rule within a fraction of a second, while one dispatcher at
//! a time never does. Each dispatch does real CPU work ([`Kernel`]) with a deterministic answer.
//!
//! With the default `server` feature the crate also builds the demo inference server
//! (`racegate-sim serve`, see [`server`]); `default-features = false` leaves the device model
//! alone, on std and thiserror only.
//!
//! # Example
//!
//! Two pipelines that take the device's default stream share its current command buffer; when
//! their dispatches overlap, the second encoder breaks a rule. Under
//! [`ViolationPolicy::Error`] that is an error (under `Abort`, a SIGABRT with Metal's line):
//!
//! ```
//! use racegate_sim::{Kernel, Scratch, SimDevice, Violation, ViolationPolicy};
//!
//! let device = SimDevice::new(ViolationPolicy::Error);
//! let (text, vision) = (device.default_stream(), device.default_stream());
//!
//! // The text pipeline is in the middle of a dispatch...
//! let buffer = text.command_buffer();
//! let encoder = buffer.compute_command_encoder()?;
//! // ...when the vision pipeline dispatches on "its" stream: the same buffer.
//! let err = vision.eval(&Kernel { seed: 1, passes: 1 }, &Scratch::new()).unwrap_err();
//! assert_eq!(err.violation(), Some(Violation::EncoderAlreadyEncoding));
//! assert_eq!(
//!     err.violation().unwrap().assertion_line(),
//!     "-[SimCommandBuffer computeCommandEncoder]:1090: failed assertion \
//!      `A command encoder is already encoding to this command buffer'"
//! );
//! encoder.end_encoding();
//!
//! // Distinct streams do not share buffers.
//! let own = device.create_stream();
//! let kernel = Kernel { seed: 2, passes: 10 };
//! assert_eq!(own.eval(&kernel, &Scratch::new())?, kernel.expected());
//! # Ok::<(), racegate_sim::SimError>(())
//! ```
#![deny(missing_docs)]

pub mod crash_report;
pub mod device;
pub mod errors;
pub mod kernel;
#[cfg(feature = "server")]
pub mod server;

pub use device::{
    BufferStatus, CommandBuffer, CommandEncoder, DeviceConfig, SharedEvent, SimDevice, Stream,
    ViolationPolicy,
};
pub use errors::{SimError, Violation};
pub use kernel::{passes_for, Kernel, Scratch, SCRATCH_SLOTS};
