//! Interleaved uncontended measurement for the two targets of issue 2 (gate ≤ 1.5× tokio Mutex;
//! stats ≤ 100 ns per acquisition), robust to a shared, loaded machine: every variant runs in
//! short rounds, rounds of all variants are interleaved, and the *minimum* and median of the
//! per-round means are reported (interference only ever adds time).
//!
//! `cargo bench -p racegate --bench gate_ratio`

use std::hint::black_box;
use std::time::Instant;

use racegate::{Gate, GateConfig};

const ROUNDS: usize = 40;
const ITERS: u32 = 20_000;

type Variant<'a> = (&'static str, Box<dyn Fn() -> f64 + 'a>);

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let gate = |stats| Gate::with_config("ratio", GateConfig::default().with_stats(stats)).unwrap();
    let (off, on) = (gate(false), gate(true));
    let tokio_mutex = tokio::sync::Mutex::new(0u64);
    let std_mutex = std::sync::Mutex::new(0u64);

    let variants: Vec<Variant<'_>> = vec![
        (
            "tokio_mutex lock+unlock",
            Box::new(|| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..ITERS {
                        *black_box(&tokio_mutex).lock().await += 1;
                    }
                    t.elapsed().as_nanos() as f64 / ITERS as f64
                })
            }),
        ),
        (
            "std_mutex lock+unlock",
            Box::new(|| {
                let t = Instant::now();
                for _ in 0..ITERS {
                    *black_box(&std_mutex).lock().unwrap() += 1;
                }
                t.elapsed().as_nanos() as f64 / ITERS as f64
            }),
        ),
        (
            "gate acquire+release, stats off",
            Box::new(|| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..ITERS {
                        drop(black_box(black_box(&off).acquire().await));
                    }
                    t.elapsed().as_nanos() as f64 / ITERS as f64
                })
            }),
        ),
        (
            "gate acquire+release, stats on",
            Box::new(|| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..ITERS {
                        drop(black_box(black_box(&on).acquire().await));
                    }
                    t.elapsed().as_nanos() as f64 / ITERS as f64
                })
            }),
        ),
        (
            "gate labeled acquire+release, stats on",
            Box::new(|| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..ITERS {
                        drop(black_box(black_box(&on).labeled("vision").acquire().await));
                    }
                    t.elapsed().as_nanos() as f64 / ITERS as f64
                })
            }),
        ),
        (
            "gate acquire_owned+release, stats off",
            Box::new(|| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..ITERS {
                        drop(black_box(black_box(&off).acquire_owned().await));
                    }
                    t.elapsed().as_nanos() as f64 / ITERS as f64
                })
            }),
        ),
        (
            "gate acquire_blocking+release, stats off",
            Box::new(|| {
                let t = Instant::now();
                for _ in 0..ITERS {
                    drop(black_box(black_box(&off).acquire_blocking()));
                }
                t.elapsed().as_nanos() as f64 / ITERS as f64
            }),
        ),
    ];

    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for round in 0..ROUNDS {
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            samples[i].push((variants[i].1)());
        }
    }
    let mut mins = Vec::new();
    println!(
        "{:<44} {:>10} {:>10}",
        "variant (ns per op)", "min", "median"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let s = &mut samples[i];
        s.sort_by(f64::total_cmp);
        println!("{:<44} {:>10.1} {:>10.1}", name, s[0], s[s.len() / 2]);
        mins.push(s[0]);
    }
    println!();
    println!(
        "gate (stats off) / tokio Mutex: {:.2}x   gate (stats on) / tokio Mutex: {:.2}x",
        mins[2] / mins[0],
        mins[3] / mins[0]
    );
    println!(
        "stats bookkeeping per acquisition: {:.1} ns unlabeled, {:.1} ns labeled",
        mins[3] - mins[2],
        mins[4] - mins[2]
    );
}
