//! The `compare` engine.

use crate::exit::CliError;

/// Run `racegate compare`.
pub fn compare(_args: crate::cli::compare::CompareArgs) -> Result<u8, CliError> {
    Err(CliError::Other(anyhow::anyhow!(
        "`racegate compare` is not built yet"
    )))
}
