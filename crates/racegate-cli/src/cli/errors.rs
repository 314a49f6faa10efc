//! Every engine error becomes a [`CliError`], with its row of the exit table
//! ([`crate::exit`]), here and nowhere else. Engines return their own error types and never
//! make a `CliError`.
//!
//! For an engine: give it an error type (thiserror), return it, and add its `From` impl here,
//! choosing [`CliError::Usage`] for what the user can fix in the flags or files and
//! [`CliError::Other`] for the rest. Both are exit 2 (ERROR: no verdict); the split only words
//! the message. A status other than 2 comes from a result, not an error (a verdict, a
//! comparison's exit code), or from its own variant (`racegate run`'s timeout).

use std::process::ExitCode;

use crate::compare::CompareError;
use crate::demo::DemoError;
use crate::exit::CliError;
use crate::gate_cmd::GateError;
use crate::hunt::HuntError;
use crate::scenario::ScenarioError;
use crate::stress::StressError;

/// A bad scenario file or flag: the message names the file, line and key, or the flag.
impl From<ScenarioError> for CliError {
    fn from(e: ScenarioError) -> Self {
        CliError::usage(e.render(&|s| format!("`{}`", super::flag_of(s))))
    }
}

/// Bad TLS material or target are configuration; no port or no runtime are the machine.
impl From<StressError> for CliError {
    fn from(e: StressError) -> Self {
        match e {
            StressError::Tls(_) | StressError::Target(_) => CliError::Usage(e.into()),
            StressError::Port(_) | StressError::Runtime(_) => CliError::Other(e.into()),
        }
    }
}

impl From<CompareError> for CliError {
    fn from(e: CompareError) -> Self {
        match e {
            CompareError::Stress(e) => e.into(),
            CompareError::Port(_) => CliError::Other(e.into()),
        }
    }
}

impl From<DemoError> for CliError {
    fn from(e: DemoError) -> Self {
        match e {
            DemoError::Stress(e) => e.into(),
            DemoError::Scenario(e) => e.into(),
            DemoError::CrashDir(_) | DemoError::Port(_) => CliError::Other(e.into()),
        }
    }
}

/// The gate commands. A command that could not be started is not an error here: `racegate
/// run` then exits 126 or 127 like a shell (see [`super::run`]).
impl From<GateError> for CliError {
    fn from(e: GateError) -> Self {
        match e {
            // Lock-directory problems are the user's environment: fixed by the user.
            GateError::Setup(_) | GateError::Acquire(_) | GateError::Request(_) => {
                CliError::Usage(e.into())
            }
            GateError::Timeout { ref gate, .. } => CliError::GateTimeout(anyhow::anyhow!(
                "{e}; hint: `racegate status --gate {gate}` shows the queue"
            )),
            GateError::Signals(_)
            | GateError::NotStarted { .. }
            | GateError::Wait { .. }
            | GateError::PrepareNotStarted { .. }
            | GateError::PrepareFailed { .. } => CliError::Other(e.into()),
        }
    }
}

/// The test command cannot be started, listed, or runs no test.
impl From<HuntError> for CliError {
    fn from(e: HuntError) -> Self {
        CliError::Usage(e.into())
    }
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
    use crate::scenario::{Overrides, Scenario};

    const MIN: &str = "target = \"http://127.0.0.1:9\"\n[[pipeline]]\nname = \"a\"\npath = \"/\"\n";

    #[test]
    fn a_given_value_is_named_by_its_flag_quoted_once() {
        let workers = Overrides {
            workers: Some(0),
            ..Overrides::default()
        };
        let e = Scenario::from_toml_str(MIN, None, &workers).unwrap_err();
        assert_eq!(
            CliError::from(e).to_string(),
            "`--workers`: must be between 1 and 10000"
        );
        let remote = Overrides {
            target: Some("http://10.0.0.1:9".into()),
            ..Overrides::default()
        };
        let e = Scenario::from_toml_str(MIN, None, &remote).unwrap_err();
        assert_eq!(
            CliError::from(e).to_string(),
            "`--target`: target host `10.0.0.1` is not a loopback address\n  hint: racegate hammers services; give `--allow-remote` to stress a remote one on purpose"
        );
    }

    #[test]
    fn a_file_value_is_named_by_its_file_line_and_key() {
        let e = Scenario::from_toml_str(
            &format!("{MIN}workers = 0\n"),
            Some(std::path::Path::new("s.toml")),
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            CliError::from(e).to_string(),
            "s.toml:5:11: `pipeline[0].workers`: must be between 1 and 10000"
        );
    }
}
