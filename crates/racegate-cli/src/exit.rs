//! The exit statuses of `racegate`: one table for every subcommand, and [`CliError`], the error
//! that carries one.
//!
//! This module imports nothing from the rest of the crate. Engines name the row their result
//! belongs to with these constants ([`crate::verdict::Verdict::exit_code`], a comparison's
//! `exit_code`); `cli/` maps every error to a row, in one place (`cli/errors.rs`), and is the
//! only code that ends the process.
//!
//! | code | name | meaning |
//! |------|------|---------|
//! | 0    | [`SUCCESS`] | stress PASS; compare: every run of both builds passed; demo: the story came out as told; hunt: clean; run: the command's own 0 |
//! | 1    | [`FAILURE`] | stress FAIL; compare: some run did not pass; demo: not as expected; hunt: conflicting tests found (serialization printed) |
//! | 2    | [`ERROR`]   | ERROR, no verdict: bad flags or files (the message names the flag, or the file, line and key), a target that never became healthy (stress verdict ERROR: nothing was hammered, the reports are written), a test command that cannot be listed or run, a lock folder or an output that cannot be used |
//! | 3    | [`PARTIAL`] | stress PARTIAL: errors above `max_error_rate`, nothing worse |
//! | 4    | [`HUNT_VERIFY_FAILED`] | hunt: `--verify` still saw failures with the emitted serialization applied |
//! | 5    | [`HUNT_NO_RACE`] | hunt: failures, but none is a race (broken, order-dependent or flaky tests) |
//! | 6    | [`HUNT_INCOMPLETE`] | hunt: the `--budget` ran out before the hunt finished (report still written) |
//! | 124  | [`GATE_TIMEOUT`] | run: the gate was not granted within `--timeout` (like `timeout(1)`); the message names the holder |
//! | 130  | [`INTERRUPTED`] | SIGINT, SIGTERM or SIGHUP: the children were stopped and the reports written (stress ABORTED); a second signal exits at once |
//!
//! Code 2 has one meaning for every subcommand: racegate could not reach a verdict, and the
//! cause is in front of the engine (the input, the target, the machine), never in what was
//! tested. Where a run was attempted, its report says which (`"verdict": "ERROR"` with
//! `probe_failures`); otherwise stderr does. `racegate run` exits with its command's status
//! (128+N if signal N ended it, 126/127 if it could not be started) and uses 2 and 124 for its
//! own errors only.

use std::fmt;

/// Success.
pub const SUCCESS: u8 = 0;
/// A check failed: stress FAIL, a comparison or demo that did not pass, races found.
pub const FAILURE: u8 = 1;
/// ERROR: no verdict (bad input, an unhealthy target, an unusable environment).
pub const ERROR: u8 = 2;
/// Stress verdict PARTIAL: errors, but no crash and no failed check.
pub const PARTIAL: u8 = 3;
/// `racegate hunt`: the serialization did not hold under `--verify`.
pub const HUNT_VERIFY_FAILED: u8 = 4;
/// `racegate hunt`: failures, none of them needing concurrency.
pub const HUNT_NO_RACE: u8 = 5;
/// `racegate hunt`: the budget ran out first.
pub const HUNT_INCOMPLETE: u8 = 6;
/// `racegate run`: the gate was not granted within `--timeout`.
pub const GATE_TIMEOUT: u8 = 124;
/// Interrupted (SIGINT, SIGTERM, SIGHUP); the reports were still written.
pub const INTERRUPTED: u8 = 130;

/// An error that ends a subcommand. Each variant has exactly one exit status. Only `cli/`
/// makes these (from the engines' own error types); engines never do.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or a bad file; the message names the flag, file, line or key. [`ERROR`].
    Usage(anyhow::Error),
    /// Anything else that stopped the command before its verdict (a lock folder or an output
    /// that cannot be used, no free port). [`ERROR`].
    Other(anyhow::Error),
    /// `racegate run`: the gate was not granted in time; the message names who holds it.
    /// [`GATE_TIMEOUT`].
    GateTimeout(anyhow::Error),
}

impl CliError {
    /// A usage error with this message.
    pub fn usage(message: impl fmt::Display) -> CliError {
        CliError::Usage(anyhow::anyhow!("{message}"))
    }

    /// Any other error with this message.
    pub fn other(message: impl fmt::Display) -> CliError {
        CliError::Other(anyhow::anyhow!("{message}"))
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Other(_) => ERROR,
            CliError::GateTimeout(_) => GATE_TIMEOUT,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(e) | CliError::Other(e) | CliError::GateTimeout(e) => {
                f.write_str(&chain_text(e))
            }
        }
    }
}

/// `{e:#}` without repeats: the crate's errors already put their source into their own message
/// (so that they read well alone), and anyhow's chain would print it a second time.
fn chain_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write report `r.md`: {source}")]
    struct Embeds {
        #[source]
        source: std::io::Error,
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn a_source_already_in_the_message_is_printed_once() {
        let err = CliError::Other(anyhow::Error::new(Embeds { source: io() }));
        assert_eq!(err.to_string(), "cannot write report `r.md`: no such file");
    }

    #[test]
    fn context_and_a_new_source_are_all_printed() {
        let err = CliError::Usage(anyhow::Error::new(io()).context("reading `s.toml`"));
        assert_eq!(err.to_string(), "reading `s.toml`: no such file");
    }

    #[test]
    fn every_error_has_one_row_of_the_table() {
        assert_eq!(CliError::usage("x").exit_code(), 2);
        assert_eq!(CliError::other("x").exit_code(), 2);
        assert_eq!(CliError::GateTimeout(anyhow::anyhow!("x")).exit_code(), 124);
        let codes = [
            SUCCESS,
            FAILURE,
            ERROR,
            PARTIAL,
            HUNT_VERIFY_FAILED,
            HUNT_NO_RACE,
            HUNT_INCOMPLETE,
            GATE_TIMEOUT,
            INTERRUPTED,
        ];
        let distinct: std::collections::BTreeSet<u8> = codes.into_iter().collect();
        assert_eq!(distinct.len(), codes.len(), "one name per code");
    }
}
