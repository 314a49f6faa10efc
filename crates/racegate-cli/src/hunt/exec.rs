//! Running one test command with bounds: the child process sits behind [`Executor`] so the
//! scheduler and the bisection can be driven by a scripted mock in tests.
//!
//! The real executor puts the runner in its own process group, watches its output for progress
//! (a line that reports a finished test), and when nothing progresses for the idle timeout it
//! captures every thread's stack of every process in the tree *before* killing the tree, so a
//! hang leaves evidence and no orphans.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::model::ProcessStack;

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
    /// A hang: no progress line for this long.
    pub idle: Duration,
    /// The whole execution, whatever its progress.
    pub total: Duration,
    /// Dump every thread of a hung tree before killing it (the first runs need the
    /// evidence; bisection probes only need the verdict).
    pub capture_stacks: bool,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    /// The process exited with this code.
    Exited(i32),
    /// The process was killed by this signal (number).
    Signaled(i32),
    /// No progress for `idle`: stacks were captured, then the tree was killed.
    Hung {
        /// How long it had been idle.
        idle: Duration,
    },
    /// The total limit ran out while it was still progressing.
    OutOfTime,
}

/// What one execution produced.
#[derive(Debug, Clone)]
pub struct Execution {
    /// How it ended.
    pub termination: Termination,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// Thread dumps captured before a hung tree was killed.
    pub stacks: Vec<ProcessStack>,
    /// Native frames of processes in the tree that died of a fatal signal (Linux; see
    /// [`crate::crash::native`]).
    pub native_crashes: Vec<crate::crash::native::NativeCrash>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs commands. The scheduler only talks to this trait.
pub trait Executor {
    /// Run `spec` to completion within `limits`. `is_progress` tells which output lines (from
    /// either stream) count as progress. Errors only when the command cannot be started.
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
}

impl ProcessExecutor {
    /// An executor using the dump tools found on `PATH`.
    pub fn new() -> Self {
        ProcessExecutor {
            tools: super::stacks::StackTools::detect(),
        }
    }
}

impl Default for ProcessExecutor {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(unix)]
mod unix {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::mpsc;
    use std::time::Instant;

    /// The process group of the command being executed (0: none), for the interrupt handler.
    static RUNNING: AtomicU32 = AtomicU32::new(0);

    /// On SIGINT, SIGTERM or SIGHUP, kill the running test command's whole tree, then exit
    /// with status 130: an interrupted hunt leaves no test processes behind. Call it before any
    /// other thread is started (the signals are blocked in this thread and every thread it
    /// starts afterwards, and received by one waiting thread; child processes start with an
    /// empty mask).
    pub fn kill_children_on_interrupt() {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGHUP);
        if set.thread_block().is_err() {
            return;
        }
        std::thread::spawn(move || {
            if let Ok(sig) = set.wait() {
                let root = RUNNING.load(Ordering::SeqCst);
                if root != 0 {
                    kill_tree(root, &super::super::stacks::process_tree(root));
                }
                eprintln!("racegate: hunt interrupted by {sig}; the running tests were killed");
                std::process::exit(i32::from(crate::exit::INTERRUPTED));
            }
        });
    }

    enum Event {
        Line(bool, String),
        Closed,
        Exited(std::process::ExitStatus),
    }

