//! The winner rule of a comparison, pure: it reads one [`StressRunSummary`] per stress run of
//! each build and names the better build, or none. Printers only read what is decided here.
//!
//! # The winner rule
//!
//! Applied in order; the first step that separates the builds names the winner:
//!
//! 1. A build that was never healthy in some run (verdict ERROR) loses to one that always was.
//! 2. A build that never crashed (no crash, no restart in any run) beats one that did.
//! 3. Fewer failed answer checks, summed over the runs.
//! 4. Fewer errors, summed over the runs.
//! 5. Higher median throughput (successful requests per second), only when the medians differ
//!    by more than the runs' spread (the larger of the two builds' max − min) and by at least
//!    [`THROUGHPUT_NOISE_FLOOR`] of the higher median; a single run has no spread, so the floor
//!    alone keeps scheduler noise from naming a winner.
//!
//! Otherwise there is no clear winner. An interrupted comparison names none.

use crate::report::compare::{Side, SideRuns, WinnerDecision};
use crate::verdict::Verdict;

/// Throughput medians closer than this fraction of the higher one are noise.
pub const THROUGHPUT_NOISE_FLOOR: f64 = 0.05;

fn of_runs(n: usize, total: usize) -> String {
    format!("{n} of {total} run{}", if total == 1 { "" } else { "s" })
}

/// Apply the winner rule (see the module docs).
pub fn decide_winner(a: &SideRuns, b: &SideRuns) -> WinnerDecision {
    let none = |reason: String| WinnerDecision {
        winner: None,
        reason,
    };
    let win = |side: Side, reason: String| WinnerDecision {
        winner: Some(side),
        reason,
    };
    if a.runs.is_empty() || b.runs.is_empty() {
        return none("no clear winner: a build has no runs".into());
    }
    if a.runs
        .iter()
        .chain(&b.runs)
        .any(|r| r.verdict == Verdict::Aborted)
    {
        return none("no clear winner: the comparison was interrupted".into());
    }
    let sides = [(Side::A, a, b), (Side::B, b, a)];

    let (ua, ub) = (a.unhealthy_runs(), b.unhealthy_runs());
    if (ua == 0) != (ub == 0) {
        let (side, good, bad) = if ua == 0 { sides[0] } else { sides[1] };
        return win(
            side,
            format!(
                "{} was healthy in every run; {} never became healthy in {}",
                good.label,
                bad.label,
                of_runs(bad.unhealthy_runs(), bad.runs.len())
            ),
        );
    }
    if ua > 0 {
        return none("no clear winner: neither build was healthy in every run".into());
    }

    let (ca, cb) = (a.crashed_runs(), b.crashed_runs());
    if (ca == 0) != (cb == 0) {
        let (side, good, bad) = if ca == 0 { sides[0] } else { sides[1] };
        let sig = bad
            .signatures()
            .first()
            .map(|(s, _)| format!(" ({s})"))
            .unwrap_or_default();
        return win(
            side,
            format!(
                "{} never crashed; {} crashed in {}{sig}",
                good.label,
                bad.label,
                of_runs(bad.crashed_runs(), bad.runs.len())
            ),
        );
    }
    let both = if ca > 0 {
        "both crashed"
    } else {
        "neither crashed"
    };

    for (what, fa, fb) in [
        ("failed checks", a.failed_checks(), b.failed_checks()),
        ("errors", a.errors(), b.errors()),
    ] {
        if fa != fb {
            let side = if fa < fb { Side::A } else { Side::B };
            let (good, bad, g, w) = if fa < fb {
                (a, b, fa, fb)
            } else {
                (b, a, fb, fa)
            };
            return win(
                side,
                format!(
                    "{both}; {} had fewer {what} ({g} vs {w} for {})",
                    good.label, bad.label
                ),
            );
        }
    }

    let (Some(ta), Some(tb)) = (a.throughput(), b.throughput()) else {
        return none("no clear winner: no throughput to compare".into());
    };
    let diff = (ta.median - tb.median).abs();
    let spread = ta.spread().max(tb.spread());
    let floor = THROUGHPUT_NOISE_FLOOR * ta.median.max(tb.median);
    let medians = format!(
        "median throughput {:.1} req/s ({}) vs {:.1} req/s ({})",
        ta.median, a.label, tb.median, b.label
    );
    if diff > spread && diff > floor {
        let side = if ta.median > tb.median {
            Side::A
        } else {
            Side::B
        };
        let good = if side == Side::A { a } else { b };
        return win(
            side,
            format!(
                "{both}, same failed checks and errors; {} is faster: {medians}, a difference \
                 larger than the runs' spread ({spread:.1} req/s) and the {:.0}% noise floor",
                good.label,
                THROUGHPUT_NOISE_FLOOR * 100.0
            ),
        );
    }
    let why = if diff <= spread {
        format!("within the runs' spread ({spread:.1} req/s)")
    } else {
        format!(
            "within the {:.0}% noise floor",
            THROUGHPUT_NOISE_FLOOR * 100.0
        )
    };
    none(format!(
        "no clear winner: {both}, same failed checks and errors, and {medians} differ by {diff:.1} req/s, {why}"
    ))
}

