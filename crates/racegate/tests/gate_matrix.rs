//! The variant matrix row by row: owned × blocking/timeout, the weighted forms, the error type of
//! each kind of call, and cancel safety of every async timeout form. Every wait is bounded.

use std::future::Future;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use racegate::{
    AcquireError, AcquireTimeoutError, Gate, GateConfig, Gated, Holder, Label, Labeled,
    OwnedGateGuard, TryAcquireError,
};

const LIMIT: Duration = Duration::from_secs(20);
const SHORT: Duration = Duration::from_millis(10);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("bounded wait exceeded")
}

async fn until(mut cond: impl FnMut() -> bool) {
    bounded(async {
        while !cond() {
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// The holders a `TimedOut` names; any other error fails the test.
fn timed_out_holders(e: AcquireTimeoutError) -> Vec<Holder> {
    match e {
        AcquireTimeoutError::TimedOut { holders, .. } => holders,
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// Every async bounded form, started while the gate is held and then dropped (the task aborted)
/// while queued, leaves the queue: the next waiter gets the units, none leak. A form that kept
/// its place, or kept units partly assigned to it, would leave `available` short or starve the
/// plain waiter behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_async_timeout_form_is_cancel_safe() {
    type Start = fn(Gate) -> tokio::task::JoinHandle<()>;
    // (name, weighted, start): a weighted form asks for 3 of 4 units.
    let forms: [(&str, bool, Start); 6] = [
        ("acquire_timeout", false, |g| {
            tokio::spawn(async move { drop(g.acquire_timeout(LIMIT).await) })
        }),
        ("acquire_owned_timeout", false, |g| {
            tokio::spawn(async move { drop(g.acquire_owned_timeout(LIMIT).await) })
        }),
        ("acquire_many_timeout", true, |g| {
            tokio::spawn(async move { drop(g.acquire_many_timeout(3, LIMIT).await) })
        }),
        ("acquire_many_owned_timeout", true, |g| {
            tokio::spawn(async move { drop(g.acquire_many_owned_timeout(3, LIMIT).await) })
        }),
        ("labeled acquire_owned_timeout", false, |g| {
            tokio::spawn(async move { drop(g.labeled("c").acquire_owned_timeout(LIMIT).await) })
        }),
        ("labeled acquire_many_owned_timeout", true, |g| {
            tokio::spawn(
                async move { drop(g.labeled("c").acquire_many_owned_timeout(3, LIMIT).await) },
            )
        }),
    ];
    for (name, weighted, start) in forms {
        let gate = Gate::with_capacity("cancel-timeout", 4);
        let held = gate.acquire_many(2).await.unwrap();
        let mut held_more = Some(gate.acquire_many(2).await.unwrap());
        let cancelled = start(gate.clone());
        until(|| gate.stats().waiters == 1).await;
        if weighted {
            // The queued head asks for 3: the 2 units released now are assigned to it while it
            // keeps waiting for the third.
            drop(held_more.take());
            assert_eq!(gate.available(), 0, "{name}");
        }
        cancelled.abort();
        assert!(
            bounded(cancelled).await.unwrap_err().is_cancelled(),
            "{name}"
        );
        until(|| gate.stats().waiters == 0).await;
        drop(held_more);
        until(|| gate.available() == 2).await;

        // A plain waiter behind the cancelled one is served, with all units back.
        let next = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.acquire_many_owned(4).await.unwrap() })
        };
        until(|| gate.stats().waiters == 1).await;
        drop(held);
        let all = bounded(next).await.unwrap();
        assert_eq!(all.units(), 4, "{name}");
        assert_eq!(gate.available(), 0, "{name}");
        drop(all);
        let s = gate.stats();
        assert_eq!((s.available, s.waiters, s.timeouts), (4, 0, 0), "{name}");
        assert_eq!(
            s.acquisitions, 3,
            "{name}: the cancelled form was never granted"
        );
    }
}

/// A weighted head that times out (rather than being dropped) gives back the units partly
/// assigned to it and counts one timeout, for the async and the blocking owned forms alike.
#[test]
fn a_timed_out_weighted_head_returns_its_partial_units() {
    let gate = Gate::with_capacity("timeout-weighted", 4);
    let _held = gate.labeled("big").acquire_many_owned_blocking(3).unwrap();
    let err = gate
        .acquire_many_owned_blocking_timeout(2, SHORT)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("held by `big` (3 units)"), "{msg}");
    assert_eq!(timed_out_holders(err)[0].units, 3);
    assert_eq!(gate.available(), 1);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let err = rt
        .block_on(gate.acquire_many_owned_timeout(2, SHORT))
        .unwrap_err();
    assert_eq!(timed_out_holders(err)[0].label.as_deref(), Some("big"));
    let s = gate.stats();
    assert_eq!((s.available, s.waiters, s.timeouts), (1, 0, 2));
}

/// The owned blocking forms hand their guard to another thread, which releases it there.
#[test]
fn owned_blocking_guards_move_to_another_thread() {
    let gate = Gate::with_capacity("owned-blocking", 3);
    let guards: Vec<OwnedGateGuard> = vec![
        gate.acquire_owned_blocking_timeout(LIMIT).unwrap(),
        gate.acquire_many_owned_blocking(1).unwrap(),
        gate.labeled("handoff")
            .acquire_owned_blocking_timeout(LIMIT)
            .unwrap(),
    ];
    assert!(matches!(
        gate.try_acquire(),
        Err(TryAcquireError::WouldBlock { .. })
    ));
    let (tx, rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        rx.recv_timeout(LIMIT).expect("told to release");
        drop(guards);
    });
    let err = gate.acquire_blocking_timeout(SHORT).unwrap_err();
    let holders = timed_out_holders(err);
    assert_eq!(holders.len(), 3);
    assert!(holders
        .iter()
        .any(|h| h.label.as_deref() == Some("handoff")));
    tx.send(()).unwrap();
    holder.join().unwrap();
    let all = gate.acquire_many_owned_blocking_timeout(3, LIMIT).unwrap();
    assert_eq!(all.units(), 3);
}

