//! The managed target: start it, wait until it is healthy, scan its stderr for crash lines,
//! notice when it exits, restart it (like launchd `KeepAlive`), and stop it at the end.
//!
//! The command's `{port}` placeholders are replaced by a free loopback port, also given as the
//! `PORT` environment variable.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::client::{Conn, Connector, RequestTemplate};
use super::Clock;
use crate::crash::native::{self, NativeCrash, Tracer, Unavailable};
use crate::crash::{
    CrashSignature, CrashSource, Evidence, SignatureKind, StderrScanner, Termination, Traces,
};
use crate::events::{CrashSeen, ErrorKind, Event};
use crate::plumbing::{CancelToken, Children, Registration};
use crate::scenario::{Pipeline, TargetProcess};

/// Most restarts in one run: a target in a crash loop is already a FAIL.
const MAX_RESTARTS: u32 = 100;
/// Lines of the target's output kept for error messages.
const TAIL_LINES: usize = 20;
/// Crash lines this close to a first one describe the same crash.
const SAME_CRASH_WINDOW: Duration = Duration::from_secs(2);
/// stderr lines kept for identifying a crash (a faulthandler dump of a few dozen threads).
const CRASH_TAIL_LINES: usize = 400;
/// How long an exit waits for the tracer's frames (they are normally there before the exit).
const FRAMES_WAIT: Duration = Duration::from_secs(2);

/// Pick a free loopback port. The port is released before the target binds it; another process
/// could take it in between, which then shows up as a target that never becomes healthy.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Why the target could not be brought up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure(pub String);

struct Incarnation {
    child: Child,
    stderr: JoinHandle<()>,
    tail: Arc<Mutex<VecDeque<String>>>,
    crash_lines: CrashLines,
    /// The frame tracer of this process (Linux), or why there is none.
    tracer: Result<Arc<Tracer>, Unavailable>,
    /// Its pid, which is also its process group's id.
    pid: Option<u32>,
    /// Listed until this incarnation is dropped (after it was waited for, or killed on drop).
    _listed: Option<Registration>,
}

/// stderr as the crash identification needs it: the last lines, and the crash lines seen but
/// not reported yet. A crash line waits [`SAME_CRASH_WINDOW`] for the process to die: if it does,
/// the line is reported with the exit under one signature (it may name the crash less well than
/// the frames do); if not, it is reported alone.
#[derive(Clone, Default)]
struct CrashLines {
    tail: Arc<Mutex<VecDeque<String>>>,
    pending: Arc<Mutex<Vec<(u64, CrashSignature, CrashSeen)>>>,
}

impl CrashLines {
    fn push_tail(&self, line: &str) {
        if let Ok(mut t) = self.tail.lock() {
            if t.len() == CRASH_TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.to_string());
        }
    }

    fn text(&self) -> String {
        let t = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        let mut s = String::new();
        for l in t {
            s.push_str(&l);
            s.push('\n');
        }
        s
    }

    /// Hold `seen` back; report it alone unless an exit takes it first.
    fn hold(&self, id: u64, sig: CrashSignature, seen: CrashSeen, tx: UnboundedSender<Event>) {
        if let Ok(mut p) = self.pending.lock() {
            p.push((id, sig, seen));
        }
        let pending = self.pending.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SAME_CRASH_WINDOW).await;
            let taken = pending.lock().ok().and_then(|mut p| {
                let i = p.iter().position(|(x, _, _)| *x == id)?;
                Some(p.remove(i))
            });
            if let Some((_, _, seen)) = taken {
                let _ = tx.send(Event::Crash(seen));
            }
        });
    }

    /// Take every held line (the process died).
    fn take(&self) -> Vec<(CrashSignature, CrashSeen)> {
        self.pending
            .lock()
            .map(|mut p| p.drain(..).map(|(_, s, c)| (s, c)).collect())
            .unwrap_or_default()
    }
}

/// A running managed target.
pub struct Supervisor {
    spec: TargetProcess,
    port: Option<u16>,
    health: RequestTemplate,
    connector: Connector,
    tx: UnboundedSender<Event>,
    clock: Clock,
    children: Children,
}

/// Handle to the watching task.
pub struct Running {
    stop: CancelToken,
    gone: CancelToken,
    ready: Arc<Readiness>,
    hang: Arc<Notify>,
    task: JoinHandle<()>,
}

