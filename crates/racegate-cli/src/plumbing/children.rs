//! The child processes racegate started and has not reaped yet, listed so that none outlives it.
//!
//! Every engine that starts a process (the stress engine's managed target, the sim servers of
//! `compare` and `demo`, hunt's test runner) starts it as the leader of a process group of its
//! own and lists it here for as long as it runs. The engines stop their own children, politely,
//! when a run ends or is cancelled; this list is the last resort: on a second interrupt
//! `cli/interrupt.rs` SIGKILLs every process group still listed and exits at once, which would
//! otherwise skip the engines' cleanup and leave servers and test processes behind.
//!
//! ```
//! use racegate_cli::plumbing::Children;
//!
//! let children = Children::new();
//! {
//!     let _listed = children.register(4242); // right after spawning pid 4242 in its own group
//!     assert_eq!(children.pids(), [4242]);
//! } // reaped: dropping the registration forgets it
//! assert!(children.pids().is_empty());
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// How a listed child is killed on the last resort; the argument is its pid (= its group).
pub type Kill = fn(u32);

/// The children of one command. Cheap to clone; every clone sees the same list.
#[derive(Debug, Clone, Default)]
pub struct Children {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    live: BTreeMap<u64, (u32, Kill)>,
}

impl Children {
    /// An empty list.
    pub fn new() -> Children {
        Children::default()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding this lock leaves a plain map: still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// List `pid`, which leads its own process group (spawned with `process_group(0)`). It is
    /// forgotten when the returned [`Registration`] is dropped: keep it until the child is
    /// reaped, so that a pid the OS may reuse is never signalled.
    pub fn register(&self, pid: u32) -> Registration {
        self.register_with(pid, kill_group)
    }

    /// [`register`](Self::register) with the kill to use on the last resort, for a child whose
    /// descendants may leave its group (test runners that give each test a group of its own).
    pub fn register_with(&self, pid: u32, kill: Kill) -> Registration {
        let mut r = self.lock();
        let id = r.next;
        r.next += 1;
        r.live.insert(id, (pid, kill));
        Registration {
            children: self.clone(),
            id,
        }
    }

    /// The pids listed now, in the order they were started.
    pub fn pids(&self) -> Vec<u32> {
        self.lock().live.values().map(|(pid, _)| *pid).collect()
    }

    /// Kill every listed child with its kill (SIGKILL to its group by default) and forget them.
    /// The last resort before exiting at once; engines stop their children themselves.
    pub fn kill_all(&self) {
        let live = std::mem::take(&mut self.lock().live);
        for (pid, kill) in live.into_values() {
            kill(pid);
        }
    }
}

/// A listed child; dropping it forgets the child (do so once it is reaped).
#[derive(Debug)]
#[must_use = "the child is forgotten as soon as the registration is dropped"]
pub struct Registration {
    children: Children,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.children.lock().live.remove(&self.id);
    }
}

/// SIGKILL the process group `pgid` (nothing on platforms without process groups).
pub fn kill_group(pgid: u32) {
    #[cfg(unix)]
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    #[cfg(not(unix))]
    let _ = pgid;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static KILLED: AtomicU32 = AtomicU32::new(0);

    fn record(pid: u32) {
        KILLED.store(pid, Ordering::SeqCst);
    }

    #[test]
    fn lists_until_dropped_and_kills_with_the_given_kill() {
        let c = Children::new();
        let a = c.register_with(11, record);
        let b = c.clone().register_with(12, record);
        assert_eq!(c.pids(), [11, 12]);
        drop(a);
        assert_eq!(c.pids(), [12], "a reaped child is forgotten");
        c.kill_all();
        assert_eq!(KILLED.load(Ordering::SeqCst), 12);
        assert!(c.pids().is_empty(), "killed children are forgotten");
        drop(b); // forgetting twice is harmless
    }

    #[cfg(unix)]
    #[test]
    fn kill_all_ends_a_real_process_group() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let c = Children::new();
        let _listed = c.register(child.id());
        c.kill_all();
        // Bounded: `sleep 30` ends by itself if the kill was lost, and the status tells which.
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
}