/// Each weighted form, asked for more than the capacity, fails at once with its kind's error.
#[tokio::test]
async fn every_weighted_form_refuses_more_than_the_capacity_at_once() {
    let gate = Gate::with_capacity("too-large", 2);
    let _held = gate.acquire_many(2).await.unwrap(); // would block any request that could wait
    let many = |e: AcquireError| {
        assert!(
            matches!(e, AcquireError::TooLarge(ref t) if t.requested == 3 && t.capacity == 2),
            "{e}"
        )
    };
    let timed =
        |e: AcquireTimeoutError| assert!(matches!(e, AcquireTimeoutError::TooLarge(_)), "{e}");
    let tried = |e: TryAcquireError| assert!(matches!(e, TryAcquireError::TooLarge(_)), "{e}");
    many(bounded(gate.acquire_many(3)).await.unwrap_err());
    many(bounded(gate.acquire_many_owned(3)).await.unwrap_err());
    timed(
        bounded(gate.acquire_many_timeout(3, LIMIT))
            .await
            .unwrap_err(),
    );
    timed(
        bounded(gate.acquire_many_owned_timeout(3, LIMIT))
            .await
            .unwrap_err(),
    );
    tried(gate.try_acquire_many(3).unwrap_err());
    tried(gate.try_acquire_many_owned(3).unwrap_err());
    let g = gate.clone();
    tokio::task::spawn_blocking(move || {
        many(g.acquire_many_blocking(3).unwrap_err());
        many(g.acquire_many_owned_blocking(3).unwrap_err());
        timed(g.acquire_many_blocking_timeout(3, LIMIT).unwrap_err());
        timed(
            g.labeled("x")
                .acquire_many_owned_blocking_timeout(3, LIMIT)
                .unwrap_err(),
        );
    })
    .await
    .unwrap();
    assert_eq!(gate.stats().timeouts, 0);
}

