//! Running one test command with bounds: the child process sits behind [`Executor`] so the
//! phases can be driven by a scripted mock in tests.
//!
//! The real executor starts the runner *clean* — an empty signal mask, every signal at its
//! default action, none of racegate's file descriptors — in a process group of its own, reads
//! its stdout and stderr through one pipe (so their lines keep the order they were written in),
//! and watches for progress (a line that reports a finished test). When nothing progresses for
//! the idle limit, it captures every thread's stack of every process in the tree *before*
//! killing the tree, so a hang leaves evidence and no orphans.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::model::ProcessStack;
use crate::plumbing::Control;

/// A command to run: program, arguments, extra environment, working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory (the current one when `None`).
    pub cwd: Option<PathBuf>,
}

impl CommandSpec {
    /// The command as one shell-like line, for reports.
    pub fn display(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            let a = a.to_string_lossy();
            s.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"|&;()$".contains(c)) {
                s.push('\'');
                s.push_str(&a.replace('\'', r"'\''"));
                s.push('\'');
            } else {
                s.push_str(&a);
            }
        }
        s
    }
}

/// Time bounds of one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A hang: no progress line for this long (after the first one).
    pub idle: Duration,
    /// A hang before the first progress line: start-up (workers spawning, binaries loading)
    /// gets this long.
    pub first_progress: Duration,
    /// The whole execution, whatever its progress.
    pub total: Duration,
    /// Dump every thread of a hung tree before killing it (the first sighting of a hang needs
    /// the evidence; later runs only need the verdict).
    pub capture_stacks: bool,
}

impl Limits {
    /// The same bound for everything: for commands that are not test runs (listing, helpers).
    pub fn flat(d: Duration) -> Self {
        Limits {
            idle: d,
            first_progress: d,
            total: d,
            capture_stacks: false,
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    /// The process exited with this code.
    Exited(i32),
    /// The process was killed by this signal (number).
    Signaled(i32),
    /// No progress for the idle limit: stacks were captured, then the tree was killed.
    Hung {
        /// How long it had been idle.
        idle: Duration,
    },
    /// The total limit ran out while it was still progressing.
    OutOfTime,
    /// The hunt was interrupted (SIGINT, SIGTERM, SIGHUP): the tree was killed.
    Interrupted,
}

/// What one execution produced.
#[derive(Debug, Clone)]
pub struct Execution {
    /// How it ended.
    pub termination: Termination,
    /// Everything it wrote to stdout and stderr, in the order it was written.
    pub output: String,
    /// When each progress line arrived, from the start.
    pub progress: Vec<Duration>,
    /// Thread dumps captured before a hung tree was killed.
    pub stacks: Vec<ProcessStack>,
    /// Native frames of processes in the tree that died of a fatal signal (Linux, with
    /// `RACEGATE_NATIVE_FRAMES=1`; see [`crate::crash::native`]).
    pub native_crashes: Vec<crate::crash::native::NativeCrash>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Execution {
    /// The longest stretch without progress: from the start to the first progress line, and
    /// between two of them (for a run of one test at a time, the slowest test).
    pub fn longest_gap(&self) -> Duration {
        let mut prev = Duration::ZERO;
        let mut max = Duration::ZERO;
        for &t in &self.progress {
            max = max.max(t.saturating_sub(prev));
            prev = t;
        }
        max
    }

    /// Time to the first progress line (start-up), if there was one.
    pub fn startup(&self) -> Option<Duration> {
        self.progress.first().copied()
    }
}

/// Runs commands. The phases only talk to this trait.
pub trait Executor {
    /// Run `spec` to completion within `limits`. `is_progress` tells which output lines count
    /// as progress. Errors only when the command cannot be started.
    fn execute(
        &mut self,
        spec: &CommandSpec,
        limits: Limits,
        is_progress: &dyn Fn(&str) -> bool,
    ) -> std::io::Result<Execution>;
}

/// The executor that runs real processes.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    /// The tools hung processes are dumped with.
    pub tools: super::stacks::StackTools,
    /// Cancelled by an interrupt: the running tree is killed and the execution ends
    /// `Interrupted`. The running test command is listed in its children while it runs.
    pub control: Control,
}

impl ProcessExecutor {
    /// An executor using the dump tools found on `PATH`, stopped by `control`.
    pub fn new(control: Control) -> Self {
        ProcessExecutor {
            tools: super::stacks::StackTools::detect(),
            control,
        }
    }
}

/// Make a child start clean: an empty signal mask and every signal at its default action
/// (racegate blocks SIGINT, SIGTERM and SIGHUP for its interrupt thread, and a parent may have
/// ignored some; Rust's `Command` passes both on), and none of racegate's descriptors (those
/// inherited without close-on-exec are marked so first). Jobserver variables that point at
/// descriptors the child will no longer have are dropped.
#[cfg(unix)]
pub fn clean_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    close_inherited_descriptors_on_exec();
    for var in ["MAKEFLAGS", "MFLAGS", "CARGO_MAKEFLAGS"] {
        if std::env::var(var).is_ok_and(|v| v.contains("--jobserver-fds=") || jobserver_fds(&v)) {
            cmd.env_remove(var);
        }
    }
    // SAFETY: between fork and exec only async-signal-safe calls are made: sigprocmask and
    // signal, on a mask built on the child's own stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            default_dispositions();
            Ok(())
        });
    }
}

