//! The events a stress run emits, in the order they happened.
//!
//! Workers, crash watchers and the target supervisor all send onto one stream; the engine's
//! aggregator folds it into the run report and hands every event, by reference, to an
//! [`EventSink`] (the progress line, `racegate compare`, a test). Times are offsets from the
//! start of the run, so a stream can be replayed without a clock.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::crash::CrashSource;

/// One crash sighting. The same crash may be seen by several watchers (stderr, the process
/// exit, a `.ips` file); they carry the same signature and are grouped in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct CrashSeen {
    /// Which watcher saw it.
    pub source: CrashSource,
    /// The normalized crash signature's key (`assertion: ...`, `signal: SIGSEGV`).
    pub signature: String,
    /// When, since the run started.
    pub at: Duration,
    /// The report file, for file sources.
    pub path: Option<PathBuf>,
    /// Extra words for humans (exit status, the raw line).
    pub detail: Option<String>,
    /// Where it happened: the crashing thread's frames, the heap message, or why there are no
    /// frames.
    pub evidence: Box<crate::crash::Evidence>,
}

/// Why one request did not count as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The TCP connection was refused.
    ConnectRefused,
    /// Another failure while connecting (unreachable, connect timeout, DNS).
    Connect,
    /// The connection was reset or the pipe broke.
    Reset,
    /// The server closed the connection before a complete answer.
    Closed,
    /// No complete answer within the pipeline's `timeout`.
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// An answer with a status other than `expect_status`.
    Status(u16),
    /// An answer that failed the pipeline's check.
    CheckFailed,
    /// Anything else (a malformed HTTP answer, ...).
    Other,
}

impl ErrorKind {
    /// The key used in `errors_by_kind`.
    pub fn key(self) -> String {
        match self {
            ErrorKind::ConnectRefused => "connect_refused".into(),
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Reset => "reset".into(),
            ErrorKind::Closed => "closed".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Tls => "tls".into(),
            ErrorKind::Status(code) => format!("status_{code}"),
            ErrorKind::CheckFailed => "check_failed".into(),
            ErrorKind::Other => "other".into(),
        }
    }

    /// Whether this error means "nobody is answering" (used to notice a dead target).
    pub fn is_unreachable(self) -> bool {
        matches!(
            self,
            ErrorKind::ConnectRefused
                | ErrorKind::Connect
                | ErrorKind::Reset
                | ErrorKind::Closed
                | ErrorKind::Timeout
        )
    }
}

/// Why the load phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EndedBy {
    /// It ran its `duration`.
    #[default]
    Duration,
    /// The `requests` bound was used up first.
    Requests,
    /// The managed target exited and will not be restarted (`[target_process] stop_on_exit`).
    TargetExited,
    /// The unmanaged target stopped answering and stayed down through the settle period.
    TargetUnresponsive,
    /// Cancelled (Ctrl-C).
    Interrupted,
    /// The target was not healthy; no load was sent.
    NotStarted,
}

impl EndedBy {
    /// The key used in reports (`ended_by` in the JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Duration => "duration",
            EndedBy::Requests => "requests",
            EndedBy::TargetExited => "target_exited",
            EndedBy::TargetUnresponsive => "target_unresponsive",
            EndedBy::Interrupted => "interrupted",
            EndedBy::NotStarted => "not_started",
        }
    }
}

/// The result of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Expected status, and the check (if any) passed.
    Ok,
    /// Anything else.
    Err(ErrorKind),
}

/// A progress snapshot, emitted a few times a second.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Since the run started.
    pub at: Duration,
    /// Successful requests so far, all pipelines.
    pub ok: u64,
    /// Failed requests so far, all pipelines.
    pub errors: u64,
    /// Crash sightings so far.
    pub crashes: u64,
    /// Restarts so far.
    pub restarts: u64,
}

/// Everything that happens during a stress run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The managed target was started (or restarted) and is about to be health-checked.
    TargetStarted {
        /// Its process id.
        pid: u32,
        /// 0 for the first start, then 1, 2, ... for restarts.
        incarnation: u32,
        /// Since the run started (zero before it).
        at: Duration,
    },
    /// One smoke probe answered as expected.
    SmokeProbePassed {
        /// Pipeline index.
        pipeline: usize,
    },
    /// A smoke probe failed; the run will end with ERROR.
    SmokeProbeFailed {
        /// Pipeline index.
        pipeline: usize,
        /// What went wrong.
        message: String,
    },
    /// Load begins.
    RunStarted {
        /// Pipeline names, in index order.
        pipelines: Vec<String>,
        /// The hard bound on the run.
        duration: Duration,
    },
    /// One request finished.
    Response {
        /// Pipeline index.
        pipeline: usize,
        /// When it finished, since the run started.
        at: Duration,
        /// Latency (from the intended send time in rate mode).
        latency: Duration,
        /// Success or the kind of error.
        outcome: Outcome,
    },
    /// Why an answer failed its check (sent for the first few failures of each pipeline, after
    /// their `Response`).
    CheckFailed {
        /// Pipeline index.
        pipeline: usize,
        /// Since the run started.
        at: Duration,
        /// What differed.
        message: String,
    },
    /// A crash was seen.
    Crash(CrashSeen),
    /// The managed target exited while the run was going on.
    TargetExited {
        /// Since the run started.
        at: Duration,
        /// Exit status or signal, in words.
        status: String,
    },
    /// The managed target was restarted after exiting.
    Restart {
        /// When it exited, since the run started.
        at: Duration,
        /// From exit to healthy again; `None` if it never became healthy before the end.
        time_to_recover: Option<Duration>,
    },
    /// A periodic snapshot for progress displays.
    Progress(Progress),
    /// Load stopped.
    RunEnded {
        /// Since the run started.
        at: Duration,
        /// Stopped by cancellation rather than by its bounds.
        aborted: bool,
        /// Why it stopped.
        ended_by: EndedBy,
    },
}

/// Receives every event of a run, in order, on the aggregator's task. Keep it cheap: it is
/// called once per request.
pub trait EventSink: Send {
    /// Handle one event.
    fn event(&mut self, event: &Event);
}

/// Ignore every event.
impl EventSink for () {
    fn event(&mut self, _event: &Event) {}
}

/// Collect every event (tests, small runs).
impl EventSink for Vec<Event> {
    fn event(&mut self, event: &Event) {
        self.push(event.clone());
    }
}

/// Forward every event to another task.
impl EventSink for tokio::sync::mpsc::UnboundedSender<Event> {
    fn event(&mut self, event: &Event) {
        // The receiver going away only means nobody is listening any more.
        let _ = self.send(event.clone());
    }
}

/// Adapt a closure.
pub struct FnSink<F>(pub F);

impl<F: FnMut(&Event) + Send> EventSink for FnSink<F> {
    fn event(&mut self, event: &Event) {
        (self.0)(event)
    }
}

impl<S: EventSink + ?Sized> EventSink for &mut S {
    fn event(&mut self, event: &Event) {
        (**self).event(event)
    }
}
