//! The `hunt` engine.

use crate::exit::CliError;

/// Run `racegate hunt`.
pub fn hunt(_args: crate::cli::hunt::HuntArgs) -> Result<u8, CliError> {
    Err(CliError::Other(anyhow::anyhow!(
        "`racegate hunt` is not built yet"
    )))
}
