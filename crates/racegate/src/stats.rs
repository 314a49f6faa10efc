//! Wait and hold histograms, per-label figures, current holders, and the [`GateStats`] snapshot.
//!
//! All bookkeeping for one gate sits behind one short `std::sync::Mutex`, taken when a guard is
//! granted; a release is published without it and folded in by the next lock holder (see
//! `Stats`). Holders are few (at most the gate's capacity), so the lock is almost never
//! contended; the benchmark in `benches/gate_ratio.rs` measures its cost.
//!
//! Times come from `StatsClock`, not `std::time::Instant`: with `clock_gettime` the two clock
//! reads per acquisition were most of the bookkeeping's cost, and a TSC read is about 2.4×
//! cheaper (`BENCHMARKS.md`).

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::holder::{fmt_duration, Holder};

/// What an acquisition is for (`"vision"`, `"text"`, a test name): shown in stats and errors.
///
/// Built from a `&'static str` without allocating, or from a `String`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Label(Cow<'static, str>);

impl Label {
    /// The label's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Pointer comparison first: labels are usually the same `&'static str` literal.
    fn same(&self, other: &Label) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
    }
}

impl From<&'static str> for Label {
    fn from(s: &'static str) -> Self {
        Label(Cow::Borrowed(s))
    }
}

impl From<String> for Label {
    fn from(s: String) -> Self {
        Label(Cow::Owned(s))
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Percentiles of one histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let d = |ns: u64| Duration::from_nanos(ns);
        Percentiles {
            count: h.len(),
            p50: d(h.value_at_quantile(0.50)),
            p90: d(h.value_at_quantile(0.90)),
            p99: d(h.value_at_quantile(0.99)),
            max: d(h.max()),
        }
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50={} p90={} p99={} max={}",
            self.count,
            fmt_duration(self.p50),
            fmt_duration(self.p90),
            fmt_duration(self.p99),
            fmt_duration(self.max)
        )
    }
}

/// Figures for one label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelStats {
    /// The label.
    pub label: String,
    /// Grants with this label.
    pub acquisitions: u64,
    /// Timed-out acquisitions with this label.
    pub timeouts: u64,
    /// Time from asking to being granted.
    pub wait: Percentiles,
    /// Time from being granted to releasing (completed holds only).
    pub hold: Percentiles,
}

/// A snapshot of one gate's in-process figures, from [`Gate::stats`](crate::Gate::stats).
///
/// *Stats* are what this process saw; the machine-wide *status* of a
/// [`MachineGate`](crate::MachineGate) (holders, waiters and history across every process, read
/// from its lock directory) is a [`MachineStatus`](crate::machine::MachineStatus).
///
/// Durations come from HDR histograms (2 significant digits, 1 ns to 1 hour; longer samples are
/// clamped to 1 hour). Wait times include the machine-wide backend's wait, if the gate has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateStats {
    /// The gate's name.
    pub name: String,
    /// How many units the gate has.
    pub capacity: u32,
    /// Units free at the moment of the snapshot.
    pub available: u32,
    /// Whether bookkeeping is on. When off, only `timeouts`, `panics_while_held`, `waiters` and
    /// `available` are maintained.
    pub enabled: bool,
    /// Grants so far.
    pub acquisitions: u64,
    /// Timed-out acquisitions so far.
    pub timeouts: u64,
    /// Guards dropped while their thread was panicking (the gate was released, never poisoned).
    pub panics_while_held: u64,
    /// Callers queued right now.
    pub waiters: usize,
    /// Who holds the gate right now, longest-held first.
    pub holders: Vec<Holder>,
    /// Wait time, all acquisitions.
    pub wait: Percentiles,
    /// Hold time, all completed holds.
    pub hold: Percentiles,
    /// Per-label figures, in order of first appearance. The first 64 distinct labels get their
    /// own entry; later new labels are counted together under `"(other labels)"` (holders and
    /// errors still show each caller's own label).
    pub labels: Vec<LabelStats>,
}

