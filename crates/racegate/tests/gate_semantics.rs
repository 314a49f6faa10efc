//! FIFO order, cancel safety, timeouts naming holders, owned guards across tasks, blocking and
//! async waiters mixed, panics while held, weighted fairness, stats. Every wait is bounded.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use racegate::{
    AcquireError, AcquireTimeoutError, Gate, GateConfig, GateGuard, Holder, OwnedGateGuard,
    TryAcquireError,
};

const LIMIT: Duration = Duration::from_secs(20);

/// Bounds a future: a hang fails the test instead of stalling the suite.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("bounded wait exceeded")
}

/// The fields of a [`AcquireTimeoutError::TimedOut`]; any other error fails the test.
struct TimedOut {
    gate: String,
    label: Option<String>,
    waited: Duration,
    holders: Vec<Holder>,
}

fn timed_out(e: AcquireTimeoutError) -> TimedOut {
    match e {
        AcquireTimeoutError::TimedOut {
            gate,
            label,
            waited,
            holders,
            ..
        } => TimedOut {
            gate,
            label,
            waited,
            holders,
        },
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// Waits (yielding, bounded) until the gate reports `n` queued callers.
async fn until_waiters(gate: &Gate, n: usize) {
    bounded(async {
        while gate.stats().waiters != n {
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// The same for a plain thread.
fn until_waiters_blocking(gate: &Gate, n: usize) {
    let start = std::time::Instant::now();
    while gate.stats().waiters != n {
        assert!(start.elapsed() < LIMIT, "waiters never reached {n}");
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn waiters_are_served_in_fifo_order() {
    let gate = Gate::new("fifo");
    let order = Arc::new(Mutex::new(Vec::new()));
    let first = gate.acquire().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (g, order) = (gate.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let _g = g.acquire().await;
            order.lock().unwrap().push(i);
        }));
        until_waiters(&gate, i + 1).await;
    }
    drop(first);
    for t in tasks {
        bounded(t).await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..16).collect::<Vec<_>>());
}

#[test]
fn fifo_holds_across_blocking_threads_and_async_tasks() {
    let gate = Gate::new("fifo-mixed");
    let order = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let first = gate.acquire_blocking();
    let mut threads = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (g, order) = (gate.clone(), Arc::clone(&order));
        if i % 2 == 0 {
            threads.push(std::thread::spawn(move || {
                let _g = g.acquire_blocking();
                order.lock().unwrap().push(i);
            }));
        } else {
            tasks.push(rt.spawn(async move {
                let _g = g.acquire().await;
                order.lock().unwrap().push(i);
            }));
        }
        until_waiters_blocking(&gate, i + 1);
    }
    drop(first);
    rt.block_on(async {
        for t in tasks {
            bounded(t).await.unwrap();
        }
    });
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn dropped_and_timed_out_waiters_leave_the_queue() {
    let gate = Gate::new("cancel");
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = gate.acquire().await;

    let spawn = |name: &'static str| {
        let (gate, order) = (gate.clone(), Arc::clone(&order));
        tokio::spawn(async move {
            let _g = gate.labeled(name).acquire().await;
            order.lock().unwrap().push(name);
        })
    };
    let a = spawn("a");
    until_waiters(&gate, 1).await;
    let b = spawn("b"); // will be aborted mid-queue
    until_waiters(&gate, 2).await;
    let timed = {
        let gate = gate.clone();
        tokio::spawn(async move {
            gate.labeled("c")
                .acquire_timeout(Duration::from_millis(30))
                .await
                .map(drop)
        })
    };
    // `c` may already have timed out on a loaded machine: count it as queued once it is done.
    let queued_or_timed_out = |n: usize| {
        let (gate, timed) = (&gate, &timed);
        bounded(async move {
            while gate.stats().waiters + usize::from(timed.is_finished()) != n {
                tokio::task::yield_now().await;
            }
        })
    };
    queued_or_timed_out(3).await;
    let d = spawn("d");
    queued_or_timed_out(4).await;

    b.abort();
    assert!(bounded(b).await.unwrap_err().is_cancelled());
    let err = timed_out(bounded(timed).await.unwrap().unwrap_err());
    assert_eq!(err.label.as_deref(), Some("c"));
    until_waiters(&gate, 2).await;

    drop(held);
    bounded(a).await.unwrap();
    bounded(d).await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["a", "d"]);
    let stats = gate.stats();
    assert_eq!(stats.waiters, 0);
    assert_eq!(stats.available, 1);
    assert_eq!(stats.timeouts, 1);
    assert!(gate.try_acquire().is_ok());
}

#[tokio::test]
async fn cancelled_weighted_head_returns_its_partial_units() {
    let gate = Gate::with_capacity("cancel-weighted", 4);
    let held = gate.acquire_many(2).await.unwrap();
    // The head asks for 3 while 2 are free: the semaphore assigns it the 2 free units and
    // queues it. Cancelling it must give those back.
    let head = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.acquire_many(3).await.map(drop) })
    };
    until_waiters(&gate, 1).await;
    assert_eq!(gate.available(), 0);
    head.abort();
    let _ = bounded(head).await;
    bounded(async {
        while gate.available() != 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let two = gate
        .try_acquire_many(2)
        .expect("the cancelled head's units came back");
    drop((two, held));
    assert_eq!(gate.available(), 4);
}

#[tokio::test]
async fn timeout_error_names_holder_and_wait() {
    let gate = Gate::new("gpu");
    let _held = gate.labeled("vision").acquire().await;
    let e = gate
        .labeled("text")
        .acquire_timeout(Duration::from_millis(25))
        .await
        .unwrap_err();
    let msg = e.to_string();
    let err = timed_out(e);
    assert_eq!(err.gate, "gpu");
    assert_eq!(err.label.as_deref(), Some("text"));
    assert!(err.waited >= Duration::from_millis(25), "{:?}", err.waited);
    assert_eq!(err.holders.len(), 1);
    assert_eq!(err.holders[0].label.as_deref(), Some("vision"));
    assert!(err.holders[0].held_for >= err.waited);
    assert!(msg.contains("gate `gpu`"), "{msg}");
    assert!(msg.contains("as `text`"), "{msg}");
    assert!(msg.contains("held by `vision` for"), "{msg}");
    let stats = gate.stats();
    assert_eq!(stats.timeouts, 1);
    let text = stats.labels.iter().find(|l| l.label == "text").unwrap();
    assert_eq!((text.timeouts, text.acquisitions), (1, 0));
}

#[test]
fn blocking_timeout_names_holder_too() {
    let gate = Gate::new("gpu-blocking");
    let _held = gate.labeled("holder").acquire_blocking();
    let err = timed_out(
        gate.acquire_blocking_timeout(Duration::from_millis(10))
            .unwrap_err(),
    );
    assert_eq!(err.holders[0].label.as_deref(), Some("holder"));
    assert!(err.waited >= Duration::from_millis(10));
    assert_eq!(gate.stats().waiters, 0);
}

#[tokio::test]
async fn owned_guard_holds_the_gate_until_the_spawned_stream_ends() {
    let gate = Gate::new("stream");
    let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
    // The "handler" acquires, hands the guard to the streaming task and returns at once.
    let stream = {
        let guard: OwnedGateGuard = gate.labeled("stream").acquire_owned().await;
        tokio::spawn(async move {
            let _guard = guard;
            let _ = end_rx.await; // the stream ends when told to
        })
    };
    assert!(
        matches!(gate.try_acquire(), Err(TryAcquireError::WouldBlock { .. })),
        "the gate must stay held while the stream runs"
    );
    end_tx.send(()).unwrap();
    bounded(stream).await.unwrap();
    assert!(gate.try_acquire().is_ok());
}

#[test]
fn blocking_and_async_waiters_mixed_do_not_deadlock() {
    let gate = Gate::new("mixed");
    let inside = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..4 {
        let (gate, inside, total, done) = (
            gate.clone(),
            Arc::clone(&inside),
            Arc::clone(&total),
            done_tx.clone(),
        );
        std::thread::spawn(move || {
            for _ in 0..200 {
                let _g = gate.acquire_blocking();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                total.fetch_add(1, Ordering::SeqCst);
                inside.fetch_sub(1, Ordering::SeqCst);
            }
            done.send(()).unwrap();
        });
    }
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (gate, inside, total) = (gate.clone(), Arc::clone(&inside), Arc::clone(&total));
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let _g = gate.acquire().await;
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    tokio::task::yield_now().await;
                    total.fetch_add(1, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        // A blocking acquire from the blocking pool is allowed and queues with the rest.
        let g = gate.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            drop(g.acquire_blocking())
        }));
        for t in tasks {
            bounded(t).await.unwrap();
        }
    });
    for _ in 0..4 {
        done_rx
            .recv_timeout(LIMIT)
            .expect("blocking threads finish");
    }
    assert_eq!(total.load(Ordering::SeqCst), 4 * 200 + 8 * 200);
}

