//! The machine-wide gate across real processes.
//!
//! Children are this test binary run again with `RG_CHILD=1` (see [`child_entry`]): each takes
//! the gate, appends `enter <id>` / `leave <id>` to a shared `O_APPEND` log, and releases. The
//! log's line order is the real order of events, so overlap is read off it without clocks.
//! Every wait has a deadline; no sleep is used to order events.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use racegate::machine::read_status;
use racegate::{AcquireTimeoutError, MachineGate};

const CHILD_ENV: &str = "RG_CHILD";

/// Not a test of its own: the body of a child process when `RG_CHILD` is set (a no-op otherwise).
#[test]
fn child_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let id = var("RG_ID");
    let log = PathBuf::from(var("RG_LOG"));
    let rounds: u32 = var("RG_ROUNDS").parse().unwrap_or(1);
    let capacity: u32 = var("RG_CAPACITY").parse().unwrap_or(1);
    let timeout = Duration::from_millis(var("RG_TIMEOUT_MS").parse().unwrap_or(20_000));
    let gate = MachineGate::with_capacity(&var("RG_GATE"), capacity).expect("open gate");
    for _ in 0..rounds {
        let guard = if var("RG_NO_GATE") == "1" {
            None
        } else {
            Some(
                gate.labeled(format!("child-{id}"))
                    .acquire_blocking_timeout(timeout)
                    .expect("acquire"),
            )
        };
        append(&log, &format!("enter {id}"));
        match var("RG_HOLD").as_str() {
            // Hold until the parent closes our stdin (or kills us).
            "stdin" => {
                let mut buf = String::new();
                let _ = std::io::stdin().read_line(&mut buf);
            }
            // Hold until another child is inside, or `ms` passed: with the gate, nobody can be,
            // so this holds the full time; without it, children meet and the overlap shows.
            ms => {
                let limit = Duration::from_millis(ms.parse().unwrap_or(50));
                wait_until(limit, || inside(&read_log(&log)).iter().any(|o| *o != id));
            }
        }
        append(&log, &format!("leave {id}"));
        drop(guard);
    }
}

fn append(log: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn read_log(log: &Path) -> Vec<(String, String)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
        .collect()
}

/// Who is inside after the last event.
fn inside(events: &[(String, String)]) -> Vec<String> {
    let mut now = Vec::new();
    for (what, id) in events {
        match what.as_str() {
            "enter" => now.push(id.clone()),
            _ => now.retain(|x| x != id),
        }
    }
    now
}

