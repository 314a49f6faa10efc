//! `racegate status --format openmetrics`: the machine-wide gates for Prometheus, through
//! node_exporter's textfile collector (a cron job or systemd timer writes the file; see
//! `docs/metrics.md`).
//!
//! Every metric is a gauge, so the text is valid both as OpenMetrics (it ends in `# EOF`) and
//! as the classic Prometheus text format that the textfile collector and `promtool check
//! metrics` read (there `# EOF` is a comment). Encoded with `prometheus-client`, which escapes
//! label values: a gate's name comes from a directory name and may hold any character.

use std::fmt;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use racegate::machine::MachineStatus;

/// The history's percentiles, in [`racegate::machine::HistorySummary`] order. One gauge each:
/// a `quantile` label is for summaries only (`promtool check metrics`), and the history has no
/// sum to make one.
const PERCENTILES: [&str; 4] = ["p50", "p90", "p99", "max"];

#[derive(Debug)]
struct Row {
    gate: String,
    capacity: u32,
    units_total: u64,
    units_used: u64,
    /// Declared devices: id, units used, units.
    devices: Vec<(String, u32, u32)>,
    holders: u64,
    waiters: u64,
    longest_hold: Duration,
    history: u64,
    wait: [Duration; 4],
    hold: [Duration; 4],
}

#[derive(Debug)]
struct MachineGates(Vec<Row>);

impl Collector for MachineGates {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        type Value = fn(&Row) -> f64;
        let plain: [(&str, &str, Value); 7] = [
            (
                "racegate_machine_gate_capacity_units",
                "Units of the machine-wide gate's capacity per device (its lanes without devices).",
                |r| f64::from(r.capacity),
            ),
            (
                "racegate_machine_gate_budget_units",
                "Units of the gate's budget, all devices together.",
                |r| r.units_total as f64,
            ),
            (
                "racegate_machine_gate_used_units",
                "Units of the budget held right now, all devices together.",
                |r| r.units_used as f64,
            ),
            (
                "racegate_machine_gate_holders",
                "Processes holding the gate right now.",
                |r| r.holders as f64,
            ),
            (
                "racegate_machine_gate_waiters",
                "Processes queued for the gate right now.",
                |r| r.waiters as f64,
            ),
            (
                "racegate_machine_gate_longest_hold_seconds",
                "How long the longest current holder has held the gate (0 without a holder).",
                |r| r.longest_hold.as_secs_f64(),
            ),
            (
                "racegate_machine_gate_history_acquisitions",
                "Acquisitions in the gate's history log (the recent ones the quantiles are over).",
                |r| r.history as f64,
            ),
        ];
        for (name, help, value) in plain {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for r in &self.0 {
                m.encode_family(&[("gate", r.gate.as_str())])?
                    .encode_gauge(&value(r))?;
            }
        }
        type Device = fn(&(String, u32, u32)) -> u32;
        let per_device: [(&str, &str, Device); 2] = [
            (
                "racegate_machine_gate_device_capacity_units",
                "Units of one declared device of the gate.",
                |d| d.2,
            ),
            (
                "racegate_machine_gate_device_used_units",
                "Units held right now on one declared device of the gate.",
                |d| d.1,
            ),
        ];
        for (name, help, value) in per_device {
            if self.0.iter().all(|r| r.devices.is_empty()) {
                continue;
            }
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for r in &self.0 {
                for d in &r.devices {
                    m.encode_family(&[("gate", r.gate.as_str()), ("device", d.0.as_str())])?
                        .encode_gauge(&f64::from(value(d)))?;
                }
            }
        }
        type Percentiles = fn(&Row) -> &[Duration; 4];
        let percentiles: [(&str, &str, Percentiles); 2] = [
            ("wait", "Wait before being granted the gate", |r| &r.wait),
            ("hold", "Hold time of the gate", |r| &r.hold),
        ];
        for (what, help, value) in percentiles {
            for (i, p) in PERCENTILES.iter().enumerate() {
                let name = format!("racegate_machine_gate_history_{what}_{p}_seconds");
                let help = format!("{help}, {p} over the history log.");
                let mut m = enc.encode_descriptor(&name, &help, None, MetricType::Gauge)?;
                for r in self.0.iter().filter(|r| r.history > 0) {
                    m.encode_family(&[("gate", r.gate.as_str())])?
                        .encode_gauge(&value(r)[i].as_secs_f64())?;
                }
            }
        }
        Ok(())
    }
}

