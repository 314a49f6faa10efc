//! Arguments of `racegate run`.

/// Run a command while holding a machine-wide gate.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}
