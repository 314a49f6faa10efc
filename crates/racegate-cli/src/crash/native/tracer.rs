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
//! - stdin: `dump`: stop every traced thread for a moment, unwind it, and write one
//!   [`Record::Stacks`] per process, then [`Record::DumpDone`] (a hung process's threads);
//!   `detach` (or end-of-file): detach from every tracee, which goes on untouched, and exit.
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
    /// Every thread of one traced process, unwound at a `dump` command.
    Stacks {
        /// The process id.
        pid: u32,
        /// Its threads.
        threads: Vec<ThreadRecord>,
    },
    /// A `dump` command is complete.
    DumpDone,
}

/// One thread's stack in a [`Record::Stacks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// The thread id.
    pub tid: u32,
    /// Its name (`comm`).
    pub name: Option<String>,
    /// Frames, innermost first.
    pub frames: Vec<FrameRecord>,
}

/// A frame as it travels between the helper and racegate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// Function, demangled.
    pub function: Option<String>,
    /// Library or executable file name.
    pub library: Option<String>,
    /// The library's full path.
    #[serde(default)]
    pub path: Option<String>,
    /// Instruction address.
    pub address: Option<u64>,
}

impl From<&Frame> for FrameRecord {
    fn from(f: &Frame) -> Self {
        FrameRecord {
            function: f.function.clone(),
            library: f.library.clone(),
            path: f.file.clone(),
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
            file: f.path.clone(),
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
    let mut commands: Vec<u8> = Vec::new();
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
        let readable = fds[0].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        if let Some(sfd) = &sfd {
            while let Ok(Some(_)) = sfd.read_signal() {}
        }
        if !readable {
            continue;
        }
        let mut chunk = [0u8; 256];
        let n = nix::unistd::read(stdin.as_fd(), &mut chunk).unwrap_or(0);
        if n == 0 {
            // End of file: racegate is gone.
            tracer.detach_all();
            emit(&mut out, &Record::Detached);
            return 0;
        }
        commands.extend_from_slice(&chunk[..n]);
        while let Some(end) = commands.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = commands.drain(..=end).collect();
            match String::from_utf8_lossy(&line).trim() {
                "dump" => {
                    for r in tracer.dump() {
                        emit(&mut out, &r);
                    }
                    emit(&mut out, &Record::DumpDone);
                }
                _ => {
                    tracer.detach_all();
                    emit(&mut out, &Record::Detached);
                    return 0;
                }
            }
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
                self.register_child(tid, event);
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

    /// Stop every traced thread (PTRACE_INTERRUPT), unwind it, and let it go on as it was: a
    /// signal that arrived meanwhile is delivered, a group-stopped thread stays stopped. State
    /// changes that are not this dump's stops are handled as usual afterwards.
    fn dump(&mut self) -> Vec<Record> {
        let tids: Vec<i32> = self.tracees.keys().copied().collect();
        for &tid in &tids {
            // SAFETY: PTRACE_INTERRUPT takes no memory.
            unsafe {
                libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0usize, 0usize);
            }
        }
        // tid → (signal to deliver on resume, stays group-stopped)
        let mut stopped: HashMap<i32, (i32, bool)> = HashMap::new();
        let mut later: Vec<(i32, i32)> = Vec::new();
        let mut records = Vec::new();
        let mut gone = 0usize;
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        while stopped.len() + gone < tids.len() && Instant::now() < deadline {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer.
            let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::WNOHANG) };
            if tid < 0 {
                break;
            }
            if tid == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            if !tids.contains(&tid) || stopped.contains_key(&tid) || !libc::WIFSTOPPED(status) {
                if tids.contains(&tid) && !libc::WIFSTOPPED(status) {
                    gone += 1;
                }
                later.push((tid, status));
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            match status >> 16 {
                libc::PTRACE_EVENT_STOP => {
                    let group = matches!(
                        sig,
                        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                    );
                    stopped.insert(tid, (0, group));
                }
                0 => {
                    // A signal arrived before the interrupt: capture it if fatal, deliver it after.
                    let tgid = self.tracees.get(&tid).copied().unwrap_or(tid);
                    if FATAL.contains(&sig) && self.captured.insert((tgid, sig)) {
                        records.push(self.capture(tgid, tid, sig));
                    }
                    stopped.insert(tid, (sig, false));
                }
                _ => {
                    // clone/fork/exec: registered as usual, resumed below.
                    later.push((tid, status));
                    stopped.insert(tid, (0, false));
                }
            }
        }
        let mut by_process: HashMap<i32, Vec<i32>> = HashMap::new();
        for &tid in stopped.keys() {
            let tgid = self.tracees.get(&tid).copied().unwrap_or(tid);
            by_process.entry(tgid).or_default().push(tid);
        }
        for (tgid, mut tids) in by_process {
            tids.sort_unstable();
            let image = ProcessImage::load(tgid, &mut self.cache).ok();
            let threads = tids
                .iter()
                .map(|&tid| ThreadRecord {
                    tid: tid as u32,
                    name: std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/comm"))
                        .ok()
                        .map(|s| s.trim().to_string()),
                    frames: image
                        .as_ref()
                        .and_then(|i| thread_frames(tid, i).ok())
                        .unwrap_or_default()
                        .iter()
                        .take(RECORD_FRAMES)
                        .map(FrameRecord::from)
                        .collect(),
                })
                .collect();
            records.push(Record::Stacks {
                pid: tgid as u32,
                threads,
            });
        }
        for (&tid, &(sig, group)) in &stopped {
            // SAFETY: PTRACE_LISTEN / PTRACE_CONT take no memory; `sig` is passed as data.
            unsafe {
                if group {
                    libc::ptrace(libc::PTRACE_LISTEN, tid, 0usize, 0usize);
                } else {
                    libc::ptrace(libc::PTRACE_CONT, tid, 0usize, sig as usize);
                }
            }
        }
        for (tid, status) in later {
            // Stops already resumed above must not be resumed twice: only exits and new
            // tracees' first stops are left to the usual handling.
            if stopped.contains_key(&tid) && libc::WIFSTOPPED(status) {
                let event = status >> 16;
                if matches!(
                    event,
                    libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK
                ) {
                    self.register_child(tid, event);
                }
                continue;
            }
            records.extend(self.handle(tid, status));
        }
        records
    }

    /// Record the new tracee a clone/fork event announced.
    fn register_child(&mut self, tid: i32, event: i32) {
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