impl fmt::Display for GateStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gate `{}`: capacity {}, available {}, acquisitions {}, timeouts {}, panics while held {}, waiters {}",
            self.name,
            self.capacity,
            self.available,
            self.acquisitions,
            self.timeouts,
            self.panics_while_held,
            self.waiters
        )?;
        if !self.enabled {
            writeln!(f, "  (stats are off: no histograms or holders)")?;
        }
        for h in &self.holders {
            writeln!(f, "  holder: {h}")?;
        }
        writeln!(f, "  wait: {}", self.wait)?;
        writeln!(f, "  hold: {}", self.hold)?;
        for l in &self.labels {
            writeln!(
                f,
                "  `{}`: acquisitions {}, timeouts {}\n    wait: {}\n    hold: {}",
                l.label, l.acquisitions, l.timeouts, l.wait, l.hold
            )?;
        }
        Ok(())
    }
}

const MAX_NS: u64 = 3_600_000_000_000;

/// A point in time on [`StatsClock`]; only ever compared with another from the same clock.
pub(crate) type Stamp = quanta::Instant;

/// The clock of the stats: `quanta`'s calibrated counter (`rdtsc` on x86-64 with an invariant
/// TSC, `cntvct_el0` on arm64; `clock_gettime(CLOCK_MONOTONIC)` where neither is usable), so
/// nanosecond resolution like `std::time::Instant` at about 9 ns a read instead of 21–28 ns
/// (`BENCHMARKS.md`). Coarse clocks (`CLOCK_MONOTONIC_COARSE`, `quanta::Instant::recent`) are not
/// an option: their millisecond steps would make sub-millisecond percentiles meaningless.
///
/// Calibrating the counter against the OS clock costs about 0.6 ms of one thread, once per
/// process, when the first gate with stats is built; later gates copy the calibrated clock.
#[derive(Clone, Debug)]
pub(crate) struct StatsClock(quanta::Clock);

impl StatsClock {
    /// The process-wide calibrated clock.
    pub(crate) fn get() -> StatsClock {
        // `Clock::new` runs CPUID (a VM exit, ~16 µs) even after calibration: do it once.
        static CLOCK: OnceLock<StatsClock> = OnceLock::new();
        CLOCK
            .get_or_init(|| StatsClock(quanta::Clock::new()))
            .clone()
    }

    /// A clock the test moves by hand.
    #[cfg(test)]
    pub(crate) fn mock() -> (StatsClock, std::sync::Arc<quanta::Mock>) {
        let (clock, mock) = quanta::Clock::mock();
        (StatsClock(clock), mock)
    }

    #[inline]
    pub(crate) fn now(&self) -> Stamp {
        self.0.now()
    }
}

/// Distinct labels with their own figures; later new labels are counted together.
pub(crate) const MAX_LABELS: usize = 64;
/// The label under which labels past [`MAX_LABELS`] are counted.
pub(crate) const OTHER_LABELS: &str = "(other labels)";

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 2).expect("static histogram bounds are valid")
}

/// Wait times: most grants are immediate (the units were free), so zero waits are counted and
/// folded into the histogram when a snapshot reads it, which saves an HDR record per grant.
struct WaitHistogram {
    hist: Histogram<u64>,
    /// Zero waits not yet in `hist`.
    zeros: u64,
}

impl WaitHistogram {
    fn new() -> Self {
        WaitHistogram {
            hist: histogram(),
            zeros: 0,
        }
    }

    #[inline]
    fn record(&mut self, ns: u64) {
        if ns == 0 {
            self.zeros += 1;
        } else {
            self.hist.saturating_record(ns);
        }
    }

    /// The histogram with the zero waits folded in.
    fn folded(&mut self) -> &Histogram<u64> {
        if self.zeros > 0 {
            self.hist
                .saturating_record_n(0, std::mem::take(&mut self.zeros));
        }
        &self.hist
    }

    fn percentiles(&mut self) -> Percentiles {
        Percentiles::of(self.folded())
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).min(MAX_NS)
}

struct PerLabel {
    label: Label,
    acquisitions: u64,
    timeouts: u64,
    /// Guards of this label dropped while their thread panicked (only read by the
    /// OpenMetrics export; `GateStats` counts them per gate).
    panics: u64,
    wait: WaitHistogram,
    hold: Histogram<u64>,
}

