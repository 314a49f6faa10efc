//! Children for the machine-wide gate's process tests: each test binary runs itself again with
//! `RG_CHILD=1` (its `child_entry` test calls [`child_main`]). A child takes the gate, appends
//! `enter <id> <units> <devices>` / `leave <id>` to a shared `O_APPEND` log, and releases. The
//! log's line order is the real order of events (each line is one `write`, and `enter` is
//! written after the grant, `leave` before the release), so overlap is read off it without
//! clocks. Every wait has a deadline.

#![allow(dead_code)] // each test binary uses its own part

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use racegate::MachineGate;

pub const CHILD_ENV: &str = "RG_CHILD";

/// The body of a child process when `RG_CHILD` is set (a no-op otherwise). Settings:
/// `RG_GATE`, `RG_ID`, `RG_LOG`, `RG_ROUNDS` (1), `RG_CAPACITY` (1), `RG_DEVICES` (`0,1`; none),
/// `RG_UNITS` (1) or `RG_UNITS_MAX` (a random share in `1..=max` each round, seeded by the id),
/// `RG_TIMEOUT_MS` (20 000), `RG_NO_GATE=1` (the control), and `RG_HOLD`:
/// - `stdin`: hold until the parent closes our stdin (or kills us);
/// - `sleep:<µs>`: hold that long (simulated GPU work);
/// - `over:<ms>`: hold until the units inside exceed the capacity, or `ms` passed;
/// - `<ms>`: hold until another child is inside, or `ms` passed.
///
/// The waits of the last two are what makes a control (no gate) overlap reliably; with the
/// gate nobody can get in, so they hold the full time.
pub fn child_main() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let id = var("RG_ID");
    let log = PathBuf::from(var("RG_LOG"));
    let rounds: u32 = var("RG_ROUNDS").parse().unwrap_or(1);
    let capacity: u32 = var("RG_CAPACITY").parse().unwrap_or(1);
    let devices: Vec<String> = var("RG_DEVICES")
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let units_max: Option<u32> = var("RG_UNITS_MAX").parse().ok();
    let fixed_units: u32 = var("RG_UNITS").parse().unwrap_or(1);
    let timeout = Duration::from_millis(var("RG_TIMEOUT_MS").parse().unwrap_or(20_000));
    let gate = MachineGate::builder(&var("RG_GATE"))
        .capacity(capacity)
        .devices(devices)
        .open()
        .expect("open gate");
    let total = capacity * gate.devices().len().max(1) as u32;
    let mut seed = id.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    for _ in 0..rounds {
        let units = match units_max {
            Some(max) => {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                1 + ((seed >> 33) as u32) % max
            }
            None => fixed_units,
        };
        let guard = if var("RG_NO_GATE") == "1" {
            None
        } else {
            Some(
                gate.labeled(format!("child-{id}"))
                    .acquire_many_blocking_timeout(units, timeout)
                    .expect("acquire"),
            )
        };
        let held = guard
            .as_ref()
            .map(|g| g.devices().join(","))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "-".into());
        append(&log, &format!("enter {id} {units} {held}"));
        let hold = var("RG_HOLD");
        if hold == "stdin" {
            let mut buf = String::new();
            let _ = std::io::stdin().read_line(&mut buf);
        } else if let Some(us) = hold.strip_prefix("sleep:") {
            std::thread::sleep(Duration::from_micros(us.parse().unwrap_or(0)));
        } else if let Some(ms) = hold.strip_prefix("over:") {
            let limit = Duration::from_millis(ms.parse().unwrap_or(50));
            wait_until(limit, || max_units(&read_log(&log)) > total);
        } else {
            let limit = Duration::from_millis(hold.parse().unwrap_or(50));
            wait_until(limit, || inside(&read_log(&log)).iter().any(|o| *o != id));
        }
        append(&log, &format!("leave {id}"));
        drop(guard);
    }
}

pub fn append(log: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub enter: bool,
    pub id: String,
    pub units: u32,
    pub devices: String,
}

pub fn read_log(log: &Path) -> Vec<Event> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            let (what, id) = (w.next()?, w.next()?);
            Some(Event {
                enter: what == "enter",
                id: id.to_owned(),
                units: w.next().and_then(|u| u.parse().ok()).unwrap_or(1),
                devices: w.next().unwrap_or("-").to_owned(),
            })
        })
        .collect()
}

/// Who is inside after the last event.
pub fn inside(events: &[Event]) -> Vec<String> {
    let mut now = Vec::new();
    for e in events {
        if e.enter {
            now.push(e.id.clone());
        } else {
            now.retain(|x| *x != e.id);
        }
    }
    now
}

/// The ids in the order they entered.
pub fn entered(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.enter)
        .map(|e| e.id.clone())
        .collect()
}

/// Largest number of children inside at once.
pub fn max_inside(events: &[Event]) -> usize {
    peak(events, |_| 1) as usize
}

/// Largest sum of units held at once.
pub fn max_units(events: &[Event]) -> u32 {
    peak(events, |e| e.units)
}

fn peak(events: &[Event], weight: impl Fn(&Event) -> u32) -> u32 {
    let mut now: Vec<(&str, u32)> = Vec::new();
    let mut max = 0;
    for e in events {
        if e.enter {
            now.push((&e.id, weight(e)));
            max = max.max(now.iter().map(|(_, w)| w).sum());
        } else {
            now.retain(|(id, _)| *id != e.id);
        }
    }
    max
}

/// Polls `cond` until it holds or `limit` passes (the state lives in files written by other
/// processes; there is nothing to block on).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub gate: String,
}

impl Env {
    pub fn new(gate: &str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            gate: gate.into(),
        }
    }
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("events.log")
    }
    pub fn lock_dir(&self) -> PathBuf {
        self.dir.path().join("locks")
    }
    pub fn child(&self, id: &str, hold: &str, extra: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "child_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, "1")
        .env("RACEGATE_DIR", self.lock_dir())
        .env("RG_GATE", &self.gate)
        .env("RG_ID", id)
        .env("RG_LOG", self.log())
        .env("RG_HOLD", hold)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }
    pub fn gate_dir(&self) -> PathBuf {
        self.lock_dir().join(&self.gate)
    }
}

pub fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            panic!("child {} did not finish within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `n` children and waits (bounded) for all to succeed; returns the log.
pub fn run_children(env: &Env, n: usize, hold: &str, extra: &[(&str, &str)]) -> Vec<Event> {
    let mut children: Vec<Child> = (0..n)
        .map(|i| env.child(&format!("c{i}"), hold, extra))
        .collect();
    for c in &mut children {
        assert!(wait_child(c, Duration::from_secs(60)).success());
    }
    read_log(&env.log())
}
