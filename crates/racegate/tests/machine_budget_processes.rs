//! Budgets and devices across real processes (children: `common::child_main`): a SIGKILLed
//! holder of three devices gives all three back at once; mixed weights keep FIFO order under
//! load; 64 processes taking random shares never exceed the budget, and without the gate the
//! same children do (the control). Overlap and order are read off the children's shared log.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{entered, max_inside, max_units, read_log, run_children, wait_child, wait_until, Env};
use racegate::machine::read_status;
use racegate::MachineGate;

/// Not a test of its own: the body of a child process.
#[test]
fn child_entry() {
    common::child_main();
}

const DEVICES: &str = "0,1,2,3";

fn waiters(env: &Env) -> usize {
    read_status(&env.gate_dir(), &env.gate).waiters.len()
}

fn entered_line(env: &Env, id: &str) -> Option<common::Event> {
    read_log(&env.log())
        .into_iter()
        .find(|e| e.enter && e.id == id)
}

#[test]
fn a_sigkilled_holder_of_three_devices_frees_all_three_for_the_next_waiter() {
    let env = Env::new("gpus");
    let whole = [("RG_DEVICES", DEVICES), ("RG_UNITS", "3")];
    let mut holder = env.child("holder", "stdin", &whole);
    assert!(wait_until(Duration::from_secs(10), || entered_line(
        &env, "holder"
    )
    .is_some()));
    assert_eq!(entered_line(&env, "holder").unwrap().devices, "0,1,2");
    // One device is left: a one-device request fits beside the holder, a three-device one waits.
    let gate = MachineGate::builder("gpus")
        .dir(env.lock_dir())
        .devices(["0", "1", "2", "3"])
        .open()
        .unwrap();
    let one = gate.try_acquire_many(1).unwrap();
    assert_eq!(one.devices(), ["3"]);
    drop(one);
    let mut waiter = env.child(
        "waiter",
        "0",
        &[
            ("RG_DEVICES", DEVICES),
            ("RG_UNITS", "3"),
            ("RG_TIMEOUT_MS", "10000"),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(10), || waiters(&env) == 1),
        "the waiter never queued"
    );
    let st = read_status(&env.gate_dir(), "gpus");
    let used: Vec<u32> = st.devices.iter().map(|d| d.used).collect();
    assert_eq!(used, [1, 1, 1, 0], "{st:?}");

    let killed_at = Instant::now();
    holder.kill().unwrap(); // SIGKILL: no destructor, no cleanup, only the kernel
    holder.wait().unwrap();
    let got_it = wait_until(Duration::from_secs(5), || {
        entered_line(&env, "waiter").is_some()
    });
    eprintln!(
        "three devices handed over {:?} after SIGKILL",
        killed_at.elapsed()
    );
    assert!(
        got_it,
        "the waiter did not get three devices within 5 s of the holder's SIGKILL"
    );
    let devices = entered_line(&env, "waiter").unwrap().devices;
    assert_eq!(devices.split(',').count(), 3, "{devices}");
    assert!(wait_child(&mut waiter, Duration::from_secs(10)).success());
    let st = read_status(&env.gate_dir(), "gpus");
    assert!(
        st.holders.is_empty() && st.devices.iter().all(|d| d.used == 0),
        "{st:?}"
    );
}

