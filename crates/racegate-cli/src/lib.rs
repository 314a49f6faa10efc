//! The `racegate` command: a library with the engines and a thin `main.rs`.
//!
//! Layers, top to bottom; imports only point down (`ARCHITECTURE.md` has the code map, and
//! `tests/architecture.rs` checks the rule on this crate's source):
//!
//! - [`cli`]: clap, flags resolved into engine configs, every error mapped to its exit status,
//!   the plumbing every command shares (report outputs, the interrupt policy). The only code
//!   that ends the process.
//! - engines: [`stress`], [`compare`], [`demo`], [`hunt`], [`gate_cmd`]: a config in, events
//!   out, a result back. They never import `cli`.
//! - model: [`scenario`] (no flag names), [`events`], [`verdict`], the [`report`] model, and
//!   the [`reporter`]s that print it; [`crash`] reads crash reports; [`plumbing`] gives engines
//!   cancellation and child bookkeeping; [`exit`] is the table of exit statuses.
//!
//! ```
//! use racegate_cli::scenario::{Overrides, Scenario};
//!
//! // `racegate stress --target URL` without a file runs the built-in scenario: a text and a
//! // 1x1 PNG vision pipeline, 4 workers each, answers checked for consistency.
//! let overrides = Overrides {
//!     target: Some("http://127.0.0.1:8080".into()),
//!     ..Overrides::default()
//! };
//! let scenario = Scenario::builtin(&overrides).expect("a loopback target is valid");
//! let names: Vec<&str> = scenario.pipelines.iter().map(|p| p.name.as_str()).collect();
//! assert_eq!(names, ["text", "vision"]);
//! assert!(scenario.pipelines.iter().all(|p| p.workers == 4));
//!
//! // The binary's own entry point: parse, run, map the outcome to an exit status.
//! let status = racegate_cli::main_with_args(["racegate", "--version"]);
//! assert_eq!(status, std::process::ExitCode::SUCCESS);
//! ```
#![deny(missing_docs)]

pub mod cli;
pub mod compare;
pub mod crash;
pub mod demo;
pub mod events;
pub mod exit;
pub mod gate_cmd;
pub mod hunt;
pub mod plumbing;
pub mod report;
pub mod reporter;
pub mod scenario;
pub mod stress;
pub mod verdict;

use std::ffi::OsString;
use std::process::ExitCode;

/// Parse `args` (including the program name), run the chosen subcommand and return its exit
/// status. Errors are printed to stderr here, once.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    cli::main(args)
}
