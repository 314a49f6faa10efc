//! Bisection over the tests of a failing run: find a small set that still fails when run together.
//!
//! The search is a pure function over an oracle (`probe(subset) -> reproduced?`), so it is unit
//! tested and benchmarked without running a single process. It is delta debugging specialised to
//! the shape of concurrency conflicts, which are almost always tiny sets (a pair, or the few tests
//! that share a leaking fixture):
//!
//! 1. binary-search the shortest prefix of the candidates that still reproduces; its last test is
//!    necessary (without it the prefix did not reproduce), so it joins the conflict set;
//! 2. ask whether the conflict set reproduces on its own; if it does, stop;
//! 3. otherwise repeat on the tests before that one, always including the conflict set.
//!
//! A conflict set of `k` tests among `n` costs at most `k * (ceil(log2 n) + 1)` probes: 12 for a
//! pair among 30, against 435 for trying every pair. Every "reproduced" answer is an observed
//! failure, so the reported set always did fail when run; a flaky oracle (a false "not
//! reproduced") can only make the set larger than minimal, never wrong. That is why each probe
//! is repeated for a stated confidence by the caller ([`runs_per_probe`]).

/// What the bisection found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bisection<T> {
    /// The smallest failing set found, in candidate order.
    pub conflict_set: Vec<T>,
    /// How many probes (oracle calls) were spent.
    pub probes: usize,
    /// `true` when the set is 1-minimal under the oracle: dropping the last-found test made it
    /// pass. `false` when the probe limit ended the search early (the set still reproduced).
    pub minimal: bool,
}

/// Find a small subset of `candidates` for which `reproduces` answers `true`.
///
/// The caller must already have observed `candidates` as a whole reproducing: that observation
/// is not spent again. `max_probes` bounds the search; when it is reached the smallest set that
/// was seen to reproduce is returned with `minimal: false`.
pub fn bisect<T, F>(candidates: &[T], max_probes: usize, reproduces: F) -> Bisection<T>
where
    T: Clone,
    F: FnMut(&[T]) -> bool,
{
    bisect_with(&[], candidates, max_probes, reproduces)
}

