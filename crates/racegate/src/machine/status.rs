//! What `racegate status` shows: the holders, waiters and recent history of a gate, read from
//! its directory without joining its queue.
//!
//! Reading is safe at any moment: records are believed only while the lane or ticket they
//! describe is locked and their process is still the one that wrote them; records that fail
//! this are deleted (while the lane lock is held by us, so a fresh record cannot be lost).

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::budget::{decode_entry, Declaration, Slot, ENTRY_LEN, MAX_HOLDERS};
use super::history::read_history;
use super::lock::{
    believed_holder, invalidate_record, lane_path, live_tickets, open_ro, open_rw, read_capped,
    read_queue_state, rec_path, try_flock,
};
use super::record::Record;

/// Version of the `racegate status --json` document (and of this structure). Bumped when a field
/// changes meaning or disappears; new fields may appear without a bump.
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// A process holding a lane of a machine-wide gate, as read from its directory.
///
/// Not to be confused with [`Holder`](crate::Holder), the in-process view of a holder that stats
/// and errors carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineHolder {
    /// The lane held.
    pub lane: u32,
    /// Its record, when one can be believed (`None`: the lane is locked but its record is
    /// missing or stale, e.g. a plain `flock` user of the file or a record being written).
    pub record: Option<Record>,
    /// Units it holds, on all its devices together (`None`: the ledger has no readable share
    /// for it: a holder that is releasing, a plain `flock` user of the lane, or garbage, which
    /// takers count as the whole gate).
    pub units: Option<u32>,
    /// The devices it holds units on (empty for a gate without declared devices).
    pub devices: Vec<String>,
}

/// One declared device of a machine-wide gate and its use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// The device id.
    pub id: String,
    /// Units in use on it (at most the capacity).
    pub used: u32,
    /// Its units: the gate's capacity.
    pub capacity: u32,
    /// Lanes of the holders counted on it.
    pub holder_lanes: Vec<u32>,
}

/// A process queued for a machine-wide gate, as read from its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineWaiter {
    /// Its ticket number (queue order).
    pub seq: u64,
    /// Its record, when one can be believed.
    pub record: Option<Record>,
}

/// Percentiles over the gate's history log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistorySummary {
    /// Acquisitions in the log.
    pub count: u64,
    /// Wait percentiles: p50, p90, p99, max.
    pub wait: [Duration; 4],
    /// Hold percentiles: p50, p90, p99, max.
    pub hold: [Duration; 4],
    /// Oldest and newest release times in the log (ms since the epoch), 0 when empty.
    pub first_ms: u64,
    /// Newest release time in the log.
    pub last_ms: u64,
}

/// A machine-wide gate's state across all processes, read from its directory: what
/// `racegate status` shows.
///
/// *Status* is the machine-wide state from the lock directory; the in-process figures of one
/// process's gate are its [`GateStats`](crate::GateStats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineStatus {
    /// The gate's name.
    pub name: String,
    /// The gate's capacity in units per device (from the queue header; 1 if unknown).
    pub capacity: u32,
    /// Its declared devices and their use (empty: none declared).
    pub devices: Vec<DeviceStatus>,
    /// Units in use, all devices together.
    pub units_used: u64,
    /// Units of all devices together.
    pub units_total: u64,
    /// Current holders.
    pub holders: Vec<MachineHolder>,
    /// Current waiters in queue order.
    pub waiters: Vec<MachineWaiter>,
    /// Recent history.
    pub history: HistorySummary,
}

/// The old name of [`MachineStatus`].
#[deprecated(note = "renamed to `MachineStatus`")]
pub type GateStatus = MachineStatus;

impl MachineHolder {
    /// How long it has held the gate, if known.
    pub fn held_for(&self, now: SystemTime) -> Option<Duration> {
        self.record
            .as_ref()
            .map(|r| now.duration_since(r.since()).unwrap_or_default())
    }
}

/// The old name of [`read_status`].
#[deprecated(note = "renamed to `read_status`")]
pub fn gate_status(dir: &Path, name: &str) -> MachineStatus {
    read_status(dir, name)
}

