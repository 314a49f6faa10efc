//! Mutual exclusion under real contention: 64 tasks on a multi-thread runtime plus 8 OS threads
//! share a capacity-2 gate and an in-section counter that must never exceed 2. The same harness
//! run with no gate (the control) must exceed 2, so a no-op gate cannot pass.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use racegate::Gate;

const TASKS: usize = 64;
const THREADS: usize = 8;
const ROUNDS: usize = 8;
/// Yields inside the section while waiting to observe a third occupant: with the gate this bound
/// is always reached (it keeps the section long enough to overlap), without it a third occupant
/// shows up almost at once.
const SECTION_YIELDS: usize = 30;
const CAPACITY: usize = 2;

#[derive(Default)]
struct Section {
    inside: AtomicUsize,
    max: AtomicUsize,
    entries: AtomicUsize,
}

impl Section {
    fn enter(&self) -> usize {
        let n = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        self.entries.fetch_add(1, Ordering::SeqCst);
        n
    }
    fn crowded(&self) -> bool {
        self.inside.load(Ordering::SeqCst) > CAPACITY
    }
    fn leave(&self) {
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the harness; returns (max occupants seen, entries). `gate: None` is the control.
fn harness(gate: Option<Gate>) -> (usize, usize) {
    let section = Arc::new(Section::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let (gate, section, done) = (gate.clone(), Arc::clone(&section), done_tx.clone());
        threads.push(std::thread::spawn(move || {
            for r in 0..ROUNDS {
                let _guard = gate.as_ref().map(|g| {
                    if (t + r) % 2 == 0 {
                        g.labeled("thread").acquire_blocking()
                    } else {
                        g.acquire_blocking_timeout(Duration::from_secs(30))
                            .expect("bounded wait")
                    }
                });
                section.enter();
                for _ in 0..SECTION_YIELDS {
                    if section.crowded() {
                        break;
                    }
                    std::thread::yield_now();
                }
                section.leave();
            }
            let _ = done.send(());
        }));
    }

    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..TASKS {
            let (gate, section) = (gate.clone(), Arc::clone(&section));
            tasks.push(tokio::spawn(async move {
                for r in 0..ROUNDS {
                    // Every async entry point takes part.
                    let guard = match (&gate, (i + r) % 3) {
                        (None, _) => None,
                        (Some(g), 0) => Some(g.acquire_owned().await),
                        (Some(g), 1) => Some(g.labeled("task").acquire_owned().await),
                        (Some(g), _) => Some(g.acquire_many_owned(1).await.unwrap()),
                    };
                    section.enter();
                    for _ in 0..SECTION_YIELDS {
                        if section.crowded() {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    section.leave();
                    drop(guard);
                }
            }));
        }
        tokio::time::timeout(Duration::from_secs(60), async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
        .expect("all tasks finish within 60 s");
    });

    drop(done_tx);
    for _ in 0..THREADS {
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("all threads finish within 60 s");
    }
    for t in threads {
        t.join().unwrap();
    }
    (
        section.max.load(Ordering::SeqCst),
        section.entries.load(Ordering::SeqCst),
    )
}

#[test]
fn capacity_two_gate_never_admits_a_third() {
    let gate = Gate::with_capacity("exclusion", CAPACITY as u32);
    let (max, entries) = harness(Some(gate.clone()));
    assert_eq!(entries, (TASKS + THREADS) * ROUNDS);
    assert!(max <= CAPACITY, "{max} holders were inside at once");
    // The harness does reach the capacity, so it is not trivially serial.
    assert_eq!(max, CAPACITY);
    let stats = gate.stats();
    assert_eq!(stats.acquisitions as usize, entries);
    assert_eq!(stats.available, CAPACITY as u32);
    assert_eq!(stats.waiters, 0);
    assert!(stats.holders.is_empty());
}

#[test]
fn control_without_gate_shows_the_violation() {
    let (max, entries) = harness(None);
    assert_eq!(entries, (TASKS + THREADS) * ROUNDS);
    assert!(
        max > CAPACITY,
        "without a gate the harness should see more than {CAPACITY} inside, saw {max}"
    );
}