/// Largest number of children inside at once.
fn max_inside(events: &[(String, String)]) -> usize {
    let mut now: Vec<&str> = Vec::new();
    let mut max = 0;
    for (what, id) in events {
        match what.as_str() {
            "enter" => {
                now.push(id);
                max = max.max(now.len());
            }
            _ => now.retain(|x| x != id),
        }
    }
    max
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
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

struct Env {
    dir: tempfile::TempDir,
    gate: String,
}

impl Env {
    fn new(gate: &str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            gate: gate.into(),
        }
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("events.log")
    }
    fn lock_dir(&self) -> PathBuf {
        self.dir.path().join("locks")
    }
    fn child(&self, id: &str, hold: &str, extra: &[(&str, &str)]) -> Child {
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
    fn gate_dir(&self) -> PathBuf {
        self.lock_dir().join(&self.gate)
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
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

/// `hold`: how long (ms) each child waits inside for another child to show up. With an
/// exclusive gate nobody can, so every child holds that long; where overlap is expected it is
/// generous, so that children started far apart on a loaded machine still meet.
fn run_children(env: &Env, n: usize, hold: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut children: Vec<Child> = (0..n)
        .map(|i| env.child(&format!("c{i}"), hold, extra))
        .collect();
    for c in &mut children {
        assert!(wait_child(c, Duration::from_secs(30)).success());
    }
    read_log(&env.log())
}

#[test]
fn children_never_overlap_and_without_the_gate_they_do() {
    let env = Env::new("gpu");
    let events = run_children(&env, 4, "40", &[("RG_ROUNDS", "2")]);
    assert_eq!(events.len(), 16, "{events:?}");
    assert_eq!(
        max_inside(&events),
        1,
        "two children held the gate at once: {events:?}"
    );
    let st = read_status(&env.gate_dir(), "gpu");
    assert_eq!(
        st.history.count, 8,
        "every acquisition is in the history log"
    );
    assert!(st.holders.is_empty() && st.waiters.is_empty());

    // Control: the same children without the gate overlap, so the check above can fail.
    let control = Env::new("gpu");
    let events = run_children(&control, 4, "1500", &[("RG_NO_GATE", "1")]);
    assert!(
        max_inside(&events) >= 2,
        "control run showed no overlap: {events:?}"
    );
}

#[test]
fn capacity_two_admits_two_children_and_never_three() {
    let env = Env::new("pair");
    let events = run_children(&env, 4, "1500", &[("RG_ROUNDS", "2"), ("RG_CAPACITY", "2")]);
    assert_eq!(max_inside(&events), 2, "{events:?}");
}

#[test]
fn sigkilled_holder_hands_the_gate_to_the_next_waiter() {
    let env = Env::new("gpu");
    let mut holder = env.child("holder", "stdin", &[]);
    assert!(wait_until(Duration::from_secs(10), || inside(&read_log(
        &env.log()
    )) == ["holder"]));
    let mut waiter = env.child("waiter", "0", &[("RG_TIMEOUT_MS", "5000")]);
    assert!(
        wait_until(Duration::from_secs(10), || read_status(
            &env.gate_dir(),
            "gpu"
        )
        .waiters
        .len()
            == 1),
        "the waiter never queued"
    );
    let killed_at = Instant::now();
    holder.kill().unwrap(); // SIGKILL: no destructor, no cleanup, only the kernel
    holder.wait().unwrap();
    let got_it = wait_until(Duration::from_secs(5), || {
        read_log(&env.log())
            .iter()
            .any(|(w, id)| w == "enter" && id == "waiter")
    });
    let handover = killed_at.elapsed();
    eprintln!("handover after SIGKILL: {handover:?}");
    assert!(
        got_it,
        "the waiter did not get the gate within 5 s of the holder's SIGKILL"
    );
    assert!(wait_child(&mut waiter, Duration::from_secs(10)).success());
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let env = Env::new("gpu");
    let mut holder = env.child("holder", "stdin", &[]);
    assert!(wait_until(Duration::from_secs(10), || inside(&read_log(
        &env.log()
    )) == ["holder"]));
    let mut waiters = Vec::new();
    for i in 0..4 {
        waiters.push(env.child(&format!("w{i}"), "0", &[]));
        // The next one starts only once this one is queued, so arrival order is known.
        assert!(wait_until(Duration::from_secs(10), || {
            read_status(&env.gate_dir(), "gpu").waiters.len() == i + 1
        }));
    }
    drop(holder.stdin.take()); // let the holder go
    assert!(wait_child(&mut holder, Duration::from_secs(10)).success());
    for w in &mut waiters {
        assert!(wait_child(w, Duration::from_secs(20)).success());
    }
    let order: Vec<String> = read_log(&env.log())
        .into_iter()
        .filter(|(w, _)| w == "enter")
        .map(|(_, id)| id)
        .collect();
    assert_eq!(order, ["holder", "w0", "w1", "w2", "w3"]);
}

#[test]
fn a_waiter_that_dies_in_the_queue_does_not_stall_it() {
    let env = Env::new("gpu");
    let mut holder = env.child("holder", "stdin", &[]);
    assert!(wait_until(Duration::from_secs(10), || inside(&read_log(
        &env.log()
    )) == ["holder"]));
    let mut doomed = env.child("doomed", "0", &[]);
    assert!(wait_until(Duration::from_secs(10), || read_status(
        &env.gate_dir(),
        "gpu"
    )
    .waiters
    .len()
        == 1));
    let mut last = env.child("last", "0", &[]);
    assert!(wait_until(Duration::from_secs(10), || read_status(
        &env.gate_dir(),
        "gpu"
    )
    .waiters
    .len()
        == 2));
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    drop(holder.stdin.take());
    assert!(wait_child(&mut holder, Duration::from_secs(10)).success());
    assert!(wait_child(&mut last, Duration::from_secs(10)).success());
    let entered: Vec<String> = read_log(&env.log())
        .into_iter()
        .filter(|(w, _)| w == "enter")
        .map(|(_, id)| id)
        .collect();
    assert_eq!(entered, ["holder", "last"]);
}

#[test]
fn a_timeout_names_the_holder_its_command_and_label() {
    let env = Env::new("gpu");
    let mut holder = env.child("trainer", "stdin", &[]);
    assert!(wait_until(Duration::from_secs(10), || inside(&read_log(
        &env.log()
    )) == ["trainer"]));
    let gate = MachineGate::builder("gpu")
        .dir(env.lock_dir())
        .open()
        .unwrap();
    let err = gate
        .labeled("bench")
        .acquire_blocking_timeout(Duration::from_millis(200))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, AcquireTimeoutError::TimedOut { .. }),
        "{err:?}"
    );
    assert!(msg.contains(&format!("pid {}", holder.id())), "{msg}");
    assert!(msg.contains("child-trainer"), "{msg}");
    assert!(
        msg.contains("child_entry"),
        "the holder's command line is named: {msg}"
    );
    assert!(msg.contains("`bench`"), "{msg}");
    // try_acquire reports the same holder without waiting.
    let busy = gate.try_acquire().unwrap_err().to_string();
    assert!(busy.contains(&format!("pid {}", holder.id())), "{busy}");
    drop(holder.stdin.take());
    assert!(wait_child(&mut holder, Duration::from_secs(10)).success());
    drop(
        gate.acquire_blocking_timeout(Duration::from_secs(5))
            .unwrap(),
    );
}
