//! The timeline recorder: folds the event stream into per-interval figures and the list of
//! events a person looks for ([`Timeline`]). Fed by the aggregator ([`super::stats::RunStats`])
//! with every event, on its task; pure, like it (times come from the events).
//!
//! Memory stays bounded for runs of any length. Each pipeline keeps one slot per interval; when
//! a run outgrows [`Timeline::MAX_INTERVALS`] slots, neighbouring slots are merged pairwise
//! (their latency histograms added, so the merged p99 is exact) and the interval doubles. A slot
//! is a few counters and an auto-sized HDR histogram of 2 significant digits (a few KiB for
//! latencies under a second), so a pipeline costs at most a few MiB, whatever the run's length.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::crash::CrashSource;
use crate::events::{CrashSeen, Event, Outcome};
use crate::report::timeline::{
    Interval, PipelineTimeline, Timeline, TimelineEvent, TimelineEventKind,
};

/// The interval lengths a run may start with; the finest that leaves at most
/// [`TARGET_POINTS`] intervals over the run's duration bound is used.
const START_WIDTHS_MS: [u64; 4] = [100, 250, 500, 1000];
/// Enough points for a readable chart of a short run.
const TARGET_POINTS: u64 = 120;

#[derive(Default)]
struct Slot {
    ok: u64,
    errors: u64,
    /// Latencies of successes, in microseconds; allocated at the first one.
    hist: Option<Histogram<u32>>,
}

impl Slot {
    fn merge(&mut self, other: Slot) {
        self.ok += other.ok;
        self.errors += other.errors;
        match (&mut self.hist, other.hist) {
            (Some(h), Some(o)) => {
                // Both auto-resize, so adding never fails for lack of range; a saturated
                // count (4 billion successes in one slot) is the only error, and then the
                // slot keeps what it had.
                let _ = h.add(&o);
            }
            (None, o @ Some(_)) => self.hist = o,
            _ => {}
        }
    }
}

/// Which crash event each sighting of a signature belongs to: the n-th sighting through one
/// channel is the n-th crash (each channel sees each crash once), as the report counts them.
#[derive(Default)]
struct CrashMarks {
    seen: BTreeMap<CrashSource, usize>,
    events: Vec<usize>,
}

/// Folds events into a [`Timeline`].
pub struct TimelineRecorder {
    width: Duration,
    pipes: Vec<(String, Vec<Slot>)>,
    events: Vec<TimelineEvent>,
    dropped: u64,
    crashes: BTreeMap<String, CrashMarks>,
}

impl TimelineRecorder {
    /// An empty timeline for these pipelines.
    pub fn new(pipelines: &[String]) -> TimelineRecorder {
        TimelineRecorder {
            width: Duration::from_secs(1),
            pipes: pipelines.iter().map(|n| (n.clone(), Vec::new())).collect(),
            events: Vec::new(),
            dropped: 0,
            crashes: BTreeMap::new(),
        }
    }

    /// The interval a run bounded by `duration` starts with.
    fn start_width(duration: Duration) -> Duration {
        let ms = duration.as_millis();
        let w = START_WIDTHS_MS
            .into_iter()
            .find(|w| ms <= u128::from(w * TARGET_POINTS))
            .unwrap_or(1000);
        Duration::from_millis(w)
    }

    /// The interval length now.
    pub fn interval(&self) -> Duration {
        self.width
    }

    /// Fold one event.
    pub fn apply(&mut self, event: &Event, pipeline_name: impl Fn(usize) -> String) {
        match event {
            Event::RunStarted { duration, .. } if self.pipes.iter().all(|(_, s)| s.is_empty()) => {
                self.width = Self::start_width(*duration);
            }
            Event::Response {
                pipeline,
                at,
                latency,
                outcome,
            } => self.response(*pipeline, *at, *latency, *outcome),
            Event::Crash(c) => self.crash(c),
            Event::TargetStarted {
                pid,
                incarnation,
                at,
            } => {
                let kind = TimelineEventKind::TargetStarted {
                    pid: *pid,
                    incarnation: *incarnation,
                };
                self.push(*at, kind);
            }
            Event::TargetExited { at, status } => {
                let kind = TimelineEventKind::TargetExited {
                    status: status.clone(),
                };
                self.push(*at, kind);
            }
            Event::Restart {
                at,
                time_to_recover,
            } => {
                let kind = TimelineEventKind::Restart {
                    time_to_recover: *time_to_recover,
                };
                self.push(*at, kind);
            }
            Event::SmokeProbeFailed { pipeline, message } => {
                let kind = TimelineEventKind::SmokeProbeFailed {
                    pipeline: pipeline_name(*pipeline),
                    message: message.clone(),
                };
                self.push(Duration::ZERO, kind);
            }
            _ => {}
        }
    }

