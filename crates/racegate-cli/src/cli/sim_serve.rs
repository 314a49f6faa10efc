//! `racegate sim-serve` (hidden): the demo inference server on the simulated GPU, so that
//! `racegate demo` and tests can run a target by re-executing this binary. Same flags as
//! `racegate-sim serve` ([`racegate_sim::server::ServeArgs`]).

use crate::exit::{CliError, SUCCESS};

pub use racegate_sim::server::ServeArgs;

/// Run the server until the process is killed (or aborts on a device violation).
///
/// # Errors
/// [`CliError::Usage`] when a flag is out of range, a TLS file is unusable, or the address
/// cannot be bound.
pub fn sim_serve(args: ServeArgs) -> Result<u8, CliError> {
    racegate_sim::server::run(args)
        .map(|()| SUCCESS)
        .map_err(|e| CliError::Usage(e.into()))
}
