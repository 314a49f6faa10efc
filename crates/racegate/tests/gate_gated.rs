//! `Gated<T>`: a resource reachable only through its gate.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use racegate::{Gate, Gated, TryAcquireError};

const LIMIT: Duration = Duration::from_secs(20);

/// A resource that is not thread-safe on its own: plain (non-atomic) read-modify-write.
struct Stream {
    submitted: u64,
    in_flight: bool,
}

impl Stream {
    fn submit(&mut self) {
        assert!(!self.in_flight, "two submissions overlapped");
        self.in_flight = true;
        let n = self.submitted;
        std::hint::black_box(n);
        self.submitted = n + 1;
        self.in_flight = false;
    }
}

#[test]
fn lock_blocking_from_many_threads_loses_no_update() {
    let stream = Arc::new(Gated::new(
        "stream",
        Stream {
            submitted: 0,
            in_flight: false,
        },
    ));
    let (tx, rx) = mpsc::channel();
    for _ in 0..8 {
        let (stream, tx) = (Arc::clone(&stream), tx.clone());
        std::thread::spawn(move || {
            for _ in 0..500 {
                stream.lock_blocking().submit();
            }
            tx.send(()).unwrap();
        });
    }
    for _ in 0..8 {
        rx.recv_timeout(LIMIT).expect("threads finish");
    }
    assert_eq!(stream.lock_blocking().submitted, 8 * 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_lock_owned_from_tasks() {
    let stream = Arc::new(Gated::new(
        "stream-async",
        Stream {
            submitted: 0,
            in_flight: false,
        },
    ));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let stream = Arc::clone(&stream);
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                if i % 2 == 0 {
                    stream.lock().await.submit();
                } else {
                    let mut owned = Arc::clone(&stream).lock_owned().await;
                    // The owned guard moves into another task, as a streaming response would.
                    tokio::spawn(async move { owned.submit() }).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(LIMIT, t).await.unwrap().unwrap();
    }
    assert_eq!(stream.lock().await.submitted, 16 * 100);
}

#[tokio::test]
async fn gated_on_a_shared_gate_excludes_plain_holders() {
    let gate = Gate::with_capacity("shared", 2);
    let gated = Gated::with_gate(gate.clone(), 0u32);
    let lane = gate.labeled("plain").acquire().await;
    // One lane is taken: the gated value needs the whole gate.
    match gated.try_lock() {
        Err(TryAcquireError::WouldBlock { holders, .. }) => {
            assert_eq!(holders[0].label.as_deref(), Some("plain"))
        }
        other => panic!("expected WouldBlock, got {other:?}"),
    }
    let err = gated
        .lock_timeout(Duration::from_millis(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`plain`"), "{err}");
    drop(lane);
    let mut v = gated.labeled("gated").lock().await;
    *v += 1;
    assert_eq!(gate.available(), 0);
    assert!(gate.try_acquire().is_err());
    drop(v);
    assert_eq!(gated.into_inner(), 1);
}

#[test]
fn a_panic_while_locked_does_not_poison() {
    let gated = Arc::new(Gated::new("panic-gated", vec![1]));
    let g = Arc::clone(&gated);
    let r = std::thread::spawn(move || {
        let mut v = g.lock_blocking();
        v.push(2);
        panic!("kernel failed mid-update");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(*gated.lock_blocking_timeout(LIMIT).unwrap(), [1, 2]);
    assert_eq!(gated.gate().stats().panics_while_held, 1);
}
