//! Every error the library returns: one type per kind of call, whatever the gate.
//!
//! | call | error |
//! |---|---|
//! | `try_*` | [`TryAcquireError`] |
//! | `*_timeout` (async or blocking) | [`AcquireTimeoutError`] |
//! | untimed weighted (`*_many`) or machine-wide acquisitions | [`AcquireError`] |
//! | building a gate | [`ConfigError`] |
//! | opening a machine-wide gate, and its lock directory failing under a call | [`MachineGateError`] |
//!
//! Messages are lowercase, name values in backticks and end with a hint where one helps.

use std::time::Duration;

use crate::holder::{fmt_duration, Holder, Holders};

/// Why a `try_*` call ([`Gate::try_acquire`](crate::Gate::try_acquire) and the rest of its row
/// of the variant matrix) did not grant the gate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not enough units are free right now, or others are already queued for them.
    #[error(
        "gate `{gate}` is busy: held by {}{}",
        Holders(holders),
        if *waiters > 0 { format!(", {waiters} waiter(s) queued ahead") } else { String::new() }
    )]
    #[non_exhaustive]
    WouldBlock {
        /// The gate's name.
        gate: String,
        /// Who holds it at the moment of the attempt.
        holders: Vec<Holder>,
        /// Callers already queued (a `try_*` call never overtakes them).
        waiters: usize,
    },
    /// The request can never be granted.
    #[error(transparent)]
    TooLarge(#[from] TooLargeError),
    /// The machine-wide lock behind the gate failed.
    #[error(transparent)]
    Machine(#[from] MachineGateError),
}

/// Why a `*_timeout` call ([`Gate::acquire_timeout`](crate::Gate::acquire_timeout),
/// [`Gate::acquire_blocking_timeout`](crate::Gate::acquire_blocking_timeout), their owned and
/// weighted forms, and the same on every front) did not grant the gate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireTimeoutError {
    /// The deadline passed first.
    ///
    /// Names who held the gate at that moment and for how long, and how long the caller waited,
    /// so a log line alone tells which pipeline starved which.
    #[error(
        "timed out after {} waiting for gate `{gate}`{}: held by {}{}; \
         hint: raise the timeout, or look for a holder that keeps the gate across slow non-GPU work",
        fmt_duration(*waited),
        label.as_ref().map(|l| format!(" as `{l}`")).unwrap_or_default(),
        Holders(holders),
        if *waiters > 0 { format!(", {waiters} other waiter(s) queued") } else { String::new() }
    )]
    #[non_exhaustive]
    TimedOut {
        /// The gate's name.
        gate: String,
        /// The caller's label, if any.
        label: Option<String>,
        /// How long the caller waited before giving up.
        waited: Duration,
        /// Who held the gate when the caller gave up, longest-held first (in-process holders;
        /// for a machine-wide gate, the holders in other processes follow).
        holders: Vec<Holder>,
        /// Other callers still queued at that moment.
        waiters: usize,
    },
    /// The request can never be granted.
    #[error(transparent)]
    TooLarge(#[from] TooLargeError),
    /// The machine-wide lock behind the gate failed.
    #[error(transparent)]
    Machine(#[from] MachineGateError),
}

/// The old name of [`AcquireTimeoutError`], which now also covers the weighted forms.
#[deprecated(note = "merged into `AcquireTimeoutError` (its `Timeout` variant is now `TimedOut`)")]
pub type TimedAcquireError = AcquireTimeoutError;

/// An untimed call can fail for the reasons a timed one can, except the deadline: so a caller
/// with an optional timeout can handle both with one type.
impl From<AcquireError> for AcquireTimeoutError {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::TooLarge(e) => Self::TooLarge(e),
            AcquireError::Machine(e) => Self::Machine(e),
        }
    }
}

/// A weighted request asked for more units than the gate's capacity.
///
/// Such a request could never be granted, so it fails at once instead of waiting forever.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "gate `{gate}` has a capacity of `{capacity}` units but `{requested}` were requested; \
     hint: request at most `{capacity}` or create the gate with a larger capacity"
)]
pub struct TooLargeError {
    /// The gate's name.
    pub gate: String,
    /// Units requested.
    pub requested: u32,
    /// The gate's capacity.
    pub capacity: u32,
}

