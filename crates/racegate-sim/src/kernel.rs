//! The work a dispatch does: a deterministic hash-and-reduce kernel of tunable cost, and the
//! scratch buffer it stages its partial results in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Slots in a [`Scratch`] buffer: each pass of a kernel writes all of them, then reads them back.
pub const SCRATCH_SLOTS: usize = 64;

/// Mixing rounds per slot and pass.
const ROUNDS: u32 = 6;

/// A buffer a kernel stages its partial results in between its write and its reduce phase.
///
/// Cloning shares the buffer. One scratch per dispatcher is correct; one scratch shared by
/// dispatchers that run at the same time is the silent-corruption bug: a kernel reads back slots
/// another kernel wrote, and returns a wrong answer without any error.
#[derive(Debug, Clone)]
pub struct Scratch {
    slots: Arc<[AtomicU64]>,
}

impl Scratch {
    /// A fresh, zeroed scratch buffer.
    pub fn new() -> Self {
        Scratch {
            slots: (0..SCRATCH_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Whether two handles share one buffer.
    pub fn ptr_eq(&self, other: &Scratch) -> bool {
        Arc::ptr_eq(&self.slots, &other.slots)
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// One unit of device work: `passes` identical passes of a hash-and-reduce over `seed`.
///
/// The answer depends on the seed only, never on the number of passes (which is the cost knob):
/// every pass must reduce to the same value, and a pass that read foreign data poisons the
/// result, as a real reduction carries a corrupted partial forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// What the kernel computes on.
    pub seed: u64,
    /// How many passes it makes (at least one).
    pub passes: u32,
}

impl Kernel {
    /// A kernel over `seed` costing about `cost` of CPU time on this machine
    /// (see [`passes_for`]).
    pub fn with_cost(seed: u64, cost: Duration) -> Self {
        Kernel {
            seed,
            passes: passes_for(cost),
        }
    }

    /// The answer this kernel gives when nothing else touches its scratch buffer.
    pub fn expected(&self) -> u64 {
        one_pass(self.seed, &Scratch::new())
    }

    /// Run the kernel on the CPU, staging through `scratch`.
    pub fn run(&self, scratch: &Scratch) -> u64 {
        let first = one_pass(self.seed, scratch);
        let mut poison = 0u64;
        for _ in 1..self.passes.max(1) {
            poison |= one_pass(self.seed, scratch) ^ first;
        }
        first ^ poison.rotate_left(17)
    }
}

/// splitmix64's finalizer: cheap, well mixed, deterministic.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn one_pass(seed: u64, scratch: &Scratch) -> u64 {
    // Relaxed is enough: the sharing this models is a bug by design, and a correct caller gives
    // each dispatcher its own scratch (or serializes them), which already orders the accesses.
    for (i, slot) in scratch.slots.iter().enumerate() {
        let mut v = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for _ in 0..ROUNDS {
            v = mix(v);
        }
        slot.store(v, Ordering::Relaxed);
    }
    scratch
        .slots
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |acc, slot| {
            mix(acc ^ slot.load(Ordering::Relaxed))
        })
}

/// How many passes take about `cost` on this machine (at least one).
///
/// Measured once per process (a few milliseconds) and cached; the answer of a kernel does not
/// depend on it.
pub fn passes_for(cost: Duration) -> u32 {
    static PASS_NANOS: OnceLock<f64> = OnceLock::new();
    let per_pass = *PASS_NANOS.get_or_init(|| {
        let scratch = Scratch::new();
        let probe = Kernel {
            seed: 0x5eed,
            passes: 2_000,
        };
        // Warm up once, then take the best of three so a preempted run does not inflate it.
        std::hint::black_box(probe.run(&scratch));
        (0..3)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(probe.run(&scratch));
                start.elapsed().as_nanos() as f64 / f64::from(probe.passes)
            })
            .fold(f64::INFINITY, f64::min)
            .max(1.0)
    });
    let passes = (cost.as_nanos() as f64 / per_pass).round();
    passes.clamp(1.0, f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_does_not_depend_on_cost() {
        let scratch = Scratch::new();
        let a = Kernel { seed: 7, passes: 1 }.run(&scratch);
        let b = Kernel {
            seed: 7,
            passes: 50,
        }
        .run(&scratch);
        assert_eq!(a, b);
        assert_eq!(a, Kernel { seed: 7, passes: 3 }.expected());
        assert_ne!(a, Kernel { seed: 8, passes: 1 }.expected());
    }

    #[test]
    fn cost_calibration_scales() {
        let small = passes_for(Duration::from_micros(100));
        let large = passes_for(Duration::from_millis(10));
        assert!(small >= 1);
        assert!(
            large > small,
            "{large} passes for 10ms vs {small} for 100us"
        );
    }
}
