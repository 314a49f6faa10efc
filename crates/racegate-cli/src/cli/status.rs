//! `racegate status`: flags and the run.

use super::output::Output;
use crate::exit::{CliError, SUCCESS};
use crate::gate_cmd::{self, StatusConfig};
use crate::reporter::status::{status_json, write_status_text};

/// Show holders, waiters and recent history of machine-wide gates.
///
/// Reads the lock directory (`RACEGATE_DIR`, else `$XDG_RUNTIME_DIR/racegate`, else
/// `/tmp/racegate-<uid>`) without joining any queue. `--json` prints one document whose
/// schema is versioned by its `schema_version` field (see docs/machine-gate.md).
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this gate (default: every gate in the lock directory).
    #[arg(long, value_name = "NAME")]
    pub gate: Option<String>,

    /// Print JSON (schema in docs/machine-gate.md) instead of text; the same as
    /// `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Output format: `text` for people, `json` (as `--json`), or `openmetrics` for Prometheus
    /// through node_exporter's textfile collector (docs/metrics.md).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

/// `racegate status --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// For people.
    Text,
    /// The `--json` document.
    Json,
    /// Gauges per gate, in OpenMetrics (also valid classic Prometheus text).
    Openmetrics,
}

/// Run `racegate status`.
pub fn run(args: StatusArgs) -> Result<u8, CliError> {
    let report = gate_cmd::status(&StatusConfig {
        gate: args.gate.clone(),
    })?;
    let (dir, gates, now) = (&report.lock_dir, &report.gates, report.now);
    let format = if args.json {
        StatusFormat::Json
    } else {
        args.format
    };
    Output::Stdout.write(|out| {
        if format == StatusFormat::Openmetrics {
            crate::reporter::status_openmetrics::write(&mut *out, gates, now)
        } else if format == StatusFormat::Json {
            serde_json::to_writer_pretty(&mut *out, &status_json(dir, gates, now))?;
            writeln!(out)
        } else if let (Some(name), true) = (&args.gate, gates.is_empty()) {
            writeln!(
                out,
                "no gate `{name}` in {}: nothing has used it yet",
                dir.display()
            )
        } else {
            write_status_text(&mut &mut *out, dir, gates, now)
        }
    })?;
    Ok(SUCCESS)
}