    fn response(&mut self, pipeline: usize, at: Duration, latency: Duration, outcome: Outcome) {
        if pipeline >= self.pipes.len() {
            return;
        }
        let mut idx = self.index(at);
        while idx >= Timeline::MAX_INTERVALS {
            self.coarsen();
            idx = self.index(at);
        }
        let slots = &mut self.pipes[pipeline].1;
        if slots.len() <= idx {
            slots.resize_with(idx + 1, Slot::default);
        }
        let slot = &mut slots[idx];
        match outcome {
            Outcome::Ok => {
                slot.ok += 1;
                let us = latency.as_micros().clamp(1, 3_600_000_000) as u64;
                let h = slot.hist.get_or_insert_with(|| {
                    Histogram::new(2).expect("2 significant digits are valid")
                });
                // `record`, not `saturating_record`: the latter clamps to the current range
                // instead of growing it. It fails only when a count would overflow.
                let _ = h.record(us);
            }
            Outcome::Err(_) => slot.errors += 1,
        }
    }

    fn index(&self, at: Duration) -> usize {
        usize::try_from(at.as_nanos() / self.width.as_nanos().max(1)).unwrap_or(usize::MAX)
    }

    /// Merge neighbouring slots pairwise and double the interval.
    fn coarsen(&mut self) {
        self.width *= 2;
        for (_, slots) in &mut self.pipes {
            let old = std::mem::take(slots);
            let mut it = old.into_iter();
            while let Some(mut a) = it.next() {
                if let Some(b) = it.next() {
                    a.merge(b);
                }
                slots.push(a);
            }
        }
    }

    fn push(&mut self, at: Duration, kind: TimelineEventKind) -> Option<usize> {
        if self.events.len() >= Timeline::MAX_EVENTS {
            self.dropped += 1;
            return None;
        }
        self.events.push(TimelineEvent { at, kind });
        Some(self.events.len() - 1)
    }

    fn crash(&mut self, c: &CrashSeen) {
        let marks = self.crashes.entry(c.signature.clone()).or_default();
        let n = marks.seen.entry(c.source).or_insert(0);
        let nth = *n;
        *n += 1;
        if let Some(&i) = marks.events.get(nth) {
            let e = &mut self.events[i];
            e.at = e.at.min(c.at);
            if let TimelineEventKind::Crash { sources, .. } = &mut e.kind {
                if !sources.contains(&c.source) {
                    sources.push(c.source);
                    sources.sort();
                }
            }
            return;
        }
        let kind = TimelineEventKind::Crash {
            signature: c.signature.clone(),
            sources: vec![c.source],
        };
        if let Some(i) = self.push(c.at, kind) {
            self.crashes
                .get_mut(&c.signature)
                .expect("inserted above")
                .events
                .push(i);
        }
    }

