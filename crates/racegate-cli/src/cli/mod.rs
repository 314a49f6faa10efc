//! Command-line definitions (clap) only: parse and validate, no side effects. Each subcommand's
//! arguments live in their own file; its engine lives in its own module.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use crate::exit::CliError;

/// racegate: serialize GPU work, stress-test services for dispatch races, and hunt racing tests.
#[derive(Debug, Parser)]
#[command(name = "racegate", version, about, propagate_version = true)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `racegate` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {}

/// Parse `args` and run the chosen subcommand, returning its exit status.
pub fn parse_and_run<I, T>(args: I) -> Result<u8, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version itself and picks its own status (0 for --help, 2 for
            // usage errors), which matches our table.
            e.print().ok();
            return Ok(e.exit_code() as u8);
        }
    };
    match cli.command {}
}
