//! The aggregator: folds the event stream into [`RunStats`], then into a [`RunReport`] with
//! its verdict. Pure: every time comes from the events, so tests replay streams without a clock.
//! The report itself is the model in [`crate::report::run`]; printers read it there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::timeline::TimelineRecorder;
use crate::crash::CrashSource;
use crate::events::{CrashSeen, EndedBy, ErrorKind, Event, Outcome, Progress};
use crate::report::run::{CrashGroup, LatencySummary, PipelineReport, RestartRecord, RunReport};
use crate::verdict::{self, Decision, Facts, Thresholds};

/// Consecutive unreachable answers, on every pipeline, before a healthy target counts as dead.
const UNRESPONSIVE_STREAK: u64 = 3;
/// ... lasting at least this long (a crashing managed target reports its exit within it).
const UNRESPONSIVE_FOR: Duration = Duration::from_millis(500);
/// Failed-check messages kept per pipeline.
const KEPT_CHECK_MESSAGES: usize = 3;

struct PipeStats {
    name: String,
    ok: u64,
    errors: u64,
    by_kind: BTreeMap<ErrorKind, u64>,
    failed_checks: u64,
    check_messages: Vec<String>,
    hist: Histogram<u64>,
    unreachable_streak: u64,
}

#[derive(Default)]
struct GroupBuild {
    per_source: BTreeMap<CrashSource, u64>,
    first_at: Duration,
    path: Option<PathBuf>,
    detail: Option<String>,
    evidence: crate::crash::Evidence,
    order: usize,
}

/// Folds events. Feed every event to [`RunStats::apply`]; the unresponsive detector may return
/// a synthesized crash event, which the caller should also apply and forward.
pub struct RunStats {
    pipes: Vec<PipeStats>,
    crashes: BTreeMap<String, GroupBuild>,
    restarts: Vec<RestartRecord>,
    probe_failures: Vec<String>,
    warnings: Vec<String>,
    first_failure: Option<Duration>,
    target: String,
    managed: bool,
    load_started: bool,
    aborted: bool,
    ended_by: EndedBy,
    /// Start of the current all-pipelines outage, and whether it was already counted.
    outage_since: Option<Duration>,
    outage_counted: bool,
    target_down: bool,
    sightings: u64,
    file_sightings: u64,
    runtime_sightings: u64,
    timeline: TimelineRecorder,
}