    /// Finish: the figures of each interval up to the end of a load phase of `duration`.
    pub fn finish(self, duration: Duration) -> Timeline {
        let width = self.width;
        // Every pipeline gets the same intervals, covering the whole load phase (a response
        // that finished just after the deadline may add one more).
        let covered = self.index(duration.saturating_sub(Duration::from_nanos(1))) + 1;
        let count = self
            .pipes
            .iter()
            .map(|(_, s)| s.len())
            .max()
            .unwrap_or(0)
            .max(if duration.is_zero() { 0 } else { covered });
        let pipelines = self
            .pipes
            .into_iter()
            .map(|(name, mut slots)| {
                slots.resize_with(count, Slot::default);
                let intervals = slots
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let at = width * i as u32;
                        // The last interval covers only the rest of the run.
                        let span = if duration > at {
                            width.min(duration - at)
                        } else {
                            width
                        };
                        let q = |x: f64| {
                            s.hist
                                .as_ref()
                                .filter(|h| !h.is_empty())
                                .map(|h| Duration::from_micros(h.value_at_quantile(x)))
                        };
                        Interval {
                            at,
                            span,
                            ok: s.ok,
                            errors: s.errors,
                            p50: q(0.5),
                            p99: q(0.99),
                        }
                    })
                    .collect();
                PipelineTimeline { name, intervals }
            })
            .collect();
        let mut events = self.events;
        events.sort_by_key(|e| e.at);
        Timeline {
            interval: width,
            pipelines,
            events,
            events_dropped: self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ErrorKind;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn name(i: usize) -> String {
        format!("p{i}")
    }

    fn started(duration: Duration) -> TimelineRecorder {
        let mut r = TimelineRecorder::new(&["a".into(), "b".into()]);
        r.apply(
            &Event::RunStarted {
                pipelines: vec!["a".into(), "b".into()],
                duration,
            },
            name,
        );
        r
    }

    fn resp(r: &mut TimelineRecorder, p: usize, at: Duration, lat_us: u64, ok: bool) {
        r.apply(
            &Event::Response {
                pipeline: p,
                at,
                latency: Duration::from_micros(lat_us),
                outcome: if ok {
                    Outcome::Ok
                } else {
                    Outcome::Err(ErrorKind::Status(500))
                },
            },
            name,
        );
    }

    #[test]
    fn intervals_hold_each_seconds_figures() {
        let mut r = started(Duration::from_secs(600));
        assert_eq!(r.interval(), Duration::from_secs(1));
        for i in 0..100 {
            resp(&mut r, 0, ms(10 * i), 1000 + i, true);
        }
        resp(&mut r, 0, ms(1500), 50_000, true);
        resp(&mut r, 0, ms(1600), 0, false);
        resp(&mut r, 1, ms(2500), 7000, true);
        let t = r.finish(Duration::from_secs(3));
        assert_eq!(t.interval, Duration::from_secs(1));
        assert_eq!(t.pipelines.len(), 2);
        for p in &t.pipelines {
            assert_eq!(p.intervals.len(), 3, "every pipeline covers the run");
        }
        let a = &t.pipelines[0].intervals;
        assert_eq!((a[0].ok, a[0].errors), (100, 0));
        let p50 = a[0].p50.unwrap().as_micros();
        assert!((1040..=1060).contains(&p50), "{p50}");
        assert_eq!((a[1].ok, a[1].errors), (1, 1));
        assert_eq!(a[1].p99.unwrap().as_micros() / 1000, 50);
        assert_eq!(a[2].ok, 0);
        assert_eq!(a[2].p50, None, "no success, no latency");
        assert_eq!(t.pipelines[1].intervals[2].ok, 1);
        assert_eq!(a[0].ok_per_sec(), 100.0);
    }

    #[test]
    fn short_runs_get_finer_intervals() {
        assert_eq!(TimelineRecorder::start_width(ms(4000)), ms(100));
        assert_eq!(TimelineRecorder::start_width(ms(30_000)), ms(250));
        assert_eq!(TimelineRecorder::start_width(ms(60_000)), ms(500));
        assert_eq!(
            TimelineRecorder::start_width(Duration::from_secs(3600)),
            ms(1000)
        );
        let mut r = started(ms(2000));
        resp(&mut r, 0, ms(150), 1000, true);
        let t = r.finish(ms(1950));
        assert_eq!(t.interval, ms(100));
        assert_eq!(t.pipelines[0].intervals.len(), 20);
        assert_eq!(t.pipelines[0].intervals[1].ok, 1);
        let last = t.pipelines[0].intervals.last().unwrap();
        assert_eq!(last.span, ms(50), "the last interval covers the rest only");
    }

    #[test]
    fn hours_long_runs_stay_bounded_and_merge_exactly() {
        let mut r = started(Duration::from_secs(10 * 3600));
        // One success a second for ten hours, latency = 1 ms except one slow one.
        let mut slow_at = None;
        for s in 0..36_000u64 {
            let lat = if s == 20_000 { 900_000 } else { 1000 };
            if s == 20_000 {
                slow_at = Some(Duration::from_secs(s));
            }
            resp(&mut r, 0, Duration::from_secs(s) + ms(500), lat, true);
        }
        let width = r.interval();
        let t = r.finish(Duration::from_secs(36_000));
        let a = &t.pipelines[0].intervals;
        assert!(a.len() <= Timeline::MAX_INTERVALS, "{}", a.len());
        assert!(a.len() > Timeline::MAX_INTERVALS / 2, "{}", a.len());
        assert_eq!(t.interval, width);
        assert_eq!(width, Duration::from_secs(64));
        assert_eq!(a.iter().map(|i| i.ok).sum::<u64>(), 36_000, "nothing lost");
        let i = (slow_at.unwrap().as_secs() / 64) as usize;
        assert_eq!(a[i].p99.unwrap().as_millis() / 10, 90, "merged histograms");
        assert_eq!(a[i + 1].p99.unwrap().as_micros() / 10, 100);
    }

    #[test]
    fn one_crash_seen_through_three_channels_is_one_marker() {
        let mut r = started(Duration::from_secs(10));
        let crash = |source, at| {
            Event::Crash(CrashSeen {
                source,
                signature: "assertion: x".into(),
                at,
                path: None,
                detail: None,
                evidence: Default::default(),
            })
        };
        r.apply(&crash(CrashSource::Stderr, ms(1200)), name);
        r.apply(&crash(CrashSource::ExitStatus, ms(1190)), name);
        r.apply(
            &Event::TargetExited {
                at: ms(1200),
                status: "SIGABRT".into(),
            },
            name,
        );
        r.apply(&crash(CrashSource::CrashReport, ms(1500)), name);
        r.apply(
            &Event::Restart {
                at: ms(1200),
                time_to_recover: Some(ms(300)),
            },
            name,
        );
        // The second crash of the same signature is a second marker.
        r.apply(&crash(CrashSource::Stderr, ms(4000)), name);
        r.apply(
            &Event::SmokeProbeFailed {
                pipeline: 1,
                message: "no".into(),
            },
            name,
        );
        let t = r.finish(Duration::from_secs(5));
        let crashes: Vec<_> = t.crashes().collect();
        assert_eq!(crashes.len(), 2);
        assert_eq!(crashes[0].0.at, ms(1190));
        let TimelineEventKind::Crash { sources, .. } = &crashes[0].0.kind else {
            panic!()
        };
        assert_eq!(
            sources,
            &[
                CrashSource::Stderr,
                CrashSource::CrashReport,
                CrashSource::ExitStatus
            ]
        );
        assert_eq!(crashes[1].0.at, ms(4000));
        let kinds: Vec<&str> = t.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "smoke_probe_failed",
                "crash",
                "target_exited",
                "restart",
                "crash"
            ]
        );
        assert!(matches!(
            &t.events[0].kind,
            TimelineEventKind::SmokeProbeFailed { pipeline, .. } if pipeline == "p1"
        ));
    }

    #[test]
    fn events_past_the_cap_are_counted_not_kept() {
        let mut r = started(Duration::from_secs(10));
        for i in 0..(Timeline::MAX_EVENTS as u64 + 5) {
            r.apply(
                &Event::TargetExited {
                    at: ms(i),
                    status: "exit 1".into(),
                },
                name,
            );
        }
        let t = r.finish(Duration::from_secs(10));
        assert_eq!(t.events.len(), Timeline::MAX_EVENTS);
        assert_eq!(t.events_dropped, 5);
    }

    #[test]
    fn a_run_that_never_started_has_no_intervals() {
        let r = TimelineRecorder::new(&["a".into()]);
        let t = r.finish(Duration::ZERO);
        assert!(t.pipelines[0].intervals.is_empty());
    }
}
