//! The timeline's JSON form (`timeline` in the stress report, and in each run that `compare`
//! and `demo` embed). Documented in `docs/stress.md`; fields are only ever added.

use serde::Serialize;

use super::{ms, secs};
use crate::report::timeline::{Timeline, TimelineEventKind};

/// `timeline` in the JSON report.
#[derive(Serialize)]
pub(crate) struct JsonTimeline<'a> {
    interval_s: f64,
    pipelines: Vec<JsonPipelineTimeline<'a>>,
    events: Vec<JsonEvent<'a>>,
    events_dropped: u64,
}

#[derive(Serialize)]
struct JsonPipelineTimeline<'a> {
    name: &'a str,
    intervals: Vec<JsonInterval>,
}

#[derive(Serialize)]
struct JsonInterval {
    at_s: f64,
    span_s: f64,
    ok: u64,
    errors: u64,
    /// Successful requests per second over the span.
    rps: f64,
    /// `null` without a success in the interval.
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    at_s: f64,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incarnation: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    /// Only for `restart`, where `null` means "never recovered".
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_recover_s: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl<'a> JsonTimeline<'a> {
    pub(crate) fn new(t: &'a Timeline) -> JsonTimeline<'a> {
        JsonTimeline {
            interval_s: secs(t.interval),
            pipelines: t
                .pipelines
                .iter()
                .map(|p| JsonPipelineTimeline {
                    name: &p.name,
                    intervals: p
                        .intervals
                        .iter()
                        .map(|i| JsonInterval {
                            at_s: secs(i.at),
                            span_s: secs(i.span),
                            ok: i.ok,
                            errors: i.errors,
                            rps: (i.ok_per_sec() * 100.0).round() / 100.0,
                            p50_ms: i.p50.map(ms),
                            p99_ms: i.p99.map(ms),
                        })
                        .collect(),
                })
                .collect(),
            events: t.events.iter().map(|e| event(e.at, &e.kind)).collect(),
            events_dropped: t.events_dropped,
        }
    }
}

fn event(at: std::time::Duration, kind: &TimelineEventKind) -> JsonEvent<'_> {
    let mut e = JsonEvent {
        at_s: secs(at),
        kind: kind.as_str(),
        signature: None,
        sources: None,
        pid: None,
        incarnation: None,
        status: None,
        time_to_recover_s: None,
        pipeline: None,
        message: None,
    };
    match kind {
        TimelineEventKind::Crash { signature, sources } => {
            e.signature = Some(signature);
            e.sources = Some(sources.iter().map(|s| s.as_str()).collect());
        }
        TimelineEventKind::TargetStarted { pid, incarnation } => {
            e.pid = Some(*pid);
            e.incarnation = Some(*incarnation);
        }
        TimelineEventKind::TargetExited { status } => e.status = Some(status),
        TimelineEventKind::Restart { time_to_recover } => {
            e.time_to_recover_s = Some(time_to_recover.map(secs));
        }
        TimelineEventKind::SmokeProbeFailed { pipeline, message } => {
            e.pipeline = Some(pipeline);
            e.message = Some(message);
        }
    }
    e
}
