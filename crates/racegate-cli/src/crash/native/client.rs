//! racegate's side of the tracer: start the helper, hook the child's `pre_exec`, read the
//! helper's records.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::tracer::{Record, HELPER_ARG};
use super::{disabled, NativeCrash, Unavailable};
use crate::crash::frames::{Frame, ThreadStack};

/// A helper started and waiting for its child: install [`Prepared::hook`] as the child's
/// `pre_exec`, spawn it, then call [`Prepared::started`]. Dropping it unused stops the helper.
pub struct Prepared {
    /// `None` once handed to the [`Tracer`].
    helper: Option<Child>,
    helper_pid: u32,
    /// The child writes its pid here (its copy; ours is closed in `started`).
    pid_w: OwnedFd,
    /// The child waits on this for the helper's go.
    go_r: OwnedFd,
}

/// A running helper tracing one child and its descendants.
pub struct Tracer {
    shared: Arc<(Mutex<State>, Condvar)>,
    stdin: Mutex<Option<ChildStdin>>,
    helper: Child,
}

#[derive(Default)]
struct State {
    attached: bool,
    unavailable: Option<String>,
    fatal: Vec<NativeCrash>,
    /// Stacks of the dump in progress.
    stacks: Vec<(u32, Vec<ThreadStack>)>,
    /// Dumps completed so far.
    dumps: u64,
    ended: bool,
}

/// A pipe whose two ends are at fd 10 or above (never 3 or 4, where the helper wants them) and
/// close on exec.
fn pipe_high() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let high = |fd: OwnedFd| -> std::io::Result<OwnedFd> {
        // SAFETY: F_DUPFD_CLOEXEC duplicates a valid fd; the new one is owned here.
        let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `n` is a fresh fd nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    };
    Ok((high(r)?, high(w)?))
}

impl Prepared {
    /// Start the helper (`helper_exe __crash-tracer`, normally racegate's own executable).
    pub fn new(helper_exe: &Path) -> Result<Prepared, Unavailable> {
        if let Some(off) = disabled() {
            return Err(off);
        }
        let fail = |e: std::io::Error| {
            Unavailable(format!(
                "cannot start the frame tracer `{}`: {e}",
                helper_exe.display()
            ))
        };
        let (pid_r, pid_w) = pipe_high().map_err(fail)?;
        let (go_r, go_w) = pipe_high().map_err(fail)?;
        let (a, b) = (pid_r.as_raw_fd(), go_w.as_raw_fd());
        let mut cmd = Command::new(helper_exe);
        cmd.arg(HELPER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: dup2 is async-signal-safe; `a` and `b` are open (owned above) and >= 10.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let helper = cmd.spawn().map_err(fail)?;
        drop((pid_r, go_w));
        Ok(Prepared {
            helper_pid: helper.id(),
            helper: Some(helper),
            pid_w,
            go_r,
        })
    }

    /// Start racegate's own executable as the helper (the usual case).
    pub fn for_racegate() -> Result<Prepared, Unavailable> {
        let exe = std::env::current_exe()
            .map_err(|e| Unavailable(format!("cannot find racegate's executable: {e}")))?;
        // Only racegate's own binary has the helper (`racegate_cli-…` is a test harness).
        let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with("racegate") || name.starts_with("racegate_cli") {
            return Err(Unavailable(format!(
                "the frame tracer is part of the racegate executable, not `{name}`"
            )));
        }
        Prepared::new(&exe)
    }

    /// The child's `pre_exec` hook: allow the helper to trace it (Yama `ptrace_scope` 1), send
    /// it the child's pid, and wait until it has attached (or is gone).
    ///
    /// Only async-signal-safe system calls run in it, as `pre_exec` requires.
    pub fn hook(&self) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
        let (pid_w, go_r): (RawFd, RawFd) = (self.pid_w.as_raw_fd(), self.go_r.as_raw_fd());
        let helper = self.helper_pid as libc::c_ulong;
        move || {
            // SAFETY: prctl, getpid, write and read are async-signal-safe; the buffers live on
            // this stack frame and the fds stay open until exec closes them (O_CLOEXEC).
            unsafe {
                // EINVAL without Yama: nothing to allow then.
                libc::prctl(libc::PR_SET_PTRACER, helper, 0, 0, 0);
                let pid = libc::getpid().to_ne_bytes();
                // A helper that died already must not kill us with SIGPIPE: the write fails
                // instead, and we go on untraced. (std reset SIGPIPE to its default before this
                // hook; it is restored to that.)
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                let written = libc::write(pid_w, pid.as_ptr().cast(), pid.len());
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                if written == 4 {
                    let mut go = [0u8; 1];
                    while libc::read(go_r, go.as_mut_ptr().cast(), 1) < 0
                        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                    {
                    }
                }
            }
            Ok(())
        }
    }