#[tokio::test]
#[should_panic(expected = "Cannot block the current thread from within a runtime")]
async fn acquire_blocking_inside_a_runtime_panics_clearly() {
    let gate = Gate::new("in-runtime");
    let _g = gate.acquire_blocking();
}

#[test]
fn panic_while_holding_releases_and_is_counted() {
    let gate = Gate::new("panic");
    let g = gate.clone();
    let joined = std::thread::spawn(move || {
        let _guard = g.labeled("doomed").acquire_blocking();
        panic!("GPU kernel failed");
    })
    .join();
    assert!(joined.is_err());
    let stats = gate.stats();
    assert_eq!(stats.panics_while_held, 1);
    assert!(stats.holders.is_empty());
    // Never wedged, never poisoned.
    let _g = gate
        .try_acquire()
        .expect("the gate was released by the unwinding guard");
}

#[tokio::test]
async fn panic_in_a_task_holding_an_owned_guard_releases_it() {
    let gate = Gate::new("panic-task");
    let guard = gate.acquire_owned().await;
    let task = tokio::spawn(async move {
        let _guard = guard;
        panic!("stream failed");
    });
    assert!(bounded(task).await.unwrap_err().is_panic());
    assert_eq!(gate.stats().panics_while_held, 1);
    drop(bounded(gate.acquire()).await);
}

