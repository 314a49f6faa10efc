//! Arguments of `racegate compare`.

/// Run two builds of a server through one identical stress test and name the winner.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {}