/// Write the gates as OpenMetrics text, ending in `# EOF`.
pub fn write<W: Write>(mut w: W, gates: &[MachineStatus], now: SystemTime) -> io::Result<()> {
    let rows = gates
        .iter()
        .map(|g| Row {
            gate: g.name.clone(),
            capacity: g.capacity,
            units_total: g.units_total,
            units_used: g.units_used,
            devices: g
                .devices
                .iter()
                .map(|d| (d.id.clone(), d.used, d.capacity))
                .collect(),
            holders: g.holders.len() as u64,
            waiters: g.waiters.len() as u64,
            longest_hold: g
                .holders
                .iter()
                .filter_map(|h| h.held_for(now))
                .max()
                .unwrap_or_default(),
            history: g.history.count,
            wait: g.history.wait,
            hold: g.history.hold,
        })
        .collect();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MachineGates(rows)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|_| io::Error::other("the gates could not be encoded as OpenMetrics"))?;
    w.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use racegate::machine::{DeviceStatus, HistorySummary, MachineHolder};

    fn status(name: &str, history: u64) -> MachineStatus {
        MachineStatus {
            name: name.to_string(),
            capacity: 2,
            devices: Vec::new(),
            units_used: 1,
            units_total: 2,
            holders: vec![MachineHolder {
                lane: 0,
                record: None,
                units: Some(1),
                devices: Vec::new(),
            }],
            waiters: Vec::new(),
            history: HistorySummary {
                count: history,
                wait: [Duration::from_millis(1); 4],
                hold: [Duration::from_millis(250); 4],
                first_ms: 0,
                last_ms: 0,
            },
        }
    }

    /// Undo the text format's label-value escaping; `None` for an escape it does not define.
    fn unescape(s: &str) -> Option<String> {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next()? {
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    'n' => out.push('\n'),
                    _ => return None,
                },
                '"' | '\n' => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    /// The `gate` label of every sample line, and each line's value; fails on a malformed
    /// line.
    fn samples(text: &str) -> Vec<(String, String, f64)> {
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, rest) = line.split_once("{gate=\"").expect(line);
            let end = rest
                .char_indices()
                .scan(false, |esc, (i, c)| {
                    let r = (!*esc && c == '"').then_some(i);
                    *esc = !*esc && c == '\\';
                    Some(r)
                })
                .flatten()
                .next()
                .expect(line);
            let gate = unescape(&rest[..end]).expect(line);
            let value = rest.rsplit_once(' ').expect(line).1.parse().expect(line);
            out.push((name.to_string(), gate, value));
        }
        out
    }

    #[test]
    fn gauges_per_gate_and_percentiles_only_with_history() {
        let mut out = Vec::new();
        write(
            &mut out,
            &[status("gpu", 10), status("idle", 0)],
            SystemTime::now(),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE racegate_machine_gate_holders gauge"));
        assert!(text.contains(r#"racegate_machine_gate_capacity_units{gate="gpu"} 2"#));
        assert!(
            text.contains(r#"racegate_machine_gate_history_hold_p99_seconds{gate="gpu"} 0.25"#),
            "{text}"
        );
        assert!(!text.contains(r#"hold_p99_seconds{gate="idle""#), "{text}");
        assert!(text.contains(r#"racegate_machine_gate_used_units{gate="gpu"} 1"#));
        assert!(
            !text.contains("device_used_units"),
            "no device series without declared devices: {text}"
        );
        assert!(
            !text.contains("counter"),
            "gauges only: valid as classic text too"
        );
    }

    #[test]
    fn declared_devices_get_one_series_each() {
        let mut g = status("gpu", 0);
        g.capacity = 40;
        g.units_total = 80;
        g.units_used = 48;
        g.devices = vec![
            DeviceStatus {
                id: "0".into(),
                used: 40,
                capacity: 40,
                holder_lanes: vec![0],
            },
            DeviceStatus {
                id: "GPU-1".into(),
                used: 8,
                capacity: 40,
                holder_lanes: vec![1],
            },
        ];
        let mut out = Vec::new();
        write(&mut out, &[g], SystemTime::now()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#"racegate_machine_gate_budget_units{gate="gpu"} 80"#));
        assert!(
            text.contains(
                r#"racegate_machine_gate_device_used_units{gate="gpu",device="GPU-1"} 8"#
            ),
            "{text}"
        );
        assert!(text
            .contains(r#"racegate_machine_gate_device_capacity_units{gate="gpu",device="0"} 40"#));
    }

    proptest! {
        /// Gate names are directory names: any of them yields well-formed text that names the
        /// gate exactly.
        #[test]
        fn any_gate_name_is_escaped(name in "\\PC{0,24}|[\\\\\"\\n{},= ]{0,8}") {
            let mut out = Vec::new();
            write(&mut out, &[status(&name, 1)], SystemTime::now()).unwrap();
            let text = String::from_utf8(out).unwrap();
            let got = samples(&text);
            prop_assert_eq!(got.len(), 7 + 2 * 4, "{}", text);
            for (_, gate, _) in got {
                prop_assert_eq!(&gate, &name);
            }
        }
    }
}