/// Every signal to its default action, between fork and exec. On Linux through the raw system
/// call: glibc's `signal` refuses the real-time signals it reserves, which a parent may still
/// have left ignored. Errors (SIGKILL, SIGSTOP, numbers the platform lacks) are expected.
#[cfg(unix)]
unsafe fn default_dispositions() {
    #[cfg(target_os = "linux")]
    {
        // The kernel's `struct sigaction`, all zero: SIG_DFL, no flags, empty mask.
        let act = [0u64; 4];
        for sig in 1..=64 {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                act.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    for sig in 1..32 {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// `--jobserver-auth=R,W` (two descriptors), as opposed to a named FIFO.
#[cfg(unix)]
fn jobserver_fds(flags: &str) -> bool {
    flags.split_whitespace().any(|w| {
        w.strip_prefix("--jobserver-auth=")
            .is_some_and(|v| v.split(',').count() == 2 && !v.starts_with("fifo:"))
    })
}

/// Mark every descriptor above stderr close-on-exec. racegate opens its own with the flag;
/// this catches those it inherited from whoever started it.
#[cfg(unix)]
pub fn close_inherited_descriptors_on_exec() {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number only change its flags; a number that
        // was closed meanwhile (the directory's own descriptor) just fails.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Kill process group `root` and every descendant of `root` (some runners, like nextest, put
/// each test in a group of its own).
#[cfg(unix)]
pub fn kill_tree(root: u32) {
    if root <= 1 {
        return;
    }
    let tree = super::stacks::process_tree(root);
    kill_listed(root, &tree);
}

#[cfg(unix)]
fn kill_listed(root: u32, tree: &[(u32, String)]) {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::Pid;
    let _ = killpg(Pid::from_raw(root as i32), Signal::SIGKILL);
    for (pid, _) in tree {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
}

#[cfg(unix)]
mod unix {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::fd::OwnedFd;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Instant;

    enum Event {
        Line(String, Instant),
        Closed,
        Exited(std::process::ExitStatus),
    }

    /// One pipe for stdout and stderr, close-on-exec on racegate's side.
    fn output_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
        let (r, w) = nix::unistd::pipe().map_err(std::io::Error::from)?;
        for fd in [&r, &w] {
            use std::os::fd::AsRawFd;
            // SAFETY: setting a flag on a descriptor we own.
            unsafe {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok((r, w))
    }

    impl Executor for ProcessExecutor {
        fn execute(
            &mut self,
            spec: &CommandSpec,
            limits: Limits,
            is_progress: &dyn Fn(&str) -> bool,
        ) -> std::io::Result<Execution> {
            let start = Instant::now();
            if self.control.cancel.is_cancelled() {
                return Ok(Execution {
                    termination: Termination::Interrupted,
                    output: String::new(),
                    progress: Vec::new(),
                    stacks: Vec::new(),
                    native_crashes: Vec::new(),
                    elapsed: Duration::ZERO,
                });
            }
            let (read, write) = output_pipe()?;
            let mut cmd = Command::new(&spec.program);
            cmd.args(&spec.args)
                .stdin(Stdio::null())
                .stdout(Stdio::from(write.try_clone()?))
                .stderr(Stdio::from(write))
                // Its own group: one signal ends the runner and everything it started.
                .process_group(0);
            for (k, v) in &spec.env {
                cmd.env(k, v);
            }
            if let Some(dir) = &spec.cwd {
                cmd.current_dir(dir);
            }
            clean_child(&mut cmd);
            // Frames of a test process that crashes (crash::native), in the runs that gather
            // evidence; bisection probes and verify runs only need the verdict and keep the
            // suite's own timing. Opt-in (`RACEGATE_NATIVE_FRAMES=1`): tracing every thread
            // start shifts a race's odds (with the tracer on, the leaky-pool fixture's hang was
            // attributed differently in about half the hunts). The run goes on without frames
            // where ptrace is not permitted.
            let wanted =
                std::env::var_os(crate::crash::native::DISABLE_ENV).is_some_and(|v| v == "1");
            let prepared = if limits.capture_stacks && wanted {
                crate::crash::native::Prepared::for_racegate().ok()
            } else {
                None
            };
            if let Some(p) = &prepared {
                // Runs after clean_child's hook (hooks run in order), so the child is clean
                // when the tracer attaches; it makes only async-signal-safe system calls.
                // SAFETY: see above.
                unsafe {
                    cmd.pre_exec(p.hook());
                }
            }
            let spawned = cmd.spawn();
            // Our copies of the write end go now, so the read end sees EOF when the tree exits.
            drop(cmd);
            let mut child = spawned?;
            let pid = child.id();
            let mut tracer = prepared.map(|p| p.started(pid));
            // The last resort on a second interrupt: the whole tree (nextest gives each test a
            // group of its own).
            let listed = self.control.children.register_with(pid, kill_tree);
            let (tx, rx) = mpsc::channel();
            {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(std::fs::File::from(read));
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match reader.read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let line = String::from_utf8_lossy(&buf).into_owned();
                                if tx.send(Event::Line(line, Instant::now())).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = tx.send(Event::Closed);
                });
            }
            std::thread::spawn(move || {
                if let Ok(status) = child.wait() {
                    let _ = tx.send(Event::Exited(status));
                }
            });

            let mut output = String::new();
            let mut progress = Vec::new();
            let mut last_progress: Option<Instant> = None;
            let mut open = true;
            let mut status = None;
            let mut stacks = Vec::new();
            let mut forced: Option<Termination> = None;
            let mut faulthandler = false;
            while status.is_none() || open {
                let now = Instant::now();
                let idle_deadline = match last_progress {
                    Some(t) => t + limits.idle,
                    None => start + limits.first_progress,
                };
                let total_deadline = start + limits.total;
                if forced.is_none() && self.control.cancel.is_cancelled() {
                    kill_tree(pid);
                    forced = Some(Termination::Interrupted);
                }
                if status.is_none()
                    && forced.is_none()
                    && (now >= idle_deadline || now >= total_deadline)
                {
                    let termination = if now >= total_deadline && now < idle_deadline {
                        Termination::OutOfTime
                    } else {
                        Termination::Hung {
                            idle: now - last_progress.unwrap_or(start),
                        }
                    };
                    let tree = super::super::stacks::process_tree(pid);
                    if limits.capture_stacks && matches!(termination, Termination::Hung { .. }) {
                        // A traced process cannot be attached by gdb or py-spy: release it.
                        if let Some(t) = tracer.take() {
                            t.detach();
                        }
                        let captured = super::super::stacks::capture(&tree, self.tools);
                        stacks = captured.stacks;
                        if !captured.faulthandler.is_empty() {
                            ask_faulthandler(&captured.faulthandler);
                            faulthandler = true;
                        }
                    }
                    kill_listed(pid, &tree);
                    forced = Some(termination);
                }
                if status.is_some() && forced.is_none() && open {
                    // The runner exited but something it started still holds the pipe.
                    kill_tree(pid);
                }
                let wait = if forced.is_some() || status.is_some() {
                    Duration::from_secs(5)
                } else {
                    // Wake at least every 200 ms to see an interrupt.
                    idle_deadline
                        .min(total_deadline)
                        .saturating_duration_since(now)
                        .min(Duration::from_millis(200))
                };
                match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
                    Ok(Event::Line(line, at)) => {
                        if is_progress(line.trim_end()) {
                            last_progress = Some(at);
                            progress.push(at.saturating_duration_since(start));
                        }
                        output.push_str(&line);
                    }
                    Ok(Event::Closed) => open = false,
                    Ok(Event::Exited(s)) => status = Some(s),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if forced.is_some() || status.is_some() {
                            // Killed but not reaped within 5 s, or the pipe held open: stop.
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            // Whatever the runner left behind in its group goes too, and is gone before the
            // next run starts (a dying worker still holding a lock would hang it).
            kill_listed(pid, &[]);
            wait_group_gone(pid, Duration::from_secs(3));
            drop(listed);
            if faulthandler {
                stacks.extend(super::super::stacks::parse_faulthandler(&output));
            }
            let termination = match (forced, status) {
                (Some(t), _) => t,
                (None, Some(s)) => match (s.code(), s.signal()) {
                    (Some(c), _) => Termination::Exited(c),
                    (None, Some(sig)) => Termination::Signaled(sig),
                    _ => Termination::Exited(-1),
                },
                (None, None) => Termination::Exited(-1),
            };
            let native_crashes = tracer.map(|t| t.deaths()).unwrap_or_default();
            Ok(Execution {
                termination,
                output,
                progress,
                stacks,
                native_crashes,
                elapsed: start.elapsed(),
            })
        }
    }

    /// Wait (bounded) until no process is left in group `pgid` (zombies included: their
    /// parent, gone, leaves them to init, which reaps them at once).
    fn wait_group_gone(pgid: u32, limit: Duration) {
        use nix::sys::signal::killpg;
        use nix::unistd::Pid;
        let deadline = Instant::now() + limit;
        while killpg(Pid::from_raw(pgid as i32), None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGABRT makes a Python process with faulthandler enabled (pytest enables it) write
    /// every thread's traceback to its stderr before it dies. Wait up to 3 s for them to go;
    /// they are not our children, so their exit can only be polled.
    fn ask_faulthandler(pids: &[u32]) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        for pid in pids {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGABRT);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        let gone = |pid: &u32| {
            kill(Pid::from_raw(*pid as i32), None).is_err()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        };
        while Instant::now() < deadline && !pids.iter().all(gone) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(not(unix))]
impl Executor for ProcessExecutor {
    fn execute(
        &mut self,
        _spec: &CommandSpec,
        _limits: Limits,
        _is_progress: &dyn Fn(&str) -> bool,
    ) -> std::io::Result<Execution> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "`racegate hunt` runs test processes on Unix only",
        ))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> CommandSpec {
        CommandSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: Vec::new(),
            cwd: None,
        }
    }

    fn limits(idle_ms: u64) -> Limits {
        Limits {
            idle: Duration::from_millis(idle_ms),
            first_progress: Duration::from_millis(idle_ms),
            total: Duration::from_secs(60),
            capture_stacks: false,
        }
    }

    fn alive(pid: u32) -> bool {
        // Zombies count as gone: they hold no resources and their parent reaps them.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z')),
            Err(_) => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
                    && !cfg!(target_os = "linux")
            }
        }
    }

    #[test]
    fn progress_keeps_a_slow_run_alive_and_silence_ends_it() {
        let progress = |l: &str| l.ends_with("... ok");
        // Six progress lines 0.4 s apart: 2.4 s in all, never 1.5 s without progress.
        let ex = ProcessExecutor::new(Control::new())
            .execute(
                &sh("for i in 1 2 3 4 5 6; do echo \"test t$i ... ok\"; sleep 0.4; done"),
                limits(1500),
                &progress,
            )
            .unwrap();
        assert_eq!(ex.termination, Termination::Exited(0));
        assert_eq!(ex.output.lines().count(), 6);
        assert_eq!(ex.progress.len(), 6);
        assert!(ex.longest_gap() < Duration::from_millis(1500));

        // Output that is not progress does not count.
        let ex = ProcessExecutor::new(Control::new())
            .execute(
                &sh("while true; do echo compiling; sleep 0.1; done"),
                limits(1500),
                &progress,
            )
            .unwrap();
        assert!(
            matches!(ex.termination, Termination::Hung { .. }),
            "{:?}",
            ex.termination
        );
    }

    #[test]
    fn stdout_and_stderr_keep_their_order() {
        let ex = ProcessExecutor::new(Control::new())
            .execute(
                &sh("echo one; echo two >&2; echo three; echo four >&2"),
                limits(5000),
                &|_| false,
            )
            .unwrap();
        assert_eq!(ex.output, "one\ntwo\nthree\nfour\n");
    }

    /// The control: a command started the plain way inherits the blocked signals, the ignored
    /// one and the descriptor (Rust's `Command` passes the mask on; `sh` would reset it, so the
    /// children here are `grep` and `ls` themselves); `clean_child` removes all three.
    #[cfg(target_os = "linux")]
    #[test]
    fn children_start_with_no_blocked_or_ignored_signal_and_no_inherited_descriptor() {
        use nix::sys::signal::{SigSet, Signal};
        use std::os::fd::AsRawFd;
        let status = |program: &str, args: &[&str], clean: bool| -> String {
            if clean {
                let spec = CommandSpec {
                    program: program.into(),
                    args: args.iter().map(OsString::from).collect(),
                    env: Vec::new(),
                    cwd: None,
                };
                ProcessExecutor::new(Control::new())
                    .execute(&spec, limits(10_000), &|_| false)
                    .unwrap()
                    .output
            } else {
                let out = std::process::Command::new(program)
                    .args(args)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        // In a thread of its own: its mask must not leak into other tests.
        let (plain, clean, fd) = std::thread::spawn(move || {
            let mut set = SigSet::empty();
            set.add(Signal::SIGTERM);
            set.add(Signal::SIGHUP);
            set.thread_block().unwrap();
            // SAFETY: ignoring SIGUSR2, which no test sends, in this test process.
            unsafe {
                nix::sys::signal::signal(Signal::SIGUSR2, nix::sys::signal::SigHandler::SigIgn)
                    .unwrap();
            }
            let (r, w) = nix::unistd::pipe().unwrap();
            // Inheritable, like a descriptor racegate's own parent passed it.
            // SAFETY: clearing a flag on a descriptor we own.
            unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFD, 0) };
            let fd = w.as_raw_fd().to_string();
            let sig = ["-E", "^Sig(Blk|Ign)", "/proc/self/status"];
            let plain = (
                status("grep", &sig, false),
                status("ls", &["/proc/self/fd"], false),
            );
            let clean = (
                status("grep", &sig, true),
                status("ls", &["/proc/self/fd"], true),
            );
            drop((r, w));
            // SAFETY: restoring the default disposition.
            unsafe {
                nix::sys::signal::signal(Signal::SIGUSR2, nix::sys::signal::SigHandler::SigDfl)
                    .unwrap();
            }
            (plain, clean, fd)
        })
        .join()
        .unwrap();
        let field = |text: &str, name: &str| -> u64 {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        let has_fd = |ls: &str| ls.lines().any(|l| l.trim() == fd);
        let term_hup = (1 << 14) | (1 << 0);
        let usr2 = 1 << 11;
        assert_eq!(
            field(&plain.0, "SigBlk") & term_hup,
            term_hup,
            "{}",
            plain.0
        );
        assert_ne!(field(&plain.0, "SigIgn") & usr2, 0, "{}", plain.0);
        assert!(
            has_fd(&plain.1),
            "fd {fd} not inherited by the control: {}",
            plain.1
        );
        assert_eq!(field(&clean.0, "SigBlk"), 0, "{}", clean.0);
        assert_eq!(field(&clean.0, "SigIgn"), 0, "{}", clean.0);
        assert!(!has_fd(&clean.1), "fd {fd} inherited: {}", clean.1);
    }

    #[test]
    fn an_interrupt_kills_the_running_tree_and_says_so() {
        let control = Control::new();
        let s = control.clone();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let waiter = std::thread::spawn(move || {
            ProcessExecutor::new(s)
                .execute(&sh(&script), limits(60_000), &|_| false)
                .unwrap()
        });
        // Raise once the background sleep is up (bounded).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&pidfile).map_or(true, |s| s.trim().is_empty()) {
            assert!(std::time::Instant::now() < deadline);
            std::thread::yield_now();
        }
        control.cancel.cancel();
        let ex = waiter.join().unwrap();
        assert_eq!(ex.termination, Termination::Interrupted);
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(pid) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(
            !alive(pid),
            "pid {pid} outlived the interrupt: {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
        );
    }

    #[test]
    fn without_py_spy_python_dumps_itself_through_faulthandler() {
        let tools = super::super::stacks::StackTools {
            py_spy: false,
            gdb: false,
            eu_stack: false,
            lldb: false,
        };
        let spec = CommandSpec {
            program: "python3".into(),
            args: vec![
                "-X".into(),
                "faulthandler".into(),
                "-c".into(),
                "import threading\ndef blocked_acquire():\n    threading.Event().wait()\nblocked_acquire()\n".into(),
            ],
            env: Vec::new(),
            cwd: None,
        };
        let mut l = limits(1500);
        l.capture_stacks = true;
        let ex = ProcessExecutor {
            tools,
            control: Control::new(),
        }
        .execute(&spec, l, &|_| false)
        .unwrap();
        assert!(matches!(ex.termination, Termination::Hung { .. }));
        assert_eq!(ex.stacks.len(), 1, "{:#?}\n{}", ex.stacks, ex.output);
        assert_eq!(ex.stacks[0].tool, "faulthandler");
        assert!(
            ex.stacks[0]
                .text
                .contains("    blocked_acquire (<string>:3)"),
            "{}",
            ex.stacks[0].text
        );
    }

    #[test]
    fn a_hung_tree_is_dumped_then_killed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // A child in the background and one in the foreground, both stuck.
        let script = format!(
            "sleep 300 & echo $! > {p}; sleep 300 & echo $! >> {p}; wait",
            p = pids.display()
        );
        let mut l = limits(800);
        l.capture_stacks = true;
        let ex = ProcessExecutor::new(Control::new())
            .execute(&sh(&script), l, &|_| false)
            .unwrap();
        assert!(matches!(ex.termination, Termination::Hung { .. }));
        let children: Vec<u32> = std::fs::read_to_string(&pids)
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert_eq!(children.len(), 2);
        // SIGKILL was sent before `execute` returned; its delivery is asynchronous, so allow
        // the kernel a bounded moment to finish the job.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while children.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        for pid in &children {
            assert!(!alive(*pid), "pid {pid} outlived the hang");
        }
        let has_gdb = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("gdb").is_file()));
        if has_gdb {
            // Both stuck `sleep`s were dumped (the shell is skipped as a driver).
            assert_eq!(ex.stacks.len(), 2, "{:#?}", ex.stacks);
            assert!(ex
                .stacks
                .iter()
                .all(|s| s.tool == "gdb" && s.text.contains("#0")));
        }
    }

    #[test]
    fn jobserver_descriptors_are_recognized() {
        assert!(jobserver_fds("-j --jobserver-auth=3,4"));
        assert!(!jobserver_fds("-j --jobserver-auth=fifo:/tmp/x"));
        assert!(!jobserver_fds("-j4"));
    }
}
