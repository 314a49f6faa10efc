//! Machine-wide gates: one gate shared by every process of a user on the machine.
//!
//! A [`MachineGate`] is a [`Gate`] whose permits also hold an OS advisory file lock (`flock`).
//! Threads of one process queue on the in-process gate first; the winner then queues with other
//! processes for the file lock. Because the kernel owns the lock, a holder that dies (even by
//! SIGKILL) releases it at once. Records of holders and waiters make the gate visible
//! (`racegate status`); they are never trusted for ownership. See `lock.rs` for the protocol,
//! its fairness and why it cannot deadlock, and `docs/machine-gate.md` for the files.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_var("RACEGATE_DIR", dir.path());
//! use std::time::Duration;
//! let gpu = racegate::MachineGate::new("doc-machine-gpu").unwrap();
//! {
//!     let _guard = gpu.acquire_blocking_labeled("vision", Some(Duration::from_secs(5))).unwrap();
//!     // ... GPU work, exclusive across every process on the machine ...
//!     assert_eq!(gpu.status().holders.len(), 1);
//! }
//! assert_eq!(gpu.gate().stats().acquisitions, 1);
//! assert_eq!(gpu.status().history.count, 1);
//! ```

mod dir;
mod history;
mod lock;
mod record;
mod status;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use dir::{validate_gate_name, LockDir, DIR_ENV};
pub use history::{read_history, HistoryEntry, HISTORY_CAP};
pub use lock::MAX_SLOTS;
pub use record::Record;
pub use status::{gate_status, GateStatus, HistorySummary, Holder, Waiter, STATUS_SCHEMA_VERSION};

pub use crate::errors::MachineGateError;
use crate::errors::{HolderInfo, TimedAcquireError, TryAcquireError};
use crate::gate::{Backend, BackendError, Gate, GateConfig, MachineHold, OwnedGateGuard, Request};
use crate::stats::Label;
use lock::{Failure, GateFiles, Spec};

/// A machine-wide gate: a [`Gate`] whose guards also hold one lane of an OS file lock.
///
/// Cloning is cheap and yields the same gate. Guards are [`OwnedGateGuard`]s of [`Self::gate`]:
/// dropping one releases the file lock, then the in-process permit, and logs the acquisition
/// to the gate's history. The in-process [`Gate::stats`] count this process's acquisitions
/// (waits include the machine-wide wait); [`Self::status`] shows every process.
#[derive(Clone)]
pub struct MachineGate {
    gate: Gate,
    backend: Arc<MachineBackend>,
}

impl fmt::Debug for MachineGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineGate")
            .field("name", &self.backend.files.name)
            .field("slots", &self.backend.files.slots)
            .field("dir", &self.backend.files.dir)
            .finish()
    }
}

/// Options for [`MachineGate::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct MachineGateBuilder {
    name: String,
    slots: u32,
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

    /// Lanes machine-wide (default 1: exclusive). Every user of the gate must agree.
    pub fn slots(mut self, slots: u32) -> Self {
        self.slots = slots;
        self
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

    /// In-process options (stats, hold warning); the capacity is set from `slots`.
    pub fn config(mut self, config: GateConfig) -> Self {
        self.config = config;
        self
    }

    /// Create the directories and files and check the slot count against other users.
    pub fn open(self) -> Result<MachineGate, MachineGateError> {
        let root = match self.dir {
            Some(d) => LockDir::at(d)?,
            None => LockDir::from_env()?,
        };
        let mut files = GateFiles::open(&root, &self.name, self.slots)?;
        files.records = self.records;
        let files = Arc::new(files);
        let command = self.command.unwrap_or_else(|| own_command().to_vec());
        let backend = Arc::new(MachineBackend { files, command });
        let config = self.config.with_capacity(self.slots);
        let gate = Gate::with_backend(&self.name, config, Arc::clone(&backend) as Arc<dyn Backend>)
            .map_err(|_| MachineGateError::BadSlots {
                gate: self.name.clone(),
                requested: self.slots,
                max: MAX_SLOTS,
            })?;
        Ok(MachineGate { gate, backend })
    }
}

impl MachineGate {
    /// An exclusive machine-wide gate in the default lock directory.
    pub fn new(name: &str) -> Result<MachineGate, MachineGateError> {
        MachineGate::builder(name).open()
    }

    /// A machine-wide gate with `slots` lanes in the default lock directory.
    pub fn with_slots(name: &str, slots: u32) -> Result<MachineGate, MachineGateError> {
        MachineGate::builder(name).slots(slots).open()
    }

    /// All options.
    pub fn builder(name: &str) -> MachineGateBuilder {
        MachineGateBuilder {
            name: name.to_owned(),
            slots: 1,
            dir: None,
            command: None,
            config: GateConfig::default(),
            records: true,
        }
    }

    /// The in-process gate in front of the file lock (stats, and the infallible acquire methods,
    /// which panic on a lock-directory failure).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The gate's name.
    pub fn name(&self) -> &str {
        &self.backend.files.name
    }

