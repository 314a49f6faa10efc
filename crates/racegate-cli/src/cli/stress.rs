//! Arguments of `racegate stress`.

/// Hammer a service's pipelines concurrently, watch for crashes, check answers, and return a verdict.
#[derive(Debug, clap::Args)]
pub struct StressArgs {}