/// Slots below this index publish their release without the stats lock; later ones (only a gate
/// with more than this many holders at once, or zero-unit holders past the capacity) lock.
const FAST_ENTRIES: usize = 64;

/// What a granted guard keeps of its registration: its holder entry and when it was granted.
#[derive(Debug)]
pub(crate) struct Ticket {
    entry: u32,
    since: Stamp,
}

/// The bookkeeping of one gate.
///
/// A grant registers its holder under the lock (snapshots and timeout errors must name it). A
/// release does not lock: the guard's [`Ticket`] has the entry and the grant time, so it computes
/// the hold itself and publishes it in `ended[entry]` with one store. Every lock holder (the next
/// grant, a snapshot, a timeout error, the watchdog) first *reaps* published releases: records
/// the hold and frees the entry. Readers therefore see what a lock taken at release would have
/// shown them, and an acquire+release takes the lock once instead of twice.
pub(crate) struct Stats {
    state: Mutex<StatsState>,
    /// Per fast entry: 0 while held (or free), else 1 + the hold in ns, not yet reaped. Written
    /// once per holding, by its guard; reset under the lock before the entry is reused.
    ended: Box<[AtomicU64]>,
}

impl Stats {
    pub(crate) fn new(capacity: u32) -> Self {
        let fast = (capacity as usize).min(FAST_ENTRIES);
        Stats {
            state: Mutex::new(StatsState::new()),
            ended: (0..fast).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// For a gate with stats off, which never records (every use is behind its clock): no
    /// full-range histograms to allocate and zero. A `racegate run` process takes its gate
    /// once, and zeroing two of them cost more than the lock.
    pub(crate) fn disabled() -> Self {
        let tiny = || Histogram::new(0).expect("an auto-resizing histogram is valid");
        Stats {
            state: Mutex::new(StatsState {
                wait: WaitHistogram {
                    hist: tiny(),
                    zeros: 0,
                },
                hold: tiny(),
                acquisitions: 0,
                labels: Vec::new(),
                holders: Vec::new(),
                free: Vec::new(),
            }),
            ended: Box::new([]),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StatsState> {
        // Bookkeeping never panics while locked, but a poisoned lock must never wedge the gate.
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.reap(&self.ended);
        st
    }

    /// Records a grant and registers the holder.
    pub(crate) fn granted(
        &self,
        label: Option<Label>,
        units: u32,
        waited: Duration,
        now: Stamp,
    ) -> Ticket {
        let entry = self.lock().granted(label, units, waited, now);
        Ticket { entry, since: now }
    }

    /// Records a release at `now`. When the hold passed `warn_over`, returns the holder's label
    /// and hold time for the warning (that rare case takes the lock, to move the label out).
    pub(crate) fn released(
        &self,
        ticket: Ticket,
        now: Stamp,
        warn_over: Option<Duration>,
    ) -> Option<(Option<Label>, Duration)> {
        let held = now.saturating_duration_since(ticket.since);
        let warn = warn_over.is_some_and(|t| held > t);
        match self.ended.get(ticket.entry as usize) {
            Some(ended) if !warn => {
                // Pairs with the Acquire load in `reap`; nothing else of the holder is touched
                // here, so the slab stays lock-protected.
                ended.store(1 + nanos(held), Ordering::Release);
                None
            }
            _ => {
                let label = self.lock().release_entry(ticket.entry, held);
                warn.then_some((label, held))
            }
        }
    }

    /// Current holders, longest-held first.
    pub(crate) fn holders(&self, now: Stamp) -> Vec<Holder> {
        self.lock().holders(now)
    }

    /// Counts a timeout for `label`; returns the current holders for the error.
    pub(crate) fn timed_out(&self, label: Option<&Label>, now: Stamp) -> Vec<Holder> {
        let mut st = self.lock();
        st.timed_out(label);
        st.holders(now)
    }

    /// Holders that have held longer than `threshold` and were not reported yet; marks them.
    pub(crate) fn overdue(&self, threshold: Duration, now: Stamp) -> Vec<Holder> {
        self.lock().overdue(threshold, now)
    }

    /// Fills the histogram-backed parts of a snapshot.
    pub(crate) fn fill(&self, s: &mut GateStats, now: Stamp) {
        self.lock().fill(s, now)
    }

    /// Counts a panic while held against the holder's label (the gate-wide count is the
    /// grant path's). Only on the panicking path, so it may lock.
    pub(crate) fn panicked(&self, ticket: &Ticket) {
        let mut st = self.lock();
        let idx = st
            .holders
            .get(ticket.entry as usize)
            .and_then(Option::as_ref)
            .and_then(|h| h.label_idx);
        if let Some(i) = idx {
            st.labels[i].panics += 1;
        }
    }

    /// The figures of an OpenMetrics scrape: the whole gate first (label `None`), then each
    /// label; histograms as counts per bucket of `bounds_ns` (plus one past the last bound).
    #[cfg(feature = "metrics")]
    pub(crate) fn families(&self, bounds_ns: &[u64]) -> Vec<Family> {
        let mut st = self.lock();
        let mut holders: std::collections::HashMap<Option<usize>, u64> = Default::default();
        for h in st.holders.iter().flatten() {
            *holders.entry(h.label_idx).or_default() += 1;
        }
        let StatsState {
            acquisitions,
            wait,
            hold,
            labels,
            ..
        } = &mut *st;
        let mut out = vec![Family {
            label: None,
            acquisitions: *acquisitions,
            timeouts: 0,
            panics: 0,
            holders: holders.values().sum(),
            wait: Buckets::of(wait.folded(), bounds_ns),
            hold: Buckets::of(hold, bounds_ns),
        }];
        out.extend(labels.iter_mut().enumerate().map(|(i, l)| Family {
            label: Some(l.label.as_str().to_owned()),
            acquisitions: l.acquisitions,
            timeouts: l.timeouts,
            panics: l.panics,
            holders: holders.get(&Some(i)).copied().unwrap_or(0),
            wait: Buckets::of(l.wait.folded(), bounds_ns),
            hold: Buckets::of(&l.hold, bounds_ns),
        }));
        out
    }
}

/// One histogram as OpenMetrics buckets.
#[cfg(feature = "metrics")]
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Buckets {
    /// Samples per bucket (not cumulative): one per bound, then the rest (`+Inf`).
    pub(crate) counts: Vec<u64>,
    /// Samples.
    pub(crate) count: u64,
    /// Their sum in seconds, from the histogram (within its 1% precision).
    pub(crate) sum_secs: f64,
}

#[cfg(feature = "metrics")]
impl Buckets {
    fn of(h: &Histogram<u64>, bounds_ns: &[u64]) -> Buckets {
        let mut counts = vec![0; bounds_ns.len() + 1];
        for v in h.iter_recorded() {
            // A histogram bucket counts as below a bound when it starts at or below it.
            let low = h.lowest_equivalent(v.value_iterated_to());
            counts[bounds_ns.partition_point(|&b| b < low)] += v.count_at_value();
        }
        Buckets {
            counts,
            count: h.len(),
            sum_secs: if h.is_empty() {
                0.0
            } else {
                h.mean() * h.len() as f64 / 1e9
            },
        }
    }

    /// What `self` has beyond `other` (the unlabeled part of a gate's histogram).
    pub(crate) fn minus(&self, other: &Buckets) -> Buckets {
        Buckets {
            counts: self
                .counts
                .iter()
                .zip(other.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            count: self.count.saturating_sub(other.count),
            sum_secs: (self.sum_secs - other.sum_secs).max(0.0),
        }
    }
}

/// One label's figures (or the whole gate's, `label: None`) for an OpenMetrics scrape.
#[cfg(feature = "metrics")]
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Family {
    pub(crate) label: Option<String>,
    pub(crate) acquisitions: u64,
    /// Per label only: a gate's own count is the grant path's.
    pub(crate) timeouts: u64,
    /// Per label only, likewise.
    pub(crate) panics: u64,
    pub(crate) holders: u64,
    pub(crate) wait: Buckets,
    pub(crate) hold: Buckets,
}

struct HolderEntry {
    label: Option<Label>,
    label_idx: Option<usize>,
    units: u32,
    since: Stamp,
    /// The hold-warning watchdog already reported this holder while it held.
    warned: bool,
}

/// The mutable bookkeeping of one gate (behind the stats mutex).
struct StatsState {
    acquisitions: u64,
    wait: WaitHistogram,
    hold: Histogram<u64>,
    labels: Vec<PerLabel>,
    /// A slab: a guard keeps its entry index; freed entries are reused.
    holders: Vec<Option<HolderEntry>>,
    free: Vec<u32>,
}

impl StatsState {
    fn new() -> Self {
        StatsState {
            acquisitions: 0,
            wait: WaitHistogram::new(),
            hold: histogram(),
            labels: Vec::new(),
            holders: Vec::new(),
            free: Vec::new(),
        }
    }

    fn label_idx(&mut self, label: &Label) -> usize {
        if let Some(i) = self.labels.iter().position(|l| l.label.same(label)) {
            return i;
        }
        // Labels are meant to be a few pipeline names; a caller that labels by request id must
        // not grow the stats without bound (each label keeps two histograms).
        let label = if self.labels.len() < MAX_LABELS {
            label.clone()
        } else {
            let other = Label::from(OTHER_LABELS);
            if let Some(i) = self.labels.iter().position(|l| l.label.same(&other)) {
                return i;
            }
            other
        };
        self.labels.push(PerLabel {
            label,
            acquisitions: 0,
            timeouts: 0,
            panics: 0,
            wait: WaitHistogram::new(),
            hold: histogram(),
        });
        self.labels.len() - 1
    }

    /// Records a grant and registers the holder; returns its entry.
    fn granted(&mut self, label: Option<Label>, units: u32, waited: Duration, now: Stamp) -> u32 {
        let ns = nanos(waited);
        self.acquisitions += 1;
        self.wait.record(ns);
        let label_idx = label.as_ref().map(|l| {
            let i = self.label_idx(l);
            let pl = &mut self.labels[i];
            pl.acquisitions += 1;
            pl.wait.record(ns);
            i
        });
        let holder = HolderEntry {
            label,
            label_idx,
            units,
            since: now,
            warned: false,
        };
        match self.free.pop() {
            Some(entry) => {
                self.holders[entry as usize] = Some(holder);
                entry
            }
            None => {
                self.holders.push(Some(holder));
                (self.holders.len() - 1) as u32
            }
        }
    }

    /// Folds in the releases published without the lock.
    fn reap(&mut self, ended: &[AtomicU64]) {
        let n = ended.len().min(self.holders.len());
        for (entry, e) in ended[..n].iter().enumerate() {
            let v = e.load(Ordering::Acquire);
            if v != 0 {
                // The entry's next owner is registered under this lock, after this reset.
                e.store(0, Ordering::Relaxed);
                self.release_entry(entry as u32, Duration::from_nanos(v - 1));
            }
        }
    }

    /// Records a hold of `held` and frees the entry; returns the holder's label.
    fn release_entry(&mut self, entry: u32, held: Duration) -> Option<Label> {
        let holder = self
            .holders
            .get_mut(entry as usize)
            .and_then(Option::take)?;
        self.free.push(entry);
        let ns = nanos(held);
        self.hold.saturating_record(ns);
        if let Some(i) = holder.label_idx {
            self.labels[i].hold.saturating_record(ns);
        }
        holder.label
    }

    fn overdue(&mut self, threshold: Duration, now: Stamp) -> Vec<Holder> {
        let mut out = Vec::new();
        for h in self.holders.iter_mut().flatten() {
            let held_for = now.saturating_duration_since(h.since);
            if !h.warned && held_for > threshold {
                h.warned = true;
                out.push(Holder {
                    label: h.label.as_ref().map(|l| l.as_str().to_owned()),
                    units: h.units,
                    held_for,
                });
            }
        }
        out
    }

    fn timed_out(&mut self, label: Option<&Label>) {
        if let Some(l) = label {
            let i = self.label_idx(l);
            self.labels[i].timeouts += 1;
        }
    }

    fn holders(&self, now: Stamp) -> Vec<Holder> {
        let mut v: Vec<Holder> = self
            .holders
            .iter()
            .flatten()
            .map(|h| Holder {
                label: h.label.as_ref().map(|l| l.as_str().to_owned()),
                units: h.units,
                held_for: now.saturating_duration_since(h.since),
            })
            .collect();
        v.sort_by_key(|h| std::cmp::Reverse(h.held_for));
        v
    }

    fn fill(&mut self, s: &mut GateStats, now: Stamp) {
        s.acquisitions = self.acquisitions;
        s.holders = self.holders(now);
        s.wait = self.wait.percentiles();
        s.hold = Percentiles::of(&self.hold);
        s.labels = self
            .labels
            .iter_mut()
            .map(|l| LabelStats {
                label: l.label.as_str().to_owned(),
                acquisitions: l.acquisitions,
                timeouts: l.timeouts,
                wait: l.wait.percentiles(),
                hold: Percentiles::of(&l.hold),
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn snapshot(stats: &Stats, now: Stamp) -> GateStats {
        let mut s = GateStats {
            name: "g".into(),
            capacity: 1,
            available: 1,
            enabled: true,
            acquisitions: 0,
            timeouts: 0,
            panics_while_held: 0,
            waiters: 0,
            holders: Vec::new(),
            wait: Percentiles::default(),
            hold: Percentiles::default(),
            labels: Vec::new(),
        };
        stats.fill(&mut s, now);
        s
    }

    /// 2 significant digits: within 1% of the recorded value.
    fn near(d: Duration, want: Duration) -> bool {
        d.max(want) - d.min(want) <= want / 100
    }

    #[test]
    fn hold_and_wait_are_measured_on_the_stats_clock() {
        let (clock, mock) = StatsClock::mock();
        let stats = Stats::new(1);
        mock.increment(ms(1));
        let ticket = stats.granted(Some(Label::from("vision")), 1, ms(3), clock.now());
        mock.increment(ms(5));
        let holders = stats.holders(clock.now());
        assert_eq!(holders.len(), 1);
        assert_eq!(holders[0].label.as_deref(), Some("vision"));
        assert_eq!(holders[0].held_for, ms(5));
        assert!(stats.overdue(ms(6), clock.now()).is_empty());
        mock.increment(ms(2));
        let overdue = stats.overdue(ms(6), clock.now());
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].held_for, ms(7));
        assert!(
            stats.overdue(ms(6), clock.now()).is_empty(),
            "reported once"
        );
        assert_eq!(stats.released(ticket, clock.now(), Some(ms(8))), None);

        let s = snapshot(&stats, clock.now());
        assert_eq!(s.acquisitions, 1);
        assert!(s.holders.is_empty());
        assert!(near(s.wait.max, ms(3)), "{:?}", s.wait);
        assert!(near(s.hold.p50, ms(7)), "{:?}", s.hold);
        assert_eq!(s.labels.len(), 1);
        assert!(near(s.labels[0].hold.max, ms(7)), "{:?}", s.labels[0]);
    }

    #[test]
    fn lock_free_releases_are_folded_in_once_and_entries_reused() {
        let (clock, mock) = StatsClock::mock();
        let stats = Stats::new(2);
        let a = stats.granted(None, 1, Duration::ZERO, clock.now());
        let b = stats.granted(Some(Label::from("text")), 1, Duration::ZERO, clock.now());
        assert_eq!((a.entry, b.entry), (0, 1));
        mock.increment(ms(4));
        assert_eq!(stats.released(a, clock.now(), None), None);
        // The release is visible to every reader, though no lock was taken for it.
        let holders = stats.holders(clock.now());
        assert_eq!(holders.len(), 1);
        assert_eq!(holders[0].label.as_deref(), Some("text"));
        let s = snapshot(&stats, clock.now());
        assert_eq!((s.acquisitions, s.hold.count), (2, 1));
        assert!(near(s.hold.max, ms(4)), "{:?}", s.hold);
        // Reaped once: a second snapshot adds nothing.
        assert_eq!(snapshot(&stats, clock.now()).hold.count, 1);

        let c = stats.granted(None, 1, ms(2), clock.now());
        assert_eq!(c.entry, 0, "the reaped entry is reused");
        assert_eq!(
            stats.holders(clock.now()).len(),
            2,
            "its new holder is not retired"
        );
        mock.increment(ms(1));
        assert_eq!(stats.released(b, clock.now(), None), None);
        assert_eq!(stats.released(c, clock.now(), None), None);
        let s = snapshot(&stats, clock.now());
        assert!(s.holders.is_empty());
        assert_eq!((s.acquisitions, s.hold.count, s.wait.count), (3, 3, 3));
        // Two immediate grants (counted, folded in as zeros) and one 2 ms wait.
        assert_eq!(s.wait.p50, Duration::ZERO);
        assert!(near(s.wait.max, ms(2)), "{:?}", s.wait);
        assert_eq!(s.labels[0].hold.count, 1);
        assert!(near(s.labels[0].hold.max, ms(5)), "{:?}", s.labels[0]);
    }

    #[test]
    fn concurrent_grants_releases_and_snapshots_stay_consistent() {
        const THREADS: usize = 8;
        const ROUNDS: usize = 2_000;
        let clock = StatsClock::get();
        // Capacity 3: threads past it land on the locking overflow entries, so both paths race.
        let stats = Stats::new(3);
        /// Counts a worker as finished also when it panics, so the snapshot loop always ends.
        struct Finished<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let done = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for t in 0..THREADS {
                let (stats, clock, done) = (&stats, &clock, &done);
                sc.spawn(move || {
                    let _finished = Finished(done);
                    let label = Label::from(format!("t{t}"));
                    for _ in 0..ROUNDS {
                        let ticket =
                            stats.granted(Some(label.clone()), 1, Duration::ZERO, clock.now());
                        // While it holds, it is listed (a stale release must never retire it).
                        let holders = stats.holders(clock.now());
                        assert!(
                            holders
                                .iter()
                                .any(|h| h.label.as_deref() == Some(label.as_str())),
                            "{label} holds but is not listed: {holders:?}"
                        );
                        stats.released(ticket, clock.now(), None);
                    }
                });
            }
            sc.spawn(|| {
                // Every acquisition is either a current holder or a recorded hold, in every
                // snapshot; a release lost or counted twice breaks this.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while done.load(Ordering::Relaxed) < THREADS && std::time::Instant::now() < deadline
                {
                    let s = snapshot(&stats, clock.now());
                    assert_eq!(s.acquisitions, s.hold.count + s.holders.len() as u64, "{s}");
                    assert!(s.holders.len() <= THREADS, "{s}");
                }
            });
        });
        let s = snapshot(&stats, clock.now());
        let total = (THREADS * ROUNDS) as u64;
        assert_eq!(
            (s.acquisitions, s.hold.count, s.wait.count),
            (total, total, total)
        );
        assert!(s.holders.is_empty());
        assert_eq!(s.labels.iter().map(|l| l.hold.count).sum::<u64>(), total);
        // Each thread has at most one entry (held, or released and not yet reaped) at a time.
        assert!(stats.state.lock().unwrap().holders.len() <= THREADS);
    }

    #[test]
    fn warned_and_overflow_releases_take_the_lock() {
        let (clock, mock) = StatsClock::mock();
        let stats = Stats::new(1);
        let a = stats.granted(Some(Label::from("vision")), 1, Duration::ZERO, clock.now());
        // A zero-unit holder past the capacity gets a entry past the lock-free ones.
        let z = stats.granted(None, 0, Duration::ZERO, clock.now());
        assert_eq!(z.entry, 1);
        mock.increment(ms(7));
        assert_eq!(stats.released(z, clock.now(), None), None);
        let warned = stats.released(a, clock.now(), Some(ms(5)));
        let (label, held) = warned.expect("held past the threshold");
        assert_eq!(label.as_ref().map(Label::as_str), Some("vision"));
        assert_eq!(held, ms(7));
        let s = snapshot(&stats, clock.now());
        assert!(s.holders.is_empty());
        assert_eq!((s.acquisitions, s.hold.count), (2, 2));
    }
}
