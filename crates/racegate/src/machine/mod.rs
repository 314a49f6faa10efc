//! Machine-wide gates: one gate shared by every process of a user on the machine.
//!
//! A [`MachineGate`] is a [`Gate`] whose guards also hold an OS advisory file lock (`flock`):
//! one *lane* file per holder, whose lock is the holder's whole share — a number of units of the
//! gate's capacity (a budget: GiB of VRAM, percent), on one device or on whole devices. Threads
//! of one process queue on the in-process gate first; the winner then queues with other
//! processes. Because the kernel owns the lock, a holder that dies (even by SIGKILL) releases
//! its whole share at once. Records of holders and waiters make the gate visible
//! ([`MachineStatus`], `racegate status`); they are never trusted for ownership. See `lock.rs`
//! for the protocol, its fairness and why it cannot deadlock, `budget.rs` for the declaration
//! and the ledger, and `docs/machine-gate.md` for the files.
//!
//! Rooms: `mod.rs` the handle and its builder; `acquire.rs` its variant matrix; `backend.rs` the
//! file-lock backend it plugs into the [`Gate`]; `global.rs` the process-wide machine-wide gates
//! (and so the test guard); `lock.rs` the protocol; `dir.rs`, `record.rs`, `history.rs` and
//! `status.rs` the lock directory, records, history log and the status read from them.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_var("RACEGATE_DIR", dir.path());
//! use std::time::Duration;
//! let gpu = racegate::MachineGate::new("doc-machine-gpu").unwrap();
//! {
//!     let _guard = gpu.labeled("vision").acquire_blocking_timeout(Duration::from_secs(5)).unwrap();
//!     // ... GPU work, exclusive across every process on the machine ...
//!     assert_eq!(gpu.status().holders.len(), 1);
//! }
//! assert_eq!(gpu.gate().stats().acquisitions, 1);
//! assert_eq!(gpu.status().history.count, 1);
//! ```

mod acquire;
mod backend;
mod budget;
mod devices;
mod dir;
pub(crate) mod global;
mod history;
mod lock;
mod record;
mod status;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use budget::{MAX_DEVICES, MAX_DEVICE_ID_LEN, MAX_HOLDERS};
pub use devices::{
    discover_devices, discover_devices_with, parse_device_list, parse_nvidia_smi_list,
    parse_visible_devices, DeviceListError, DeviceProbe, DeviceSource, Discovered, NvidiaGpu,
    SystemProbe, CUDA_VISIBLE_DEVICES, NVIDIA_SMI_TIMEOUT,
};
pub use dir::{validate_gate_name, LockDir, DIR_ENV};
pub use global::{configure_machine_wide, machine_wide, machine_wide_on, GlobalMachineGate};
pub use history::{read_history, HistoryEntry, HISTORY_CAP};
#[allow(deprecated)]
pub use lock::{MAX_CAPACITY, MAX_SLOTS};
pub use record::Record;
#[allow(deprecated)]
pub use status::{
    gate_status, read_status, DeviceStatus, GateStatus, HistorySummary, MachineHolder,
    MachineStatus, MachineWaiter, STATUS_SCHEMA_VERSION,
};

pub use crate::errors::MachineGateError;
use crate::gate::{Backend, Gate, GateConfig, Labeled};
use crate::stats::Label;
use backend::MachineBackend;
use budget::Declaration;
use lock::GateFiles;