/// The exit status of a comparison: 0 when every run of both builds passed, else 1.
pub fn exit_code(a: &SideRuns, b: &SideRuns) -> u8 {
    if a.all_passed() && b.all_passed() {
        crate::exit::SUCCESS
    } else {
        crate::exit::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::Stat;
    use crate::report::run::StressRunSummary;
    use std::time::Duration;

    fn run(verdict: Verdict, crashes: u64, checks: u64, errors: u64, rps: f64) -> StressRunSummary {
        StressRunSummary {
            verdict,
            reason: String::new(),
            duration: Duration::from_secs(1),
            pipelines: Vec::new(),
            signatures: if crashes > 0 {
                vec![(
                    "assertion: commit an already committed command buffer".into(),
                    crashes,
                )]
            } else {
                Vec::new()
            },
            crashes,
            restarts: 0,
            failed_checks: checks,
            errors,
            requests: 100,
            throughput_rps: rps,
            time_to_first_failure: None,
            target_pids: Vec::new(),
        }
    }

    fn side(label: &str, runs: Vec<StressRunSummary>) -> SideRuns {
        SideRuns {
            label: label.into(),
            runs,
        }
    }

    use Verdict::*;

    #[test]
    fn never_crashed_beats_crashed_even_when_slower() {
        let a = side("streams", vec![run(Fail, 3, 0, 900, 5000.0)]);
        let b = side("gated", vec![run(Pass, 0, 0, 0, 300.0)]);
        let d = decide_winner(&a, &b);
        assert_eq!(d.winner, Some(Side::B));
        assert!(d.reason.contains("gated never crashed"), "{}", d.reason);
        assert!(
            d.reason.contains("commit an already committed"),
            "{}",
            d.reason
        );
        assert_eq!(decide_winner(&b, &a).winner, Some(Side::A));
    }

    #[test]
    fn a_restart_counts_as_a_crash() {
        let mut restarted = run(Fail, 0, 0, 0, 100.0);
        restarted.restarts = 1;
        let a = side("a", vec![restarted]);
        let b = side("b", vec![run(Pass, 0, 0, 0, 100.0)]);
        assert_eq!(decide_winner(&a, &b).winner, Some(Side::B));
    }

    #[test]
    fn unhealthy_loses_even_to_a_crasher() {
        let a = side("a", vec![run(Error, 0, 0, 0, 0.0)]);
        let b = side("b", vec![run(Fail, 2, 0, 10, 100.0)]);
        let d = decide_winner(&a, &b);
        assert_eq!(d.winner, Some(Side::B));
        assert!(d.reason.contains("never became healthy"), "{}", d.reason);
    }

    #[test]
    fn then_failed_checks_then_errors() {
        let a = side("a", vec![run(Fail, 1, 5, 10, 100.0)]);
        let b = side("b", vec![run(Fail, 1, 2, 50, 100.0)]);
        let d = decide_winner(&a, &b);
        assert_eq!(d.winner, Some(Side::B));
        assert!(d
            .reason
            .starts_with("both crashed; b had fewer failed checks (2 vs 5"));
        let a = side("a", vec![run(Partial, 0, 0, 3, 100.0)]);
        let b = side("b", vec![run(Partial, 0, 0, 7, 900.0)]);
        let d = decide_winner(&a, &b);
        assert_eq!(d.winner, Some(Side::A));
        assert!(d.reason.contains("fewer errors (3 vs 7"), "{}", d.reason);
    }

    #[test]
    fn throughput_only_beyond_the_spread() {
        // Medians 100 vs 130, spreads 10 and 20: 30 > 20 -> B.
        let a = side(
            "a",
            vec![
                run(Pass, 0, 0, 0, 95.0),
                run(Pass, 0, 0, 0, 100.0),
                run(Pass, 0, 0, 0, 105.0),
            ],
        );
        let b = side(
            "b",
            vec![
                run(Pass, 0, 0, 0, 120.0),
                run(Pass, 0, 0, 0, 130.0),
                run(Pass, 0, 0, 0, 140.0),
            ],
        );
        let d = decide_winner(&a, &b);
        assert_eq!(d.winner, Some(Side::B), "{}", d.reason);
        // Same medians' gap, but B's spread is 60: no clear winner.
        let b = side(
            "b",
            vec![
                run(Pass, 0, 0, 0, 100.0),
                run(Pass, 0, 0, 0, 130.0),
                run(Pass, 0, 0, 0, 160.0),
            ],
        );
        let d = decide_winner(&a, &b);
        assert_eq!(d.winner, None);
        assert!(d.reason.contains("within the runs' spread"), "{}", d.reason);
    }

    #[test]
    fn one_run_each_needs_the_noise_floor() {
        let a = side("a", vec![run(Pass, 0, 0, 0, 1000.0)]);
        let b = side("b", vec![run(Pass, 0, 0, 0, 1030.0)]);
        let d = decide_winner(&a, &b);
        assert_eq!(d.winner, None);
        assert!(d.reason.contains("noise floor"), "{}", d.reason);
        let b = side("b", vec![run(Pass, 0, 0, 0, 1200.0)]);
        assert_eq!(decide_winner(&a, &b).winner, Some(Side::B));
    }

    #[test]
    fn identical_builds_have_no_winner() {
        let runs = vec![run(Pass, 0, 0, 0, 400.0), run(Pass, 0, 0, 0, 410.0)];
        let d = decide_winner(&side("x", runs.clone()), &side("y", runs));
        assert_eq!(d.winner, None);
        assert!(d.reason.starts_with("no clear winner: neither crashed"));
    }

    #[test]
    fn interrupted_comparisons_name_no_winner() {
        let a = side("a", vec![run(Aborted, 0, 0, 0, 1.0)]);
        let b = side("b", vec![run(Fail, 3, 0, 0, 1.0)]);
        assert_eq!(decide_winner(&a, &b).winner, None);
        assert_eq!(decide_winner(&side("a", vec![]), &b).winner, None);
    }

    #[test]
    fn exit_code_needs_every_run_to_pass() {
        let pass = side("a", vec![run(Pass, 0, 0, 0, 1.0), run(Pass, 0, 0, 0, 1.0)]);
        let mixed = side(
            "b",
            vec![run(Pass, 0, 0, 0, 1.0), run(Partial, 0, 0, 1, 1.0)],
        );
        assert_eq!(exit_code(&pass, &pass), 0);
        assert_eq!(exit_code(&pass, &mixed), 1);
        assert_eq!(exit_code(&side("a", vec![]), &pass), 1);
    }

    #[test]
    fn stats_and_signature_totals() {
        let s = Stat::of([3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Stat::of([1.0, 2.0]).unwrap().median, 1.5);
        assert!(Stat::of([]).is_none());
        let a = side("a", vec![run(Fail, 2, 0, 0, 1.0), run(Fail, 3, 0, 0, 1.0)]);
        assert_eq!(a.signatures()[0].1, 5);
        assert_eq!(a.crashes(), 5);
    }
}
