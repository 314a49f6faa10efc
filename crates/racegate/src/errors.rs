//! Every error the library returns.
//!
//! Messages are lowercase, name values in backticks and end with a hint where one helps.

use std::fmt;
use std::time::Duration;

/// One current holder of a gate, as reported in errors and [`GateStats`](crate::GateStats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderInfo {
    /// The holder's label, if it acquired with one.
    pub label: Option<String>,
    /// How many permits (lanes, or units of a weighted budget) it holds.
    pub weight: u32,
    /// How long it has held them.
    pub held_for: Duration,
}

impl fmt::Display for HolderInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label {
            Some(label) => write!(f, "`{label}`")?,
            None => f.write_str("an unlabeled holder")?,
        }
        if self.weight != 1 {
            write!(f, " ({} permits)", self.weight)?;
        }
        write!(f, " for {}", fmt_duration(self.held_for))
    }
}

/// A list of holders as one phrase: "`vision` for 1.2s, `text` for 30ms".
pub(crate) struct Holders<'a>(pub(crate) &'a [HolderInfo]);

impl fmt::Display for Holders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no holder recorded (stats are off, or the holder just left)");
        }
        for (i, h) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{h}")?;
        }
        Ok(())
    }
}

/// Durations in errors: milliseconds below ten seconds, seconds above.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(10) {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Why [`Gate::try_acquire`](crate::Gate::try_acquire) (and friends) did not grant the gate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not enough permits are free right now, or others are already queued for them.
    #[error(
        "gate `{gate}` is busy: held by {}{}",
        Holders(holders),
        if *waiters > 0 { format!(", {waiters} waiter(s) queued ahead") } else { String::new() }
    )]
    WouldBlock {
        /// The gate's name.
        gate: String,
        /// Who holds it at the moment of the attempt.
        holders: Vec<HolderInfo>,
        /// Callers already queued (a `try_*` call never overtakes them).
        waiters: usize,
    },
    /// The request can never be granted.
    #[error(transparent)]
    TooLarge(#[from] TooLargeError),
    /// The machine-wide backend failed.
    #[error(transparent)]
    Machine(#[from] MachineError),
}

/// A weighted request asked for more permits than the gate has in total.
///
/// Such a request could never be granted, so it fails at once instead of waiting forever.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "gate `{gate}` has `{capacity}` permits in total but `{requested}` were requested; \
     hint: request at most `{capacity}` or create the gate with a larger capacity"
)]
pub struct TooLargeError {
    /// The gate's name.
    pub gate: String,
    /// Permits requested.
    pub requested: u32,
    /// The gate's capacity.
    pub capacity: u32,
}

/// Why a weighted or machine-backed acquisition that has no deadline failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The request can never be granted.
    #[error(transparent)]
    TooLarge(#[from] TooLargeError),
    /// The machine-wide backend failed.
    #[error(transparent)]
    Machine(#[from] MachineError),
}

/// The machine-wide backend of a gate failed (for example its lock file could not be opened).
#[derive(Debug, thiserror::Error)]
#[error("machine-wide lock for gate `{gate}` failed: {source}")]
pub struct MachineError {
    /// The gate's name.
    pub gate: String,
    /// The underlying I/O error.
    #[source]
    pub source: std::io::Error,
}

/// The gate was not granted within the caller's timeout.
///
/// Names who held the gate at that moment and for how long, and how long the caller waited, so a
/// log line alone tells which pipeline starved which.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "timed out after {} waiting for gate `{gate}`{}: held by {}{}; \
     hint: raise the timeout, or look for a holder that keeps the gate across slow non-GPU work",
    fmt_duration(*waited),
    label.as_ref().map(|l| format!(" as `{l}`")).unwrap_or_default(),
    Holders(holders),
    if *waiters > 0 { format!(", {waiters} other waiter(s) queued") } else { String::new() }
)]
pub struct AcquireTimeoutError {
    /// The gate's name.
    pub gate: String,
    /// The caller's label, if any.
    pub label: Option<String>,
    /// How long the caller waited before giving up.
    pub waited: Duration,
    /// Who held the gate when the caller gave up (in-process holders; for a machine-wide gate the
    /// backend reports its holders here too).
    pub holders: Vec<HolderInfo>,
    /// Other callers still queued at that moment.
    pub waiters: usize,
}

/// Why a timed acquisition failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimedAcquireError {
    /// The deadline passed.
    #[error(transparent)]
    Timeout(#[from] AcquireTimeoutError),
    /// The request can never be granted.
    #[error(transparent)]
    TooLarge(#[from] TooLargeError),
    /// The machine-wide backend failed.
    #[error(transparent)]
    Machine(#[from] MachineError),
}

impl From<AcquireError> for TimedAcquireError {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::TooLarge(e) => Self::TooLarge(e),
            AcquireError::Machine(e) => Self::Machine(e),
        }
    }
}

