//! OpenMetrics for every gate of the process (feature `metrics`), for Prometheus to scrape.
//!
//! [`GateCollector`] is a [`prometheus_client`] collector: register it in your registry, or call
//! [`render`] for the whole text of a `/metrics` answer. It lists every live gate: the
//! process-wide ones ([`global`](crate::global), [`configure`](crate::configure), the
//! machine-wide globals) and those passed to [`register`]. Figures are read at scrape time from
//! the gates' own stats, so exporting costs nothing between scrapes: histogram buckets are
//! derived from the stats' HDR histograms (2 significant digits), not counted on the hot path.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `racegate_gate_acquisitions_total` | counter | `gate`, `label` |
//! | `racegate_gate_timeouts_total` | counter | `gate`, `label` |
//! | `racegate_gate_panics_total` (guards dropped while their thread panicked) | counter | `gate`, `label` |
//! | `racegate_gate_wait_seconds` (asking to granted) | histogram | `gate`, `label` |
//! | `racegate_gate_hold_seconds` (granted to released, completed holds) | histogram | `gate`, `label` |
//! | `racegate_gate_holders` | gauge | `gate`, `label` |
//! | `racegate_gate_waiters` | gauge | `gate` |
//! | `racegate_gate_capacity_units`, `racegate_gate_available_units` | gauge | `gate` |
//!
//! Acquisitions without a label are under `label="(unlabeled)"`. A gate with stats off
//! ([`GateConfig::with_stats`](crate::GateConfig::with_stats)) has no acquisitions, holders or
//! histograms; its timeouts and panics are all `(unlabeled)`. Two live gates with one name are
//! told apart as `name`, `name#2`, ...
//!
//! ```
//! use racegate::{metrics, Gate};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let gpu = Gate::new("doc-metrics-gpu");
//! metrics::register(&gpu); // a gate made with `Gate::new`; globals are listed by themselves
//! drop(gpu.labeled("vision").acquire().await);
//!
//! let text = metrics::render();
//! assert!(text.contains(
//!     r#"racegate_gate_acquisitions_total{gate="doc-metrics-gpu",label="vision"} 1"#
//! ));
//! assert!(text.ends_with("# EOF\n"));
//! # }
//! ```

use std::fmt::{self, Write as _};
use std::sync::{Mutex, PoisonError, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::gate::Gate;
use crate::stats::{Buckets, Family};

/// Upper bounds of the wait and hold histograms' buckets, in seconds (then `+Inf`): from the
/// microseconds of an uncontended grant to the minutes of a stuck holder.
pub const BUCKETS_SECONDS: [f64; 21] = [
    0.000_001, 0.000_01, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The label value of acquisitions made without a label.
pub const UNLABELED: &str = "(unlabeled)";

/// What a scrape reads of one gate (filled in `gate/mod.rs`).
pub(crate) struct Scrape {
    pub(crate) waiters: u64,
    pub(crate) timeouts: u64,
    pub(crate) panics: u64,
    /// The whole gate, then each label; `None` with stats off.
    pub(crate) families: Option<Vec<Family>>,
}

fn registered() -> &'static Mutex<Vec<Weak<crate::gate::GateInner>>> {
    static REGISTERED: Mutex<Vec<Weak<crate::gate::GateInner>>> = Mutex::new(Vec::new());
    &REGISTERED
}

/// Export `gate` too (gates made with [`Gate::new`] or [`Gate::with_config`]; the process-wide
/// gates are exported without it). The export does not keep the gate alive: once every handle
/// is dropped, it is no longer listed. Registering a gate twice lists it once.
pub fn register(gate: &Gate) {
    let mut list = registered().lock().unwrap_or_else(PoisonError::into_inner);
    list.retain(|w| w.strong_count() > 0);
    let weak = gate.downgrade();
    if !list.iter().any(|w| w.ptr_eq(&weak)) {
        list.push(weak);
    }
}

/// Every live exported gate: the process-wide ones, then the registered ones, each once, sorted
/// by name (stable, so a gate keeps its `#n` between scrapes while the set does not change).
fn gates() -> Vec<Gate> {
    let mut out: Vec<Gate> = crate::global::all().into_iter().cloned().collect();
    {
        let mut list = registered().lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|w| w.strong_count() > 0);
        for g in list.iter().filter_map(Gate::upgrade) {
            if !out.iter().any(|o| o.same_gate(&g)) {
                out.push(g);
            }
        }
    }
    out.sort_by(|a, b| a.name().cmp(b.name()));
    out
}

