//! Arguments of `racegate status`.

/// Show holders, waiters and recent history of machine-wide gates.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}