fn new_histogram() -> Histogram<u64> {
    // 1 us .. 1 h at 3 significant digits; bounds are enforced by saturating on record.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl RunStats {
    /// Empty stats for these pipelines.
    pub fn new(pipelines: &[String], target: String, managed: bool) -> RunStats {
        RunStats {
            pipes: pipelines
                .iter()
                .map(|name| PipeStats {
                    name: name.clone(),
                    ok: 0,
                    errors: 0,
                    by_kind: BTreeMap::new(),
                    failed_checks: 0,
                    check_messages: Vec::new(),
                    hist: new_histogram(),
                    unreachable_streak: 0,
                })
                .collect(),
            crashes: BTreeMap::new(),
            restarts: Vec::new(),
            probe_failures: Vec::new(),
            warnings: Vec::new(),
            first_failure: None,
            target,
            managed,
            load_started: false,
            aborted: false,
            ended_by: EndedBy::Duration,
            outage_since: None,
            outage_counted: false,
            target_down: false,
            sightings: 0,
            file_sightings: 0,
            runtime_sightings: 0,
            timeline: TimelineRecorder::new(pipelines),
        }
    }

    fn fail_at(&mut self, at: Duration) {
        if self.load_started && self.first_failure.map_or(true, |f| at < f) {
            self.first_failure = Some(at);
        }
    }

    /// Fold one event. Returns a crash to report when every pipeline just stopped getting
    /// answers from a target that had been healthy.
    pub fn apply(&mut self, event: &Event) -> Option<Event> {
        let pipes = &self.pipes;
        self.timeline.apply(event, |i| {
            pipes
                .get(i)
                .map_or_else(|| "target".into(), |p| p.name.clone())
        });
        match event {
            Event::RunStarted { .. } => self.load_started = true,
            Event::SmokeProbeFailed { pipeline, message } => {
                let name = self.pipes.get(*pipeline).map_or("target", |p| &p.name);
                self.probe_failures.push(format!("{name}: {message}"));
            }
            Event::Response {
                pipeline,
                at,
                latency,
                outcome,
            } => {
                let p = self.pipes.get_mut(*pipeline)?;
                match outcome {
                    Outcome::Ok => {
                        p.ok += 1;
                        let us = latency.as_micros().clamp(1, 3_600_000_000) as u64;
                        p.hist.saturating_record(us);
                        p.unreachable_streak = 0;
                        self.outage_since = None;
                        self.outage_counted = false;
                    }
                    Outcome::Err(kind) => {
                        p.errors += 1;
                        *p.by_kind.entry(*kind).or_insert(0) += 1;
                        if *kind == ErrorKind::CheckFailed {
                            p.failed_checks += 1;
                        }
                        if kind.is_unreachable() {
                            p.unreachable_streak += 1;
                            self.outage_since.get_or_insert(*at);
                        } else {
                            // Something answered: not an outage.
                            p.unreachable_streak = 0;
                            self.outage_since = None;
                            self.outage_counted = false;
                        }
                        let at = *at;
                        self.fail_at(at);
                        return self.check_unresponsive(at);
                    }
                }
            }
            Event::CheckFailed {
                pipeline, message, ..
            } => {
                if let Some(p) = self.pipes.get_mut(*pipeline) {
                    if p.check_messages.len() < KEPT_CHECK_MESSAGES {
                        p.check_messages.push(message.clone());
                    }
                }
            }
            Event::Crash(c) => self.add_crash(c),
            Event::TargetExited { .. } => self.target_down = true,
            Event::Restart {
                at,
                time_to_recover,
            } => {
                // Down until the restarted target answers its health check: the refused
                // connections while it starts are the known exit, not a new outage.
                if time_to_recover.is_some() {
                    self.target_down = false;
                    self.outage_since = None;
                    self.outage_counted = false;
                }
                self.restarts.push(RestartRecord {
                    at: *at,
                    time_to_recover: *time_to_recover,
                });
                self.fail_at(*at);
            }
            Event::RunEnded {
                aborted, ended_by, ..
            } => {
                self.aborted |= *aborted;
                self.ended_by = *ended_by;
            }
            _ => {}
        }
        None
    }

    fn check_unresponsive(&mut self, at: Duration) -> Option<Event> {
        let since = self.outage_since?;
        if self.outage_counted || !self.load_started || (self.managed && self.target_down) {
            return None;
        }
        if at.saturating_sub(since) < UNRESPONSIVE_FOR
            || self
                .pipes
                .iter()
                .any(|p| p.unreachable_streak < UNRESPONSIVE_STREAK)
        {
            return None;
        }
        self.outage_counted = true;
        Some(Event::Crash(CrashSeen {
            source: CrashSource::Unresponsive,
            signature: crate::crash::CrashSignature::unresponsive()
                .key()
                .to_string(),
            at: since,
            path: None,
            detail: Some(format!(
                "every pipeline failed {UNRESPONSIVE_STREAK}+ times in a row to reach the target"
            )),
            evidence: Default::default(),
        }))
    }

    fn add_crash(&mut self, c: &CrashSeen) {
        self.sightings += 1;
        match c.source {
            CrashSource::CrashReport | CrashSource::CoreDump => self.file_sightings += 1,
            CrashSource::Stderr | CrashSource::ExitStatus => self.runtime_sightings += 1,
            _ => {}
        }
        let order = self.crashes.len();
        let g = self
            .crashes
            .entry(c.signature.clone())
            .or_insert_with(|| GroupBuild {
                first_at: c.at,
                order,
                ..Default::default()
            });
        *g.per_source.entry(c.source).or_insert(0) += 1;
        if c.at < g.first_at {
            g.first_at = c.at;
        }
        if g.path.is_none() {
            g.path = c.path.clone();
        }
        if g.detail.is_none() {
            g.detail = c.detail.clone();
        }
        // The first sighting with frames shows them; one without keeps the reason why not.
        if g.evidence.frames.is_empty() && g.evidence.threads.is_empty() {
            let reason = g.evidence.frames_unavailable.take();
            if !c.evidence.is_empty() || c.evidence.frames_unavailable.is_some() {
                g.evidence = (*c.evidence).clone();
            }
            if g.evidence.frames_unavailable.is_none() && g.evidence.frames.is_empty() {
                g.evidence.frames_unavailable = reason;
            }
        }
        self.fail_at(c.at);
    }

    /// Record a warning for the report.
    pub fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// Whether a crash was seen at run time (stderr, exit) with no report file yet: the caller
    /// may wait a little for the OS to write one.
    pub fn awaiting_report_file(&self) -> bool {
        self.runtime_sightings > 0 && self.file_sightings == 0
    }

    /// Whether the dead-target detector fired for the current outage and nothing has
    /// answered since: the engine may end the run early on it.
    pub fn target_unresponsive(&self) -> bool {
        self.outage_counted
    }

    /// A snapshot for progress displays.
    pub fn progress(&self, at: Duration) -> Progress {
        Progress {
            at,
            ok: self.pipes.iter().map(|p| p.ok).sum(),
            errors: self.pipes.iter().map(|p| p.errors).sum(),
            crashes: self.sightings,
            restarts: self.restarts.len() as u64,
        }
    }

    /// Finish: summarize and decide.
    pub fn finish(self, duration: Duration, thresholds: &Thresholds) -> RunReport {
        let secs = duration.as_secs_f64();
        let timeline = self.timeline.finish(duration);
        let pipelines: Vec<PipelineReport> = self
            .pipes
            .into_iter()
            .map(|p| {
                let q = |x: f64| Duration::from_micros(p.hist.value_at_quantile(x));
                let latency = if p.hist.is_empty() {
                    LatencySummary::default()
                } else {
                    LatencySummary {
                        p50: q(0.5),
                        p90: q(0.9),
                        p99: q(0.99),
                        max: Duration::from_micros(p.hist.max()),
                    }
                };
                PipelineReport {
                    problem: pipeline_problem(
                        &p.check_messages,
                        p.ok,
                        p.errors,
                        p.failed_checks,
                        thresholds,
                    ),
                    errors_by_kind: p.by_kind.iter().map(|(k, v)| (k.key(), *v)).collect(),
                    name: p.name,
                    ok: p.ok,
                    errors: p.errors,
                    failed_checks: p.failed_checks,
                    check_messages: p.check_messages,
                    latency,
                    throughput_rps: if secs > 0.0 { p.ok as f64 / secs } else { 0.0 },
                    histogram: p.hist,
                }
            })
            .collect();
        let mut crashes: Vec<(usize, CrashGroup)> = self
            .crashes
            .into_iter()
            .map(|(signature, g)| {
                (
                    g.order,
                    CrashGroup {
                        sources: g
                            .per_source
                            .keys()
                            .copied()
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                        count: g.per_source.values().copied().max().unwrap_or(0),
                        signature,
                        first_at: g.first_at,
                        path: g.path,
                        detail: g.detail,
                        evidence: g.evidence,
                    },
                )
            })
            .collect();
        crashes.sort_by_key(|(order, _)| *order);
        let crashes: Vec<CrashGroup> = crashes.into_iter().map(|(_, g)| g).collect();
        let facts = Facts {
            unhealthy: !self.probe_failures.is_empty(),
            aborted: self.aborted,
            crashes: crashes.iter().map(|c| c.count).sum(),
            restarts: self.restarts.len() as u64,
            failed_checks: pipelines.iter().map(|p| p.failed_checks).sum(),
            requests: pipelines.iter().map(|p| p.ok + p.errors).sum(),
            errors: pipelines.iter().map(|p| p.errors).sum(),
            pipelines_never_succeeded: pipelines
                .iter()
                .filter(|p| p.ok == 0)
                .map(|p| p.name.clone())
                .collect(),
        };
        let Decision { verdict, reason } = verdict::decide(&facts, thresholds);
        RunReport {
            verdict,
            reason,
            target: self.target,
            duration,
            ended_by: self.ended_by,
            time_to_first_failure: self.first_failure,
            pipelines,
            crashes,
            restarts: self.restarts,
            probe_failures: self.probe_failures,
            warnings: self.warnings,
            facts,
            timeline,
        }
    }
}

