//! The gate against `tokio::sync::Mutex` and `std::sync::Mutex`: uncontended acquire+release,
//! contended throughput (4 tasks on 2 worker threads), and the cost of stats (on vs off).
//!
//! `cargo bench -p racegate --bench gate -- --warm-up-time 1 --measurement-time 3`
//! Results and ratios go to BENCHMARKS.md ("In-process gate").

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use racegate::{Gate, GateConfig};

fn gate(stats: bool) -> Gate {
    Gate::with_config("bench", GateConfig::default().with_stats(stats)).unwrap()
}

fn uncontended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("uncontended");

    let tokio_mutex = tokio::sync::Mutex::new(0u64);
    g.bench_function("tokio_mutex", |b| {
        b.to_async(&rt)
            .iter(|| async { *tokio_mutex.lock().await += 1 })
    });
    let std_mutex = std::sync::Mutex::new(0u64);
    g.bench_function("std_mutex", |b| b.iter(|| *std_mutex.lock().unwrap() += 1));

    for stats in [false, true] {
        let on = if stats { "stats_on" } else { "stats_off" };
        let gate = gate(stats);
        g.bench_function(BenchmarkId::new("gate_acquire", on), |b| {
            b.to_async(&rt)
                .iter(|| async { drop(black_box(gate.acquire().await)) })
        });
        let labeled = gate.clone();
        g.bench_function(BenchmarkId::new("gate_labeled_acquire", on), |b| {
            b.to_async(&rt)
                .iter(|| async { drop(black_box(labeled.labeled("vision").acquire().await)) })
        });
        let owned = gate.clone();
        g.bench_function(BenchmarkId::new("gate_acquire_owned", on), |b| {
            b.to_async(&rt)
                .iter(|| async { drop(black_box(owned.acquire_owned().await)) })
        });
        let tried = gate.clone();
        g.bench_function(BenchmarkId::new("gate_try_acquire", on), |b| {
            b.iter(|| drop(black_box(tried.try_acquire().unwrap())))
        });
        let blocking = gate.clone();
        g.bench_function(BenchmarkId::new("gate_acquire_blocking", on), |b| {
            b.iter(|| drop(black_box(blocking.acquire_blocking())))
        });
    }
    g.finish();
}

const TASKS: usize = 4;
const PER_TASK: usize = 1_000;

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("contended_4_tasks_2_threads");
    g.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));

    // Each benchmark spawns 4 tasks that each take the lock 1 000 times around a tiny section;
    // spawn/join overhead is the same for every lock.
    let tokio_mutex = Arc::new(tokio::sync::Mutex::new(0u64));
    g.bench_function("tokio_mutex", |b| {
        b.to_async(&rt).iter(|| {
            let m = Arc::clone(&tokio_mutex);
            async move {
                let hs: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let m = Arc::clone(&m);
                        tokio::spawn(async move {
                            for _ in 0..PER_TASK {
                                *m.lock().await += 1;
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            }
        })
    });
    let std_mutex = Arc::new(std::sync::Mutex::new(0u64));
    g.bench_function("std_mutex", |b| {
        b.to_async(&rt).iter(|| {
            let m = Arc::clone(&std_mutex);
            async move {
                let hs: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let m = Arc::clone(&m);
                        tokio::spawn(async move {
                            for _ in 0..PER_TASK {
                                *m.lock().unwrap() += 1;
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            }
        })
    });
    for stats in [false, true] {
        let on = if stats { "stats_on" } else { "stats_off" };
        let gate = gate(stats);
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        g.bench_function(BenchmarkId::new("gate", on), |b| {
            b.to_async(&rt).iter(|| {
                let (gate, counter) = (gate.clone(), Arc::clone(&counter));
                async move {
                    let hs: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let (gate, counter) = (gate.clone(), Arc::clone(&counter));
                            tokio::spawn(async move {
                                for _ in 0..PER_TASK {
                                    let _g = gate.acquire().await;
                                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.await.unwrap();
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
