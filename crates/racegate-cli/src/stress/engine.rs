//! The load engine: start or reach the target, smoke-probe it, run closed-loop or open-loop
//! workers per pipeline until the run's bounds, and fold every event into the report.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;

use super::check::Checker;
use super::client::{self, Conn, Connector, RequestTemplate};
use super::errors::StressError;
use super::stats::RunStats;
use super::supervisor::{self, Readiness, Running, Supervisor};
use super::watch::DirWatcher;
use crate::events::{EndedBy, ErrorKind, Event, EventSink, Outcome};
use crate::plumbing::{CancelToken, Children, Control};
use crate::report::RunReport;
use crate::scenario::Scenario;

/// How often progress snapshots are emitted.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often the aggregator drains the event stream.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// Check-failure messages sent per pipeline.
const CHECK_MESSAGES: u32 = 3;
/// Pause after a request that could not reach the target, so a dead target is not spun on.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(5);
/// After a managed target exited for good the load stops at once (nobody is listening), and
/// the run waits this long, at least two crash-folder polls, before it winds down. The exit
/// status and the stderr crash line are already on the stream; this lets the aggregator fold
/// them (so `crash.settle` knows a report file is still due) and lets a crash report written
/// just before the abort be found by the regular polls.
const SETTLE_AFTER_EXIT: Duration = Duration::from_millis(300);
/// Load kept on after the dead-target detector fired on an unmanaged target, before the run
/// ends early: a target that answers again within it (restarted by an outside supervisor)
/// keeps the run going, and a later outage is counted again.
const SETTLE_AFTER_UNRESPONSIVE: Duration = Duration::from_secs(2);
/// How often the engine looks at the dead-target detector.
const DEAD_TARGET_POLL: Duration = Duration::from_millis(50);

/// The run's time origin: the start of the load phase. Offsets taken before it are zero.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    origin: Arc<OnceLock<Instant>>,
}

impl Clock {
    /// A clock whose origin is not set yet.
    pub fn new() -> Clock {
        Clock::default()
    }

    fn start(&self) -> Instant {
        *self.origin.get_or_init(Instant::now)
    }

    /// Time since the origin (zero before it).
    pub fn elapsed(&self) -> Duration {
        self.origin.get().map_or(Duration::ZERO, Instant::elapsed)
    }

    fn offset(&self, t: Instant) -> Duration {
        self.origin
            .get()
            .map_or(Duration::ZERO, |o| t.saturating_duration_since(*o))
    }
}

struct PipelineCtx {
    index: usize,
    template: RequestTemplate,
    checker: Checker,
    expect_status: u16,
    timeout: Duration,
    rate: Option<f64>,
    workers: u32,
    check_messages: AtomicU32,
}

struct Shared {
    connector: Connector,
    tx: UnboundedSender<Event>,
    cancel: CancelToken,
    clock: Clock,
    load_start: Instant,
    deadline: Instant,
    budget: Option<AtomicU64>,
    /// A managed target's readiness: workers hold off while it is being restarted.
    readiness: Option<Arc<Readiness>>,
}

