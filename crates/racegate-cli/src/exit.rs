//! Exit statuses and the one place where errors become them.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success (stress: PASS) |
//! | 1    | stress: FAIL; hunt: conflicting tests found (serialization printed) |
//! | 2    | usage, configuration, or an unhealthy target (ERROR) |
//! | 3    | stress: PARTIAL |
//! | 4    | hunt: `--verify` still saw failures with the emitted serialization applied |
//! | 5    | hunt: failures, but none is a race (broken, order-dependent or flaky tests) |
//! | 6    | hunt: the `--budget` ran out before the hunt finished (report still written) |
//! | 124  | run: timed out waiting for the gate (like `timeout(1)`); the message names the holder |
//! | 130  | interrupted (Ctrl-C; stress: ABORTED) |
//!
//! Subcommands that add codes list them here and in the README.

use std::process::ExitCode;

/// Success.
pub const SUCCESS: u8 = 0;
/// A check failed (stress verdict FAIL).
pub const FAILURE: u8 = 1;
/// Bad usage or configuration, or a target that is not healthy.
pub const USAGE: u8 = 2;
/// Stress verdict PARTIAL: errors, but no crash and no failed check.
pub const PARTIAL: u8 = 3;
/// `racegate hunt`: the serialization did not hold under `--verify`.
pub const HUNT_VERIFY_FAILED: u8 = 4;
/// `racegate hunt`: failures, none of them needing concurrency.
pub const HUNT_NO_RACE: u8 = 5;
/// `racegate hunt`: the budget ran out first.
pub const HUNT_INCOMPLETE: u8 = 6;
/// The run was interrupted (SIGINT); reports were still written.
pub const INTERRUPTED: u8 = 130;
/// `racegate run`: the gate was not granted within `--timeout`.
pub const GATE_TIMEOUT: u8 = 124;

/// An error that ends a subcommand. Each variant has exactly one exit status.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or a bad configuration file; the message names the flag, file, line or key.
    Usage(anyhow::Error),
    /// Anything else that stopped the command before it could produce its result.
    Other(anyhow::Error),
    /// `racegate run`: the gate was not granted in time; the message names who holds it.
    GateTimeout(anyhow::Error),
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::Other(_) => USAGE,
            CliError::GateTimeout(_) => GATE_TIMEOUT,
        }
    }
}

/// Hunt errors (the test command cannot be started, listed, or runs no test): usage (2).
impl From<crate::hunt::HuntError> for CliError {
    fn from(e: crate::hunt::HuntError) -> Self {
        CliError::Usage(anyhow::Error::new(e))
    }
}

/// A bad scenario file or flag: exit 2, the message names the file, line and key.
impl From<crate::scenario::ScenarioError> for CliError {
    fn from(e: crate::scenario::ScenarioError) -> Self {
        CliError::Usage(anyhow::Error::new(e))
    }
}

/// Stress setup errors: bad TLS material or target are configuration (2); the rest too (2).
impl From<crate::stress::StressError> for CliError {
    fn from(e: crate::stress::StressError) -> Self {
        use crate::stress::StressError as S;
        match e {
            S::Tls(_) | S::Target(_) => CliError::Usage(anyhow::Error::new(e)),
            _ => CliError::Other(anyhow::Error::new(e)),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(e) | CliError::Other(e) | CliError::GateTimeout(e) => {
                f.write_str(&chain_text(e))
            }
        }
    }
}

/// `{e:#}` without repeats: the library errors already put their source into their own message
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

/// Turn a subcommand's result (its own exit status, or an error) into the process status,
/// printing the error once.
pub fn finish(result: Result<u8, CliError>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("racegate: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
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
}