/// [`bisect`] with `fixed` members that every probe holds and the result keeps (the test that
/// failed: a set without it cannot show its failure). The result is `fixed` followed by the
/// members found, in candidate order.
pub fn bisect_with<T, F>(
    fixed: &[T],
    candidates: &[T],
    max_probes: usize,
    mut reproduces: F,
) -> Bisection<T>
where
    T: Clone,
    F: FnMut(&[T]) -> bool,
{
    let mut found: Vec<T> = Vec::new();
    // Invariant: `fixed ++ rest ++ found` was observed (or given) to reproduce.
    let mut rest: Vec<T> = candidates.to_vec();
    let mut probes = 0usize;
    let mut probe = |set: &[T], probes: &mut usize| {
        *probes += 1;
        reproduces(set)
    };
    let with = |found: &[T], prefix: &[T]| -> Vec<T> {
        // Keep candidate order: earlier tests (the rest) first, then those already found.
        let mut v = fixed.to_vec();
        v.extend_from_slice(prefix);
        v.extend_from_slice(found);
        v
    };

    loop {
        if rest.is_empty() {
            return Bisection {
                conflict_set: with(&found, &[]),
                probes,
                minimal: true,
            };
        }
        if !found.is_empty() {
            if probes >= max_probes {
                return Bisection {
                    conflict_set: with(&found, &rest),
                    probes,
                    minimal: false,
                };
            }
            if probe(&with(&found, &[]), &mut probes) {
                return Bisection {
                    conflict_set: with(&found, &[]),
                    probes,
                    minimal: true,
                };
            }
        }
        // Smallest `hi` such that `fixed ++ rest[..hi] ++ found` reproduces; `lo` is known not
        // to (with nothing from the rest, `found` alone did not, or was never seen to).
        let (mut lo, mut hi) = (0usize, rest.len());
        while hi - lo > 1 {
            if probes >= max_probes {
                return Bisection {
                    conflict_set: with(&found, &rest[..hi]),
                    probes,
                    minimal: false,
                };
            }
            let mid = lo + (hi - lo) / 2;
            if probe(&with(&found, &rest[..mid]), &mut probes) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let necessary = rest[hi - 1].clone();
        rest.truncate(hi - 1);
        found.insert(0, necessary);
    }
}

/// Runs per probe so that a set which does reproduce, at per-run rate `rate`, is seen to do so
/// at least once with probability `confidence`: the smallest `r` with `1 - (1 - rate)^r >=
/// confidence`, capped at `cap` (and at least 1).
pub fn runs_per_probe(rate: f64, confidence: f64, cap: u32) -> u32 {
    let cap = cap.max(1);
    if rate.is_nan() || confidence.is_nan() || rate <= 0.0 || confidence <= 0.0 {
        return cap;
    }
    if rate >= 1.0 || confidence <= rate {
        return 1;
    }
    if confidence >= 1.0 {
        return cap;
    }
    let r = ((1.0 - confidence).ln() / (1.0 - rate).ln()).ceil();
    if r.is_finite() && r >= 1.0 {
        (r as u64).min(u64::from(cap)) as u32
    } else {
        cap
    }
}

/// Probes a search over `n` candidates for a pair is expected to make: `2 * ceil(log2 n) + 2`.
pub fn expected_probes(n: usize) -> usize {
    let log = (usize::BITS - n.max(2).saturating_sub(1).leading_zeros()) as usize;
    2 * log + 2
}

/// The per-probe confidence that makes the whole bisection over `n` candidates right with
/// probability `confidence` (a union bound over its expected probes): every probe of a
/// reproducing set must reproduce, or the result grows past the minimal set.
pub fn probe_confidence(confidence: f64, n: usize) -> f64 {
    1.0 - (1.0 - confidence) / expected_probes(n) as f64
}

/// The probe bound for one conflict set of up to `max_set` tests among `n` (with slack for a
/// flaky oracle): enough for the search above to finish on a correct oracle.
pub fn probe_limit(n: usize, max_set: usize) -> usize {
    let log = usize::BITS - n.max(1).leading_zeros(); // ceil(log2 n) + 1 at most
    max_set.max(1) * (log as usize + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// An oracle that reproduces exactly when every member of `culprits` is present.
    fn all_of(culprits: &[usize]) -> impl Fn(&[usize]) -> bool + '_ {
        move |set: &[usize]| culprits.iter().all(|c| set.contains(c))
    }

    #[test]
    fn finds_a_pair_in_few_probes() {
        for n in [2usize, 3, 7, 30, 100, 300] {
            for (a, b) in [(0, n - 1), (n / 3, n / 2), (n - 2, n - 1), (0, 1)] {
                if a == b {
                    continue;
                }
                let tests: Vec<usize> = (0..n).collect();
                let r = bisect(&tests, 10_000, all_of(&[a, b]));
                assert_eq!(
                    r.conflict_set,
                    vec![a.min(b), a.max(b)],
                    "n={n} pair=({a},{b})"
                );
                assert!(r.minimal);
                let bound = 4.0 * (n as f64).log2();
                assert!(
                    (r.probes as f64) < bound.max(3.0),
                    "n={n}: {} probes",
                    r.probes
                );
            }
        }
    }

    #[test]
    fn a_fixed_member_is_always_probed_and_kept() {
        let tests: Vec<usize> = (0..40).filter(|&t| t != 7).collect();
        let mut saw_without = false;
        let r = bisect_with(&[7], &tests, 10_000, |s: &[usize]| {
            saw_without |= !s.contains(&7);
            s.contains(&7) && s.contains(&33)
        });
        assert!(!saw_without);
        assert_eq!(r.conflict_set, vec![7, 33]);
        assert!(r.minimal);
        assert!(r.probes <= 8, "{}", r.probes);
    }

    #[test]
    fn finds_a_single_culprit_and_larger_sets() {
        let tests: Vec<usize> = (0..50).collect();
        let r = bisect(&tests, 10_000, all_of(&[17]));
        assert_eq!(r.conflict_set, vec![17]);
        let r = bisect(&tests, 10_000, all_of(&[3, 20, 41]));
        assert_eq!(r.conflict_set, vec![3, 20, 41]);
        assert!(r.minimal);
    }

    #[test]
    fn threshold_oracles_give_a_one_minimal_set() {
        // "Hangs when at least 3 of the fixture users are present" (the leaky-pool shape).
        let users: BTreeSet<usize> = [2, 5, 9, 11, 14].into_iter().collect();
        let tests: Vec<usize> = (0..20).collect();
        let oracle = |set: &[usize]| set.iter().filter(|t| users.contains(t)).count() >= 3;
        let r = bisect(&tests, 10_000, oracle);
        assert_eq!(r.conflict_set.len(), 3);
        assert!(r.conflict_set.iter().all(|t| users.contains(t)));
        assert!(oracle(&r.conflict_set));
        // 1-minimal: dropping any member passes.
        for i in 0..r.conflict_set.len() {
            let mut s = r.conflict_set.clone();
            s.remove(i);
            assert!(!oracle(&s));
        }
    }

    #[test]
    fn probe_limit_returns_a_set_that_was_seen_to_reproduce() {
        let tests: Vec<usize> = (0..64).collect();
        let oracle = all_of(&[10, 50]);
        let r = bisect(&tests, 3, &oracle);
        assert!(!r.minimal);
        assert_eq!(r.probes, 3);
        assert!(oracle(&r.conflict_set));
    }

    #[test]
    fn false_negatives_never_yield_a_non_reproducing_set() {
        // Every third probe lies "not reproduced": the result may be larger, never wrong.
        let tests: Vec<usize> = (0..40).collect();
        let truth = all_of(&[7, 33]);
        let mut calls = 0;
        let r = bisect(&tests, 10_000, |s: &[usize]| {
            calls += 1;
            calls % 3 != 0 && truth(s)
        });
        assert!(truth(&r.conflict_set));
    }

    #[test]
    fn per_probe_confidence_covers_the_whole_search() {
        assert_eq!(expected_probes(30), 12);
        assert_eq!(expected_probes(32), 12);
        assert_eq!(expected_probes(33), 14);
        let c = probe_confidence(0.95, 30);
        assert!((c - (1.0 - 0.05 / 12.0)).abs() < 1e-12);
        assert_eq!(runs_per_probe(0.5, c, 100), 8);
    }

    #[test]
    fn runs_per_probe_matches_the_formula() {
        assert_eq!(runs_per_probe(1.0, 0.95, 20), 1);
        assert_eq!(runs_per_probe(0.5, 0.95, 20), 5); // 1 - 0.5^5 = 0.969
        assert_eq!(runs_per_probe(0.2, 0.95, 20), 14);
        assert_eq!(runs_per_probe(0.01, 0.95, 20), 20);
        assert_eq!(runs_per_probe(0.0, 0.95, 7), 7);
        assert_eq!(runs_per_probe(f64::NAN, 0.95, 7), 7);
        for r in 1..=99 {
            let rate = f64::from(r) / 100.0;
            let k = runs_per_probe(rate, 0.9, 1000);
            assert!(1.0 - (1.0 - rate).powi(k as i32) >= 0.9 - 1e-9);
        }
    }
}