/// Whether the managed target may be sent load. While a crashed target is restarted, workers
/// wait here for its health check (at most `startup_timeout`), the way a load balancer waits on
/// a readiness probe: the restart's refused connections are the known exit, not new errors, and
/// the restarted target is answered healthy before the load can crash it again, so its time to
/// recover is measured rather than lost in a race with the workers.
#[derive(Debug)]
pub struct Readiness {
    up: AtomicBool,
    changed: Notify,
}

impl Readiness {
    fn new() -> Readiness {
        Readiness {
            up: AtomicBool::new(true),
            changed: Notify::new(),
        }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if up {
            self.changed.notify_waiters();
        }
    }

    /// True unless a restart is under way. One atomic load: cheap enough for every request.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Wait until the target may be sent load again.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting.
    pub async fn wait_up(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a `set(true)` between the two is not missed.
            changed.as_mut().enable();
            if self.up.load(Ordering::SeqCst) {
                return;
            }
            changed.await;
        }
    }
}

impl Supervisor {
    /// Prepare (nothing is started yet).
    pub fn new(
        spec: TargetProcess,
        port: Option<u16>,
        base_url: &str,
        connector: Connector,
        tx: UnboundedSender<Event>,
        clock: Clock,
        children: Children,
    ) -> Result<Supervisor, super::StressError> {
        let health_pipeline = Pipeline {
            name: "health".into(),
            workers: 1,
            rate: None,
            method: hyper::Method::GET,
            path: spec.health.clone(),
            headers: Vec::new(),
            body: bytes::Bytes::new(),
            expect_status: 200,
            check: crate::scenario::Check::None,
            timeout: Duration::from_secs(2),
        };
        let health = RequestTemplate::new(base_url, &health_pipeline)?;
        Ok(Supervisor {
            spec,
            port,
            health,
            connector,
            tx,
            clock,
            children,
        })
    }

