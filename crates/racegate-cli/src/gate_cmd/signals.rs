//! Forwarding SIGINT and SIGTERM to the command `racegate run` runs.
//!
//! We catch the signals with a handler that only writes the signal number to a pipe (the one
//! async-signal-safe thing it needs), and a thread reads the pipe and sends the signal on. A
//! caught signal is reset to its default action by `exec`, so the child starts with the usual
//! dispositions (a blocked mask would be inherited, which is why we do not block them). A
//! signal that was ignored when we started (e.g. SIGINT in a background job) stays ignored, for
//! us and for the child, as a shell would leave it.
//!
//! A Ctrl-C typed at the terminal already reaches the child, which is in our process group, so
//! on Linux a signal sent by the kernel (`SI_KERNEL`) is not sent a second time; elsewhere the
//! sender is unknown and every signal is forwarded.
//!
//! The child's pid is never signalled after it was reaped (it could belong to another process
//! by then): we wait for its exit without reaping it (`waitid(WNOWAIT)`), mark it done under
//! the lock the forwarding thread signals under, and only then reap it.

use std::io;
use std::mem::MaybeUninit;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The signals we pass on.
const FORWARDED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Write end of the signal pipe, for the handler.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

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
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe just drops the signal.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

pub(crate) struct Forwarder {
    read: libc::c_int,
}

impl Forwarder {
    /// Catch the forwarded signals from now on (call before spawning the child).
    pub(crate) fn install() -> io::Result<Forwarder> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid two-element buffer.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in fds {
            // SAFETY: fcntl on fds we just created; close-on-exec keeps them from the child.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: as above; the handler must never block on a full pipe.
        unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
        PIPE_WRITE.store(fds[1], Ordering::Relaxed);
        for sig in FORWARDED {
            // SAFETY: querying and installing dispositions with initialized sigaction structs.
            unsafe {
                let mut old = MaybeUninit::<libc::sigaction>::zeroed().assume_init();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                if old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut act = MaybeUninit::<libc::sigaction>::zeroed().assume_init();
                act.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
        Ok(Forwarder { read: fds[0] })
    }

    /// Forward signals to `child` until it exits; return how it exited.
    pub(crate) fn run_child(self, mut child: Child) -> io::Result<ExitStatus> {
        let pid = child.id() as libc::pid_t;
        let done = Arc::new(Mutex::new(false));
        let done2 = Arc::clone(&done);
        let read = self.read;
        std::thread::Builder::new()
            .name("racegate-signals".into())
            .spawn(move || loop {
                let mut byte = 0u8;
                // SAFETY: reading one byte into a valid buffer from our own pipe.
                let n = unsafe { libc::read(read, (&mut byte as *mut u8).cast(), 1) };
                if n != 1 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                let finished = done2.lock().unwrap_or_else(PoisonError::into_inner);
                if *finished {
                    return;
                }
                // SAFETY: `pid` is our child and not yet reaped (checked under the lock above).
                unsafe { libc::kill(pid, libc::c_int::from(byte)) };
            })?;
        wait_no_reap(pid)?;
        *done.lock().unwrap_or_else(PoisonError::into_inner) = true;
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
