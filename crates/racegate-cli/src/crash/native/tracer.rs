//! The tracer: a helper process (`racegate __crash-tracer`) that ptraces one child and
//! everything it starts, and unwinds a thread the moment a fatal signal is about to kill it.
//!
//! Why a helper process: a ptrace tracer receives its tracees' stops through `waitpid`, and in
//! racegate that would race with the runtime reaping its own children (a stop read as an exit).
//! The helper does nothing but trace, so every `waitpid` answer is its own.
//!
//! Protocol, all of it line-based:
//! - fd 3: the child writes its pid (4 bytes, native order) from `pre_exec`; fd 4: the helper
//!   writes one byte once it has attached, and the child goes on to `exec` (it goes on too if
//!   the helper dies: the pipe then reads end-of-file). So nothing the child runs is untraced.
//! - stdout: one JSON [`Record`] per line.
//! - stdin: `detach` (or end-of-file): detach from every tracee, which goes on untouched, and
//!   exit.
//!
//! Tracees run at full speed: only signals, thread and process creation and `exec` stop them,
//! each for one round trip to the helper. At a fatal signal-delivery stop (SIGSEGV, SIGABRT,
//! SIGBUS, SIGILL, SIGFPE, SIGSYS) the thread is unwound, then the signal is delivered as if
//! nothing had happened (handlers such as Python's faulthandler still run).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::image::{FileCache, ProcessImage};
use super::unwind::thread_frames;
use crate::crash::frames::Frame;

/// Frames kept per crash record.
const RECORD_FRAMES: usize = 48;

/// What the helper reports, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// Tracing started.
    Attached {
        /// The child's pid.
        pid: u32,
    },
    /// Tracing is not possible; the child runs untraced.
    Unavailable {
        /// Why (errno text and the likely cause).
        reason: String,
    },
    /// A thread is about to receive a fatal signal; its frames.
    Fatal {
        /// The process (thread group) id.
        pid: u32,
        /// The thread.
        tid: u32,
        /// The thread's name (`comm`).
        thread_name: Option<String>,
        /// The signal's name.
        signal: String,
        /// Frames, innermost first.
        frames: Vec<FrameRecord>,
        /// Why the frames are empty or short, when they are.
        problem: Option<String>,
        /// How long the unwinding took, in microseconds.
        capture_us: u64,
    },
    /// A traced process died of a signal.
    Died {
        /// The process id.
        pid: u32,
        /// The signal's name.
        signal: String,
    },
    /// Every tracee was released.
    Detached,
}

/// A frame as it travels between the helper and racegate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// Function, demangled.
    pub function: Option<String>,
    /// Library or executable file name.
    pub library: Option<String>,
    /// Instruction address.
    pub address: Option<u64>,
}

impl From<&Frame> for FrameRecord {
    fn from(f: &Frame) -> Self {
        FrameRecord {
            function: f.function.clone(),
            library: f.library.clone(),
            address: f.address,
        }
    }
}

impl From<&FrameRecord> for Frame {
    fn from(f: &FrameRecord) -> Self {
        Frame {
            kind: crate::crash::frames::FrameKind::Native,
            function: f.function.clone(),
            library: f.library.clone(),
            file: None,
            line: None,
            address: f.address,
        }
    }
}

/// Signals whose delivery is (most likely) a crash.
const FATAL: [i32; 6] = [
    libc::SIGSEGV,
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSYS,
];

/// The first argument that runs the helper.
pub const HELPER_ARG: &str = "__crash-tracer";

/// Run the helper if `args` asks for it (`<exe> __crash-tracer`); returns its exit status.
pub fn main_if_helper(args: &[std::ffi::OsString]) -> Option<u8> {
    if args.get(1).map(|a| a.as_os_str()) != Some(std::ffi::OsStr::new(HELPER_ARG)) {
        return None;
    }
    // SAFETY: the parent set up fds 3 and 4 for this process (see `super::client`); nothing
    // else owns them.
    let (pid_in, go_out) = unsafe { (OwnedFd::from_raw_fd(3), OwnedFd::from_raw_fd(4)) };
    Some(run(pid_in, go_out))
}