impl Shared {
    fn take_budget(&self) -> bool {
        match &self.budget {
            None => true,
            Some(b) => b
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// Send one request and judge the answer.
async fn attempt(conn: &mut Conn, p: &PipelineCtx) -> (Outcome, Option<String>) {
    match conn.send(&p.template, p.timeout).await {
        Err(kind) => (Outcome::Err(kind), None),
        Ok(a) if a.status != p.expect_status => (Outcome::Err(ErrorKind::Status(a.status)), None),
        Ok(a) => match p.checker.verify(&a.body) {
            Ok(()) => (Outcome::Ok, None),
            Err(f) => (Outcome::Err(ErrorKind::CheckFailed), Some(f.0)),
        },
    }
}

/// One open-loop worker's share of the schedule: worker `nth` of `workers` owns slots nth,
/// nth+W, nth+2W, ...; slot k is due at `start + k / rate`. Pure, so it is tested without a
/// clock.
#[derive(Debug, Clone)]
struct Schedule {
    start: Instant,
    rate: f64,
    step: u64,
    slot: u64,
    deadline: Instant,
}

impl Schedule {
    fn new(start: Instant, rate: f64, workers: u32, nth: u32, deadline: Instant) -> Schedule {
        Schedule {
            start,
            rate,
            step: u64::from(workers.max(1)),
            slot: u64::from(nth),
            deadline,
        }
    }

    /// The intended send time of this worker's next request; `None` past the deadline.
    fn next_due(&mut self) -> Option<Instant> {
        let t = self.start + Duration::from_secs_f64(self.slot as f64 / self.rate);
        self.slot += self.step;
        (t < self.deadline).then_some(t)
    }
}

async fn worker(shared: Arc<Shared>, p: Arc<PipelineCtx>, nth: u32) {
    let mut schedule = p
        .rate
        .map(|rate| Schedule::new(shared.load_start, rate, p.workers, nth, shared.deadline));
    let mut conn = Conn::new(&shared.connector);
    loop {
        if shared.cancel.is_cancelled() || Instant::now() >= shared.deadline {
            return;
        }
        if let Some(ready) = shared.readiness.as_ref().filter(|r| !r.is_up()) {
            tokio::select! {
                _ = ready.wait_up() => {}
                _ = tokio::time::sleep_until(shared.deadline.into()) => return,
            }
        }
        // Open loop: this worker owns slots nth, nth+W, ...; latency counts from the intended
        // send time, so a slow answer that delays the next sends shows up in the percentiles
        // (no coordinated omission).
        let intended = match schedule.as_mut() {
            Some(schedule) => {
                let Some(t) = schedule.next_due() else {
                    return;
                };
                if t > Instant::now() {
                    tokio::time::sleep_until(t.into()).await;
                }
                t
            }
            None => Instant::now(),
        };
        if !shared.take_budget() {
            return;
        }
        // No select on `cancel` here: registering a waiter per request costs a lock on the hot
        // path; the driver aborts the workers when the run is cancelled or cut.
        let (outcome, message) = attempt(&mut conn, &p).await;
        let done = Instant::now();
        let at = shared.clock.offset(done);
        let _ = shared.tx.send(Event::Response {
            pipeline: p.index,
            at,
            latency: done.saturating_duration_since(intended),
            outcome,
        });
        if let Some(message) = message {
            if p.check_messages.fetch_add(1, Ordering::Relaxed) < CHECK_MESSAGES {
                let _ = shared.tx.send(Event::CheckFailed {
                    pipeline: p.index,
                    at,
                    message,
                });
            }
        }
        if let Outcome::Err(kind) = outcome {
            if kind.is_unreachable() && kind != ErrorKind::Timeout {
                tokio::time::sleep(UNREACHABLE_BACKOFF).await;
            }
        }
    }
}

/// Everything the driver needs besides the scenario.
struct Drive<'a> {
    scenario: &'a Scenario,
    connector: Connector,
    templates: Vec<RequestTemplate>,
    tx: UnboundedSender<Event>,
    cancel: &'a CancelToken,
    children: &'a Children,
    clock: Clock,
    load_origin: Arc<OnceLock<SystemTime>>,
    awaiting_report: Arc<AtomicBool>,
    target_unresponsive: Arc<AtomicBool>,
    port: Option<u16>,
    base_url: String,
}

impl Drive<'_> {
    /// Run the phases; returns the load duration.
    async fn go(self, watcher: DirWatcher) -> Duration {
        let s = self.scenario;
        // 1. the managed target
        let mut running = None;
        let mut healthy = true;
        if let Some(tp) = &s.target_process {
            let sup = Supervisor::new(
                tp.clone(),
                self.port,
                &self.base_url,
                self.connector.clone(),
                self.tx.clone(),
                self.clock.clone(),
                self.children.clone(),
            );
            match sup {
                Ok(sup) => match sup.start(self.cancel).await {
                    Ok(r) => running = Some(r),
                    Err(e) => {
                        healthy = false;
                        let _ = self.tx.send(Event::SmokeProbeFailed {
                            pipeline: usize::MAX,
                            message: e.0,
                        });
                    }
                },
                Err(e) => {
                    healthy = false;
                    let _ = self.tx.send(Event::SmokeProbeFailed {
                        pipeline: usize::MAX,
                        message: e.to_string(),
                    });
                }
            }
        }
        // 2. smoke probes, sequential: their first answer is the reference of `consistent`.
        let pipelines: Vec<Arc<PipelineCtx>> = s
            .pipelines
            .iter()
            .zip(&self.templates)
            .enumerate()
            .map(|(index, (p, t))| {
                Arc::new(PipelineCtx {
                    index,
                    template: t.clone(),
                    checker: Checker::new(p.check.clone()),
                    expect_status: p.expect_status,
                    timeout: p.timeout,
                    rate: p.rate,
                    workers: p.workers,
                    check_messages: AtomicU32::new(0),
                })
            })
            .collect();
        if healthy {
            'probes: for p in &pipelines {
                let mut conn = Conn::new(&self.connector);
                for n in 0..s.smoke_probes {
                    if self.cancel.is_cancelled() {
                        break 'probes;
                    }
                    let (outcome, message) = tokio::select! {
                        r = attempt(&mut conn, p) => r,
                        _ = self.cancel.cancelled() => break 'probes,
                    };
                    match outcome {
                        Outcome::Ok => {
                            let _ = self.tx.send(Event::SmokeProbePassed { pipeline: p.index });
                        }
                        Outcome::Err(kind) => {
                            let mut m = format!(
                                "smoke probe {} of {} to `{}` failed: {}",
                                n + 1,
                                s.smoke_probes,
                                p.template.uri(),
                                kind.key()
                            );
                            if let ErrorKind::Status(_) = kind {
                                m.push_str(&format!(" (expected {})", p.expect_status));
                            }
                            if let Some(msg) = message {
                                m.push_str(&format!(": {msg}"));
                            }
                            let _ = self.tx.send(Event::SmokeProbeFailed {
                                pipeline: p.index,
                                message: m,
                            });
                            healthy = false;
                            break 'probes;
                        }
                    }
                }
            }
        }
        // 3. load
        let mut duration = Duration::ZERO;
        let mut ended_by = if self.cancel.is_cancelled() {
            EndedBy::Interrupted
        } else {
            EndedBy::NotStarted
        };
        if healthy && !self.cancel.is_cancelled() {
            let load_start = self.clock.start();
            let _ = self.load_origin.set(SystemTime::now());
            let _ = self.tx.send(Event::RunStarted {
                pipelines: s.pipelines.iter().map(|p| p.name.clone()).collect(),
                duration: s.duration,
            });
            let deadline = load_start + s.duration;
            let shared = Arc::new(Shared {
                connector: self.connector.clone(),
                tx: self.tx.clone(),
                cancel: self.cancel.clone(),
                clock: self.clock.clone(),
                load_start,
                deadline,
                budget: s.requests.map(AtomicU64::new),
                readiness: running.as_ref().map(Running::readiness),
            });
            let mut set = JoinSet::new();
            for p in &pipelines {
                for nth in 0..p.workers {
                    set.spawn(worker(shared.clone(), p.clone(), nth));
                }
            }
            drop(shared);
            // Every run ends by itself: in-flight requests get `grace` after the deadline.
            let hard_stop = tokio::time::sleep_until((deadline + s.grace).into());
            tokio::pin!(hard_stop);
            // A target that is down for good ends the run early: the verdict is already FAIL,
            // and hammering a closed port until the deadline only adds refused connections.
            let gone = running
                .as_ref()
                .filter(|_| s.stop_on_exit)
                .map(|r| r.gone().clone());
            let watch_unresponsive = s.stop_on_exit && s.target_process.is_none();
            // A managed target that stops answering without dying is hung: its stacks are taken
            // once per outage, then it is stopped (and restarted like a crash).
            let mut hang_reported = false;
            let mut dead_poll = tokio::time::interval(DEAD_TARGET_POLL);
            dead_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // An unmanaged target the detector gave up on: when its probation ends.
            let mut probation: Option<Instant> = None;
            let mut early = None;
            loop {
                let probation_end = probation.unwrap_or(deadline + s.grace);
                tokio::select! {
                    r = set.join_next() => if r.is_none() { break },
                    _ = &mut hard_stop => break,
                    _ = self.cancel.cancelled() => break,
                    _ = async {
                        match &gone {
                            Some(g) => g.cancelled().await,
                            None => std::future::pending().await,
                        }
                    } => {
                        early = Some(EndedBy::TargetExited);
                        break;
                    }
                    _ = dead_poll.tick(), if (watch_unresponsive && probation.is_none()) || running.is_some() => {
                        let unresponsive = self.target_unresponsive.load(Ordering::SeqCst);
                        if let Some(r) = &running {
                            if unresponsive && !hang_reported {
                                r.capture_hang();
                            }
                            hang_reported = unresponsive;
                        } else if unresponsive {
                            probation = Some(Instant::now() + SETTLE_AFTER_UNRESPONSIVE);
                        }
                    }
                    _ = tokio::time::sleep_until(probation_end.into()), if probation.is_some() => {
                        probation = None;
                        // Still down: give up on it. Answered again: back to the full run.
                        if self.target_unresponsive.load(Ordering::SeqCst) {
                            early = Some(EndedBy::TargetUnresponsive);
                            break;
                        }
                    }
                }
            }
            set.abort_all();
            while set.join_next().await.is_some() {}
            let elapsed = load_start.elapsed();
            duration = elapsed.min(s.duration + s.grace);
            if early == Some(EndedBy::TargetExited) {
                // No crash folder polled more slowly than `poll` is missed, within `settle`.
                let settle = (2 * s.crash.poll)
                    .clamp(SETTLE_AFTER_EXIT, s.crash.settle.max(SETTLE_AFTER_EXIT));
                tokio::select! {
                    _ = tokio::time::sleep(settle) => {}
                    _ = self.cancel.cancelled() => {}
                }
            }
            ended_by = if self.cancel.is_cancelled() {
                EndedBy::Interrupted
            } else if let Some(cause) = early {
                cause
            } else if s.requests.is_some() && elapsed < s.duration {
                EndedBy::Requests
            } else {
                EndedBy::Duration
            };
        }
        // 4. stop the target, let crash reports land, close the stream
        if let Some(r) = running {
            r.stop().await;
        }
        let settle = (self.awaiting_report.load(Ordering::SeqCst)
            && !self.cancel.is_cancelled()
            && !s.crash.dirs.is_empty())
        .then_some(s.crash.settle);
        let _ = tokio::task::spawn_blocking(move || watcher.finish(settle)).await;
        let _ = self.tx.send(Event::RunEnded {
            at: duration,
            aborted: self.cancel.is_cancelled(),
            ended_by,
        });
        duration
    }
}