    /// The child was spawned as `pid`: start reading the helper's records.
    pub fn started(mut self, pid: u32) -> Tracer {
        let _ = pid; // the helper learnt it from the child itself
        let mut helper = self.helper.take().expect("a Prepared is started once");
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        if let Some(stdout) = helper.stdout.take() {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("racegate-frames".into())
                .spawn(move || read_records(stdout, &shared))
                .ok();
        }
        let stdin = Mutex::new(helper.stdin.take());
        Tracer {
            shared,
            stdin,
            helper,
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // The child was never spawned: the helper still waits for a pid.
        if let Some(mut helper) = self.helper.take() {
            let _ = helper.kill();
            let _ = helper.wait();
        }
    }
}

fn read_records(stdout: std::process::ChildStdout, shared: &Arc<(Mutex<State>, Condvar)>) {
    let (lock, cv) = &**shared;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(record) = serde_json::from_str::<Record>(&line) else {
            continue;
        };
        let Ok(mut st) = lock.lock() else { return };
        match record {
            Record::Attached { .. } => st.attached = true,
            Record::Unavailable { reason } => st.unavailable = Some(reason),
            Record::Fatal {
                pid,
                tid,
                thread_name,
                signal,
                frames,
                problem,
                capture_us,
            } => st.fatal.push(NativeCrash {
                pid,
                tid,
                thread_name,
                signal,
                frames: frames.iter().map(Frame::from).collect(),
                problem,
                capture: Duration::from_micros(capture_us),
                received: Instant::now(),
                died: false,
            }),
            Record::Died { pid, signal } => {
                for c in st.fatal.iter_mut() {
                    if c.pid == pid && c.signal == signal {
                        c.died = true;
                    }
                }
            }
            Record::Stacks { pid, threads } => st.stacks.push((
                pid,
                threads
                    .iter()
                    .map(|t| ThreadStack {
                        thread: t.tid.to_string(),
                        name: t.name.clone(),
                        current: false,
                        frames: t.frames.iter().map(Frame::from).collect(),
                    })
                    .collect(),
            )),
            Record::DumpDone => st.dumps += 1,
            Record::Detached => {}
        }
        cv.notify_all();
    }
    if let Ok(mut st) = lock.lock() {
        st.ended = true;
        if !st.attached && st.unavailable.is_none() {
            st.unavailable = Some("the frame tracer exited before it attached".into());
        }
    }
    cv.notify_all();
}

impl Tracer {
    /// The frames of `pid`'s death by `signal` (a name, `SIGSEGV`), waiting up to `timeout` for
    /// the helper to deliver them. The helper writes them before the signal is delivered, so
    /// they are normally here by the time the death is seen.
    pub fn crash(
        &self,
        pid: u32,
        signal: &str,
        timeout: Duration,
    ) -> Result<NativeCrash, Unavailable> {
        let (lock, cv) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let Ok(mut st) = lock.lock() else {
            return Err(Unavailable("the frame tracer's state is poisoned".into()));
        };
        loop {
            if let Some(c) = st.fatal.iter().find(|c| c.pid == pid && c.signal == signal) {
                return Ok(c.clone());
            }
            if let Some(reason) = &st.unavailable {
                return Err(Unavailable(reason.clone()));
            }
            let now = Instant::now();
            if st.ended || now >= deadline {
                return Err(Unavailable(format!(
                    "the frame tracer saw no {signal} delivered to pid {pid}{}",
                    if st.attached {
                        ""
                    } else {
                        " (it had not attached)"
                    }
                )));
            }
            st = match cv.wait_timeout(st, deadline - now) {
                Ok((st, _)) => st,
                Err(_) => return Err(Unavailable("the frame tracer's state is poisoned".into())),
            };
        }
    }

    /// Every thread of every traced process, each unwound while stopped for a moment (a hung
    /// process's threads), by process id. Waits up to `timeout`.
    pub fn dump(&self, timeout: Duration) -> Result<Vec<(u32, Vec<ThreadStack>)>, Unavailable> {
        let (lock, cv) = &*self.shared;
        let before = {
            let mut st = lock
                .lock()
                .map_err(|_| Unavailable("the frame tracer's state is poisoned".into()))?;
            if let Some(why) = &st.unavailable {
                return Err(Unavailable(why.clone()));
            }
            st.stacks.clear();
            st.dumps
        };
        {
            let mut stdin = self
                .stdin
                .lock()
                .map_err(|_| Unavailable("the frame tracer's input is poisoned".into()))?;
            let Some(pipe) = stdin.as_mut() else {
                return Err(Unavailable("the frame tracer was released".into()));
            };
            pipe.write_all(b"dump\n")
                .and_then(|()| pipe.flush())
                .map_err(|e| Unavailable(format!("the frame tracer is gone: {e}")))?;
        }
        let deadline = Instant::now() + timeout;
        let mut st = lock
            .lock()
            .map_err(|_| Unavailable("the frame tracer's state is poisoned".into()))?;
        while st.dumps == before {
            let now = Instant::now();
            if st.ended || now >= deadline {
                return Err(Unavailable(
                    "the frame tracer did not answer the dump in time".into(),
                ));
            }
            st = cv
                .wait_timeout(st, deadline - now)
                .map_err(|_| Unavailable("the frame tracer's state is poisoned".into()))?
                .0;
        }
        Ok(std::mem::take(&mut st.stacks))
    }

    /// Every fatal signal seen so far whose process then died of it (for runners whose test
    /// processes are grandchildren).
    pub fn deaths(&self) -> Vec<NativeCrash> {
        let (lock, _) = &*self.shared;
        lock.lock()
            .map(|st| st.fatal.iter().filter(|c| c.died).cloned().collect())
            .unwrap_or_default()
    }

    /// Why no frames can be had at all, once that is known (the helper could not attach).
    pub fn unavailable(&self) -> Option<Unavailable> {
        let (lock, _) = &*self.shared;
        lock.lock()
            .ok()
            .and_then(|st| st.unavailable.clone().map(Unavailable))
    }

    /// Release the tracees (they run on untouched) and stop the helper, so a debugger or py-spy
    /// can attach. Bounded: the helper is killed if it does not finish within 3 s.
    pub fn detach(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let stdin = self.stdin.get_mut().ok().and_then(Option::take);
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(b"detach\n");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.helper.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.helper.kill();
                    let _ = self.helper.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.stop();
    }
}