    fn spawn(&self, incarnation: u32) -> Result<Incarnation, StartFailure> {
        let port = self.port.map(|p| p.to_string()).unwrap_or_default();
        let args: Vec<String> = self
            .spec
            .command
            .iter()
            .map(|a| a.replace("{port}", &port))
            .collect();
        // The tracer attaches from the child's pre_exec, before the target runs a line of its own.
        let prepared = native::Prepared::for_racegate();
        let mut cmd = Command::new(&args[0]);
        #[cfg(unix)]
        if let Ok(p) = &prepared {
            // SAFETY: the hook makes only async-signal-safe system calls.
            unsafe {
                cmd.pre_exec(p.hook());
            }
        }
        cmd.args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: a Ctrl-C at the terminal reaches racegate, which then stops
        // the target itself, instead of killing the target first and looking like a crash.
        #[cfg(unix)]
        cmd.process_group(0);
        if self.port.is_some() {
            cmd.env("PORT", &port);
        }
        for (k, v) in &self.spec.env {
            cmd.env(k, v);
        }
        if let Some(cwd) = &self.spec.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| StartFailure(format!("cannot start `{}`: {e}", args.join(" "))))?;
        // The leader of its own group: a second interrupt kills the group (cli/interrupt.rs).
        let pid = child.id();
        let listed = pid.map(|pid| self.children.register(pid));
        let tracer = prepared.map(|p| Arc::new(p.started(pid.unwrap_or(0))));
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let crash_lines = CrashLines::default();
        if let Some(out) = child.stdout.take() {
            // Drained so a chatty target never blocks on a full pipe.
            tokio::spawn(read_lines(out, tail.clone(), None));
        }
        let stderr = match child.stderr.take() {
            Some(err) => tokio::spawn(read_lines(
                err,
                tail.clone(),
                Some((self.tx.clone(), self.clock.clone(), crash_lines.clone())),
            )),
            None => tokio::spawn(async {}),
        };
        let _ = self.tx.send(Event::TargetStarted {
            pid: child.id().unwrap_or(0),
            incarnation,
            at: self.clock.elapsed(),
        });
        Ok(Incarnation {
            child,
            stderr,
            tail,
            crash_lines,
            tracer,
            pid,
            _listed: listed,
        })
    }

    /// Poll the health path until it answers 2xx, the process exits, or `limit` passes.
    async fn wait_healthy(
        &self,
        inc: &mut Incarnation,
        limit: Duration,
        cancel: &CancelToken,
    ) -> Result<(), StartFailure> {
        let deadline = Instant::now() + limit;
        let mut interval = tokio::time::interval(Duration::from_millis(50));
        let mut tls_failures = 0u32;
        let mut conn = Conn::new(&self.connector);
        loop {
            if let Ok(Some(status)) = inc.child.try_wait() {
                return Err(StartFailure(format!(
                    "the target exited before it was healthy ({}){}",
                    Termination::from_status(status),
                    tail_text(&inc.tail)
                )));
            }
            match conn.send(&self.health, Duration::from_secs(2)).await {
                Ok(a) if (200..300).contains(&a.status) => return Ok(()),
                // A target that is up but refuses our TLS will not get better by waiting.
                Err(ErrorKind::Tls) => {
                    tls_failures += 1;
                    if tls_failures >= 3 {
                        return Err(StartFailure(format!(
                            "the TLS handshake with `{}` failed (check `[tls]`: ca, cert, key, server_name){}",
                            self.health.uri(),
                            tail_text(&inc.tail)
                        )));
                    }
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(StartFailure(format!(
                    "the target was not healthy at `{}` within {}{}",
                    self.health.uri(),
                    humantime::format_duration(limit),
                    tail_text(&inc.tail)
                )));
            }
            tokio::select! {
                _ = interval.tick() => {}
                _ = cancel.cancelled() => return Err(StartFailure("interrupted while starting the target".into())),
            }
        }
    }

    /// Start the target and wait until it is healthy. On success the returned task watches it
    /// until [`Running::stop`].
    pub async fn start(self, cancel: &CancelToken) -> Result<Running, StartFailure> {
        let mut inc = self.spawn(0)?;
        if let Err(e) = self
            .wait_healthy(&mut inc, self.spec.startup_timeout, cancel)
            .await
        {
            terminate(&mut inc.child).await;
            return Err(e);
        }
        let stop = CancelToken::new();
        let gone = CancelToken::new();
        let ready = Arc::new(Readiness::new());
        let hang = Arc::new(Notify::new());
        let task =
            tokio::spawn(self.watch(inc, stop.clone(), gone.clone(), ready.clone(), hang.clone()));
        Ok(Running {
            stop,
            gone,
            ready,
            hang,
            task,
        })
    }

    /// Every thread's stack of a target that stopped answering, as a crash sighting keyed by
    /// where its threads are blocked.
    async fn capture_hang(&self, inc: &Incarnation) {
        let pid = inc.pid.unwrap_or(0);
        let tracer = inc.tracer.as_ref().ok().cloned();
        let captured = tokio::task::spawn_blocking(move || {
            crate::crash::hang::capture(pid, tracer.as_deref())
        })
        .await;
        let Ok((signature, mut evidence)) = captured else {
            return;
        };
        let at = self.clock.elapsed();
        evidence.frames_at = Some(at);
        let _ = self.tx.send(Event::Crash(CrashSeen {
            source: CrashSource::Stacks,
            signature: signature.key().to_string(),
            at,
            path: None,
            detail: Some(format!(
                "the target stopped answering; {} threads captured, then it was stopped",
                evidence.threads.len()
            )),
            evidence: Box::new(evidence),
        }));
    }

    /// Watch until stopped. `gone` is cancelled once the target exited for good (no restart
    /// wanted, restarts used up, or it could not be spawned again), after its exit and crash
    /// events were sent.
    async fn watch(
        self,
        mut inc: Incarnation,
        stop: CancelToken,
        gone: CancelToken,
        ready: Arc<Readiness>,
        hang: Arc<Notify>,
    ) {
        let mut restarts = 0u32;
        loop {
            let mut hung = false;
            let status = tokio::select! {
                s = inc.child.wait() => s,
                _ = stop.cancelled() => {
                    terminate(&mut inc.child).await;
                    release_tracer(&mut inc.tracer);
                    return;
                }
                _ = hang.notified() => {
                    // Alive but not answering: take every thread's stack, then stop it (it will
                    // not recover by itself); its exit is ours, not a second crash.
                    self.capture_hang(&inc).await;
                    hung = true;
                    terminate(&mut inc.child).await;
                    inc.child.wait().await
                }
            };
            let exited_at = self.clock.elapsed();
            let exited_instant = Instant::now();
            // What the target started in its group goes with it (at once: its group id stays
            // its own only while members live).
            if let Some(pid) = inc.pid {
                crate::plumbing::children::kill_group(pid);
            }
            let will_restart = self.spec.restart && !stop.is_cancelled() && restarts < MAX_RESTARTS;
            if will_restart {
                ready.set(false);
            }
            let termination = match status {
                Ok(s) => Termination::from_status(s),
                Err(_) => Termination::Exited(-1),
            };
            let pid = inc.pid.unwrap_or(0);
            // The crash line is usually the last thing written: read stderr to its end (bounded:
            // a grandchild could keep the pipe open). The tracer's frames arrive meanwhile.
            let frames = native_frames(&inc.tracer, pid, termination);
            let (_, frames) = tokio::join!(
                tokio::time::timeout(Duration::from_secs(1), &mut inc.stderr),
                frames
            );
            let _ = self.tx.send(Event::TargetExited {
                at: exited_at,
                status: termination.to_string(),
            });
            let seen = identify_exit(
                &inc.crash_lines,
                frames,
                termination,
                exited_at,
                &self.clock,
            );
            for seen in seen.into_iter().filter(|_| !hung) {
                let _ = self.tx.send(Event::Crash(seen));
            }
            release_tracer(&mut inc.tracer);
            if !will_restart || stop.is_cancelled() {
                ready.set(true);
                gone.cancel();
                // Wait for the stop request so the caller's view stays simple.
                stop.cancelled().await;
                return;
            }
            restarts += 1;
            let mut next = match self.spawn(restarts) {
                Ok(i) => i,
                Err(_) => {
                    let _ = self.tx.send(Event::Restart {
                        at: exited_at,
                        time_to_recover: None,
                    });
                    ready.set(true);
                    gone.cancel();
                    stop.cancelled().await;
                    return;
                }
            };
            let healthy = self
                .wait_healthy(&mut next, self.spec.startup_timeout, &stop)
                .await;
            let _ = self.tx.send(Event::Restart {
                at: exited_at,
                time_to_recover: healthy.is_ok().then(|| exited_instant.elapsed()),
            });
            // Healthy or not, the load resumes: a target that never came back must show.
            ready.set(true);
            inc = next;
            if healthy.is_err() {
                // Keep watching the new process: if it is alive but slow, its exit still counts.
                if stop.is_cancelled() {
                    terminate(&mut inc.child).await;
                    release_tracer(&mut inc.tracer);
                    return;
                }
            }
        }
    }
}