fn pipeline_problem(
    check_messages: &[String],
    ok: u64,
    errors: u64,
    failed_checks: u64,
    thresholds: &Thresholds,
) -> Option<String> {
    if ok == 0 {
        return Some(format!("never succeeded ({errors} errors)"));
    }
    if failed_checks > 0 {
        let first = check_messages.first().map(String::as_str).unwrap_or("");
        return Some(format!("{failed_checks} failed checks; first: {first}"));
    }
    let rate = verdict::error_rate(errors, ok + errors);
    (rate > thresholds.max_error_rate).then(|| {
        format!(
            "error rate {rate:.4} above max_error_rate {}",
            thresholds.max_error_rate
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn resp(p: usize, at: u64, outcome: Outcome) -> Event {
        Event::Response {
            pipeline: p,
            at: ms(at),
            latency: ms(2),
            outcome,
        }
    }

    fn stats(managed: bool) -> RunStats {
        let mut s = RunStats::new(&["a".into(), "b".into()], "t".into(), managed);
        s.apply(&Event::RunStarted {
            pipelines: vec!["a".into(), "b".into()],
            duration: ms(1000),
        });
        s
    }

    #[test]
    fn one_crash_through_three_channels_counts_once() {
        let mut s = stats(true);
        for p in [0, 1] {
            s.apply(&resp(p, 1, Outcome::Ok));
        }
        for source in [
            CrashSource::Stderr,
            CrashSource::ExitStatus,
            CrashSource::CrashReport,
        ] {
            s.apply(&Event::Crash(CrashSeen {
                source,
                signature: "assertion: x".into(),
                at: ms(5),
                path: None,
                detail: None,
                evidence: Default::default(),
            }));
        }
        let r = s.finish(ms(1000), &Thresholds::default());
        assert_eq!(r.crashes.len(), 1);
        assert_eq!(r.crashes[0].count, 1);
        assert_eq!(
            r.crashes[0].source_label(),
            "stderr+crash_report+exit_status"
        );
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.time_to_first_failure, Some(ms(5)));
    }

    #[test]
    fn the_dead_target_flag_holds_until_something_answers() {
        let mut s = stats(false);
        s.apply(&resp(0, 1, Outcome::Ok));
        s.apply(&resp(1, 1, Outcome::Ok));
        let refused = Outcome::Err(ErrorKind::ConnectRefused);
        assert!(!s.target_unresponsive());
        for i in 0..50u64 {
            for p in [0, 1] {
                // As the aggregator does: the synthesized crash is applied too.
                if let Some(crash) = s.apply(&resp(p, 10 + i * 20, refused)) {
                    s.apply(&crash);
                }
            }
        }
        assert!(s.target_unresponsive());
        s.apply(&resp(0, 2000, Outcome::Ok));
        assert!(!s.target_unresponsive(), "an answer ends the outage");
        s.apply(&Event::RunEnded {
            at: ms(2000),
            aborted: false,
            ended_by: EndedBy::TargetUnresponsive,
        });
        let r = s.finish(ms(2000), &Thresholds::default());
        assert_eq!(r.ended_by, EndedBy::TargetUnresponsive);
        assert_eq!(r.verdict, Verdict::Fail, "the outage was a crash");
    }

    #[test]
    fn dead_target_counts_as_a_crash_once_per_outage() {
        let mut s = stats(false);
        s.apply(&resp(0, 1, Outcome::Ok));
        s.apply(&resp(1, 1, Outcome::Ok));
        let refused = Outcome::Err(ErrorKind::ConnectRefused);
        let mut crashes = Vec::new();
        for i in 0..50u64 {
            for p in [0, 1] {
                if let Some(e) = s.apply(&resp(p, 10 + i * 20, refused)) {
                    crashes.push(e);
                }
            }
        }
        assert_eq!(crashes.len(), 1, "{crashes:?}");
        let Event::Crash(c) = &crashes[0] else {
            panic!()
        };
        assert_eq!(c.source, CrashSource::Unresponsive);
        assert_eq!(c.at, ms(10));
    }

    #[test]
    fn no_outage_while_one_pipeline_answers_or_a_managed_target_is_down() {
        let mut s = stats(false);
        for i in 0..100u64 {
            assert!(s
                .apply(&resp(0, i * 20, Outcome::Err(ErrorKind::Timeout)))
                .is_none());
            s.apply(&resp(1, i * 20, Outcome::Err(ErrorKind::Status(500))));
        }
        let mut s = stats(true);
        s.apply(&Event::TargetExited {
            at: ms(1),
            status: "SIGABRT".into(),
        });
        // Still down while the restarted process starts...
        s.apply(&Event::TargetStarted {
            pid: 2,
            incarnation: 1,
            at: ms(2),
        });
        for i in 0..100u64 {
            for p in [0, 1] {
                assert!(s
                    .apply(&resp(p, i * 20, Outcome::Err(ErrorKind::ConnectRefused)))
                    .is_none());
            }
        }
        // ... but once it was healthy again, a new outage counts.
        s.apply(&Event::Restart {
            at: ms(1),
            time_to_recover: Some(ms(2100)),
        });
        let fired = (0..100u64)
            .flat_map(|i| [0, 1].map(|p| (p, 2100 + i * 20)))
            .filter_map(|(p, at)| s.apply(&resp(p, at, Outcome::Err(ErrorKind::Timeout))))
            .count();
        assert_eq!(fired, 1);
    }

    #[test]
    fn errors_and_latency_are_summarized() {
        let mut s = stats(false);
        for i in 0..100 {
            s.apply(&Event::Response {
                pipeline: 0,
                at: ms(i),
                latency: Duration::from_micros(1000 + i * 10),
                outcome: Outcome::Ok,
            });
        }
        s.apply(&resp(1, 3, Outcome::Ok));
        s.apply(&resp(1, 4, Outcome::Err(ErrorKind::Status(500))));
        let r = s.finish(Duration::from_secs(2), &Thresholds::default());
        assert_eq!(r.verdict, Verdict::Partial);
        assert_eq!(r.pipelines[0].ok, 100);
        assert_eq!(r.pipelines[0].throughput_rps, 50.0);
        assert!(r.pipelines[0].latency.p50 >= ms(1));
        assert!(r.pipelines[0].latency.max >= r.pipelines[0].latency.p99);
        assert_eq!(r.pipelines[1].errors_by_kind["status_500"], 1);
        assert_eq!(r.time_to_first_failure, Some(ms(4)));
    }
}
