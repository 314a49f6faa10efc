//! Arguments of `racegate run`.

use std::ffi::OsString;
use std::time::Duration;

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); hint: write e.g. `30s`, `5m`, `1h`"))
}

/// Run a command while holding a machine-wide gate.
///
/// Waits for the gate (in arrival order with every other process on this machine), runs the
/// command holding it, forwards SIGINT and SIGTERM to the command, releases the gate when the
/// command ends, and exits with the command's status (128+N if a signal N killed it). Exits
/// 124 if `--timeout` passes first, naming who holds the gate.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The gate's name (shared by every process that names it).
    #[arg(long, default_value = "gpu", value_name = "NAME")]
    pub gate: String,

    /// Lanes of the gate: how many commands may hold it at once. Every user must agree.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=racegate::machine::MAX_SLOTS as i64))]
    pub slots: u32,

    /// Give up waiting after this long (e.g. `30s`, `5m`); default: wait as long as it takes.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// A label shown to others in `racegate status` and in their timeout messages.
    #[arg(long, value_name = "L")]
    pub label: Option<String>,

    /// The command to run and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}
