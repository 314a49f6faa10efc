//! Property test of the queue discipline: for any mix of weighted requests queued behind a full
//! gate, some of them cancelled mid-queue, the survivors are granted strictly in queue order, no
//! unit leaks, and the figures add up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use racegate::Gate;

#[derive(Clone, Debug)]
struct Req {
    weight: u32,
    cancel: bool,
}

fn reqs(capacity: u32) -> impl Strategy<Value = Vec<Req>> {
    prop::collection::vec(
        (1..=capacity, prop::bool::weighted(0.3))
            .prop_map(|(weight, cancel)| Req { weight, cancel }),
        1..24,
    )
}

fn run(capacity: u32, reqs: Vec<Req>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async move {
        let gate = Gate::with_capacity("model", capacity);
        let order = Arc::new(Mutex::new(Vec::new()));
        let all = gate.acquire_many(capacity).await.unwrap();
        let mut tasks = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let (g, order, w) = (gate.clone(), Arc::clone(&order), r.weight);
            tasks.push(tokio::spawn(async move {
                let guard = g.acquire_many(w).await.unwrap();
                order.lock().unwrap().push(i);
                drop(guard);
            }));
            // Queue them one by one, so queue order is request order.
            tokio::time::timeout(Duration::from_secs(20), async {
                while gate.stats().waiters != i + 1 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("request queued");
        }
        for (t, r) in tasks.iter().zip(&reqs) {
            if r.cancel {
                t.abort();
            }
        }
        drop(all);
        let mut survivors = Vec::new();
        for (i, (t, r)) in tasks.into_iter().zip(&reqs).enumerate() {
            let res = tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("every task ends");
            if r.cancel {
                prop_assert!(res.is_err() && res.unwrap_err().is_cancelled());
            } else {
                res.unwrap();
                survivors.push(i);
            }
        }
        prop_assert_eq!(&*order.lock().unwrap(), &survivors);
        let s = gate.stats();
        prop_assert_eq!(s.available, capacity);
        prop_assert_eq!(s.waiters, 0);
        prop_assert!(s.holders.is_empty());
        prop_assert_eq!(s.acquisitions as usize, 1 + survivors.len());
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn survivors_are_granted_in_queue_order_and_nothing_leaks(
        (capacity, reqs) in (1u32..=8).prop_flat_map(|c| (Just(c), reqs(c)))
    ) {
        run(capacity, reqs)?;
    }
}
