//! Mutual exclusion under real contention: 64 tasks on a multi-thread runtime plus 8 OS threads
//! share a capacity-2 gate and an in-section count of units that must never exceed 2. Every row
//! of the variant matrix takes part (borrowed and owned; async, blocking, bounded, non-waiting;
//! one or two units; labeled or not). The same harness run with no gate (the control) must
//! exceed 2, so a no-op gate cannot pass.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use racegate::{Gate, GateGuard, OwnedGateGuard};

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
    /// Enters holding `units` of the capacity.
    fn enter(&self, units: usize) -> usize {
        let n = self.inside.fetch_add(units, Ordering::SeqCst) + units;
        self.max.fetch_max(n, Ordering::SeqCst);
        self.entries.fetch_add(1, Ordering::SeqCst);
        n
    }
    fn crowded(&self) -> bool {
        self.inside.load(Ordering::SeqCst) > CAPACITY
    }
    fn leave(&self, units: usize) {
        self.inside.fetch_sub(units, Ordering::SeqCst);
    }
}

/// Either kind of guard, so one loop can use every entry point.
enum Held<'a> {
    Borrowed(GateGuard<'a>),
    Owned(OwnedGateGuard),
}

impl Held<'_> {
    fn units(&self) -> usize {
        match self {
            Held::Borrowed(g) => g.units() as usize,
            Held::Owned(g) => g.units() as usize,
        }
    }
}

const WAIT: Duration = Duration::from_secs(30);
/// Rows of the matrix each side cycles through.
const VARIANTS: usize = 12;

/// The blocking and non-waiting rows, from an OS thread.
fn acquire_blocking_variant(g: &Gate, k: usize) -> Held<'_> {
    use Held::{Borrowed as B, Owned as O};
    let r = "bounded wait";
    match k % VARIANTS {
        0 => B(g.acquire_blocking()),
        1 => O(g.acquire_owned_blocking()),
        2 => B(g.acquire_blocking_timeout(WAIT).expect(r)),
        3 => O(g.acquire_owned_blocking_timeout(WAIT).expect(r)),
        4 => B(g.acquire_many_blocking(2).unwrap()),
        5 => O(g.acquire_many_owned_blocking(1).unwrap()),
        6 => B(g.acquire_many_blocking_timeout(2, WAIT).expect(r)),
        7 => O(g.acquire_many_owned_blocking_timeout(1, WAIT).expect(r)),
        8 => B(g.labeled("thread").acquire_blocking()),
        9 => O(g
            .labeled("thread")
            .acquire_many_owned_blocking_timeout(2, WAIT)
            .expect(r)),
        // Non-waiting: a `try_*` call never overtakes a queue, and here there nearly always is
        // one, so a caller that only retried would spin until the others are done. It tries
        // once and, refused, waits like the others.
        10 => g
            .try_acquire()
            .map(B)
            .unwrap_or_else(|_| B(g.acquire_blocking())),
        _ => g
            .try_acquire_many_owned(2)
            .map(O)
            .unwrap_or_else(|_| O(g.acquire_many_owned_blocking(2).unwrap())),
    }
}

/// The async and non-waiting rows, from a task.
async fn acquire_async_variant(g: &Gate, k: usize) -> Held<'_> {
    use Held::{Borrowed as B, Owned as O};
    let r = "bounded wait";
    match k % VARIANTS {
        0 => B(g.acquire().await),
        1 => O(g.acquire_owned().await),
        2 => B(g.acquire_many(2).await.unwrap()),
        3 => O(g.acquire_many_owned(1).await.unwrap()),
        4 => B(g.acquire_timeout(WAIT).await.expect(r)),
        5 => O(g.acquire_owned_timeout(WAIT).await.expect(r)),
        6 => B(g.acquire_many_timeout(2, WAIT).await.expect(r)),
        7 => O(g.acquire_many_owned_timeout(1, WAIT).await.expect(r)),
        8 => O(g.labeled("task").acquire_owned().await),
        9 => B(g
            .labeled("task")
            .acquire_many_timeout(2, WAIT)
            .await
            .expect(r)),
        10 => match g.try_acquire_owned() {
            Ok(h) => O(h),
            Err(_) => O(g.acquire_owned().await),
        },
        _ => match g.labeled("task").try_acquire_many(1) {
            Ok(h) => B(h),
            Err(_) => B(g.labeled("task").acquire_many(1).await.unwrap()),
        },
    }
}

/// Units a control (no gate) entry counts as, so that it mirrors the gated run.
fn control_units(k: usize) -> usize {
    match k % VARIANTS {
        4 | 6 | 9 | 11 => 2,
        _ => 1,
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
                let guard = gate.as_ref().map(|g| acquire_blocking_variant(g, t + r));
                let units = guard.as_ref().map_or(control_units(t + r), Held::units);
                section.enter(units);
                for _ in 0..SECTION_YIELDS {
                    if section.crowded() {
                        break;
                    }
                    std::thread::yield_now();
                }
                section.leave(units);
                drop(guard);
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
                    let guard = match &gate {
                        None => None,
                        Some(g) => Some(acquire_async_variant(g, i + r).await),
                    };
                    let units = guard.as_ref().map_or(control_units(i + r), Held::units);
                    section.enter(units);
                    for _ in 0..SECTION_YIELDS {
                        if section.crowded() {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    section.leave(units);
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
    assert!(max <= CAPACITY, "{max} units were held inside at once");
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
