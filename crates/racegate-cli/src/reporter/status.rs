//! Printers for `racegate status`: text for people, JSON (schema version
//! [`STATUS_SCHEMA_VERSION`]) for programs. Both only format a [`MachineStatus`] read by the
//! library (its report model); they compute nothing.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use racegate::machine::{MachineStatus, Record, STATUS_SCHEMA_VERSION};
use serde_json::{json, Value};

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn since(now: SystemTime, r: &Record) -> Duration {
    now.duration_since(r.since()).unwrap_or_default()
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn person(r: Option<&Record>, now: SystemTime, elapsed_key: &str) -> Value {
    match r {
        Some(r) => json!({
            "pid": r.pid,
            "label": r.label,
            "command": r.command,
            "since_ms": r.since_ms,
            elapsed_key: ms(since(now, r)),
        }),
        None => {
            json!({ "pid": null, "label": null, "command": null, "since_ms": null, elapsed_key: null })
        }
    }
}

fn pcts(p: &[Duration; 4]) -> Value {
    json!({ "p50": ms(p[0]), "p90": ms(p[1]), "p99": ms(p[2]), "max": ms(p[3]) })
}

/// The `--json` document.
pub fn status_json(lock_dir: &Path, gates: &[MachineStatus], now: SystemTime) -> Value {
    let gates: Vec<Value> = gates
        .iter()
        .map(|g| {
            let holders: Vec<Value> = g
                .holders
                .iter()
                .map(|h| {
                    let mut v = person(h.record.as_ref(), now, "held_ms");
                    v["lane"] = json!(h.lane);
                    v["units"] = json!(h.units);
                    v["devices"] = json!(h.devices);
                    v
                })
                .collect();
            let waiters: Vec<Value> = g
                .waiters
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let mut v = person(w.record.as_ref(), now, "waiting_ms");
                    v["position"] = json!(i + 1);
                    v["ticket"] = json!(w.seq);
                    v
                })
                .collect();
            let devices: Vec<Value> = g
                .devices
                .iter()
                .map(|d| {
                    json!({
                        "id": d.id,
                        "capacity": d.capacity,
                        "used": d.used,
                        "holder_lanes": d.holder_lanes,
                    })
                })
                .collect();
            let h = &g.history;
            json!({
                "name": g.name,
                "capacity": g.capacity,
                // The same number under its old name: a schema-1 field, kept for its readers.
                "slots": g.capacity,
                "units_total": g.units_total,
                "units_used": g.units_used,
                "devices": devices,
                "holders": holders,
                "waiters": waiters,
                "history": {
                    "count": h.count,
                    "first_ms": if h.count > 0 { json!(h.first_ms) } else { Value::Null },
                    "last_ms": if h.count > 0 { json!(h.last_ms) } else { Value::Null },
                    "wait_ms": pcts(&h.wait),
                    "hold_ms": pcts(&h.hold),
                },
            })
        })
        .collect();
    json!({
        "schema_version": STATUS_SCHEMA_VERSION,
        "lock_dir": lock_dir.display().to_string(),
        "generated_at_ms": epoch_ms(now),
        "gates": gates,
    })
}

fn fmt_d(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

fn line_for(r: Option<&Record>, now: SystemTime) -> String {
    match r {
        Some(r) => format!(
            "pid {:<7} {:<12} {:>10}  {}",
            r.pid,
            r.label.as_deref().unwrap_or("-"),
            fmt_d(since(now, r)),
            r.command_line()
        ),
        None => "(no current record: a plain flock user, or a record being written)".to_owned(),
    }
}

/// The text view.
pub fn write_status_text<W: Write>(
    out: &mut W,
    lock_dir: &Path,
    gates: &[MachineStatus],
    now: SystemTime,
) -> io::Result<()> {
    if gates.is_empty() {
        writeln!(out, "no gates in {}", lock_dir.display())?;
        return Ok(());
    }
    for (i, g) in gates.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let per_device = if g.devices.is_empty() {
            String::new()
        } else {
            format!(" per device, {} devices", g.devices.len())
        };
        writeln!(
            out,
            "gate {} (capacity {}{per_device}) in {}",
            g.name,
            g.capacity,
            lock_dir.display()
        )?;
        let shared = g.units_total > 1;
        if shared {
            writeln!(out, "  used    {} of {} units", g.units_used, g.units_total)?;
        }
        for d in &g.devices {
            let holders: Vec<String> = d
                .holder_lanes
                .iter()
                .filter_map(|lane| g.holders.iter().find(|h| h.lane == *lane))
                .map(|h| match &h.record {
                    Some(r) => format!("pid {}", r.pid),
                    None => format!("lane {}", h.lane),
                })
                .collect();
            writeln!(
                out,
                "  device  {:<8} {}/{} units{}",
                d.id,
                d.used,
                d.capacity,
                if holders.is_empty() {
                    String::new()
                } else {
                    format!("  held by {}", holders.join(", "))
                }
            )?;
        }
        if g.holders.is_empty() {
            writeln!(out, "  free")?;
        }
        for h in &g.holders {
            let share = match (shared, h.units) {
                (false, _) => String::new(),
                (true, Some(u)) if h.devices.is_empty() => format!("{u} units  "),
                (true, Some(u)) => format!("{u} units on {}  ", h.devices.join(",")),
                (true, None) => "share unknown  ".to_owned(),
            };
            writeln!(
                out,
                "  holder  lane {:<3} {share}{}",
                h.lane,
                line_for(h.record.as_ref(), now)
            )?;
        }
        for (n, w) in g.waiters.iter().enumerate() {
            writeln!(
                out,
                "  waiter  #{:<7} {}",
                n + 1,
                line_for(w.record.as_ref(), now)
            )?;
        }
        let h = &g.history;
        if h.count == 0 {
            writeln!(out, "  history: none yet")?;
        } else {
            let plural = if h.count == 1 { "" } else { "s" };
            writeln!(out, "  history: {} acquisition{plural}", h.count)?;
            for (what, p) in [("wait", &h.wait), ("hold", &h.hold)] {
                writeln!(
                    out,
                    "    {what}  p50 {}  p90 {}  p99 {}  max {}",
                    fmt_d(p[0]),
                    fmt_d(p[1]),
                    fmt_d(p[2]),
                    fmt_d(p[3])
                )?;
            }
        }
    }
    Ok(())
}