    fn pump<R: Read + Send + 'static>(r: R, is_err: bool, tx: mpsc::Sender<Event>) {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(r);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        if tx.send(Event::Line(is_err, line)).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(Event::Closed);
        });
    }

    impl Executor for ProcessExecutor {
        fn execute(
            &mut self,
            spec: &CommandSpec,
            limits: Limits,
            is_progress: &dyn Fn(&str) -> bool,
        ) -> std::io::Result<Execution> {
            let start = Instant::now();
            let mut cmd = Command::new(&spec.program);
            cmd.args(&spec.args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // Its own group: one signal ends the runner and everything it started.
                .process_group(0);
            for (k, v) in &spec.env {
                cmd.env(k, v);
            }
            if let Some(dir) = &spec.cwd {
                cmd.current_dir(dir);
            }
            // Frames of a test process that crashes (crash::native), in the runs that gather
            // evidence; bisection probes and verify runs only need the verdict and keep the
            // suite's own timing (tracing every thread start shifts a race's odds). The run
            // goes on without frames where ptrace is not permitted.
            // Opt-in for now (`RACEGATE_NATIVE_FRAMES=1`): with the tracer attached to the
            // evidence runs, the leaky-pool fixture's hang is attributed differently in about
            // half the hunts (tests/hunt_pytest.rs); stress targets trace by default.
            let wanted =
                std::env::var_os(crate::crash::native::DISABLE_ENV).is_some_and(|v| v == "1");
            let prepared = if limits.capture_stacks && wanted {
                crate::crash::native::Prepared::for_racegate()
            } else {
                Err(crate::crash::native::Unavailable(
                    "hunt takes native frames with RACEGATE_NATIVE_FRAMES=1, in evidence runs"
                        .into(),
                ))
            };
            if let Ok(p) = &prepared {
                // SAFETY: the hook makes only async-signal-safe system calls.
                unsafe {
                    cmd.pre_exec(p.hook());
                }
            }
            let mut child = cmd.spawn()?;
            let pid = child.id();
            let mut tracer = prepared.ok().map(|p| p.started(pid));
            RUNNING.store(pid, Ordering::SeqCst);
            let (tx, rx) = mpsc::channel();
            pump(child.stdout.take().expect("piped"), false, tx.clone());
            pump(child.stderr.take().expect("piped"), true, tx.clone());
            std::thread::spawn(move || {
                if let Ok(status) = child.wait() {
                    let _ = tx.send(Event::Exited(status));
                }
            });

            let (mut stdout, mut stderr) = (String::new(), String::new());
            let mut last_progress = Instant::now();
            let mut open_streams = 2;
            let mut status = None;
            let mut stacks = Vec::new();
            let mut forced: Option<Termination> = None;
            let mut faulthandler = false;
            while status.is_none() || open_streams > 0 {
                let now = Instant::now();
                let idle_deadline = last_progress + limits.idle;
                let total_deadline = start + limits.total;
                if status.is_none()
                    && forced.is_none()
                    && (now >= idle_deadline || now >= total_deadline)
                {
                    let termination = if now >= total_deadline && now < idle_deadline {
                        Termination::OutOfTime
                    } else {
                        Termination::Hung {
                            idle: now - last_progress,
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
                    kill_tree(pid, &tree);
                    forced = Some(termination);
                }
                if status.is_some() && forced.is_none() && open_streams > 0 {
                    // The runner exited but something it started still holds the pipes.
                    let tree = super::super::stacks::process_tree(pid);
                    kill_tree(pid, &tree);
                }
                let wait = if forced.is_some() || status.is_some() {
                    Duration::from_secs(5)
                } else {
                    idle_deadline
                        .min(total_deadline)
                        .saturating_duration_since(now)
                };
                match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
                    Ok(Event::Line(is_err, line)) => {
                        if is_progress(line.trim_end()) {
                            last_progress = Instant::now();
                        }
                        if is_err {
                            stderr.push_str(&line);
                        } else {
                            stdout.push_str(&line);
                        }
                    }
                    Ok(Event::Closed) => open_streams -= 1,
                    Ok(Event::Exited(s)) => status = Some(s),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if forced.is_some() || status.is_some() {
                            // Killed but not reaped within 5 s, or pipes held open: stop waiting.
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            // Whatever the runner left behind in its group goes too.
            kill_group(pid);
            RUNNING.store(0, Ordering::SeqCst);
            if faulthandler {
                stacks.extend(super::super::stacks::parse_faulthandler(&stderr));
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
                stdout,
                stderr,
                stacks,
                native_crashes,
                elapsed: start.elapsed(),
            })
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

    fn kill_group(pgid: u32) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
    }

    /// Kill the group and every descendant (some runners, like nextest, put each test in a
    /// group of its own).
    fn kill_tree(root: u32, tree: &[(u32, String)]) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        kill_group(root);
        for (pid, _) in tree {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
}

#[cfg(unix)]
pub use unix::kill_children_on_interrupt;

/// Without Unix signals there is nothing to install.
#[cfg(not(unix))]
pub fn kill_children_on_interrupt() {}

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
        let limits = Limits {
            idle: Duration::from_millis(1500),
            total: Duration::from_secs(30),
            capture_stacks: false,
        };
        // Six progress lines 0.4 s apart: 2.4 s in all, never 1.5 s without progress.
        let ex = ProcessExecutor::new()
            .execute(
                &sh("for i in 1 2 3 4 5 6; do echo \"test t$i ... ok\"; sleep 0.4; done"),
                limits,
                &progress,
            )
            .unwrap();
        assert_eq!(ex.termination, Termination::Exited(0));
        assert_eq!(ex.stdout.lines().count(), 6);

        // Output that is not progress does not count.
        let ex = ProcessExecutor::new()
            .execute(
                &sh("while true; do echo compiling; sleep 0.1; done"),
                limits,
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
        let limits = Limits {
            idle: Duration::from_millis(1500),
            total: Duration::from_secs(60),
            capture_stacks: true,
        };
        let ex = ProcessExecutor { tools }
            .execute(&spec, limits, &|_| false)
            .unwrap();
        assert!(matches!(ex.termination, Termination::Hung { .. }));
        assert_eq!(ex.stacks.len(), 1, "{:#?}\n{}", ex.stacks, ex.stderr);
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
        let limits = Limits {
            idle: Duration::from_millis(800),
            total: Duration::from_secs(60),
            capture_stacks: true,
        };
        let ex = ProcessExecutor::new()
            .execute(&sh(&script), limits, &|_| false)
            .unwrap();
        assert!(matches!(ex.termination, Termination::Hung { .. }), "{ex:?}");
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
}
