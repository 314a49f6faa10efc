//! The verdict of a stress run, computed here and only here.
//!
//! Printers never decide anything: they read [`Verdict`] from the run report. The rules come
//! from the issue and are tested exhaustively below:
//!
//! | verdict | when | exit |
//! |---------|------|------|
//! | ERROR   | smoke probes failed (the target was not healthy); nothing was hammered | 2 |
//! | ABORTED | the run was interrupted (Ctrl-C) | 130 |
//! | FAIL    | any crash or restart, any failed answer check, or a pipeline that never succeeded | 1 |
//! | PARTIAL | errors without any of the above, over `max_error_rate` | 3 |
//! | PASS    | none of the above | 0 |

use std::fmt;

use serde::Serialize;

use crate::exit;

/// The outcome of a stress run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// No crash, no restart, no failed check, error rate within bounds, every pipeline answered.
    Pass,
    /// Errors above `max_error_rate`, but no crash, restart or failed check.
    Partial,
    /// A crash, a restart, a failed answer check, or a pipeline that never succeeded.
    Fail,
    /// The target was not healthy before the run (smoke probes failed); nothing was hammered.
    Error,
    /// The run was interrupted before its end.
    Aborted,
}

impl Verdict {
    /// The process exit status documented for this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => exit::SUCCESS,
            Verdict::Fail => exit::FAILURE,
            Verdict::Partial => exit::PARTIAL,
            Verdict::Error => exit::ERROR,
            Verdict::Aborted => exit::INTERRUPTED,
        }
    }

    /// The upper-case name used in every report.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Partial => "PARTIAL",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
            Verdict::Aborted => "ABORTED",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds from the scenario's `[verdict]` table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Highest error rate (errors / requests, 0.0..=1.0) that still passes.
    pub max_error_rate: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_error_rate: 0.0,
        }
    }
}

/// What the verdict is computed from: counts folded from the run's events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Smoke probes failed or the managed target never became healthy.
    pub unhealthy: bool,
    /// The run was cancelled before its bound.
    pub aborted: bool,
    /// Distinct crash occurrences from every watcher.
    pub crashes: u64,
    /// Restarts of the managed target.
    pub restarts: u64,
    /// Answers that failed the pipeline's check.
    pub failed_checks: u64,
    /// Requests sent during the run (not counting probes).
    pub requests: u64,
    /// Requests that ended in any error, failed checks included.
    pub errors: u64,
    /// Names of pipelines that never got one successful answer.
    pub pipelines_never_succeeded: Vec<String>,
}

/// The verdict and a one-line reason a human can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, e.g. "2 crashes (SIGABRT ...), 1 restart".
    pub reason: String,
}

/// Compute the verdict. Order matters: a run that never started is ERROR whatever else
/// happened; an interrupted run is ABORTED even if it already saw a crash (the report still
/// lists it), because its counts are not the ones the scenario asked for.
pub fn decide(facts: &Facts, thresholds: &Thresholds) -> Decision {
    if facts.unhealthy {
        return Decision {
            verdict: Verdict::Error,
            reason: "target not healthy: smoke probes failed, nothing was hammered".into(),
        };
    }
    if facts.aborted {
        return Decision {
            verdict: Verdict::Aborted,
            reason: "interrupted before the end of the run".into(),
        };
    }
    let mut fail = Vec::new();
    if facts.crashes > 0 {
        fail.push(plural(facts.crashes, "crash", "crashes"));
    }
    if facts.restarts > 0 {
        fail.push(plural(facts.restarts, "restart", "restarts"));
    }
    if facts.failed_checks > 0 {
        fail.push(plural(facts.failed_checks, "failed check", "failed checks"));
    }
    if !facts.pipelines_never_succeeded.is_empty() {
        fail.push(format!(
            "never succeeded: {}",
            facts.pipelines_never_succeeded.join(", ")
        ));
    }
    if !fail.is_empty() {
        return Decision {
            verdict: Verdict::Fail,
            reason: fail.join("; "),
        };
    }
    let rate = error_rate(facts.errors, facts.requests);
    if rate > thresholds.max_error_rate {
        return Decision {
            verdict: Verdict::Partial,
            reason: format!(
                "error rate {:.4} above max_error_rate {} ({} of {} requests), no crash",
                rate, thresholds.max_error_rate, facts.errors, facts.requests
            ),
        };
    }
    Decision {
        verdict: Verdict::Pass,
        reason: format!(
            "{} requests, error rate {:.4} within {}, no crash, no failed check",
            facts.requests, rate, thresholds.max_error_rate
        ),
    }
}

/// Errors over requests; 0 when nothing was sent.
pub fn error_rate(errors: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules of the issue, written independently of `decide` so the table checks it.
    fn expected(f: &Facts, t: &Thresholds) -> Verdict {
        let fail = f.crashes > 0
            || f.restarts > 0
            || f.failed_checks > 0
            || !f.pipelines_never_succeeded.is_empty();
        let over = f.requests > 0 && (f.errors as f64 / f.requests as f64) > t.max_error_rate;
        match (f.unhealthy, f.aborted, fail, over) {
            (true, _, _, _) => Verdict::Error,
            (false, true, _, _) => Verdict::Aborted,
            (false, false, true, _) => Verdict::Fail,
            (false, false, false, true) => Verdict::Partial,
            (false, false, false, false) => Verdict::Pass,
        }
    }

    #[test]
    fn every_combination_of_facts() {
        let mut seen = std::collections::HashSet::new();
        for bits in 0u32..(1 << 8) {
            let b = |i: u32| bits & (1 << i) != 0;
            let facts = Facts {
                unhealthy: b(0),
                aborted: b(1),
                crashes: b(2) as u64 * 2,
                restarts: b(3) as u64,
                failed_checks: b(4) as u64 * 3,
                requests: 100,
                errors: if b(5) { 10 } else { 0 },
                pipelines_never_succeeded: if b(6) { vec!["vision".into()] } else { vec![] },
            };
            for max in [0.0, 0.05, 0.2] {
                let t = Thresholds {
                    max_error_rate: max,
                };
                let d = decide(&facts, &t);
                assert_eq!(d.verdict, expected(&facts, &t), "{facts:?} {t:?}");
                assert!(!d.reason.is_empty());
                seen.insert(d.verdict);
            }
        }
        assert_eq!(seen.len(), 5, "every verdict is reachable");
    }

    #[test]
    fn error_rate_exactly_at_threshold_passes() {
        let facts = Facts {
            requests: 100,
            errors: 5,
            ..Facts::default()
        };
        let d = decide(
            &facts,
            &Thresholds {
                max_error_rate: 0.05,
            },
        );
        assert_eq!(d.verdict, Verdict::Pass);
        let d = decide(&facts, &Thresholds::default());
        assert_eq!(d.verdict, Verdict::Partial);
    }

    #[test]
    fn no_requests_is_not_a_division_by_zero() {
        assert_eq!(error_rate(0, 0), 0.0);
        let facts = Facts {
            pipelines_never_succeeded: vec!["text".into()],
            ..Facts::default()
        };
        let d = decide(&facts, &Thresholds::default());
        assert_eq!(d.verdict, Verdict::Fail);
        assert!(d.reason.contains("text"), "{}", d.reason);
    }

    #[test]
    fn exit_codes_follow_the_table() {
        assert_eq!(Verdict::Pass.exit_code(), 0);
        assert_eq!(Verdict::Fail.exit_code(), 1);
        assert_eq!(Verdict::Error.exit_code(), 2);
        assert_eq!(Verdict::Partial.exit_code(), 3);
        assert_eq!(Verdict::Aborted.exit_code(), 130);
    }
}