    /// Lanes machine-wide.
    pub fn slots(&self) -> u32 {
        self.backend.files.slots
    }

    /// The gate's directory (inside the lock directory).
    pub fn dir(&self) -> &Path {
        &self.backend.files.dir
    }

    /// Wait for the gate, without limit.
    ///
    /// # Panics
    ///
    /// When called from within an async runtime (use [`Self::acquire`] there).
    pub fn acquire_blocking(&self) -> Result<OwnedGateGuard, MachineGateError> {
        self.acquire_blocking_with(None, None)
    }

    /// Wait for the gate for at most `timeout`.
    ///
    /// # Panics
    ///
    /// When called from within an async runtime.
    pub fn acquire_blocking_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, MachineGateError> {
        self.acquire_blocking_with(None, Some(timeout))
    }

    /// Wait for the gate under `label`, for at most `timeout` (`None`: no limit).
    ///
    /// # Panics
    ///
    /// When called from within an async runtime.
    pub fn acquire_blocking_labeled(
        &self,
        label: impl Into<Label>,
        timeout: Option<Duration>,
    ) -> Result<OwnedGateGuard, MachineGateError> {
        self.acquire_blocking_with(Some(label.into()), timeout)
    }

    /// Wait for the gate with an optional label and an optional `timeout` (`None`: no limit).
    ///
    /// # Panics
    ///
    /// When called from within an async runtime.
    pub fn acquire_blocking_with(
        &self,
        label: Option<Label>,
        timeout: Option<Duration>,
    ) -> Result<OwnedGateGuard, MachineGateError> {
        let grant = self
            .gate
            .grant_blocking(Request { label, weight: 1 }, timeout)
            .map_err(from_timed)?;
        Ok(OwnedGateGuard::new(self.gate.clone(), grant))
    }

    /// Wait for the gate, without limit.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves the queue (in-process and machine-wide); a file
    /// lock that arrives after the future was dropped is released at once.
    pub async fn acquire(&self) -> Result<OwnedGateGuard, MachineGateError> {
        self.acquire_with(None, None).await
    }

    /// Wait for the gate for at most `timeout`. Needs a Tokio runtime with the time driver.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`Self::acquire`].
    pub async fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnedGateGuard, MachineGateError> {
        self.acquire_with(None, Some(timeout)).await
    }

    /// Wait for the gate under `label`, for at most `timeout` (`None`: no limit).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`Self::acquire`].
    pub async fn acquire_labeled(
        &self,
        label: impl Into<Label>,
        timeout: Option<Duration>,
    ) -> Result<OwnedGateGuard, MachineGateError> {
        self.acquire_with(Some(label.into()), timeout).await
    }

    async fn acquire_with(
        &self,
        label: Option<Label>,
        timeout: Option<Duration>,
    ) -> Result<OwnedGateGuard, MachineGateError> {
        let grant = self
            .gate
            .grant_async(Request { label, weight: 1 }, timeout)
            .await
            .map_err(from_timed)?;
        Ok(OwnedGateGuard::new(self.gate.clone(), grant))
    }

    /// Take the gate only if it is free and nobody is queued for it, on this machine.
    pub fn try_acquire(&self) -> Result<OwnedGateGuard, MachineGateError> {
        match self.gate.grant_try(Request {
            label: None,
            weight: 1,
        }) {
            Ok(grant) => Ok(OwnedGateGuard::new(self.gate.clone(), grant)),
            Err(TryAcquireError::Machine(e)) => Err(unwrap_machine(e.source)),
            Err(e) => Err(MachineGateError::WouldBlock(e)),
        }
    }

    /// Holders, waiters and history of this gate, across all processes.
    pub fn status(&self) -> GateStatus {
        gate_status(&self.backend.files.dir, &self.backend.files.name)
    }
}

/// Make the process-wide gate `name` (see [`crate::global`]) machine-wide with `slots` lanes,
/// and return it: threads of this process queue on it in-process, and the one holding a permit
/// queues with other processes for the file lock. Call it once at startup, before the first
/// `global(name)`; calling it again with the same slot count returns the same gate.
///
/// The `Gate` methods that cannot return errors panic if the lock directory fails under them;
/// [`machine_wide`] returns the [`MachineGate`] whose methods report such errors instead.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_var("RACEGATE_DIR", dir.path());
/// let gpu = racegate::configure_machine_wide("doc-global-gpu", 1).unwrap();
/// assert!(gpu.same_gate(racegate::global("doc-global-gpu")));
/// drop(gpu.acquire_blocking());
/// ```
pub fn configure_machine_wide(name: &str, slots: u32) -> Result<&'static Gate, MachineGateError> {
    machine_wide(name, slots).map(|m| m.global)
}

