//! The engines behind the `racegate` command.
//!
//! The binary is a thin shell around [`main_with_args`]: every subcommand is parsed and
//! validated by [`cli`] without side effects, then handed to its engine, and every error is
//! mapped to an exit status in one place, [`exit`].

pub mod cli;
pub mod compare;
pub mod crash;
pub mod demo;
pub mod events;
pub mod exit;
pub mod gate_cmd;
pub mod hunt;
pub mod report;
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
    exit::finish(cli::parse_and_run(args))
}
