//! The report model: what the engines return and the reporters ([`crate::reporter`]) read.
//! Data only, no printing and no deciding: verdicts come from [`crate::verdict`], a comparison's
//! winner from the compare engine.
//!
//! - [`run`]: one stress run ([`run::RunReport`]), and the summary of it that `compare` and
//!   `demo` rows show ([`run::StressRunSummary`]);
//! - [`compare`]: a comparison of two builds, and the events it emits;
//! - [`demo`]: the demo's dispatch modes and the cost of the fix, and the events it emits;
//! - [`timeline`]: what happened when in a stress run (per-interval figures, crashes, restarts).
//!
//! "Report" means this: the result document of a command. A file the OS writes when a process
//! crashes is a *crash report* ([`crate::crash::CrashReport`]); code that prints a report is a
//! *reporter*.

pub mod compare;
pub mod demo;
pub mod run;
pub mod timeline;

pub use run::RunReport;
