//! The one interrupt policy of every command that writes a report (`stress`, `compare`, `demo`;
//! `hunt` once its engine takes a [`Control`]).
//!
//! - The first SIGINT, SIGTERM or SIGHUP cancels the command's [`Control`]: the engine stops its
//!   load, stops its child processes, and returns what it has, which `cli/` then reports as
//!   usual (stress: verdict ABORTED; compare and demo: `"interrupted": true`), exit 130.
//! - A second one kills every child still listed in the `Control` and exits 130 at once. Signals
//!   within [`SAME_INTERRUPT`] of the first belong to it (a supervisor such as `timeout` that
//!   signals the process and then its process group delivers two at once).
//!
//! The signals are caught by handlers on a thread of their own, never blocked: child processes
//! start with the default dispositions (exec resets caught signals) and the parent's empty
//! mask, and a synchronous engine needs no runtime of its own to be interrupted. `racegate run`
//! has its own policy (it forwards signals to its command, see `gate_cmd/signals.rs`).

use std::io;

#[cfg(unix)]
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::exit::{CliError, INTERRUPTED};
use crate::plumbing::Control;

/// Signals within this time of the first are part of it, not a second interrupt.
pub const SAME_INTERRUPT: std::time::Duration = std::time::Duration::from_millis(500);

/// Keeps the policy in force; drop it once the command has written its reports.
#[must_use = "the interrupt policy ends when this is dropped"]
pub struct InterruptPolicy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for InterruptPolicy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Install the policy for `command` (named in the message), acting on `control`.
///
/// # Errors
/// When the handlers or their thread cannot be set up.
pub fn install(command: &'static str, control: &Control) -> Result<InterruptPolicy, CliError> {
    install_handlers(command, control)
        .map_err(|e| CliError::other(format!("cannot install the signal handlers: {e}")))
}

fn install_handlers(command: &'static str, control: &Control) -> io::Result<InterruptPolicy> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered here, before returning, so no signal between now and the thread's start is
    // handled by the default action.
    let mut signals = {
        let _in_rt = rt.enter();
        Signals::register()?
    };
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let control = control.clone();
    std::thread::Builder::new()
        .name("racegate-interrupt".into())
        .spawn(move || {
            rt.block_on(async move {
                let Some(name) = signals.next(&mut stop_rx).await else {
                    return;
                };
                eprintln!(
                    "\nracegate {command}: interrupted by {name}, stopping and writing reports (again to quit now)"
                );
                control.cancel.cancel();
                let first = std::time::Instant::now();
                while signals.next(&mut stop_rx).await.is_some() {
                    // Signals right behind the first are the same interrupt: `timeout` and
                    // some CI runners signal the process and then its whole group.
                    if first.elapsed() >= SAME_INTERRUPT {
                        control.children.kill_all();
                        std::process::exit(i32::from(INTERRUPTED));
                    }
                }
            })
        })?;
    Ok(InterruptPolicy {
        stop: Some(stop_tx),
    })
}

#[cfg(unix)]
struct Signals([(Signal, &'static str); 3]);

#[cfg(unix)]
impl Signals {
    fn register() -> io::Result<Signals> {
        Ok(Signals([
            (signal(SignalKind::interrupt())?, "SIGINT"),
            (signal(SignalKind::terminate())?, "SIGTERM"),
            (signal(SignalKind::hangup())?, "SIGHUP"),
        ]))
    }

    /// The next signal's name, or `None` once the policy is dropped.
    async fn next(
        &mut self,
        stop: &mut tokio::sync::oneshot::Receiver<()>,
    ) -> Option<&'static str> {
        let [(int, a), (term, b), (hup, c)] = &mut self.0;
        tokio::select! {
            _ = stop => None,
            Some(()) = int.recv() => Some(*a),
            Some(()) = term.recv() => Some(*b),
            Some(()) = hup.recv() => Some(*c),
        }
    }
}

/// Without Unix signals: Ctrl-C only.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn register() -> io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(
        &mut self,
        stop: &mut tokio::sync::oneshot::Receiver<()>,
    ) -> Option<&'static str> {
        tokio::select! {
            _ = stop => None,
            Ok(()) = tokio::signal::ctrl_c() => Some("Ctrl-C"),
        }
    }
}