/// One label's row of one gate, ready to encode.
struct Row {
    label: String,
    acquisitions: Option<u64>,
    timeouts: u64,
    panics: u64,
    holders: Option<u64>,
    wait: Option<Buckets>,
    hold: Option<Buckets>,
}

/// One gate, ready to encode.
struct GateRows {
    name: String,
    capacity: u64,
    available: u64,
    waiters: u64,
    rows: Vec<Row>,
}

fn bounds_ns() -> Vec<u64> {
    BUCKETS_SECONDS
        .iter()
        .map(|s| (s * 1e9).round() as u64)
        .collect()
}

fn rows(gate: &Gate, bounds_ns: &[u64]) -> GateRows {
    let scrape = gate.scrape(bounds_ns);
    let mut rows = Vec::new();
    match scrape.families {
        Some(families) => {
            let mut it = families.into_iter();
            let all = it.next().unwrap_or_default();
            let labels: Vec<Family> = it.collect();
            let mut rest = Row {
                label: UNLABELED.to_string(),
                acquisitions: Some(all.acquisitions),
                timeouts: scrape.timeouts,
                panics: scrape.panics,
                holders: Some(all.holders),
                wait: Some(all.wait.clone()),
                hold: Some(all.hold.clone()),
            };
            for l in labels {
                rest.acquisitions = rest.acquisitions.map(|a| a.saturating_sub(l.acquisitions));
                rest.timeouts = rest.timeouts.saturating_sub(l.timeouts);
                rest.panics = rest.panics.saturating_sub(l.panics);
                rest.holders = rest.holders.map(|h| h.saturating_sub(l.holders));
                rest.wait = rest.wait.map(|w| w.minus(&l.wait));
                rest.hold = rest.hold.map(|h| h.minus(&l.hold));
                rows.push(Row {
                    label: l.label.unwrap_or_else(|| UNLABELED.to_string()),
                    acquisitions: Some(l.acquisitions),
                    timeouts: l.timeouts,
                    panics: l.panics,
                    holders: Some(l.holders),
                    wait: Some(l.wait),
                    hold: Some(l.hold),
                });
            }
            // The unlabeled row, when something happened without a label (or nothing at all
            // happened yet: a gate always has its series).
            let used = rest.acquisitions != Some(0)
                || rest.timeouts > 0
                || rest.panics > 0
                || rest.holders != Some(0);
            if used || rows.is_empty() {
                rows.insert(0, rest);
            }
        }
        None => rows.push(Row {
            label: UNLABELED.to_string(),
            acquisitions: None,
            timeouts: scrape.timeouts,
            panics: scrape.panics,
            holders: None,
            wait: None,
            hold: None,
        }),
    }
    GateRows {
        name: gate.name().to_string(),
        capacity: u64::from(gate.capacity()),
        available: u64::from(gate.available()),
        waiters: scrape.waiters,
        rows,
    }
}

/// Exports every live gate; see the [module](self) documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct GateCollector;

impl GateCollector {
    /// A collector of every live gate.
    pub fn new() -> GateCollector {
        GateCollector
    }
}

fn histogram_pairs(b: &Buckets) -> Vec<(f64, u64)> {
    BUCKETS_SECONDS
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(b.counts.iter().copied())
        .collect()
}

