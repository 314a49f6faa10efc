//! Forwarding SIGINT, SIGTERM and SIGHUP to the command `racegate run` runs.
//!
//! The handler sends the signal on itself: `kill(2)` is async-signal-safe, so no thread and no
//! pipe are needed (a thread cost `racegate run -- true` more than its lock). A caught signal
//! is reset to its default action by `exec`, so the child starts with the usual dispositions (a
//! blocked mask would be inherited, which is why we do not block them). A signal that was
//! ignored when we started (e.g. SIGINT in a background job) stays ignored, for us and for the
//! child, as a shell would leave it.
//!
//! A Ctrl-C typed at the terminal already reaches the child, which is in our process group, so
//! on Linux a signal sent by the kernel (`SI_KERNEL`) is not sent a second time; elsewhere the
//! sender is unknown and every signal is forwarded.
//!
//! The child's pid is never signalled after it was reaped (it could belong to another process
//! by then): we wait for its exit without reaping it (`waitid(WNOWAIT)`), retire the pid, wait
//! for any handler still inside its critical section, and only then reap. A signal caught
//! before the child exists is kept and sent once it does. Both hand-offs are the same
//! two-flag pattern over sequentially consistent atomics: the handler announces itself
//! (`ACTIVE`) and then reads `CHILD`; the main thread writes `CHILD` and then reads `ACTIVE`,
//! so at least one of them sees the other. Only the main thread ever waits, and only for a
//! handler running on another thread, which never blocks: no deadlock.

use std::io;
use std::mem::MaybeUninit;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering::SeqCst};

/// The signals we pass on.
const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// No child yet: a caught signal is kept in `PENDING`.
const NO_CHILD_YET: i32 = 0;
/// The child has exited (it may be reaped any moment): caught signals are dropped.
const CHILD_DONE: i32 = -1;

/// The child's pid, or one of the two states above.
static CHILD: AtomicI32 = AtomicI32::new(NO_CHILD_YET);
/// Signals caught before the child existed, one bit per signal number.
static PENDING: AtomicU32 = AtomicU32::new(0);
/// Handlers between reading `CHILD` and acting on it.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
        if !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL {
            return;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = info;
    ACTIVE.fetch_add(1, SeqCst);
    match CHILD.load(SeqCst) {
        NO_CHILD_YET => {
            PENDING.fetch_or(1 << sig, SeqCst);
        }
        CHILD_DONE => {}
        // SAFETY: kill(2) is async-signal-safe; `pid` is not reaped before ACTIVE drops to 0.
        pid => unsafe {
            libc::kill(pid, sig);
        },
    }
    ACTIVE.fetch_sub(1, SeqCst);
}

/// Wait out handlers running on other threads (each is a few instructions and one syscall).
fn quiesce() {
    while ACTIVE.load(SeqCst) != 0 {
        std::hint::spin_loop();
    }
}

pub(crate) struct Forwarder(());

impl Forwarder {
    /// Catch the forwarded signals from now on (call before spawning the child, once per
    /// process).
    pub(crate) fn install() -> io::Result<Forwarder> {
        for sig in FORWARDED {
            // SAFETY: querying and installing dispositions with initialized sigaction structs.
            unsafe {
                let mut old = MaybeUninit::<libc::sigaction>::zeroed().assume_init();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut act = MaybeUninit::<libc::sigaction>::zeroed().assume_init();
                act.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                if libc::sigaction(sig, &act, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(Forwarder(()))
    }

    /// Forward signals to `child` until it exits; return how it exited.
    pub(crate) fn run_child(self, mut child: Child) -> io::Result<ExitStatus> {
        let pid = child.id() as libc::pid_t;
        CHILD.store(pid, SeqCst);
        // A handler that saw no child yet has recorded its signal once it leaves.
        quiesce();
        let pending = PENDING.swap(0, SeqCst);
        for sig in FORWARDED {
            if pending & (1 << sig) != 0 {
                // SAFETY: `pid` is our child, not yet reaped.
                unsafe { libc::kill(pid, sig) };
            }
        }
        let exited = wait_no_reap(pid);
        CHILD.store(CHILD_DONE, SeqCst);
        quiesce();
        exited?;
        child.wait()
    }
}

/// Wait until `pid` has exited, leaving it unreaped.
fn wait_no_reap(pid: libc::pid_t) -> io::Result<()> {
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: `info` is a valid, zeroed out buffer.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
