//! Probe-count benchmark of `racegate hunt`'s bisection: how many suite runs it takes to isolate
//! one conflicting pair among n synthetic tests, against trying every pair.
//!
//! ```sh
//! cargo run --release -p racegate-cli --example bisect_bench
//! ```
//!
//! The oracle is simulated (no process runs): a probe reproduces when both members of the pair
//! are in it. With `rate < 1` each run of a reproducing probe fails only with that probability,
//! and the probe is repeated up to `runs_per_probe(rate, probe_confidence(0.95, n))` times, as
//! the hunt does (95% confidence for the whole search).

use racegate_cli::hunt::bisect::{bisect, probe_confidence, probe_limit, runs_per_probe};

/// A small deterministic generator (SplitMix64), so every run prints the same table.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

struct Stats {
    probes: Vec<usize>,
    runs: Vec<u64>,
    exact: usize,
}

fn trial(n: usize, rate: f64, trials: usize, rng: &mut Rng) -> Stats {
    let tests: Vec<usize> = (0..n).collect();
    let r = runs_per_probe(rate, probe_confidence(0.95, n), 20);
    let mut stats = Stats {
        probes: Vec::new(),
        runs: Vec::new(),
        exact: 0,
    };
    for _ in 0..trials {
        let a = rng.below(n);
        let mut b = rng.below(n);
        while b == a {
            b = rng.below(n);
        }
        let mut runs = 0u64;
        let result = bisect(&tests, probe_limit(n, 8), |set: &[usize]| {
            let present = set.contains(&a) && set.contains(&b);
            for _ in 0..r {
                runs += 1;
                if present && rng.chance(rate) {
                    return true;
                }
            }
            false
        });
        let mut want = vec![a, b];
        want.sort_unstable();
        if result.conflict_set == want {
            stats.exact += 1;
        }
        stats.probes.push(result.probes);
        stats.runs.push(runs);
    }
    stats
}

fn main() {
    let mut rng = Rng(0x5eed);
    let trials = 2_000;
    println!("| n | 4·log2(n) | all pairs | rate | runs/probe | probes mean | probes max | suite runs mean | exact pair found |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in [30usize, 100, 300] {
        for rate in [1.0, 0.5] {
            let s = trial(n, rate, trials, &mut rng);
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let probes: Vec<f64> = s.probes.iter().map(|&p| p as f64).collect();
            let runs: Vec<f64> = s.runs.iter().map(|&p| p as f64).collect();
            println!(
                "| {n} | {:.1} | {} | {rate} | {} | {:.1} | {} | {:.1} | {}/{trials} |",
                4.0 * (n as f64).log2(),
                n * (n - 1) / 2,
                runs_per_probe(rate, probe_confidence(0.95, n), 20),
                mean(&probes),
                s.probes.iter().max().unwrap(),
                mean(&runs),
                s.exact,
            );
        }
    }
}