/// Every unit form takes one unit, every weighted form `n`; each is counted, labeled ones under
/// their label, and each gives its units back.
#[test]
fn every_form_takes_and_returns_its_units() {
    let gate = Gate::with_capacity("units", 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut taken = 0;
    // `let` drops the guard at the end of its statement, before the check.
    macro_rules! takes {
        ($guard:expr, $n:expr) => {{
            let units = $guard.units();
            assert_eq!(units, $n, "{}", stringify!($guard));
            assert_eq!(
                gate.available(),
                3,
                "{} gave its units back",
                stringify!($guard)
            );
            taken += 1;
        }};
    }
    rt.block_on(async {
        takes!(gate.acquire().await, 1);
        takes!(gate.acquire_owned().await, 1);
        takes!(gate.acquire_many(2).await.unwrap(), 2);
        takes!(gate.acquire_many_owned(3).await.unwrap(), 3);
        takes!(gate.acquire_timeout(LIMIT).await.unwrap(), 1);
        takes!(gate.acquire_owned_timeout(LIMIT).await.unwrap(), 1);
        takes!(gate.acquire_many_timeout(2, LIMIT).await.unwrap(), 2);
        takes!(gate.acquire_many_owned_timeout(3, LIMIT).await.unwrap(), 3);
        takes!(gate.labeled("l").acquire().await, 1);
        takes!(gate.labeled("l").acquire_many_owned(2).await.unwrap(), 2);
    });
    takes!(gate.acquire_blocking(), 1);
    takes!(gate.acquire_owned_blocking(), 1);
    takes!(gate.acquire_many_blocking(2).unwrap(), 2);
    takes!(gate.acquire_many_owned_blocking(3).unwrap(), 3);
    takes!(gate.acquire_blocking_timeout(LIMIT).unwrap(), 1);
    takes!(gate.acquire_owned_blocking_timeout(LIMIT).unwrap(), 1);
    takes!(gate.acquire_many_blocking_timeout(2, LIMIT).unwrap(), 2);
    takes!(
        gate.acquire_many_owned_blocking_timeout(3, LIMIT).unwrap(),
        3
    );
    takes!(gate.try_acquire().unwrap(), 1);
    takes!(gate.try_acquire_owned().unwrap(), 1);
    takes!(gate.try_acquire_many(2).unwrap(), 2);
    takes!(gate.try_acquire_many_owned(3).unwrap(), 3);
    takes!(gate.labeled("l").acquire_owned_blocking(), 1);
    takes!(gate.labeled("l").try_acquire_many_owned(3).unwrap(), 3);
    let s = gate.stats();
    assert_eq!(s.acquisitions, taken);
    assert_eq!(s.hold.count, taken);
    let l = s.labels.iter().find(|l| l.label == "l").unwrap();
    assert_eq!(l.acquisitions, 4);
}

/// A view made from an optional label is the labeled view when there is one and the plain
/// gate when there is none.
#[test]
fn a_run_time_label_may_be_absent() {
    let gate = Gate::new("optional-label");
    let none: Option<String> = None;
    let g = Labeled::new(&gate, none.map(Label::from)).acquire_blocking();
    assert_eq!(gate.stats().holders[0].label, None);
    drop(g);
    let view = Labeled::new(&gate, Some(Label::from(String::from("flag"))));
    assert_eq!(view.label().map(Label::as_str), Some("flag"));
    let g = view.acquire_owned_blocking();
    assert_eq!(gate.stats().holders[0].label.as_deref(), Some("flag"));
    drop(g);
}

/// An untimed call's error converts into the bounded call's error, so a caller with an optional
/// timeout handles one type.
#[test]
fn an_optional_timeout_needs_one_error_type() {
    let gate = Gate::with_capacity("optional-timeout", 1);
    let acquire = |timeout: Option<Duration>| match timeout {
        Some(t) => gate.acquire_many_blocking_timeout(2, t).map(drop),
        None => gate
            .acquire_many_blocking(2)
            .map(drop)
            .map_err(AcquireTimeoutError::from),
    };
    assert!(matches!(
        acquire(None),
        Err(AcquireTimeoutError::TooLarge(_))
    ));
    assert!(matches!(
        acquire(Some(SHORT)),
        Err(AcquireTimeoutError::TooLarge(_))
    ));
}

#[derive(Debug)]
struct Counter {
    n: u64,
    in_flight: bool,
}

impl Counter {
    fn bump(&mut self) {
        assert!(!self.in_flight, "two holders overlapped");
        self.in_flight = true;
        self.n = std::hint::black_box(self.n) + 1;
        self.in_flight = false;
    }
}

/// The owned `Gated` forms: bounded, blocking and non-waiting, from threads and tasks, with and
/// without a label; none loses an update, and a bounded or non-waiting lock names the holder.
#[test]
fn gated_owned_forms_exclude_and_name_the_holder() {
    let gated = Arc::new(Gated::with_gate(
        Gate::with_config("gated-owned", GateConfig::default().with_capacity(2)).unwrap(),
        Counter {
            n: 0,
            in_flight: false,
        },
    ));
    let (tx, rx) = mpsc::channel();
    for t in 0..4 {
        let (gated, tx) = (Arc::clone(&gated), tx.clone());
        std::thread::spawn(move || {
            for r in 0..100 {
                let mut guard = match (t + r) % 4 {
                    0 => Arc::clone(&gated).lock_owned_blocking(),
                    1 => Arc::clone(&gated)
                        .lock_owned_blocking_timeout(LIMIT)
                        .expect("bounded wait"),
                    2 => Labeled::new(&gated, Some("thread".into()))
                        .lock_owned_blocking_timeout(LIMIT)
                        .expect("bounded wait"),
                    _ => loop {
                        if let Ok(g) = Arc::clone(&gated).try_lock_owned() {
                            break g;
                        }
                        std::thread::yield_now();
                    },
                };
                guard.bump();
            }
            tx.send(()).unwrap();
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let gated = Arc::clone(&gated);
                tokio::spawn(async move {
                    for _ in 0..100 {
                        let mut guard = Labeled::new(&gated, Some("task".into()))
                            .lock_owned_timeout(LIMIT)
                            .await
                            .expect("bounded wait");
                        guard.bump();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            bounded(t).await.unwrap();
        }
    });
    for _ in 0..4 {
        rx.recv_timeout(LIMIT).expect("threads finish");
    }
    assert_eq!(gated.lock_blocking().n, 800);

    let held = Labeled::new(&gated, Some("holder".into())).lock_owned_blocking();
    let err = Arc::clone(&gated)
        .lock_owned_blocking_timeout(SHORT)
        .unwrap_err();
    assert_eq!(timed_out_holders(err)[0].label.as_deref(), Some("holder"));
    assert!(matches!(
        Arc::clone(&gated).try_lock_owned(),
        Err(TryAcquireError::WouldBlock { .. })
    ));
    assert!(gated.labeled("x").try_lock().is_err());
    drop(held);
    let mut labels: Vec<_> = gated
        .gate()
        .stats()
        .labels
        .into_iter()
        .map(|l| l.label)
        .collect();
    labels.sort();
    assert_eq!(labels, ["holder", "task", "thread"]);
}
