//! Arguments of `racegate status`.

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

    /// Print JSON (schema in docs/machine-gate.md) instead of text.
    #[arg(long)]
    pub json: bool,
}
