//! `--json FILE`: the machine-readable report. The schema is versioned by `schema_version`
//! and documented in `docs/stress.md`; fields are only ever added.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::{ms, secs};
use crate::report::RunReport;

/// The current schema version.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Json<'a> {
    schema_version: u32,
    verdict: &'static str,
    reason: &'a str,
    target: &'a str,
    duration_s: f64,
    ended_by: &'static str,
    time_to_first_failure_s: Option<f64>,
    requests: u64,
    errors: u64,
    error_rate: f64,
    pipelines: Vec<JsonPipeline<'a>>,
    crashes: Vec<JsonCrash<'a>>,
    restarts: Vec<JsonRestart>,
    probe_failures: &'a [String],
    warnings: &'a [String],
    timeline: super::timeline::JsonTimeline<'a>,
}

#[derive(Serialize)]
struct JsonPipeline<'a> {
    name: &'a str,
    ok: u64,
    errors: u64,
    errors_by_kind: &'a BTreeMap<String, u64>,
    failed_checks: u64,
    check_failures: &'a [String],
    latency_ms: JsonLatency,
    throughput_rps: f64,
}

/// `null` when the pipeline had no successful request.
#[derive(Serialize)]
struct JsonLatency {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize)]
struct JsonCrash<'a> {
    source: String,
    sources: Vec<&'static str>,
    signature: &'a str,
    count: u64,
    first_at_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    /// The crashing thread's frames, innermost first (additive: schema 1 readers ignore it).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    frames: &'a [crate::crash::Frame],
    #[serde(skip_serializing_if = "Option::is_none")]
    frames_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    python_frames: &'a [crate::crash::Frame],
    #[serde(skip_serializing_if = "Option::is_none")]
    heap_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frames_unavailable: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frames_at_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capture_ms: Option<f64>,
    /// Every thread's stack (hangs).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    threads: &'a [crate::crash::ThreadStack],
}

#[derive(Serialize)]
struct JsonRestart {
    at_s: f64,
    time_to_recover_s: Option<f64>,
}

/// Write the report as pretty JSON.
pub fn write<W: Write>(r: &RunReport, mut w: W) -> std::io::Result<()> {
    let requests = r.requests();
    let errors = r.errors();
    let doc = Json {
        schema_version: SCHEMA_VERSION,
        verdict: r.verdict.as_str(),
        reason: &r.reason,
        target: &r.target,
        duration_s: secs(r.duration),
        ended_by: r.ended_by.as_str(),
        time_to_first_failure_s: r.time_to_first_failure.map(secs),
        requests,
        errors,
        error_rate: crate::verdict::error_rate(errors, requests),
        pipelines: r
            .pipelines
            .iter()
            .map(|p| JsonPipeline {
                name: &p.name,
                ok: p.ok,
                errors: p.errors,
                errors_by_kind: &p.errors_by_kind,
                failed_checks: p.failed_checks,
                check_failures: &p.check_messages,
                latency_ms: {
                    let l = |d| (p.ok > 0).then(|| ms(d));
                    JsonLatency {
                        p50: l(p.latency.p50),
                        p90: l(p.latency.p90),
                        p99: l(p.latency.p99),
                        max: l(p.latency.max),
                    }
                },
                throughput_rps: (p.throughput_rps * 100.0).round() / 100.0,
            })
            .collect(),
        crashes: r
            .crashes
            .iter()
            .map(|c| JsonCrash {
                source: c.source_label(),
                sources: c.sources.iter().map(|s| s.as_str()).collect(),
                signature: &c.signature,
                count: c.count,
                first_at_s: secs(c.first_at),
                path: c.path.as_ref().map(|p| p.display().to_string()),
                detail: c.detail.as_deref(),
                frames: &c.evidence.frames,
                frames_from: c.evidence.frames_from.as_deref(),
                thread: c.evidence.thread.as_deref(),
                python_frames: &c.evidence.python_frames,
                heap_message: c.evidence.heap_message.as_deref(),
                frames_unavailable: c.evidence.frames_unavailable.as_deref(),
                frames_at_s: c.evidence.frames_at.map(secs),
                capture_ms: c.evidence.capture.map(ms),
                threads: &c.evidence.threads,
            })
            .collect(),
        restarts: r
            .restarts
            .iter()
            .map(|x| JsonRestart {
                at_s: secs(x.at),
                time_to_recover_s: x.time_to_recover.map(secs),
            })
            .collect(),
        probe_failures: &r.probe_failures,
        warnings: &r.warnings,
        timeline: super::timeline::JsonTimeline::new(&r.timeline),
    };
    serde_json::to_writer_pretty(&mut w, &doc)?;
    w.write_all(b"\n")
}