/// Reads the status of the gate `name` whose directory is `dir`, without joining its queue.
pub fn read_status(dir: &Path, name: &str) -> MachineStatus {
    let state = open_ro(&dir.join(super::lock::QUEUE_FILE))
        .ok()
        .and_then(|f| read_queue_state(&f).ok());
    let (decl, ledger) = match state {
        Some(s) => {
            let decl = s.declaration.unwrap_or(Declaration {
                capacity: s.header.map_or(1, |h| h.capacity),
                devices: Vec::new(),
            });
            (decl, s.ledger)
        }
        None => (
            Declaration {
                capacity: 1,
                devices: Vec::new(),
            },
            Vec::new(),
        ),
    };
    let lanes = decl.lanes();
    let mut holders = Vec::new();
    let mut used = vec![0u32; decl.device_slots()];
    let mut on_device: Vec<Vec<u32>> = vec![Vec::new(); decl.device_slots()];
    // Lanes beyond the declaration's may exist from an earlier one: look at them too.
    for lane in 0..MAX_HOLDERS {
        let path = lane_path(dir, lane);
        if lane >= lanes && !path.exists() {
            break;
        }
        // Created if missing, so that a record left without its lane file is cleaned the same
        // way: under our own lock on the lane.
        let Ok(lock) = open_rw(&path) else { continue };
        match try_flock(&lock, true) {
            Ok(true) => {
                // Free, and we hold it: any record left is stale and nobody can write a new one.
                // Spoiled, not deleted: holders keep the file open and rewrite it in place.
                if let Ok(mut rec) = open_ro(&rec_path(dir, lane)) {
                    let bytes = read_capped(&mut rec, 64).unwrap_or_default();
                    if bytes.first().is_some_and(|b| *b != b'-') {
                        if let Ok(rec) = open_rw(&rec_path(dir, lane)) {
                            let _ = invalidate_record(&rec);
                        }
                    }
                }
            }
            Ok(false) => {
                drop(lock);
                // The share counted as takers count it (`budget::account`).
                let share = if lanes == 1 {
                    Some((decl.capacity, decl.all_mask(), true))
                } else {
                    let at = lane as usize * ENTRY_LEN;
                    let bytes = ledger
                        .get(at..)
                        .map_or(&[][..], |b| &b[..b.len().min(ENTRY_LEN)]);
                    match decode_entry(bytes, &decl) {
                        Slot::Held(e) => Some((e.units, e.mask, true)),
                        Slot::Garbage => Some((decl.capacity, decl.all_mask(), false)),
                        Slot::Free => None,
                    }
                };
                let (units, devices) = match share {
                    Some((units, mask, known)) => {
                        for (d, u) in used.iter_mut().enumerate() {
                            if mask & (1 << d) != 0 {
                                *u = u.saturating_add(units).min(decl.capacity);
                                on_device[d].push(lane);
                            }
                        }
                        let units = known.then(|| units * mask.count_ones());
                        (units, decl.names(mask))
                    }
                    None => (None, Vec::new()),
                };
                holders.push(MachineHolder {
                    lane,
                    record: believed_holder(dir, lane),
                    units,
                    devices,
                });
            }
            Err(_) => {}
        }
    }
    let waiters = live_tickets(dir)
        .into_iter()
        .map(|(seq, record)| MachineWaiter { seq, record })
        .collect();
    let devices = decl
        .devices
        .iter()
        .enumerate()
        .map(|(d, id)| DeviceStatus {
            id: id.clone(),
            used: used[d],
            capacity: decl.capacity,
            holder_lanes: on_device[d].clone(),
        })
        .collect();
    MachineStatus {
        name: name.to_owned(),
        capacity: decl.capacity,
        devices,
        units_used: used.iter().map(|u| u64::from(*u)).sum(),
        units_total: decl.total(),
        holders,
        waiters,
        history: summarize(dir),
    }
}

fn summarize(dir: &Path) -> HistorySummary {
    let entries = read_history(dir);
    if entries.is_empty() {
        return HistorySummary::default();
    }
    let mut waits: Vec<Duration> = entries.iter().map(|e| e.wait).collect();
    let mut holds: Vec<Duration> = entries.iter().map(|e| e.hold).collect();
    HistorySummary {
        count: entries.len() as u64,
        wait: percentiles(&mut waits),
        hold: percentiles(&mut holds),
        first_ms: entries.iter().map(|e| e.released_ms).min().unwrap_or(0),
        last_ms: entries.iter().map(|e| e.released_ms).max().unwrap_or(0),
    }
}

/// Nearest-rank p50, p90, p99 and max.
fn percentiles(v: &mut [Duration]) -> [Duration; 4] {
    v.sort_unstable();
    let at = |q: f64| {
        let rank = (q * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    [at(0.50), at(0.90), at(0.99), v[v.len() - 1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(&mut v);
        assert_eq!(p.map(|d| d.as_millis()), [50, 90, 99, 100]);
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(percentiles(&mut one), [Duration::from_millis(7); 4]);
    }
}
