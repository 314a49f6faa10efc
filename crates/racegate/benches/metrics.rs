//! Scrape cost: `racegate::metrics::render()` (the body of a `/metrics` answer) with 10 gates ×
//! 10 labels, each label with 1 000 recorded waits and holds spread over five decades; beside
//! it, `Gate::stats()` of the same 10 gates (what `/healthz` and `racegate status` read), and
//! the acquire+release that the export must not slow (stats on, as always).
//!
//! `cargo bench -p racegate --features metrics --bench metrics -- --warm-up-time 1 --measurement-time 3`
//! Results go to BENCHMARKS.md ("Metrics").

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use racegate::{metrics, Gate};

const GATES: usize = 10;
const LABELS: usize = 10;
const SAMPLES: usize = 1_000;

fn gates() -> Vec<Gate> {
    let mut out = Vec::new();
    for g in 0..GATES {
        let gate = Gate::new(format!("bench-gpu-{g}"));
        metrics::register(&gate);
        for l in 0..LABELS {
            let label = format!("pipeline-{l}");
            for i in 0..SAMPLES {
                let guard = gate.labeled(label.clone()).acquire_blocking();
                // Holds from ~0 to a few µs, so the histograms fill several buckets.
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_micros((i % 7) as u64));
                }
                drop(guard);
            }
        }
        out.push(gate);
    }
    out
}

fn scrape(c: &mut Criterion) {
    let gates = gates();
    let text = metrics::render();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    eprintln!(
        "render(): {} bytes, {series} samples for {GATES} gates × {LABELS} labels",
        text.len()
    );
    let mut g = c.benchmark_group("scrape_10_gates_x_10_labels");
    g.bench_function("metrics_render", |b| {
        b.iter(|| black_box(metrics::render()))
    });
    g.bench_function("stats_of_every_gate", |b| {
        b.iter(|| {
            for gate in &gates {
                black_box(gate.stats());
            }
        })
    });
    g.finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let gate = &gates[0];
    c.bench_function("labeled_acquire_release_while_exported", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(black_box(gate.labeled("pipeline-0").acquire().await)) })
    });
}

criterion_group!(benches, scrape);
criterion_main!(benches);