/// A machine-wide gate: a [`Gate`] whose guards also hold a lane (an OS file lock), so that the
/// shares held at once across every process of the machine never exceed its
/// [`capacity`](MachineGate::capacity) (per device, with [`devices`](MachineGateBuilder::devices)).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_var("RACEGATE_DIR", dir.path());
/// let vram = racegate::MachineGate::builder("doc-vram").capacity(80).devices(["0", "1"]).open().unwrap();
/// let a = vram.acquire_many_blocking(60).unwrap(); // 60 of 80 units on device 0
/// let b = vram.acquire_many_blocking(60).unwrap(); // does not fit beside it: device 1
/// assert_eq!((a.devices(), b.devices()), (&["0".to_owned()][..], &["1".to_owned()][..]));
/// assert!(vram.try_acquire_many(80).is_err()); // no whole device is free
/// ```
///
/// Cloning is cheap and yields the same gate. Its guards are the [`Gate`]'s: dropping one releases
/// the file lock, then the in-process unit, and logs the acquisition to the gate's history. The
/// in-process [`Gate::stats`] count this process's acquisitions (waits include the machine-wide
/// wait); [`MachineGate::status`] shows every process.
///
/// # Variant matrix
///
/// The same names, guards and error types as [`Gate`]'s whole matrix (borrowed/owned ×
/// async/async bounded/blocking/blocking bounded/non-waiting, each with a weighted `_many` form
/// taking `n` units), and the same [`labeled`] view. Unlike [`Gate`]'s, the untimed calls return
/// a `Result` ([`AcquireError`]): the lock directory can fail under any of them. `n` units go on
/// one device if `n` is at most the capacity, or take `n / capacity` whole devices; the guard's
/// `devices()` says which.
///
/// # Fairness
///
/// First-in, first-out across processes (by ticket number) and, within a process, across tasks
/// and threads (the in-process gate queues them first). A `try_*` call never overtakes a waiter
/// of any process. With weights, a large request at the head of the queue holds back smaller
/// ones behind it until it fits: it is never starved, and a small request waits at most for
/// the holders it found and the holds of the waiters ahead of it (docs/machine-gate.md).
///
/// [`labeled`]: MachineGate::labeled
/// [`AcquireError`]: crate::AcquireError
#[derive(Clone)]
pub struct MachineGate {
    gate: Gate,
    backend: Arc<MachineBackend>,
}

impl fmt::Debug for MachineGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineGate")
            .field("name", &self.backend.files.name)
            .field("capacity", &self.backend.files.decl.capacity)
            .field("devices", &self.backend.files.decl.devices)
            .field("dir", &self.backend.files.dir)
            .finish()
    }
}

/// Options for [`MachineGate::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct MachineGateBuilder {
    name: String,
    capacity: u32,
    devices: Vec<String>,
    dir: Option<PathBuf>,
    command: Option<Vec<String>>,
    config: GateConfig,
    records: bool,
}

impl MachineGateBuilder {
    /// Whether holders write a record (default on). Off saves the record's two `pwrite`s per
    /// acquisition (written on acquisition, spoiled on release), but `racegate status` and other
    /// processes' timeout messages then show this process's holds as "no current record". Queued
    /// waiters always write theirs.
    pub fn records(mut self, on: bool) -> Self {
        self.records = on;
        self
    }

    /// Units of the gate, per device (default 1: exclusive; at most [`MAX_CAPACITY`]): how
    /// many may hold it at once when each takes one unit, or a budget that weighted
    /// acquisitions take shares of (e.g. 80 for the GiB of an 80 GiB GPU, or 100 for percent).
    /// Every user of the gate must agree.
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// The devices the gate spans, by the ids `CUDA_VISIBLE_DEVICES` takes (`"0"`, `"1"`, or
    /// UUIDs), each with [`capacity`](Self::capacity) units (default: none declared, the gate
    /// is one device). An acquisition of `n` units takes them on one device when `n` is at
    /// most the capacity, or `n / capacity` whole devices when `n` is a multiple of it; the
    /// guard's [`devices`](crate::GateGuard::devices) says which. Every user of the gate must agree;
    /// [`discover_devices`] finds them on this machine.
    pub fn devices<I, S>(mut self, devices: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.devices = devices.into_iter().map(Into::into).collect();
        self
    }

    /// The old name of [`MachineGateBuilder::capacity`].
    #[deprecated(note = "renamed to `capacity`")]
    pub fn slots(self, slots: u32) -> Self {
        self.capacity(slots)
    }

    /// Lock directory (default: `RACEGATE_DIR`, `$XDG_RUNTIME_DIR/racegate`, `/tmp/racegate-<uid>`).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The command line shown in records (default: this process's own).
    pub fn command(mut self, command: Vec<String>) -> Self {
        self.command = Some(command);
        self
    }

    /// In-process options (stats, hold warning); the capacity is the builder's.
    pub fn config(mut self, config: GateConfig) -> Self {
        self.config = config;
        self
    }

