//! The statistics a hunt states: rates with exact 95% intervals, and how many runs a race of a
//! given rate needs to show.
//!
//! ```
//! use racegate_cli::hunt::stats::{clopper_pearson, runs_for_power, detectable_rate};
//!
//! // 0 failures in 14 runs: the rate is below 23% with 95% confidence…
//! let (lo, hi) = clopper_pearson(0, 14, 0.95);
//! assert_eq!(lo, 0.0);
//! assert!((hi - 0.2316).abs() < 1e-3);
//! // …and a failure of 20% per run shows in 14 runs with at least 95% probability.
//! assert_eq!(runs_for_power(0.2, 0.95), 14);
//! assert!((detectable_rate(14, 0.95) - 0.1926).abs() < 1e-3);
//! ```

use serde::Serialize;

/// A measured rate: `k` of `n` runs, with its exact (Clopper-Pearson) 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Runs that showed it.
    pub k: u32,
    /// Runs made.
    pub n: u32,
    /// `k / n` (0 when `n` is 0).
    pub rate: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

impl Rate {
    /// `k` of `n`.
    pub fn new(k: u32, n: u32) -> Self {
        let (low, high) = clopper_pearson(k, n, 0.95);
        Rate {
            k,
            n,
            rate: if n == 0 {
                0.0
            } else {
                f64::from(k) / f64::from(n)
            },
            low,
            high,
        }
    }

    /// `"3/5 (60%, 95% CI 15–95%)"`.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} ({}, 95% CI {}–{})",
            self.k,
            self.n,
            percent(self.rate),
            percent(self.low),
            percent(self.high)
        )
    }

    /// The rate used to plan runs: Laplace's `(k + 1) / (n + 2)`, so that a perfect record
    /// in a few runs is not taken for certainty (3/3 plans as 80%, not 100%).
    pub fn planning(&self) -> f64 {
        f64::from(self.k + 1) / f64::from(self.n + 2)
    }
}

/// A percentage for reports: `12%`, `0.5%`.
pub fn percent(p: f64) -> String {
    let v = p * 100.0;
    if v > 0.0 && v < 1.0 {
        format!("{v:.1}%")
    } else {
        format!("{v:.0}%")
    }
}

/// P(X ≤ k) for X ~ Binomial(n, p).
fn binom_cdf(k: u32, n: u32, p: f64) -> f64 {
    if k >= n {
        return 1.0;
    }
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    // Sum in log space for stability.
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_c = 0.0f64; // ln C(n, 0)
    let mut total = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            log_c += f64::from(n - i + 1).ln() - f64::from(i).ln();
        }
        total += (log_c + f64::from(i) * lp + f64::from(n - i) * lq).exp();
    }
    total.min(1.0)
}