#[tokio::test]
async fn a_large_weighted_request_at_the_head_holds_back_smaller_ones() {
    let gate = Gate::with_capacity("vram", 10);
    let order = Arc::new(Mutex::new(Vec::new()));
    let a = gate.acquire_many(6).await.unwrap();
    let spawn = |name: &'static str, n: u32| {
        let (gate, order) = (gate.clone(), Arc::clone(&order));
        tokio::spawn(async move {
            let g = gate.labeled(name).acquire_many(n).await.unwrap();
            order.lock().unwrap().push(name);
            g.units()
        })
    };
    let big = spawn("big", 8);
    until_waiters(&gate, 1).await;
    let small = spawn("small", 1);
    until_waiters(&gate, 2).await;
    // 4 units are free, enough for `small`, yet it stays queued behind `big`; `try_*` does not
    // overtake the queue either.
    assert!(!small.is_finished());
    assert!(matches!(
        gate.try_acquire(),
        Err(TryAcquireError::WouldBlock { .. })
    ));
    drop(a);
    assert_eq!(bounded(big).await.unwrap(), 8);
    assert_eq!(bounded(small).await.unwrap(), 1);
    assert_eq!(*order.lock().unwrap(), ["big", "small"]);
    assert_eq!(gate.available(), 10);
}