async fn aggregate<S: EventSink + ?Sized>(
    mut rx: UnboundedReceiver<Event>,
    stats: &mut RunStats,
    sink: &mut S,
    clock: &Clock,
    awaiting_report: &AtomicBool,
    target_unresponsive: &AtomicBool,
    done: &CancelToken,
) {
    let mut buf = Vec::with_capacity(4096);
    let mut last_progress = Instant::now();
    let fold = |stats: &mut RunStats, sink: &mut S, e: &Event| {
        let extra = stats.apply(e);
        sink.event(e);
        if let Some(extra) = extra {
            stats.apply(&extra);
            sink.event(&extra);
        }
        let dead = stats.target_unresponsive();
        if target_unresponsive.load(Ordering::Relaxed) != dead {
            target_unresponsive.store(dead, Ordering::SeqCst);
        }
        if matches!(e, Event::Crash(_)) {
            awaiting_report.store(stats.awaiting_report_file(), Ordering::SeqCst);
        }
    };
    // Drained on a short tick rather than woken per event: with no waiting receiver, a send
    // is a lock-free push and never a cross-thread wakeup, which matters at 50k events/s.
    let mut drain = tokio::time::interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closed = false;
    while !closed {
        tokio::select! {
            _ = drain.tick() => {}
            _ = done.cancelled() => closed = true,
        }
        loop {
            match rx.try_recv() {
                Ok(e) => {
                    buf.push(e);
                    if buf.len() == buf.capacity() {
                        break;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let more = buf.len() == buf.capacity();
        for e in buf.drain(..) {
            fold(stats, sink, &e);
        }
        if more {
            // A full batch: more may be queued; go again without waiting for the tick.
            closed = false;
            drain.reset_immediately();
            continue;
        }
        if closed {
            // Stragglers (a stderr reader kept alive by a grandchild) must not hold the run
            // open: what is queued now is the last of it.
            while let Ok(e) = rx.try_recv() {
                fold(stats, sink, &e);
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = std::time::Instant::now();
            sink.event(&Event::Progress(stats.progress(clock.elapsed())));
        }
    }
}

/// Run a scenario: the library entry point behind `racegate stress`, `compare` and `demo`.
///
/// Every event is passed to `sink` in order; the returned report carries the verdict. A target
/// that is not healthy is a report with verdict ERROR, not an error; an error means the run
/// could not be attempted (bad TLS material, no free port).
///
/// # Cancel safety
///
/// Dropping the future stops the run abruptly (the managed target is killed on drop). To stop
/// it cleanly and still get a report (verdict ABORTED), cancel `control.cancel` instead. The
/// managed target is listed in `control.children` while it runs.
pub async fn run<S: EventSink + ?Sized>(
    scenario: &Scenario,
    sink: &mut S,
    control: &Control,
) -> Result<RunReport, StressError> {
    let cancel = &control.cancel;
    let watch_since = SystemTime::now();
    let port = match &scenario.target_process {
        Some(tp) if tp.wants_port() => Some(supervisor::free_port().map_err(StressError::Port)?),
        _ => None,
    };
    let base_url = scenario.target.base_url(port);
    let templates = scenario
        .pipelines
        .iter()
        .map(|p| RequestTemplate::new(&base_url, p))
        .collect::<Result<Vec<_>, _>>()?;
    let connect_timeout = scenario
        .pipelines
        .iter()
        .map(|p| p.timeout)
        .max()
        .unwrap_or(Duration::from_secs(5))
        .min(Duration::from_secs(10));
    let connector = client::build(&scenario.tls, connect_timeout)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let clock = Clock::new();
    let load_origin = Arc::new(OnceLock::new());
    let awaiting_report = Arc::new(AtomicBool::new(false));
    let target_unresponsive = Arc::new(AtomicBool::new(false));
    let watcher = DirWatcher::start(
        &scenario.crash.dirs,
        watch_since,
        scenario.crash.poll,
        load_origin.clone(),
        tx.clone(),
    );
    let kernel_log = super::watch::watch_kernel_log(tx.clone(), clock.clone());
    let names: Vec<String> = scenario.pipelines.iter().map(|p| p.name.clone()).collect();
    let mut stats = RunStats::new(&names, base_url.clone(), scenario.target_process.is_some());
    for w in super::watch::folder_warnings(&scenario.crash.dirs) {
        stats.warn(w);
    }
    if let Err(Some(w)) = &kernel_log {
        stats.warn(w.clone());
    }
    let done = CancelToken::new();
    let drive = Drive {
        scenario,
        connector,
        templates,
        tx,
        cancel,
        children: &control.children,
        clock: clock.clone(),
        load_origin,
        awaiting_report: awaiting_report.clone(),
        target_unresponsive: target_unresponsive.clone(),
        port,
        base_url,
    };
    let driving = async {
        let d = drive.go(watcher).await;
        if let Ok(k) = kernel_log {
            let _ = tokio::task::spawn_blocking(move || k.stop()).await;
        }
        done.cancel();
        d
    };
    let (duration, ()) = tokio::join!(
        driving,
        aggregate(
            rx,
            &mut stats,
            sink,
            &clock,
            &awaiting_report,
            &target_unresponsive,
            &done
        )
    );
    Ok(stats.finish(duration, &scenario.verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_slots_are_shared_round_robin_and_end_at_the_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(1);
        let due = |nth| {
            let mut s = Schedule::new(start, 10.0, 4, nth, deadline);
            std::iter::from_fn(move || s.next_due())
                .map(|t| (t - start).as_millis())
                .collect::<Vec<_>>()
        };
        assert_eq!(due(0), [0, 400, 800]);
        assert_eq!(due(1), [100, 500, 900]);
        assert_eq!(due(3), [300, 700]);
        let total: usize = (0..4).map(|n| due(n).len()).sum();
        assert_eq!(
            total, 10,
            "rate x duration slots, none at or past the deadline"
        );
    }
}