/// The exact two-sided interval for a binomial rate with `k` of `n` at `confidence`.
pub fn clopper_pearson(k: u32, n: u32, confidence: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let alpha = (1.0 - confidence).clamp(1e-12, 1.0);
    // Bisection on p of a monotone function.
    let solve = |f: &dyn Fn(f64) -> f64, target: f64| {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..100 {
            let mid = (lo + hi) / 2.0;
            // f decreases in p.
            if f(mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (lo + hi) / 2.0
    };
    let low = if k == 0 {
        0.0
    } else {
        // P(X ≥ k | p) = α/2  ⇔  1 − cdf(k−1) = α/2  ⇔  cdf(k−1) = 1 − α/2.
        solve(&|p| binom_cdf(k - 1, n, p), 1.0 - alpha / 2.0)
    };
    let high = if k >= n {
        1.0
    } else {
        solve(&|p| binom_cdf(k, n, p), alpha / 2.0)
    };
    (low, high)
}

/// The probability that a failure of per-run rate `p` shows at least once in `n` runs.
pub fn power(p: f64, n: u32) -> f64 {
    if p.is_nan() || p <= 0.0 {
        return 0.0;
    }
    1.0 - (1.0 - p.min(1.0)).powi(n.min(i32::MAX as u32) as i32)
}

/// The fewest runs in which a failure of per-run rate `p` shows with probability `target`
/// (at least 1; `u32::MAX` for a rate of 0).
pub fn runs_for_power(p: f64, target: f64) -> u32 {
    if p.is_nan() || p <= 0.0 {
        return u32::MAX;
    }
    if p >= 1.0 || target <= 0.0 {
        return 1;
    }
    let target = target.min(1.0 - 1e-12);
    let n = ((1.0 - target).ln() / (1.0 - p).ln()).ceil();
    if n.is_finite() && n >= 1.0 {
        n.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

/// How many runs of a set that reproduced in every run so far are worth making before its
/// `members` are each checked for necessity: more confirmations raise the lower end of the
/// set's rate, and so cut the runs each member check needs (at `target` power, at most `cap`).
/// Returns the count in `floor..=most` that minimizes `confirm_cost · n + members · m(n)`,
/// `m(n)` being the runs per member after `n` of `n` (a confirmation that reproduces a hang
/// waits out its timeout: it costs more than a member check that passes).
pub fn confirm_runs_for_members(
    members: usize,
    target: f64,
    cap: u32,
    confirm_cost: f64,
    floor: u32,
    most: u32,
) -> u32 {
    let floor = floor.max(1);
    let cost = |n: u32| {
        let (low, _) = clopper_pearson(n, n, 0.95);
        let m = runs_for_power(low.max(0.01), target).min(cap.max(1));
        confirm_cost * f64::from(n) + members as f64 * f64::from(m)
    };
    (floor..=most.max(floor))
        .min_by(|a, b| cost(*a).total_cmp(&cost(*b)))
        .unwrap_or(floor)
}

/// The smallest per-run rate that `n` clean runs rule out with probability `target`: a failure
/// at least this frequent would have shown.
pub fn detectable_rate(n: u32, target: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    1.0 - (1.0 - target).powf(1.0 / f64::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_intervals() {
        // Reference values (R: binom.test).
        let (lo, hi) = clopper_pearson(3, 5, 0.95);
        assert!(
            (lo - 0.1466).abs() < 1e-3 && (hi - 0.9473).abs() < 1e-3,
            "{lo} {hi}"
        );
        let (lo, hi) = clopper_pearson(5, 5, 0.95);
        assert!((lo - 0.4782).abs() < 1e-3 && hi == 1.0, "{lo}");
        let (lo, hi) = clopper_pearson(0, 20, 0.95);
        assert!(lo == 0.0 && (hi - 0.1684).abs() < 1e-3, "{hi}");
        assert_eq!(clopper_pearson(0, 0, 0.95), (0.0, 1.0));
    }

    #[test]
    fn runs_and_power_agree() {
        assert_eq!(runs_for_power(1.0, 0.95), 1);
        assert_eq!(runs_for_power(0.5, 0.95), 5);
        assert_eq!(runs_for_power(0.2, 0.95), 14);
        assert_eq!(runs_for_power(0.0, 0.95), u32::MAX);
        for pct in 1..=99 {
            let p = f64::from(pct) / 100.0;
            let n = runs_for_power(p, 0.95);
            assert!(power(p, n) >= 0.95 - 1e-9);
            assert!(n == 1 || power(p, n - 1) < 0.95);
        }
        assert!((detectable_rate(5, 0.95) - 0.4507).abs() < 1e-3);
        assert_eq!(Rate::new(3, 3).planning(), 0.8);
        assert_eq!(Rate::new(1, 5).describe(), "1/5 (20%, 95% CI 0.5%–72%)");
    }

    #[test]
    fn confirmations_are_worth_what_they_save_in_member_checks() {
        // Three members at 95%/3 each: 3 of 3 would need 12 runs per member (39 in all);
        // 8 of 8 needs 5 (23 in all).
        let target = 1.0 - 0.05 / 3.0;
        assert_eq!(runs_for_power(clopper_pearson(3, 3, 0.95).0, target), 12);
        let n = confirm_runs_for_members(3, target, 20, 1.0, 3, 16);
        assert!((8..=13).contains(&n), "{n}");
        // Costlier confirmations (hangs) stop sooner; a lone member needs few.
        assert!(confirm_runs_for_members(3, target, 20, 2.0, 3, 16) < n);
        assert_eq!(confirm_runs_for_members(0, target, 20, 1.0, 3, 16), 3);
        // Never below the floor, never above the most.
        assert_eq!(confirm_runs_for_members(50, target, 20, 1.0, 5, 5), 5);
    }

    proptest! {
        #[test]
        fn intervals_hold_the_estimate(n in 1u32..200, k_frac in 0.0f64..=1.0) {
            let k = ((f64::from(n) * k_frac).round() as u32).min(n);
            let (lo, hi) = clopper_pearson(k, n, 0.95);
            let p = f64::from(k) / f64::from(n);
            prop_assert!(lo <= p + 1e-9 && p <= hi + 1e-9);
            prop_assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
        }
    }
}