/// The machine-wide global gate `name` as a [`MachineGate`] (fallible acquisitions, status),
/// configuring it like [`configure_machine_wide`] if needed.
pub fn machine_wide(name: &str, slots: u32) -> Result<GlobalMachineGate, MachineGateError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};
    static MACHINE: OnceLock<Mutex<HashMap<String, MachineGate>>> = OnceLock::new();
    let mut reg = MACHINE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = reg.get(name) {
        if m.slots() != slots {
            return Err(MachineGateError::GlobalConflict {
                gate: name.to_owned(),
                existing: m.slots(),
            });
        }
        let (global, _) =
            crate::global::get_or_try_register(name, || Ok::<_, MachineGateError>(m.gate.clone()))?;
        return Ok(GlobalMachineGate {
            machine: m.clone(),
            global,
        });
    }
    let mut built = None;
    let (global, created) = crate::global::get_or_try_register(name, || {
        let m = MachineGate::with_slots(name, slots)?;
        let gate = m.gate.clone();
        built = Some(m);
        Ok::<_, MachineGateError>(gate)
    })?;
    match (created, built) {
        (true, Some(m)) => {
            reg.insert(name.to_owned(), m.clone());
            Ok(GlobalMachineGate { machine: m, global })
        }
        _ => Err(MachineGateError::GlobalConflict {
            gate: name.to_owned(),
            existing: global.capacity(),
        }),
    }
}

/// A machine-wide global gate: the [`MachineGate`] and the `&'static Gate` that
/// [`crate::global`] returns for the same name.
#[derive(Clone, Debug)]
pub struct GlobalMachineGate {
    /// Fallible acquisitions and machine-wide status.
    pub machine: MachineGate,
    /// The same gate as `racegate::global(name)`.
    pub global: &'static Gate,
}

fn from_timed(e: TimedAcquireError) -> MachineGateError {
    match e {
        TimedAcquireError::Timeout(t) => MachineGateError::Timeout(t),
        TimedAcquireError::Machine(m) => unwrap_machine(m.source),
        // Requests here always have weight 1.
        other => MachineGateError::Io {
            gate: String::new(),
            op: "acquire",
            path: PathBuf::new(),
            source: io::Error::other(other.to_string()),
        },
    }
}

/// The backend wraps our error in an `io::Error` to pass it through the gate; take it back out.
fn unwrap_machine(source: io::Error) -> MachineGateError {
    let kind = source.kind();
    match source.into_inner() {
        Some(inner) => match inner.downcast::<MachineGateError>() {
            Ok(e) => *e,
            Err(other) => MachineGateError::Io {
                gate: String::new(),
                op: "lock",
                path: PathBuf::new(),
                source: io::Error::new(kind, other),
            },
        },
        None => MachineGateError::Io {
            gate: String::new(),
            op: "lock",
            path: PathBuf::new(),
            source: kind.into(),
        },
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

/// The file-lock half of a [`MachineGate`], plugged into [`Gate`] through its backend seam.
struct MachineBackend {
    files: Arc<GateFiles>,
    command: Vec<String>,
}

impl fmt::Debug for MachineBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineBackend")
            .field("dir", &self.files.dir)
            .finish()
    }
}

impl MachineBackend {
    /// Machine-wide holders, for timeout and busy errors: what `racegate status` would show.
    fn holder_infos(&self) -> Vec<HolderInfo> {
        let now = std::time::SystemTime::now();
        self.files
            .holders()
            .into_iter()
            .map(|r| HolderInfo {
                label: Some(describe_holder(&r)),
                weight: 1,
                held_for: now.duration_since(r.since()).unwrap_or_default(),
            })
            .collect()
    }
}

/// "pid 4242 running `sleep 10` as vision" — one phrase naming a machine-wide holder.
pub(crate) fn describe_holder(r: &Record) -> String {
    let mut s = format!("pid {}", r.pid);
    if !r.command.is_empty() {
        s.push_str(&format!(" running {}", r.command_line()));
    }
    if let Some(l) = &r.label {
        s.push_str(&format!(" as {l}"));
    }
    s
}

impl Backend for MachineBackend {
    fn lock(
        &self,
        gate: &str,
        label: Option<&str>,
        weight: u32,
        timeout: Option<Duration>,
    ) -> Result<MachineHold, BackendError> {
        if weight != 1 {
            return Err(BackendError::Io(io::Error::other(
                MachineGateError::Weighted {
                    gate: gate.to_owned(),
                    weight,
                },
            )));
        }
        let try_only = timeout == Some(Duration::ZERO);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let spec = Spec {
            label,
            command: &self.command,
        };
        match self.files.acquire(&spec, deadline, try_only) {
            Ok(lease) => Ok(Box::new(lease)),
            Err(Failure::WouldBlock | Failure::TimedOut) => Err(BackendError::Timeout {
                holders: self.holder_infos(),
            }),
            Err(Failure::Err(e)) => Err(BackendError::Io(io::Error::other(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_the_trip_through_the_gate() {
        let e = MachineGateError::BadName { name: "a/b".into() };
        let back = unwrap_machine(io::Error::other(e));
        assert!(
            matches!(back, MachineGateError::BadName { ref name } if name == "a/b"),
            "{back:?}"
        );
    }
}