impl Running {
    /// Cancelled once the target exited and will not be restarted; its exit and crash events
    /// are already on the event stream by then.
    pub fn gone(&self) -> &CancelToken {
        &self.gone
    }

    /// The target is alive but stopped answering: capture every thread's stack, report the hang,
    /// and stop it (restarted like a crash when `restart = true`).
    pub fn capture_hang(&self) {
        self.hang.notify_one();
    }

    /// Whether the target may be sent load (false while it is being restarted).
    pub fn readiness(&self) -> Arc<Readiness> {
        self.ready.clone()
    }

    /// Stop the target and its process group (SIGTERM, then SIGKILL after at most 2 s) and wait
    /// for the watcher.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Ask politely, then insist: SIGTERM to the target's process group (it leads one), SIGKILL to
/// the group once the leader has exited or 2 s have passed, so that the helpers a target
/// started do not outlive the run. The group is signalled only while its leader is not reaped
/// (`id()` is `None` afterwards), so its id cannot belong to anyone else yet.
async fn terminate(child: &mut Child) {
    #[cfg(unix)]
    if let (Ok(None), Some(pid)) = (child.try_wait(), child.id()) {
        use nix::sys::signal::{killpg, Signal};
        let group = nix::unistd::Pid::from_raw(pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let exited = tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .is_ok();
        // Reaped or not, no process can have taken the group id while its members live.
        let _ = killpg(group, Signal::SIGKILL);
        if !exited {
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        }
        return;
    }
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
}

/// The tracer's frames of this exit, when it was a crash: the process's own fatal signal, else
/// (a shell wrapper that exits 128+N) the last process it started that died of one.
async fn native_frames(
    tracer: &Result<Arc<Tracer>, Unavailable>,
    pid: u32,
    termination: Termination,
) -> Option<Result<NativeCrash, Unavailable>> {
    let tracer = match tracer {
        Ok(t) => t.clone(),
        Err(why) => return termination.is_crash().then(|| Err(why.clone())),
    };
    let signal = termination.signal_name().map(str::to_string);
    let crashed = termination.is_crash();
    tokio::task::spawn_blocking(move || match signal.filter(|_| crashed) {
        Some(sig) => Some(tracer.crash(pid, &sig, FRAMES_WAIT)),
        None => tracer.deaths().pop().map(Ok),
    })
    .await
    .ok()
    .flatten()
}

/// The crash events of one exit: the held stderr lines and the exit itself, under the one
/// signature [`crate::crash::identify`] gives them.
fn identify_exit(
    lines: &CrashLines,
    frames: Option<Result<NativeCrash, Unavailable>>,
    termination: Termination,
    exited_at: Duration,
    clock: &Clock,
) -> Vec<CrashSeen> {
    let held = lines.take();
    let stderr: Vec<CrashSignature> = held.iter().map(|(s, _)| s.clone()).collect();
    let tail = lines.text();
    let received = frames
        .as_ref()
        .and_then(|f| f.as_ref().ok())
        .map(|c| clock.elapsed().saturating_sub(c.received.elapsed()));
    let signal = match (&frames, termination.signal_name()) {
        (_, Some(sig)) if termination.is_crash() => Some(sig.to_string()),
        // A wrapper's child died of the signal the wrapper then reported as an exit code.
        (Some(Ok(c)), _) => Some(c.signal.clone()),
        _ => None,
    };
    let identified = crate::crash::identify(Traces {
        stderr: &stderr,
        stderr_tail: &tail,
        native: frames,
        signal: signal.as_deref(),
    });
    let (signature, mut evidence) = identified.unwrap_or_else(|| {
        (
            CrashSignature::new(
                SignatureKind::Fatal,
                &format!("target exited during the run ({termination})"),
                CrashSource::ExitStatus,
            ),
            Evidence::default(),
        )
    });
    evidence.frames_at = received;
    let key = signature.key().to_string();
    let mut out: Vec<CrashSeen> = held
        .into_iter()
        .map(|(_, mut seen)| {
            seen.signature = key.clone();
            seen
        })
        .collect();
    out.push(CrashSeen {
        source: CrashSource::ExitStatus,
        signature: key,
        at: exited_at,
        path: None,
        detail: Some(termination.to_string()),
        evidence: Box::new(evidence),
    });
    out
}

/// Stop the tracer of a process that is gone (it detaches within milliseconds then; bounded).
fn release_tracer(tracer: &mut Result<Arc<Tracer>, Unavailable>) {
    let old = std::mem::replace(tracer, Err(Unavailable("released".into())));
    if let Ok(t) = old {
        tokio::task::spawn_blocking(move || drop(t));
    }
}

/// Read lines into `tail`; with a sender, scan each for crash lines and hold them for the exit
/// (see [`CrashLines`]).
async fn read_lines<R: AsyncRead + Unpin>(
    r: R,
    tail: Arc<Mutex<VecDeque<String>>>,
    report: Option<(UnboundedSender<Event>, Clock, CrashLines)>,
) {
    let mut reader = BufReader::new(r);
    let mut scanner = StderrScanner::new();
    let mut last_crash: Option<Instant> = None;
    let mut held = 0u64;
    let mut buf = Vec::new();
    let hold = |held: &mut u64, sig: CrashSignature, line: Option<&str>| {
        let Some((tx, clock, lines)) = report.as_ref() else {
            return;
        };
        *held += 1;
        let seen = CrashSeen {
            source: CrashSource::Stderr,
            signature: sig.key().to_string(),
            at: clock.elapsed(),
            path: None,
            detail: line.map(|l| l.chars().take(300).collect()),
            evidence: Box::default(),
        };
        lines.hold(*held, sig, seen, tx.clone());
    };
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        if let Ok(mut t) = tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.clone());
        }
        if let Some((_, _, lines)) = &report {
            lines.push_tail(&line);
            if let Some(sig) = scanner.feed(&line) {
                // A dying process often prints several crash lines (the assertion, then "Abort
                // trap"): lines right after the first belong to the same crash.
                if last_crash.is_some_and(|t: Instant| t.elapsed() < SAME_CRASH_WINDOW) {
                    continue;
                }
                last_crash = Some(Instant::now());
                hold(&mut held, sig, Some(&line));
            }
        }
    }
    if report.is_some() {
        if let Some(sig) = scanner
            .finish()
            .filter(|_| !last_crash.is_some_and(|t| t.elapsed() < SAME_CRASH_WINDOW))
        {
            hold(&mut held, sig, None);
        }
    }
}

fn tail_text(tail: &Arc<Mutex<VecDeque<String>>>) -> String {
    let t = tail.lock().map(|t| t.clone()).unwrap_or_default();
    if t.is_empty() {
        String::new()
    } else {
        let lines: Vec<String> = t.into_iter().collect();
        format!("; its last output:\n    {}", lines.join("\n    "))
    }
}
