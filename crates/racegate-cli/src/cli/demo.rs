//! Arguments of `racegate demo`.

/// Show the whole story on the simulated GPU: the race, the wrong fix, the right fix and its cost.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}
