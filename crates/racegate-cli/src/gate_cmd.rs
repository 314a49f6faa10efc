//! The `gate_cmd` engine.

use crate::exit::CliError;

/// Run `racegate run`.
pub fn run(_args: crate::cli::run::RunArgs) -> Result<u8, CliError> {
    Err(CliError::Other(anyhow::anyhow!(
        "`racegate run` is not built yet"
    )))
}

/// Run `racegate status`.
pub fn status(_args: crate::cli::status::StatusArgs) -> Result<u8, CliError> {
    Err(CliError::Other(anyhow::anyhow!(
        "`racegate status` is not built yet"
    )))
}
