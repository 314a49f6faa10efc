//! The timeline of one stress run: what happened when. Per pipeline, the figures of each
//! interval of the load phase (successes, errors, p50 and p99 latency); and the events a person
//! looks for beside them (crashes with their signature, target exits, restarts, failed smoke
//! probes). Recorded by the stress engine's aggregator (`stress/timeline.rs`), read by the JSON
//! (`timeline`) and HTML reporters.
//!
//! Times are offsets from the start of the load phase, like every time in a [`RunReport`]
//! (crate::report::RunReport); what happened before it (a failed smoke probe) is at zero.

use std::time::Duration;

use crate::crash::CrashSource;

/// One interval of one pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    /// Its start.
    pub at: Duration,
    /// How much of the run it covers: [`Timeline::interval`], less for the last one.
    pub span: Duration,
    /// Successful requests that finished in it.
    pub ok: u64,
    /// Failed requests that finished in it.
    pub errors: u64,
    /// Median latency of its successful requests; `None` without any.
    pub p50: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
}

impl Interval {
    /// Successful requests per second over its span.
    pub fn ok_per_sec(&self) -> f64 {
        per_sec(self.ok, self.span)
    }

    /// Failed requests per second over its span.
    pub fn errors_per_sec(&self) -> f64 {
        per_sec(self.errors, self.span)
    }
}

fn per_sec(n: u64, span: Duration) -> f64 {
    let s = span.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// One pipeline's intervals, in time order, one per interval of the run (empty ones included).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineTimeline {
    /// The pipeline's name.
    pub name: String,
    /// Its intervals.
    pub intervals: Vec<Interval>,
}

/// What happened at one moment.
#[derive(Debug, Clone, PartialEq)]
pub enum TimelineEventKind {
    /// A crash, seen through one or more channels (each channel sees each crash once; the
    /// sightings of one crash are one event).
    Crash {
        /// The normalized signature.
        signature: String,
        /// The channels it was seen through.
        sources: Vec<CrashSource>,
    },
    /// The managed target was started; `incarnation` 0 is the first start.
    TargetStarted {
        /// Its process id.
        pid: u32,
        /// 0, then 1, 2, ... for restarts.
        incarnation: u32,
    },
    /// The managed target exited.
    TargetExited {
        /// Exit status or signal, in words.
        status: String,
    },
    /// The managed target was restarted after exiting (the event is at the exit).
    Restart {
        /// From exit to healthy again; `None` if it never was before the end.
        time_to_recover: Option<Duration>,
    },
    /// A smoke probe failed (the run ends with ERROR).
    SmokeProbeFailed {
        /// The pipeline, or `target` when the managed target never became healthy.
        pipeline: String,
        /// What went wrong.
        message: String,
    },
}

impl TimelineEventKind {
    /// The key used in the JSON (`kind`).
    pub fn as_str(&self) -> &'static str {
        match self {
            TimelineEventKind::Crash { .. } => "crash",
            TimelineEventKind::TargetStarted { .. } => "target_started",
            TimelineEventKind::TargetExited { .. } => "target_exited",
            TimelineEventKind::Restart { .. } => "restart",
            TimelineEventKind::SmokeProbeFailed { .. } => "smoke_probe_failed",
        }
    }
}

/// One event on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    /// When, since the load phase started.
    pub at: Duration,
    /// What.
    pub kind: TimelineEventKind,
}

/// The timeline of a stress run.
///
/// Memory is bounded for runs of any length: intervals start short (1 s, finer for runs under a
/// minute) and are merged pairwise, doubling their length, whenever a run outgrows
/// [`Timeline::MAX_INTERVALS`]; at most [`Timeline::MAX_EVENTS`] events are kept (the first
/// ones), the rest only counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// The length of every interval (the last one may cover less).
    pub interval: Duration,
    /// Per pipeline, in scenario order.
    pub pipelines: Vec<PipelineTimeline>,
    /// Events, in time order.
    pub events: Vec<TimelineEvent>,
    /// Events past [`Timeline::MAX_EVENTS`], not kept.
    pub events_dropped: u64,
}

impl Timeline {
    /// Intervals kept per pipeline before they are merged pairwise.
    pub const MAX_INTERVALS: usize = 720;
    /// Events kept.
    pub const MAX_EVENTS: usize = 1000;

    /// The crash events, in time order.
    pub fn crashes(&self) -> impl Iterator<Item = (&TimelineEvent, &str)> {
        self.events.iter().filter_map(|e| match &e.kind {
            TimelineEventKind::Crash { signature, .. } => Some((e, signature.as_str())),
            _ => None,
        })
    }
}