/// A holder takes the whole budget of 10; children with mixed shares queue one after another
/// (each seen queued before the next starts, so arrival order is known) and each holds a while
/// once in, so several are inside at once. They must be granted in arrival order (a large share
/// at the head is waited for, never overtaken), never above the budget.
///
/// A child logs `enter` after its grant, so two children granted back to back may log in either
/// order. For two shares that do not fit together the log order is exact (the later one can
/// only be granted after the earlier one left), so there it must be arrival order; two that fit
/// together may swap only while both are inside.
#[test]
fn mixed_weights_keep_fifo_order_under_load() {
    let env = Env::new("vram");
    let budget = [("RG_CAPACITY", "10")];
    let mut holder = env.child(
        "holder",
        "stdin",
        &[("RG_CAPACITY", "10"), ("RG_UNITS", "10")],
    );
    assert!(wait_until(Duration::from_secs(10), || entered_line(
        &env, "holder"
    )
    .is_some()));
    let weights = [7, 2, 10, 1, 5, 3, 8, 4, 6, 1];
    let mut children: Vec<Child> = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        let units = w.to_string();
        children.push(env.child(
            &format!("w{i}"),
            "sleep:30000",
            &[budget[0], ("RG_UNITS", &units)],
        ));
        assert!(
            wait_until(Duration::from_secs(10), || waiters(&env) == i + 1),
            "w{i} never queued"
        );
    }
    drop(holder.stdin.take()); // let the holder go
    assert!(wait_child(&mut holder, Duration::from_secs(10)).success());
    for c in &mut children {
        assert!(wait_child(c, Duration::from_secs(30)).success());
    }
    let events = read_log(&env.log());
    let at = |enter: bool, id: &str| {
        events
            .iter()
            .position(|e| e.enter == enter && e.id == id)
            .unwrap_or_else(|| {
                panic!(
                    "{id} never {}: {events:?}",
                    if enter { "entered" } else { "left" }
                )
            })
    };
    assert_eq!(entered(&events)[0], "holder");
    for i in 0..weights.len() {
        for j in i + 1..weights.len() {
            let (a, b) = (format!("w{i}"), format!("w{j}"));
            if at(true, &b) < at(true, &a) {
                let together = weights[i] + weights[j] <= 10 && at(true, &a) < at(false, &b);
                assert!(
                    together,
                    "{b} (arrived after {a}) was granted first: {events:?}"
                );
            }
        }
    }
    assert!(max_units(&events) <= 10, "{events:?}");
    assert!(
        max_inside(&events) >= 2,
        "shares that fit ran side by side: {events:?}"
    );
}

/// 64 processes × 100 acquisitions of random shares (1 to 48 of 80 units), each held for 1 ms of
/// simulated work: the units inside never exceed 80. The control runs the same kind of children
/// without the gate and shows the budget exceeded, so the check can fail.
#[test]
fn sixty_four_processes_taking_random_shares_never_exceed_the_budget() {
    let env = Env::new("stress");
    let started = Instant::now();
    let settings = [
        ("RG_CAPACITY", "80"),
        ("RG_UNITS_MAX", "48"),
        ("RG_ROUNDS", "100"),
        ("RG_TIMEOUT_MS", "120000"),
    ];
    let events = run_children_bounded(&env, 64, "sleep:1000", &settings);
    eprintln!(
        "64 processes x 100 acquisitions: {:?}, peak {} of 80 units, peak {} holders",
        started.elapsed(),
        max_units(&events),
        max_inside(&events)
    );
    assert_eq!(entered(&events).len(), 6400);
    assert!(max_units(&events) <= 80, "the budget was exceeded");
    assert!(max_inside(&events) >= 2, "no shares ran side by side");
    let st = read_status(&env.gate_dir(), "stress");
    assert!(st.holders.is_empty() && st.waiters.is_empty(), "{st:?}");
    assert_eq!(st.units_used, 0);

    let control = Env::new("stress");
    let events = run_children(
        &control,
        16,
        "over:3000",
        &[
            ("RG_CAPACITY", "80"),
            ("RG_UNITS_MAX", "48"),
            ("RG_ROUNDS", "2"),
            ("RG_NO_GATE", "1"),
        ],
    );
    assert!(
        max_units(&events) > 80,
        "control: without the gate the shares should exceed the budget"
    );
}

/// [`run_children`] with a wider bound: 64 processes on a loaded 2-core machine.
fn run_children_bounded(
    env: &Env,
    n: usize,
    hold: &str,
    extra: &[(&str, &str)],
) -> Vec<common::Event> {
    let mut children: Vec<Child> = (0..n)
        .map(|i| env.child(&format!("c{i}"), hold, extra))
        .collect();
    for c in &mut children {
        assert!(wait_child(c, Duration::from_secs(240)).success());
    }
    read_log(&env.log())
}