fn emit(out: &mut impl Write, r: &Record) {
    if let Ok(line) = serde_json::to_string(r) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn run(pid_in: OwnedFd, go_out: OwnedFd) -> u8 {
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4];
    let mut pid_file = std::fs::File::from(pid_in);
    if std::io::Read::read_exact(&mut pid_file, &mut buf).is_err() {
        return 0; // the child never came: nothing to trace
    }
    let pid = i32::from_ne_bytes(buf);
    let options = libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACEEXEC;
    // SAFETY: PTRACE_SEIZE takes the pid and the options as `data`; no memory is passed.
    let seized = unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            options as usize as *mut libc::c_void,
        )
    };
    let attach_error = (seized != 0).then(std::io::Error::last_os_error);
    // Let the child exec, traced or not.
    let _ = std::fs::File::from(go_out).write_all(b"g");
    if let Some(e) = attach_error {
        emit(
            &mut out,
            &Record::Unavailable {
                reason: format!(
                    "ptrace cannot attach to pid {pid}: {e} ({})",
                    attach_hint(e.raw_os_error())
                ),
            },
        );
        return 0;
    }
    emit(&mut out, &Record::Attached { pid: pid as u32 });
    let mut tracer = Tracer {
        tracees: HashMap::new(),
        captured: HashSet::new(),
        cache: FileCache::default(),
    };
    tracer.tracees.insert(pid, pid);
    // Sleep until a tracee changes state (SIGCHLD, read through a signalfd) or a command
    // arrives on stdin; the timeout is a safety net for a missed SIGCHLD.
    let mut mask = nix::sys::signal::SigSet::empty();
    mask.add(nix::sys::signal::Signal::SIGCHLD);
    let _ = mask.thread_block();
    let sfd = nix::sys::signalfd::SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
    )
    .ok();
    loop {
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer.
            let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::WNOHANG) };
            if tid < 0 {
                return 0; // ECHILD: nothing traced any more
            }
            if tid == 0 {
                break;
            }
            for r in tracer.handle(tid, status) {
                emit(&mut out, &r);
            }
        }
        if tracer.tracees.is_empty() {
            return 0;
        }
        let stdin = std::io::stdin();
        let mut fds = vec![nix::poll::PollFd::new(
            stdin.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Some(sfd) = &sfd {
            fds.push(nix::poll::PollFd::new(
                sfd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            ));
        }
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u8));
        let command = fds[0].revents().is_some_and(|r| !r.is_empty());
        if let Some(sfd) = &sfd {
            while let Ok(Some(_)) = sfd.read_signal() {}
        }
        if command {
            // Any input, or end-of-file (racegate is gone), means `detach`.
            tracer.detach_all();
            emit(&mut out, &Record::Detached);
            return 0;
        }
    }
}

fn attach_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EPERM) => {
            "ptrace is not permitted here: kernel.yama.ptrace_scope is 2 or 3, or a seccomp \
             profile (containers) forbids it; `--cap-add SYS_PTRACE` or ptrace_scope 1 allows it"
        }
        Some(libc::ENOSYS) => "this kernel or sandbox has no ptrace",
        Some(libc::ESRCH) => "the process was already gone",
        _ => "see ptrace(2)",
    }
}

struct Tracer {
    /// Traced thread id → its thread group id.
    tracees: HashMap<i32, i32>,
    /// `(pid, signal)` pairs already captured: a handler that re-raises (faulthandler) is the
    /// same crash.
    captured: HashSet<(i32, i32)>,
    cache: FileCache,
}

