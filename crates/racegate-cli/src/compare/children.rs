//! Keeping track of the targets `compare` and `demo` start, and stopping cleanly on Ctrl-C.
//!
//! The stress engine starts each target in its own process group (so a Ctrl-C at the terminal
//! reaches racegate, not the target) and stops it when a run ends or is cancelled. The first
//! SIGINT or SIGTERM cancels the run, which stops the target and still writes the reports. A
//! second one exits at once; since exiting skips the engine's cleanup, the target's process
//! group is killed first so nothing is left behind.

use std::sync::{Arc, Mutex};

use crate::events::{Event, EventSink};
use crate::stress::CancelToken;

/// The targets of the run in progress.
#[derive(Debug, Clone, Default)]
pub struct Children(Arc<Mutex<Vec<u32>>>);

impl Children {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        // A panic while holding this lock leaves a plain Vec: still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run ended: the engine stopped its targets, so their pids may be reused from now on.
    pub fn run_ended(&self) {
        self.lock().clear();
    }

    /// Kill the process groups of the current run's targets (last resort before exiting).
    pub fn kill_all(&self) {
        #[cfg(unix)]
        for &pid in self.lock().iter() {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// An [`EventSink`] that records the target pids of a run and forwards every event.
pub struct PidSink<S> {
    inner: S,
    children: Children,
    announce: Option<String>,
    /// Pids started during this run, in order.
    pub pids: Vec<u32>,
}

impl<S: EventSink> PidSink<S> {
    /// Wrap `inner`.
    pub fn new(inner: S, children: Children) -> PidSink<S> {
        PidSink {
            inner,
            children,
            announce: None,
            pids: Vec::new(),
        }
    }

    /// Also print `<prefix>: target started (pid N)` on stderr at each start, so a user (or a
    /// test) can check that nothing outlives the run.
    pub fn announce(mut self, prefix: String) -> PidSink<S> {
        self.announce = Some(prefix);
        self
    }

    /// The wrapped sink.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: EventSink> EventSink for PidSink<S> {
    fn event(&mut self, event: &Event) {
        if let Event::TargetStarted { pid, .. } = event {
            if *pid != 0 {
                self.pids.push(*pid);
                if let Some(prefix) = &self.announce {
                    eprintln!("{prefix}: target started (pid {pid})");
                }
                self.children.lock().push(*pid);
            }
        }
        self.inner.event(event);
    }
}

/// On the first SIGINT/SIGTERM cancel `cancel`; on the second kill the current targets and
/// exit with status 130. Call from inside a tokio runtime; abort the handle when done.
pub fn spawn_interrupt_handler(
    what: &'static str,
    cancel: CancelToken,
    children: Children,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if interrupted().await {
            eprintln!(
                "\nracegate {what}: interrupted, stopping the target and writing reports (again to quit now)"
            );
            cancel.cancel();
            if interrupted().await {
                children.kill_all();
                std::process::exit(i32::from(crate::exit::INTERRUPTED));
            }
        }
    })
}

/// Wait for SIGINT or (on Unix) SIGTERM; `false` if no handler could be installed.
async fn interrupted() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            r = term.recv() => r.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}
