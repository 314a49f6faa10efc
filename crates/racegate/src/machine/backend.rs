//! The file-lock half of a [`MachineGate`](super::MachineGate), plugged into its [`Gate`]
//! through the backend seam (`gate/backend.rs`).
//!
//! [`Gate`]: crate::Gate

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lock::{Failure, GateFiles, Lease, Spec};
use super::record::Record;
use crate::errors::MachineGateError;
use crate::gate::{Backend, BackendError, Hold, MachineHold};
use crate::holder::Holder;

pub(super) struct MachineBackend {
    pub(super) files: Arc<GateFiles>,
    pub(super) command: Vec<String>,
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
    fn holders(&self) -> Vec<Holder> {
        let now = std::time::SystemTime::now();
        self.files
            .holders()
            .into_iter()
            .map(|(r, units)| Holder {
                label: Some(describe_holder(&r)),
                // Unknown shares are counted as the whole gate by takers: say so here too.
                units: units.unwrap_or(self.files.decl.total() as u32),
                held_for: now.duration_since(r.since()).unwrap_or_default(),
            })
            .collect()
    }
}

/// "pid 4242 running `sleep 10` as vision" — one phrase naming a machine-wide holder.
fn describe_holder(r: &Record) -> String {
    let mut s = format!("pid {}", r.pid);
    if !r.command.is_empty() {
        s.push_str(&format!(" running {}", r.command_line()));
    }
    if let Some(l) = &r.label {
        s.push_str(&format!(" as {l}"));
    }
    s
}

impl Hold for Lease {
    fn devices(&self) -> &[String] {
        &self.devices
    }
}

/// What a request for no units holds: nothing.
struct Nothing;

impl Hold for Nothing {
    fn devices(&self) -> &[String] {
        &[]
    }
}

impl Backend for MachineBackend {
    fn check(&self, units: u32) -> Result<(), MachineGateError> {
        self.files.check_request(units)
    }

    fn lock(
        &self,
        _gate: &str,
        label: Option<&str>,
        units: u32,
        timeout: Option<Duration>,
    ) -> Result<MachineHold, BackendError> {
        if units == 0 {
            return Ok(Box::new(Nothing));
        }
        let try_only = timeout == Some(Duration::ZERO);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let spec = Spec {
            label,
            command: &self.command,
        };
        match self.files.acquire(&spec, units, deadline, try_only) {
            Ok(lease) => Ok(Box::new(lease)),
            Err(Failure::WouldBlock | Failure::TimedOut) => Err(BackendError::Timeout {
                holders: self.holders(),
            }),
            Err(Failure::Err(e)) => Err(BackendError::Failed(e)),
        }
    }

    fn holders(&self) -> Vec<Holder> {
        MachineBackend::holders(self)
    }
}
