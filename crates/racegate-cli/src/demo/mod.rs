//! The `demo` engine.

use crate::exit::CliError;

/// Run `racegate demo`.
pub fn demo(_args: crate::cli::demo::DemoArgs) -> Result<u8, CliError> {
    Err(CliError::Other(anyhow::anyhow!(
        "`racegate demo` is not built yet"
    )))
}