/// Why an untimed call that can fail did not grant the gate: a weighted (`*_many`) request, or
/// any acquisition of a [`MachineGate`](crate::MachineGate).
///
/// The untimed unit calls of an in-process [`Gate`](crate::Gate) (`acquire`, `acquire_owned`,
/// `acquire_blocking`, `acquire_owned_blocking`) cannot fail and return the guard itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The request can never be granted.
    #[error(transparent)]
    TooLarge(#[from] TooLargeError),
    /// The machine-wide lock behind the gate failed.
    #[error(transparent)]
    Machine(#[from] MachineGateError),
}

/// A gate configuration was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A gate needs a capacity of at least one unit.
    #[error("gate `{gate}`: capacity must be at least `1`, got `0`")]
    ZeroCapacity {
        /// The gate's name.
        gate: String,
    },
    /// A larger capacity than the underlying semaphore supports.
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
/// could not be opened, or why its lock directory failed under an acquisition (then it is the
/// `Machine` variant of the call's error: [`AcquireError`], [`AcquireTimeoutError`],
/// [`TryAcquireError`]).
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
    /// A capacity out of range.
    #[error("gate `{gate}`: capacity must be between `1` and `{max}`, got `{requested}`")]
    BadCapacity {
        /// The gate.
        gate: String,
        /// Capacity requested.
        requested: u32,
        /// The largest allowed.
        max: u32,
    },
    /// Other users of the gate use a different capacity.
    #[error(
        "gate `{gate}` is in use with capacity `{existing}`, cannot use it with capacity `{requested}`; \
         hint: every user of a gate must ask for the same capacity"
    )]
    CapacityMismatch {
        /// The gate.
        gate: String,
        /// Capacity in force.
        existing: u32,
        /// Capacity requested.
        requested: u32,
    },
    /// Other users of the gate declare different devices.
    #[error(
        "gate `{gate}` is in use with devices `{}`, cannot use it with devices `{}`; \
         hint: every user of a gate must declare the same devices (`--devices`, \
         `RACEGATE_TEST_GUARD_DEVICES`), or use another gate name",
        devices_or_none(existing),
        devices_or_none(requested)
    )]
    DevicesMismatch {
        /// The gate.
        gate: String,
        /// Devices in force (empty: none declared).
        existing: Vec<String>,
        /// Devices requested.
        requested: Vec<String>,
    },
    /// A device list that cannot be declared.
    #[error("gate `{gate}`: {reason}; hint: list each device once, as `CUDA_VISIBLE_DEVICES` names it (`0`, `GPU-8a1f…`)")]
    BadDevices {
        /// The gate.
        gate: String,
        /// What is wrong, with the offending id.
        reason: String,
    },
    /// A request that no placement can ever satisfy: more units than one device has, and not
    /// a whole number of devices.
    #[error(
        "gate `{gate}` cannot place `{requested}` units: it has `{devices}` device(s) of `{capacity}` units; \
         hint: ask for at most `{capacity}` units (on one device) or a multiple of `{capacity}` (whole devices)"
    )]
    Unplaceable {
        /// The gate.
        gate: String,
        /// Units requested.
        requested: u32,
        /// Units per device.
        capacity: u32,
        /// Devices (1 for a gate without declared devices).
        devices: u32,
    },
    /// The gate's `queue` file (its declaration and ledger) is unreadable while the gate is in
    /// use: nobody can tell how much of it is held.
    #[error(
        "the declaration of gate `{gate}` in `{}` is unreadable while the gate is in use; \
         hint: it is rewritten once nothing holds or waits for the gate",
        path.display()
    )]
    Damaged {
        /// The gate.
        gate: String,
        /// The `queue` file.
        path: std::path::PathBuf,
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
        "global gate `{gate}` already exists as an in-process gate (or with capacity `{existing}`); \
         hint: call `racegate::configure_machine_wide(\"{gate}\", ..)` before the first `racegate::global(\"{gate}\")`"
    )]
    GlobalConflict {
        /// The gate.
        gate: String,
        /// Capacity of the existing global gate.
        existing: u32,
    },
    /// An async acquisition's lock call, run on a blocking thread, ended without an answer
    /// (the runtime is shutting down, or the thread could not be started).
    #[error(
        "machine-wide lock call for gate `{gate}` ended without an answer: {reason}; \
         hint: acquire before the async runtime shuts down"
    )]
    NoAnswer {
        /// The gate.
        gate: String,
        /// What happened to the call.
        reason: String,
    },
}

/// A device list in messages: `0,1` or `(none)`.
fn devices_or_none(d: &[String]) -> String {
    if d.is_empty() {
        "(none)".to_owned()
    } else {
        d.join(",")
    }
}
