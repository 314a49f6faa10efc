//! The machine-wide gate across real processes.
//!
//! Children are this test binary run again with `RG_CHILD=1` (see [`child_entry`]): each takes
//! the gate, appends `enter <id>` / `leave <id>` to a shared `O_APPEND` log, and releases. The
//! log's line order is the real order of events, so overlap is read off it without clocks.
//! Every wait has a deadline; no sleep is used to order events.

mod common;

use std::time::{Duration, Instant};

use common::{entered, inside, max_inside, read_log, run_children, wait_child, wait_until, Env};
use racegate::machine::read_status;
use racegate::{AcquireTimeoutError, MachineGate};

/// Not a test of its own: the body of a child process (see `common::child_main`).
#[test]
fn child_entry() {
    common::child_main();
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
        entered(&read_log(&env.log())).contains(&"waiter".to_owned())
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
    let order = entered(&read_log(&env.log()));
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
    assert_eq!(entered(&read_log(&env.log())), ["holder", "last"]);
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