#[tokio::test]
async fn a_request_larger_than_capacity_fails_at_once() {
    let gate = Gate::with_capacity("vram-small", 4);
    let err = bounded(gate.acquire_many(5)).await.unwrap_err();
    assert!(matches!(err, AcquireError::TooLarge(ref e) if e.requested == 5 && e.capacity == 4));
    assert!(err.to_string().contains("capacity of `4` units"), "{err}");
    assert!(matches!(
        gate.try_acquire_many(5),
        Err(TryAcquireError::TooLarge(_))
    ));
    assert!(matches!(
        gate.acquire_many_timeout(5, Duration::from_secs(1)).await,
        Err(AcquireTimeoutError::TooLarge(_))
    ));
    assert!(matches!(
        tokio::task::spawn_blocking(move || gate.acquire_many_blocking(9).map(drop))
            .await
            .unwrap(),
        Err(AcquireError::TooLarge(_))
    ));
}

#[tokio::test]
async fn stats_report_labels_holders_and_percentiles() {
    let gate = Gate::with_capacity("stats", 2);
    for _ in 0..3 {
        drop(gate.labeled("vision").acquire().await);
    }
    drop(gate.labeled("text").acquire_many(2).await.unwrap());
    drop(gate.acquire().await);
    let held = gate.labeled("text").acquire().await;
    let s = gate.stats();
    assert!(s.enabled);
    assert_eq!(s.acquisitions, 6);
    assert_eq!(s.wait.count, 6);
    assert_eq!(s.hold.count, 5);
    assert!(s.hold.p50 <= s.hold.p90 && s.hold.p90 <= s.hold.p99 && s.hold.p99 <= s.hold.max);
    assert_eq!(s.available, 1);
    assert_eq!(s.holders.len(), 1);
    assert_eq!(s.holders[0].label.as_deref(), Some("text"));
    let labels: Vec<_> = s
        .labels
        .iter()
        .map(|l| (l.label.as_str(), l.acquisitions, l.hold.count))
        .collect();
    assert_eq!(labels, [("vision", 3, 3), ("text", 2, 1)]);
    let text = s.to_string();
    assert!(text.contains("gate `stats`"), "{text}");
    assert!(text.contains("holder: `text`"), "{text}");
    drop(held);
}

#[tokio::test]
async fn wait_time_is_recorded_for_queued_callers() {
    let gate = Gate::new("wait");
    let held = gate.acquire().await;
    let waiter = {
        let gate = gate.clone();
        tokio::spawn(async move { drop(gate.labeled("late").acquire().await) })
    };
    until_waiters(&gate, 1).await;
    // Measured, not asserted against a clock: the waiter's wait covers at least this hold.
    let hold_start = std::time::Instant::now();
    while hold_start.elapsed() < Duration::from_millis(2) {
        tokio::task::yield_now().await;
    }
    drop(held);
    bounded(waiter).await.unwrap();
    let late = gate
        .stats()
        .labels
        .into_iter()
        .find(|l| l.label == "late")
        .unwrap();
    assert!(late.wait.max >= Duration::from_millis(1), "{:?}", late.wait);
}

#[test]
fn stats_off_keeps_the_gate_working_without_bookkeeping() {
    let gate = Gate::with_config("bare", GateConfig::default().with_stats(false)).unwrap();
    let g = gate.labeled("x").acquire_blocking();
    let err = gate
        .acquire_blocking_timeout(Duration::from_millis(5))
        .unwrap_err();
    assert!(err.to_string().contains("stats are off"), "{err}");
    assert!(timed_out(err).holders.is_empty());
    drop(g);
    let s = gate.stats();
    assert!(!s.enabled);
    assert_eq!((s.acquisitions, s.timeouts, s.wait.count), (0, 1, 0));
}

#[test]
fn holding_too_long_emits_a_warning_naming_label_and_duration() {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let gate = Gate::with_config(
        "slow",
        GateConfig::default().with_hold_warning(Duration::from_millis(1)),
    )
    .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let g = gate.labeled("vision").acquire_blocking();
        // The hold itself is what is under test, so it must last longer than the threshold.
        std::thread::sleep(Duration::from_millis(3));
        drop(g);
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("gate held too long"), "{out}");
    assert!(
        out.contains("label=\"vision\"") || out.contains("label=vision"),
        "{out}"
    );
    assert!(out.contains("held_ms="), "{out}");
    assert!(out.contains("gate=slow"), "{out}");
}

