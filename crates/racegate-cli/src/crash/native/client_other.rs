//! Outside Linux there is no frame tracer: macOS writes `.ips` reports with the crashing
//! thread's frames, which the crash-report watcher reads.

use std::path::Path;
use std::time::Duration;

use super::{NativeCrash, Unavailable};

fn not_linux() -> Unavailable {
    Unavailable(
        "native frames are captured on Linux only; on macOS the crash report (.ips) has them"
            .into(),
    )
}

/// Never built outside Linux: [`Prepared::new`] says why.
pub struct Prepared(());

/// Never built outside Linux.
pub struct Tracer(());

impl Prepared {
    /// Always unavailable here.
    pub fn new(_helper_exe: &Path) -> Result<Prepared, Unavailable> {
        Err(not_linux())
    }

    /// Always unavailable here.
    pub fn for_racegate() -> Result<Prepared, Unavailable> {
        Err(not_linux())
    }

    /// Not reachable: no `Prepared` exists here.
    pub fn hook(&self) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
        || Ok(())
    }

    /// Not reachable: no `Prepared` exists here.
    pub fn started(self, _pid: u32) -> Tracer {
        Tracer(())
    }
}

impl Tracer {
    /// Always unavailable here.
    pub fn crash(
        &self,
        _pid: u32,
        _signal: &str,
        _timeout: Duration,
    ) -> Result<NativeCrash, Unavailable> {
        Err(not_linux())
    }

    /// Always unavailable here.
    pub fn dump(
        &self,
        _timeout: Duration,
    ) -> Result<Vec<(u32, Vec<crate::crash::frames::ThreadStack>)>, Unavailable> {
        Err(not_linux())
    }

    /// Nothing is traced here.
    pub fn deaths(&self) -> Vec<NativeCrash> {
        Vec::new()
    }

    /// Always: not Linux.
    pub fn unavailable(&self) -> Option<Unavailable> {
        Some(not_linux())
    }

    /// Nothing to release.
    pub fn detach(self) {}
}