impl Collector for GateCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let bounds = bounds_ns();
        let mut gates: Vec<GateRows> = gates().iter().map(|g| rows(g, &bounds)).collect();
        // Two live gates with one name: later ones become `name#2`, ...
        for i in 1..gates.len() {
            let name = gates[i].name.clone();
            let same = gates[..i]
                .iter()
                .filter(|g| g.name == name || g.name.starts_with(&format!("{name}#")))
                .count();
            if same > 0 {
                gates[i].name = format!("{name}#{}", same + 1);
            }
        }
        type Counter = fn(&Row) -> Option<u64>;
        let counters: [(&str, &str, Counter); 3] = [
            (
                "racegate_gate_acquisitions",
                "Grants of the gate.",
                |r| r.acquisitions,
            ),
            (
                "racegate_gate_timeouts",
                "Acquisitions that timed out.",
                |r| Some(r.timeouts),
            ),
            (
                "racegate_gate_panics",
                "Guards dropped while their thread panicked (the gate was released, never poisoned).",
                |r| Some(r.panics),
            ),
        ];
        for (name, help, value) in counters {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for g in &gates {
                for r in &g.rows {
                    if let Some(v) = value(r) {
                        let labels = [("gate", g.name.as_str()), ("label", r.label.as_str())];
                        m.encode_family(&labels)?
                            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
                    }
                }
            }
        }
        type Hist = fn(&Row) -> Option<&Buckets>;
        let histograms: [(&str, &str, Hist); 2] = [
            (
                "racegate_gate_wait_seconds",
                "Time from asking for the gate to being granted it.",
                |r| r.wait.as_ref(),
            ),
            (
                "racegate_gate_hold_seconds",
                "Time from being granted the gate to releasing it (completed holds).",
                |r| r.hold.as_ref(),
            ),
        ];
        for (name, help, value) in histograms {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for g in &gates {
                for r in &g.rows {
                    if let Some(b) = value(r) {
                        let labels = [("gate", g.name.as_str()), ("label", r.label.as_str())];
                        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                            b.sum_secs,
                            b.count,
                            &histogram_pairs(b),
                            None,
                        )?;
                    }
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "racegate_gate_holders",
            "Holders right now.",
            None,
            MetricType::Gauge,
        )?;
        for g in &gates {
            for r in &g.rows {
                if let Some(v) = r.holders {
                    let labels = [("gate", g.name.as_str()), ("label", r.label.as_str())];
                    m.encode_family(&labels)?.encode_gauge(&v)?;
                }
            }
        }
        type Gauge = fn(&GateRows) -> u64;
        let gauges: [(&str, &str, Gauge); 3] = [
            (
                "racegate_gate_waiters",
                "Callers queued for the gate right now.",
                |g| g.waiters,
            ),
            (
                "racegate_gate_capacity_units",
                "Units of the gate's capacity.",
                |g| g.capacity,
            ),
            (
                "racegate_gate_available_units",
                "Units free right now.",
                |g| g.available,
            ),
        ];
        for (name, help, value) in gauges {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for g in &gates {
                m.encode_family(&[("gate", g.name.as_str())])?
                    .encode_gauge(&value(g))?;
            }
        }
        Ok(())
    }
}