#[test]
fn types_are_send_and_sync_where_they_must_be() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    fn send_static<T: Send + 'static>() {}
    fn send_fut<F: Future + Send>(f: F) -> F {
        f
    }
    send::<Gate>();
    sync::<Gate>();
    send::<GateGuard<'static>>();
    sync::<GateGuard<'static>>();
    send_static::<OwnedGateGuard>();
    sync::<OwnedGateGuard>();
    send_static::<racegate::OwnedGatedGuard<Vec<u8>>>();
    send::<racegate::Gated<Vec<u8>>>();
    sync::<racegate::Gated<std::cell::Cell<u8>>>(); // like Mutex<T>: T: Send suffices
    send::<racegate::GatedGuard<'static, Vec<u8>>>();
    send::<racegate::AcquireTimeoutError>();
    sync::<racegate::TryAcquireError>();
    // Futures can be spawned on a multi-thread runtime.
    let gate = Gate::new("send");
    drop(send_fut(gate.acquire()));
    drop(send_fut(gate.acquire_owned()));
    drop(send_fut(gate.labeled("x").acquire_timeout(Duration::ZERO)));
    drop(send_fut(gate.acquire_many(1)));
}

#[test]
fn owned_guard_moves_to_another_thread() {
    let gate = Gate::new("owned-thread");
    let guard = gate.labeled("handoff").acquire_owned_blocking();
    let (tx, rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        rx.recv_timeout(LIMIT).expect("told to finish");
        drop(guard);
    });
    let err = timed_out(
        gate.acquire_blocking_timeout(Duration::from_millis(5))
            .unwrap_err(),
    );
    assert_eq!(err.holders[0].label.as_deref(), Some("handoff"));
    tx.send(()).unwrap();
    holder.join().unwrap();
    drop(
        gate.acquire_blocking_timeout(LIMIT)
            .expect("released by the other thread"),
    );
}

#[test]
fn short_holds_do_not_warn() {
    let out = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&out);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || SinkWriter(Arc::clone(&sink)))
        .finish();
    let gate = Gate::with_config(
        "fast",
        GateConfig::default().with_hold_warning(Duration::from_secs(3600)),
    )
    .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..10 {
            drop(gate.labeled("quick").acquire_blocking());
        }
    });
    assert!(out.lock().unwrap().is_empty());
}

struct SinkWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SinkWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn try_acquire_error_names_holders_and_queued_waiters() {
    let gate = Gate::with_capacity("try-busy", 3);
    let held = gate.labeled("decode").acquire_many(2).await.unwrap();
    let head = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.acquire_many(3).await.map(drop) })
    };
    until_waiters(&gate, 1).await;
    match gate.try_acquire() {
        Err(e @ TryAcquireError::WouldBlock { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("held by `decode` (2 units)"), "{msg}");
            assert!(msg.contains("1 waiter(s) queued ahead"), "{msg}");
        }
        other => panic!("expected WouldBlock, got {other:?}"),
    }
    drop(held);
    bounded(head).await.unwrap().unwrap();
}

#[test]
fn per_label_figures_are_bounded() {
    let gate = Gate::new("many-labels");
    for i in 0..100 {
        drop(gate.labeled(format!("request-{i}")).acquire_blocking());
    }
    let held = gate.labeled(String::from("request-100")).acquire_blocking();
    let s = gate.stats();
    assert_eq!(s.labels.len(), 65);
    let other = s.labels.last().unwrap();
    assert_eq!(other.label, "(other labels)");
    assert_eq!(other.acquisitions, 100 + 1 - 64);
    // The holder still shows its own label.
    assert_eq!(s.holders[0].label.as_deref(), Some("request-100"));
    drop(held);
}