/// A gate configuration was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A gate needs at least one permit.
    #[error("gate `{gate}`: capacity must be at least `1`, got `0`")]
    ZeroCapacity {
        /// The gate's name.
        gate: String,
    },
    /// More permits than the underlying semaphore supports.
    #[error("gate `{gate}`: capacity `{requested}` exceeds the maximum `{max}`")]
    CapacityTooLarge {
        /// The gate's name.
        gate: String,
        /// Capacity requested.
        requested: u64,
        /// The largest supported capacity.
        max: u64,
    },
    /// The global gate was already configured differently.
    #[error(
        "global gate `{gate}` is already configured as {existing}, cannot reconfigure it as {requested}; \
         hint: configure each global gate once, at startup"
    )]
    Conflict {
        /// The gate's name.
        gate: String,
        /// The configuration in force, in words.
        existing: String,
        /// The configuration that was refused, in words.
        requested: String,
    },
    /// The global gate was already handed out with its default configuration.
    #[error(
        "global gate `{gate}` was already used with {existing} before this configuration ({requested}); \
         hint: call `racegate::configure` before the first `racegate::global(\"{gate}\")`"
    )]
    AlreadyInUse {
        /// The gate's name.
        gate: String,
        /// The configuration in force, in words.
        existing: String,
        /// The configuration that was refused, in words.
        requested: String,
    },
}

/// Why a machine-wide gate ([`MachineGate`](crate::MachineGate), `racegate run`, the test guard)
/// could not be opened or acquired.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MachineGateError {
    /// The lock directory (or a gate's directory) is a symlink.
    #[error("lock directory `{}` is a symlink; hint: point `RACEGATE_DIR` at a real directory you own", path.display())]
    Symlink {
        /// The offending path.
        path: std::path::PathBuf,
    },
    /// The lock directory is owned by another user.
    #[error(
        "lock directory `{}` is owned by uid `{owner}`, not by you (uid `{uid}`); \
         hint: set `RACEGATE_DIR` to a directory you own",
        path.display()
    )]
    ForeignOwner {
        /// The offending path.
        path: std::path::PathBuf,
        /// Its owner.
        owner: u32,
        /// The current user.
        uid: u32,
    },
    /// The lock directory exists but is not a directory.
    #[error("lock directory `{}` is not a directory; hint: set `RACEGATE_DIR` to a directory", path.display())]
    NotADirectory {
        /// The offending path.
        path: std::path::PathBuf,
    },
    /// Others can write into the lock directory.
    #[error(
        "lock directory `{}` is writable by group or others (mode `{mode:o}`); hint: `chmod 700` it",
        path.display()
    )]
    Insecure {
        /// The offending path.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The lock directory cannot be created or read.
    #[error(
        "cannot use lock directory `{}`: {source}; hint: set `RACEGATE_DIR` to a writable directory",
        path.display()
    )]
    Dir {
        /// The offending path.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A gate name that cannot be a file name.
    #[error(
        "gate name `{name}` is invalid; hint: use 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`"
    )]
    BadName {
        /// The name given.
        name: String,
    },
    /// A slot count out of range.
    #[error("gate `{gate}`: slots must be between `1` and `{max}`, got `{requested}`")]
    BadSlots {
        /// The gate.
        gate: String,
        /// Slots requested.
        requested: u32,
        /// The largest allowed.
        max: u32,
    },
    /// Other users of the gate use a different slot count.
    #[error(
        "gate `{gate}` is in use with `{existing}` slot(s), cannot use it with `{requested}`; \
         hint: every user of a gate must ask for the same number of slots"
    )]
    SlotsMismatch {
        /// The gate.
        gate: String,
        /// Slots in force.
        existing: u32,
        /// Slots requested.
        requested: u32,
    },
    /// A weighted request (more than one lane at once).
    #[error("gate `{gate}`: a machine-wide acquisition takes exactly one lane, `{weight}` were requested")]
    Weighted {
        /// The gate.
        gate: String,
        /// Lanes requested.
        weight: u32,
    },
    /// A file in the gate's directory could not be used.
    #[error("machine-wide gate `{gate}`: cannot {op} `{}`: {source}", path.display())]
    Io {
        /// The gate.
        gate: String,
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The global gate of that name already exists as an in-process gate.
    #[error(
        "global gate `{gate}` already exists as an in-process gate (or with `{existing}` slot(s)); \
         hint: call `racegate::configure_machine_wide(\"{gate}\", ..)` before the first `racegate::global(\"{gate}\")`"
    )]
    GlobalConflict {
        /// The gate.
        gate: String,
        /// Capacity of the existing global gate.
        existing: u32,
    },
    /// The gate was not granted in time; names the holders.
    #[error(transparent)]
    Timeout(#[from] AcquireTimeoutError),
    /// `try_acquire`: the gate is held or others are queued.
    #[error(transparent)]
    WouldBlock(TryAcquireError),
}