/// The OpenMetrics text of every live gate, ending in `# EOF`: the body of a `/metrics`
/// answer (content type `application/openmetrics-text; version=1.0.0; charset=utf-8`).
pub fn render() -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(GateCollector));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        // Encoding into a String fails only on a collector error, and ours has none; say so
        // in the text rather than panicking a server's handler.
        out.clear();
        let _ = writeln!(out, "# racegate: the gates could not be encoded\n# EOF");
    }
    out
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GateConfig;
    use std::time::Duration;

    fn lines_for<'a>(text: &'a str, gate: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.contains(&format!("gate=\"{gate}\"")))
            .collect()
    }

    /// The value of the sample `name{labels}` (labels in any order), parsed from the text.
    fn value(text: &str, series: &str) -> f64 {
        let parse = |s: &str| -> (String, Vec<String>) {
            let (name, rest) = s.split_once('{').unwrap_or((s, "}"));
            let body = rest.trim_end_matches('}');
            // Label values here hold no `,` or `"` of their own.
            let mut labels: Vec<String> = body
                .split(',')
                .filter(|l| !l.is_empty())
                .map(
                    |l| match l.strip_prefix("le=\"").map(|v| v.trim_end_matches('"')) {
                        // Bounds compare as numbers (`0.000001` is `1e-6`).
                        Some(v) if v != "+Inf" => format!("le={:?}", v.parse::<f64>().unwrap()),
                        _ => l.to_string(),
                    },
                )
                .collect();
            labels.sort();
            (name.to_string(), labels)
        };
        let want = parse(series);
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (s, v) = l.rsplit_once(' ')?;
                (parse(s) == want).then(|| v.parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
    }

    #[tokio::test]
    async fn labels_and_the_unlabeled_rest_add_up() {
        let gate = Gate::new("metrics-test-add-up");
        register(&gate);
        for _ in 0..3 {
            drop(gate.labeled("vision").acquire().await);
        }
        drop(gate.acquire().await);
        let held = gate.labeled("text").acquire().await;
        let text = render();
        let g = "gate=\"metrics-test-add-up\"";
        let v = |s: &str| value(&text, &s.replace("G", g));
        assert_eq!(
            v(r#"racegate_gate_acquisitions_total{G,label="vision"}"#),
            3.0
        );
        assert_eq!(
            v(r#"racegate_gate_acquisitions_total{G,label="text"}"#),
            1.0
        );
        assert_eq!(
            v(r#"racegate_gate_acquisitions_total{G,label="(unlabeled)"}"#),
            1.0
        );
        assert_eq!(v(r#"racegate_gate_holders{G,label="text"}"#), 1.0);
        assert_eq!(v(r#"racegate_gate_holders{G,label="vision"}"#), 0.0);
        assert_eq!(
            v(r#"racegate_gate_hold_seconds_count{G,label="vision"}"#),
            3.0
        );
        assert_eq!(
            v(r#"racegate_gate_hold_seconds_bucket{G,label="vision",le="+Inf"}"#),
            3.0
        );
        assert_eq!(
            v(r#"racegate_gate_wait_seconds_count{G,label="(unlabeled)"}"#),
            1.0
        );
        assert_eq!(v(r#"racegate_gate_capacity_units{G}"#), 1.0);
        assert_eq!(v(r#"racegate_gate_available_units{G}"#), 0.0);
        assert_eq!(v(r#"racegate_gate_waiters{G}"#), 0.0);
        drop(held);
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn timeouts_and_waits_land_in_their_buckets() {
        let gate = Gate::new("metrics-test-timeouts");
        register(&gate);
        let held = gate.acquire().await;
        let err = gate
            .labeled("late")
            .acquire_timeout(Duration::from_millis(30))
            .await;
        assert!(err.is_err());
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move { drop(gate.labeled("late").acquire().await) })
        };
        // The waiter is queued once the gauge says so (polled with a deadline, no sleep as
        // synchronization).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while gate.stats().waiters == 0 {
            assert!(std::time::Instant::now() < deadline, "never queued");
            tokio::task::yield_now().await;
        }
        let text = render();
        let g = "gate=\"metrics-test-timeouts\"";
        let v = |s: &str| value(&text, &s.replace("G", g));
        assert_eq!(v(r#"racegate_gate_timeouts_total{G,label="late"}"#), 1.0);
        assert_eq!(v(r#"racegate_gate_waiters{G}"#), 1.0);
        drop(held);
        waiting.await.unwrap();
        let text = render();
        let v = |s: &str| value(&text, &s.replace("G", g));
        // The late waiter waited at least ~0 s and it is counted in a bucket at or below
        // +Inf, and buckets are cumulative.
        let mut last = 0.0;
        for le in BUCKETS_SECONDS
            .iter()
            .map(|b| format!("{b:?}"))
            .chain(["+Inf".to_string()])
        {
            let c = v(&format!(
                r#"racegate_gate_wait_seconds_bucket{{G,label="late",le="{le}"}}"#
            ));
            assert!(c >= last, "cumulative: {le} {c} < {last}");
            last = c;
        }
        assert_eq!(last, 1.0);
    }

    #[test]
    fn panics_are_counted_per_label() {
        let gate = Gate::new("metrics-test-panics");
        register(&gate);
        let g2 = gate.clone();
        let _ = std::thread::spawn(move || {
            let _guard = g2.labeled("boom").acquire_blocking();
            panic!("on purpose");
        })
        .join();
        let text = render();
        let g = "gate=\"metrics-test-panics\"";
        assert_eq!(
            value(
                &text,
                &format!(r#"racegate_gate_panics_total{{{g},label="boom"}}"#)
            ),
            1.0
        );
    }

    #[test]
    fn dropped_gates_leave_and_stats_off_gates_keep_their_counters() {
        let gate =
            Gate::with_config("metrics-test-off", GateConfig::default().with_stats(false)).unwrap();
        register(&gate);
        register(&gate);
        let text = render();
        let lines = lines_for(&text, "metrics-test-off");
        assert!(
            lines.iter().any(|l| l.starts_with(
                r#"racegate_gate_timeouts_total{gate="metrics-test-off",label="(unlabeled)"} 0"#
            )),
            "{lines:#?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("acquisitions")),
            "{lines:#?}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("racegate_gate_capacity_units"))
                .count(),
            1,
            "registered twice, listed once"
        );
        drop(gate);
        assert!(lines_for(&render(), "metrics-test-off").is_empty());
    }

    #[test]
    fn two_gates_with_one_name_are_told_apart_and_globals_are_listed() {
        let a = Gate::new("metrics-test-twin");
        let b = Gate::new("metrics-test-twin");
        register(&a);
        register(&b);
        let _ = crate::global("metrics-test-global");
        let text = render();
        assert!(text.contains(r#"racegate_gate_capacity_units{gate="metrics-test-twin"} 1"#));
        assert!(text.contains(r#"racegate_gate_capacity_units{gate="metrics-test-twin#2"} 1"#));
        assert!(text.contains(r#"racegate_gate_capacity_units{gate="metrics-test-global"} 1"#));
    }
}
