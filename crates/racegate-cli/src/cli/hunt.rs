//! Arguments of `racegate hunt`.

/// Find which tests crash or hang when run together, and write the serialization for them.
#[derive(Debug, clap::Args)]
pub struct HuntArgs {}