impl Tracer {
    fn handle(&mut self, tid: i32, status: i32) -> Vec<Record> {
        let mut records = Vec::new();
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            let tgid = self.tracees.remove(&tid).unwrap_or(tid);
            if libc::WIFSIGNALED(status) && tgid == tid {
                records.push(Record::Died {
                    pid: tid as u32,
                    signal: signal_text(libc::WTERMSIG(status)),
                });
            }
            return records;
        }
        if !libc::WIFSTOPPED(status) {
            return records;
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        // A new thread or process, auto-attached: its first stop.
        self.tracees
            .entry(tid)
            .or_insert_with(|| tgid_of(tid).unwrap_or(tid));
        let deliver = match event {
            0 => {
                // Signal-delivery stop.
                if FATAL.contains(&sig) {
                    let tgid = self.tracees.get(&tid).copied().unwrap_or(tid);
                    if self.captured.insert((tgid, sig)) {
                        records.push(self.capture(tgid, tid, sig));
                    }
                }
                sig
            }
            libc::PTRACE_EVENT_STOP => {
                if matches!(
                    sig,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                ) {
                    // Group-stop: stay stopped like an untraced process would, until SIGCONT.
                    // SAFETY: PTRACE_LISTEN takes no memory.
                    unsafe {
                        libc::ptrace(libc::PTRACE_LISTEN, tid, 0usize, 0usize);
                    }
                    return records;
                }
                0
            }
            libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK => {
                let mut child: libc::c_ulong = 0;
                // SAFETY: GETEVENTMSG writes one c_ulong to `data`.
                unsafe {
                    libc::ptrace(
                        libc::PTRACE_GETEVENTMSG,
                        tid,
                        0usize,
                        &mut child as *mut libc::c_ulong,
                    );
                }
                let child = child as i32;
                let tgid = if event == libc::PTRACE_EVENT_CLONE {
                    // A thread, unless created without CLONE_THREAD (then /proc says).
                    tgid_of(child).unwrap_or_else(|| self.tracees.get(&tid).copied().unwrap_or(tid))
                } else {
                    child
                };
                self.tracees.entry(child).or_insert(tgid);
                0
            }
            _ => 0, // exec and anything else: go on
        };
        // SAFETY: PTRACE_CONT takes the signal to deliver as `data`; no memory is passed.
        unsafe {
            libc::ptrace(libc::PTRACE_CONT, tid, 0usize, deliver as usize);
        }
        records
    }

    fn capture(&mut self, tgid: i32, tid: i32, sig: i32) -> Record {
        let started = Instant::now();
        let (frames, problem) = match ProcessImage::load(tgid, &mut self.cache) {
            Ok(image) => match thread_frames(tid, &image) {
                Ok(f) if f.is_empty() => (f, Some("no frame could be read".to_string())),
                Ok(f) => (f, None),
                Err(e) => (Vec::new(), Some(format!("cannot read the registers: {e}"))),
            },
            Err(e) => (
                Vec::new(),
                Some(format!("cannot read /proc/{tgid}/maps: {e}")),
            ),
        };
        Record::Fatal {
            pid: tgid as u32,
            tid: tid as u32,
            thread_name: std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/comm"))
                .ok()
                .map(|s| s.trim().to_string()),
            signal: signal_text(sig),
            frames: frames
                .iter()
                .take(RECORD_FRAMES)
                .map(FrameRecord::from)
                .collect(),
            problem,
            capture_us: started.elapsed().as_micros() as u64,
        }
    }

    /// Release every tracee: stop each (PTRACE_INTERRUPT), then detach it, passing on any signal
    /// it was about to receive.
    fn detach_all(&mut self) {
        let tids: Vec<i32> = self.tracees.keys().copied().collect();
        for &tid in &tids {
            // SAFETY: PTRACE_INTERRUPT takes no memory.
            unsafe {
                libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0usize, 0usize);
            }
        }
        let mut pending: HashSet<i32> = tids.into_iter().collect();
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        while !pending.is_empty() && Instant::now() < deadline {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer.
            let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::WNOHANG) };
            if tid <= 0 {
                if tid < 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            if !libc::WIFSTOPPED(status) {
                pending.remove(&tid);
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            let pass = if event == 0 { sig } else { 0 };
            // SAFETY: PTRACE_DETACH takes the signal to deliver as `data`.
            unsafe {
                libc::ptrace(libc::PTRACE_DETACH, tid, 0usize, pass as usize);
            }
            pending.remove(&tid);
        }
        self.tracees.clear();
    }
}

fn tgid_of(tid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn signal_text(sig: i32) -> String {
    crate::crash::signal::signal_name(sig)
        .map(str::to_string)
        .unwrap_or_else(|| format!("signal {sig}"))
}