    /// Creates the directories and files and checks the capacity against other users.
    ///
    /// # Errors
    ///
    /// [`MachineGateError`]: an unsafe or unusable lock directory, a bad name, a capacity out of
    /// range or different from the one in use.
    pub fn open(self) -> Result<MachineGate, MachineGateError> {
        let root = match self.dir {
            Some(d) => LockDir::at(d)?,
            None => LockDir::from_env()?,
        };
        let decl = Declaration {
            capacity: self.capacity,
            devices: self.devices,
        };
        let mut files = GateFiles::open(&root, &self.name, decl)?;
        files.records = self.records;
        let total = files.decl.total() as u32;
        let files = Arc::new(files);
        let command = self.command.unwrap_or_else(|| own_command().to_vec());
        let backend = Arc::new(MachineBackend { files, command });
        // The in-process gate in front covers every device: a whole-device request takes
        // `capacity` units per device from it.
        let config = self.config.with_capacity(total);
        let gate = Gate::with_backend(&self.name, config, Arc::clone(&backend) as Arc<dyn Backend>)
            .map_err(|_| MachineGateError::BadCapacity {
                gate: self.name.clone(),
                requested: self.capacity,
                max: MAX_CAPACITY,
            })?;
        Ok(MachineGate { gate, backend })
    }
}

impl MachineGate {
    /// An exclusive machine-wide gate in the default lock directory.
    ///
    /// # Errors
    ///
    /// As [`MachineGateBuilder::open`].
    pub fn new(name: &str) -> Result<MachineGate, MachineGateError> {
        MachineGate::builder(name).open()
    }

    /// A machine-wide gate of `capacity` holders at once, in the default lock directory.
    ///
    /// # Errors
    ///
    /// As [`MachineGateBuilder::open`].
    pub fn with_capacity(name: &str, capacity: u32) -> Result<MachineGate, MachineGateError> {
        MachineGate::builder(name).capacity(capacity).open()
    }

    /// The old name of [`MachineGate::with_capacity`].
    #[deprecated(note = "renamed to `with_capacity`")]
    pub fn with_slots(name: &str, slots: u32) -> Result<MachineGate, MachineGateError> {
        MachineGate::with_capacity(name, slots)
    }

    /// All options.
    pub fn builder(name: &str) -> MachineGateBuilder {
        MachineGateBuilder {
            name: name.to_owned(),
            capacity: 1,
            devices: Vec::new(),
            dir: None,
            command: None,
            config: GateConfig::default(),
            records: true,
        }
    }

    /// The in-process gate in front of the file locks: this process's stats, and its
    /// infallible acquire methods, which panic on a lock-directory failure.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The gate's name.
    pub fn name(&self) -> &str {
        &self.backend.files.name
    }

    /// Units of the gate per device (for a gate without declared devices, all its units).
    pub fn capacity(&self) -> u32 {
        self.backend.files.decl.capacity
    }

    /// The declared devices (empty: none).
    pub fn devices(&self) -> &[String] {
        &self.backend.files.decl.devices
    }

    /// The old name of [`MachineGate::capacity`].
    #[deprecated(note = "renamed to `capacity`")]
    pub fn slots(&self) -> u32 {
        self.capacity()
    }

    /// The gate's directory (inside the lock directory).
    pub fn dir(&self) -> &Path {
        &self.backend.files.dir
    }

    /// A view of this gate whose acquisitions carry `label`, shown in `racegate status`, in
    /// other processes' timeout messages and in this process's stats. The view has every
    /// acquire method of the gate.
    pub fn labeled(&self, label: impl Into<Label>) -> Labeled<'_, MachineGate> {
        Labeled::new(self, Some(label.into()))
    }

    /// The unlabeled view: what the gate's own acquire methods go through.
    #[inline]
    fn unlabeled(&self) -> Labeled<'_, MachineGate> {
        Labeled::new(self, None)
    }

    /// Holders, waiters and history of this gate, across all processes.
    pub fn status(&self) -> MachineStatus {
        read_status(&self.backend.files.dir, &self.backend.files.name)
    }
}

/// This process's command line, read once.
fn own_command() -> &'static [String] {
    static CMD: OnceLock<Vec<String>> = OnceLock::new();
    CMD.get_or_init(|| {
        std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    })
}
