//! Native frames of a crashing child, on Linux: the crashing thread's top frames, with function
//! and library, taken the moment the fatal signal is delivered.
//!
//! # How
//!
//! A helper process ([`tracer`], racegate's own binary run as `racegate __crash-tracer`) ptraces
//! the child from before its `exec`, and every process and thread it starts. At a fatal
//! signal-delivery stop it unwinds the thread with the binaries' CFI (framehop), names the frames
//! from their symbol tables, writes them to racegate, and lets the signal through. No debugger,
//! no core file, nothing on disk; the child pays one round trip to the helper per signal, thread
//! start and `exec`, and the dying thread waits while it is unwound (milliseconds).
//!
//! ```no_run
//! # #[cfg(target_os = "linux")] {
//! use std::os::unix::process::CommandExt;
//! use racegate_cli::crash::native::Prepared;
//!
//! let prepared = Prepared::new(&std::env::current_exe().unwrap()).unwrap();
//! let mut cmd = std::process::Command::new("python3");
//! cmd.args(["-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]);
//! // SAFETY: the hook only makes async-signal-safe system calls.
//! unsafe { cmd.pre_exec(prepared.hook()) };
//! let mut child = cmd.spawn().unwrap();
//! let tracer = prepared.started(child.id());
//! child.wait().unwrap();
//! let crash = tracer.crash(child.id(), "SIGSEGV", std::time::Duration::from_secs(2));
//! println!("{:?}", crash.map(|c| c.frames));
//! # }
//! ```
//!
//! # When there are no frames
//!
//! Every way this can fail leaves the crash reported as before, with the reason beside it
//! ([`Unavailable`]): not Linux (macOS `.ips` reports carry frames instead); ptrace forbidden
//! (`kernel.yama.ptrace_scope` 2 or 3 without `CAP_SYS_PTRACE`, a container's seccomp profile,
//! gVisor); another tracer already attached (the child runs under gdb or strace); the helper not
//! found (racegate embedded as a library); `RACEGATE_NATIVE_FRAMES=0` in the environment.

#[cfg(target_os = "linux")]
pub mod image;
pub mod maps;
#[cfg(target_os = "linux")]
pub mod tracer;
#[cfg(target_os = "linux")]
mod unwind;

use std::time::{Duration, Instant};

use crate::crash::frames::Frame;

/// Why a crash has no native frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The frames of one thread that received a fatal signal.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeCrash {
    /// The process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// The thread's name.
    pub thread_name: Option<String>,
    /// The signal (`SIGSEGV`).
    pub signal: String,
    /// Frames, innermost first.
    pub frames: Vec<Frame>,
    /// Why the frames are missing or short, when they are.
    pub problem: Option<String>,
    /// How long unwinding took in the helper.
    pub capture: Duration,
    /// When racegate received the frames.
    pub received: Instant,
    /// Whether the process then died of that signal (a handled signal is no crash).
    pub died: bool,
}

/// The environment variable that turns native frame capture off (`0`).
pub const DISABLE_ENV: &str = "RACEGATE_NATIVE_FRAMES";

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn disabled() -> Option<Unavailable> {
    (std::env::var_os(DISABLE_ENV).is_some_and(|v| v == "0")).then(|| {
        Unavailable(format!(
            "native frame capture is off ({DISABLE_ENV}=0 in the environment)"
        ))
    })
}

#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
pub use client::{Prepared, Tracer};

#[cfg(not(target_os = "linux"))]
mod client_other;
#[cfg(not(target_os = "linux"))]
pub use client_other::{Prepared, Tracer};

/// Run the tracer helper if this process was started as one (`<exe> __crash-tracer`): call it
/// first thing in `main`. Returns the helper's exit status.
pub fn main_if_helper() -> Option<std::process::ExitCode> {
    #[cfg(target_os = "linux")]
    {
        let args: Vec<std::ffi::OsString> = std::env::args_os().take(2).collect();
        tracer::main_if_helper(&args).map(std::process::ExitCode::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
