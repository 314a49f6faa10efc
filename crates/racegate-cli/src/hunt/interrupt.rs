//! Interrupts of a hunt: SIGINT, SIGTERM and SIGHUP stop the hunt, not the process.
//!
//! [`StopSignal::install`] blocks the three signals in the calling thread (so every thread
//! started afterwards inherits the block) and waits for them in one thread of its own. The first
//! one kills the test tree that is running (registered with [`StopSignal::running`]) and raises
//! the flag; the engine sees it, stops its phases, and the CLI writes the partial report and
//! exits 130. A second signal (a second or more after the first: one Ctrl-C often arrives
//! twice) restores the default action and re-raises it: a hunt whose report writing is itself
//! stuck can still be stopped.
//!
//! This is the hunt's own small version of the interrupt plumbing, kept in one module so that a
//! shared one can replace it without touching the engine.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
struct Inner {
    /// The signal received (0: none).
    signal: AtomicI32,
    /// The process group of the test command being executed (0: none).
    running: AtomicU32,
}

/// A shared "stop now" flag, raised by a signal (or by a test).
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    inner: Arc<Inner>,
}

impl StopSignal {
    /// A flag no signal raises (tests, library use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Install the handler for SIGINT, SIGTERM and SIGHUP. Call it before any other thread is
    /// started. Child processes start with an empty mask (see `exec`), so they still get them.
    pub fn install() -> Self {
        let stop = Self::new();
        #[cfg(unix)]
        unix::install(stop.clone());
        stop
    }

    /// The signal that stopped the hunt, if one did.
    pub fn raised(&self) -> Option<i32> {
        match self.inner.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Raise the flag as if `signal` had been received (tests).
    pub fn raise(&self, signal: i32) {
        self.inner.signal.store(signal.max(1), Ordering::SeqCst);
    }

    /// Register the process group being executed (0 when none), so that an interrupt kills it.
    pub fn running(&self, pgid: u32) {
        self.inner.running.store(pgid, Ordering::SeqCst);
    }

    #[cfg(unix)]
    fn running_group(&self) -> u32 {
        self.inner.running.load(Ordering::SeqCst)
    }
}

#[cfg(unix)]
mod unix {
    use super::*;
    use nix::sys::signal::{SigSet, Signal};

    pub(super) fn install(stop: StopSignal) {
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(s);
        }
        if set.thread_block().is_err() {
            return;
        }
        std::thread::spawn(move || {
            let mut seen: Option<std::time::Instant> = None;
            while let Ok(sig) = set.wait() {
                // The same Ctrl-C often arrives twice (racegate and a wrapper like `timeout`
                // both get it, and the wrapper forwards it): only a signal a second or more
                // after the first means "stop now".
                if seen.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
                    continue;
                }
                if seen.is_some() {
                    // Second signal: its default action, now.
                    // SAFETY: restoring the default disposition of a signal is always sound.
                    unsafe {
                        let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl);
                    }
                    let mut one = SigSet::empty();
                    one.add(sig);
                    let _ = one.thread_unblock();
                    let _ = nix::sys::signal::raise(sig);
                    continue;
                }
                seen = Some(std::time::Instant::now());
                stop.raise(sig as i32);
                let root = stop.running_group();
                if root != 0 {
                    crate::hunt::exec::kill_tree(root);
                }
                eprintln!(
                    "racegate: hunt interrupted by {sig}: the running tests were killed; writing what was found so far (again to stop at once)"
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_is_seen() {
        let s = StopSignal::new();
        assert_eq!(s.raised(), None);
        s.clone().raise(15);
        assert_eq!(s.raised(), Some(15));
    }
}
