//! How fast each modeled bug shows up, and that one dispatcher never trips it.
//!
//! ```sh
//! cargo run --release -p racegate-sim --no-default-features --example race_timing
//! ```
//!
//! Two dispatchers (threads) per scenario, each dispatch costing about 1 ms of CPU, under the
//! `Error` policy; 20 trials each; prints the median and the slowest time to the first failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use racegate_sim::{passes_for, Kernel, Scratch, SimDevice, SimError, ViolationPolicy};

const TRIALS: usize = 20;
const LIMIT: Duration = Duration::from_secs(10);

/// Time until one of two dispatchers fails, or `None` after `LIMIT`.
fn time_to_failure(
    step: &(dyn Fn(usize, u64) -> Result<bool, SimError> + Sync),
) -> Option<Duration> {
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let failed = &failed;
            s.spawn(move || {
                let mut i = 0;
                while !failed.load(Ordering::Relaxed) && start.elapsed() < LIMIT {
                    if !matches!(step(t, i), Ok(true)) {
                        failed.store(true, Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
        }
    });
    failed.load(Ordering::Relaxed).then(|| start.elapsed())
}

fn report(name: &str, run: impl Fn() -> Option<Duration>) {
    let mut times: Vec<Duration> = Vec::new();
    let mut misses = 0;
    for _ in 0..TRIALS {
        match run() {
            Some(t) => times.push(t),
            None => misses += 1,
        }
    }
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let max = times.last().copied().unwrap_or_default();
    println!(
        "{name:<40} failed {:>2}/{TRIALS}  median {:>8.2?}  slowest {:>8.2?}",
        times.len(),
        median,
        max
    );
    if misses > 0 {
        println!("{:<40} {misses} trials ran {LIMIT:?} without failing", "");
    }
}

fn main() {
    let passes = passes_for(Duration::from_millis(1));
    println!("kernel: {passes} passes per ~1 ms dispatch\n");

    report("(a) two dispatchers, default stream", || {
        let device = SimDevice::new(ViolationPolicy::Error);
        time_to_failure(&|t, i| {
            let k = Kernel {
                seed: (t as u64) << 32 | i,
                passes,
            };
            device
                .default_stream()
                .eval(&k, &Scratch::new())
                .map(|_| true)
        })
    });

    report("(b) distinct streams + dependency", || {
        let device = SimDevice::new(ViolationPolicy::Error);
        let streams = [device.create_stream(), device.create_stream()];
        time_to_failure(&|t, i| {
            streams[t].depend_on(&streams[1 - t])?;
            let k = Kernel { seed: i, passes };
            streams[t].eval(&k, &Scratch::new()).map(|_| true)
        })
    });

    report("(c) shared scratch: first wrong answer", || {
        let device = SimDevice::new(ViolationPolicy::Error);
        let streams = [device.create_stream(), device.create_stream()];
        let scratch = Scratch::new();
        time_to_failure(&|t, i| {
            let k = Kernel {
                seed: (t as u64 + 1) << 40 | i,
                passes,
            };
            Ok(streams[t].eval(&k, &scratch)? == k.expected())
        })
    });

    // The control: one dispatcher alternating between everything above, for 2 s.
    let device = SimDevice::new(ViolationPolicy::Error);
    let (shared, a, b) = (
        device.default_stream(),
        device.create_stream(),
        device.create_stream(),
    );
    let scratch = Scratch::new();
    let start = Instant::now();
    let mut evals = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let k = Kernel {
            seed: evals,
            passes,
        };
        let ok = shared.eval(&k, &scratch).unwrap() == k.expected()
            && a.depend_on(&b).is_ok()
            && a.eval(&k, &scratch).unwrap() == k.expected()
            && b.depend_on(&a).is_ok()
            && b.eval(&k, &scratch).unwrap() == k.expected();
        assert!(ok, "one dispatcher must never fail");
        evals += 3;
    }
    println!("\ncontrol: one dispatcher, {evals} dispatches in 2 s, 0 violations, 0 wrong answers");
}
