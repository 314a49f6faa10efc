//! The machine-wide gate's uncontended acquire+release (records and history included) against
//! the floor it is built on: a bare open + flock + unlock + close of a file in the same
//! directory; and weighted acquisitions (n = 1, 8, 40 of an 80-unit budget, alone and beside
//! two other holders, whose lanes each acquisition probes) against both. All run side by side
//! in one process, in one run.
//!
//! `cargo bench -p racegate --bench machine -- --warm-up-time 1 --measurement-time 3`
//! Results and ratios go to BENCHMARKS.md ("Machine-wide gate"). The lock directory is a
//! temp dir under `RACEGATE_BENCH_DIR` (default: the system temp dir), so the file system
//! under test can be chosen (`/dev/shm` for tmpfs, as `$XDG_RUNTIME_DIR` usually is).

use std::fs::OpenOptions;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use racegate::MachineGate;
use rustix::fs::{flock, FlockOperation};

fn machine(c: &mut Criterion) {
    let base = std::env::var_os("RACEGATE_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = match base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let mut g = c.benchmark_group("machine");

    let bare = tmp.path().join("bare.lock");
    g.bench_function("bare_open_flock_unlock_close", |b| {
        b.iter(|| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&bare)
                .unwrap();
            flock(&f, FlockOperation::LockExclusive).unwrap();
            flock(&f, FlockOperation::Unlock).unwrap();
            drop(black_box(f));
        })
    });

    let gate = MachineGate::builder("bench")
        .dir(tmp.path())
        .open()
        .unwrap();
    g.bench_function("machine_gate_acquire_release", |b| {
        b.iter(|| drop(black_box(gate.acquire_blocking().unwrap())))
    });
    let labeled = gate.clone();
    g.bench_function("machine_gate_labeled_acquire_release", |b| {
        b.iter(|| {
            drop(black_box(
                labeled.labeled("vision").acquire_blocking().unwrap(),
            ))
        })
    });
    let bare_gate = MachineGate::builder("bench-norec")
        .dir(tmp.path())
        .records(false)
        .open()
        .unwrap();
    g.bench_function("machine_gate_acquire_release_no_records", |b| {
        b.iter(|| drop(black_box(bare_gate.acquire_blocking().unwrap())))
    });

    let budget = MachineGate::builder("bench-budget")
        .dir(tmp.path())
        .capacity(80)
        .open()
        .unwrap();
    for n in [1, 8, 40] {
        g.bench_function(format!("weighted_acquire_release/{n}_of_80"), |b| {
            b.iter(|| drop(black_box(budget.acquire_many_blocking(n).unwrap())))
        });
    }
    let others = MachineGate::builder("bench-budget")
        .dir(tmp.path())
        .capacity(80)
        .open()
        .unwrap();
    let held = (
        others.acquire_many_blocking(10).unwrap(),
        others.acquire_many_blocking(10).unwrap(),
    );
    g.bench_function("weighted_acquire_release/40_of_80_beside_2_holders", |b| {
        b.iter(|| drop(black_box(budget.acquire_many_blocking(40).unwrap())))
    });
    drop(held);
    g.finish();
}

criterion_group!(benches, machine);
criterion_main!(benches);
