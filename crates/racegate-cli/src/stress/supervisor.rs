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
use crate::crash::{CrashSignature, CrashSource, SignatureKind, StderrScanner, Termination};
use crate::events::{CrashSeen, ErrorKind, Event};
use crate::plumbing::{CancelToken, Children, Registration};
use crate::scenario::{Pipeline, TargetProcess};

/// Most restarts in one run: a target in a crash loop is already a FAIL.
const MAX_RESTARTS: u32 = 100;
/// Lines of the target's output kept for error messages.
const TAIL_LINES: usize = 20;
/// Crash lines this close to a first one describe the same crash.
const SAME_CRASH_WINDOW: Duration = Duration::from_secs(2);

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
    stderr: JoinHandle<Vec<String>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Its pid, which is also its process group's id.
    pid: Option<u32>,
    /// Listed until this incarnation is dropped (after it was waited for, or killed on drop).
    _listed: Option<Registration>,
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
        let mut cmd = Command::new(&args[0]);
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
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            // Drained so a chatty target never blocks on a full pipe.
            tokio::spawn(read_lines(out, tail.clone(), None));
        }
        let stderr = match child.stderr.take() {
            Some(err) => tokio::spawn(read_lines(
                err,
                tail.clone(),
                Some((self.tx.clone(), self.clock.clone())),
            )),
            None => tokio::spawn(async { Vec::new() }),
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
        let task = tokio::spawn(self.watch(inc, stop.clone(), gone.clone(), ready.clone()));
        Ok(Running {
            stop,
            gone,
            ready,
            task,
        })
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
    ) {
        let mut restarts = 0u32;
        loop {
            let status = tokio::select! {
                s = inc.child.wait() => s,
                _ = stop.cancelled() => {
                    terminate(&mut inc.child).await;
                    return;
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
            // The crash line is usually the last thing written: read stderr to its end (bounded:
            // a grandchild could keep the pipe open).
            let signatures = tokio::time::timeout(Duration::from_secs(1), &mut inc.stderr)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let termination = match status {
                Ok(s) => Termination::from_status(s),
                Err(_) => Termination::Exited(-1),
            };
            let _ = self.tx.send(Event::TargetExited {
                at: exited_at,
                status: termination.to_string(),
            });
            // One crash seen through two channels carries one signature: prefer what stderr
            // said (it names the assertion), else the signal, else the exit code.
            let signature = match signatures.first() {
                Some(s) => s.clone(),
                None => match termination.signature() {
                    Some(s) => s.key().to_string(),
                    None => CrashSignature::new(
                        SignatureKind::Fatal,
                        &format!("target exited during the run ({termination})"),
                        CrashSource::ExitStatus,
                    )
                    .key()
                    .to_string(),
                },
            };
            let _ = self.tx.send(Event::Crash(CrashSeen {
                source: CrashSource::ExitStatus,
                signature,
                at: exited_at,
                path: None,
                detail: Some(termination.to_string()),
            }));
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

/// Read lines into `tail`; with a sender, scan each for crash lines and report them. Returns
/// the signature keys seen.
async fn read_lines<R: AsyncRead + Unpin>(
    r: R,
    tail: Arc<Mutex<VecDeque<String>>>,
    report: Option<(UnboundedSender<Event>, Clock)>,
) -> Vec<String> {
    let mut reader = BufReader::new(r);
    let mut scanner = StderrScanner::new();
    let mut seen = Vec::new();
    let mut last_crash: Option<Instant> = None;
    let mut buf = Vec::new();
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
        if let Some((tx, clock)) = &report {
            if let Some(sig) = scanner.feed(&line) {
                // A dying process often prints several crash lines (the assertion, then "Abort
                // trap"): lines right after the first belong to the same crash.
                if last_crash.is_some_and(|t: Instant| t.elapsed() < SAME_CRASH_WINDOW) {
                    continue;
                }
                last_crash = Some(Instant::now());
                seen.push(sig.key().to_string());
                let _ = tx.send(Event::Crash(CrashSeen {
                    source: CrashSource::Stderr,
                    signature: sig.key().to_string(),
                    at: clock.elapsed(),
                    path: None,
                    detail: Some(line.chars().take(300).collect()),
                }));
            }
        }
    }
    if let Some((tx, clock)) = &report {
        if let Some(sig) = scanner
            .finish()
            .filter(|_| !last_crash.is_some_and(|t| t.elapsed() < SAME_CRASH_WINDOW))
        {
            seen.push(sig.key().to_string());
            let _ = tx.send(Event::Crash(CrashSeen {
                source: CrashSource::Stderr,
                signature: sig.key().to_string(),
                at: clock.elapsed(),
                path: None,
                detail: None,
            }));
        }
    }
    seen
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
