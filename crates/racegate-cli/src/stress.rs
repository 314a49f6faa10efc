//! The `stress` engine.

use crate::exit::CliError;

/// Run `racegate stress`.
pub fn stress(_args: crate::cli::stress::StressArgs) -> Result<u8, CliError> {
    Err(CliError::Other(anyhow::anyhow!(
        "`racegate stress` is not built yet"
    )))
}
