//! The terminal summary of a [`HuntReport`]. It only formats: the verdict and every figure
//! were computed by the engine.

use std::io::{self, Write};

use super::report::{Classification, HuntReport, HuntVerdict};
use super::stats::percent;

/// Print the terminal summary.
pub fn write_summary<W: Write>(w: &mut W, r: &HuntReport) -> io::Result<()> {
    writeln!(w)?;
    let parallel = r.suite_runs.iter().filter(|s| s.round > 0).count();
    writeln!(
        w,
        "racegate hunt: {}{} — {} tests, {} parallel runs (up to {} jobs, {}), {} suite runs in {:.1}s",
        r.verdict.as_str(),
        if r.partial { " (partial)" } else { "" },
        r.tests,
        parallel,
        r.jobs,
        r.runner.as_str(),
        r.total_runs,
        r.elapsed_ms as f64 / 1000.0
    )?;
    writeln!(
        w,
        "hang timeout: {:.1}s{}",
        r.test_timeout_ms as f64 / 1000.0,
        if r.test_timeout_derived {
            " (derived from the serial run; stretched when workers outnumber cores)"
        } else {
            " (--test-timeout)"
        }
    )?;
    if let Some(rate) = &r.rate_before {
        if rate.k > 0 {
            writeln!(w, "failing runs before any fix: {}", rate.describe())?;
        }
    }
    for (i, f) in r.findings.iter().enumerate() {
        writeln!(w)?;
        let label = match f.classification {
            Classification::Race => "race",
            Classification::Broken => "broken test (fails alone)",
            Classification::OrderDependent => "order-dependent (fails in a serial run, not alone)",
            Classification::Flaky => "flaky test (fails alone, sometimes)",
            Classification::Unresolved => "unresolved (not a race, not in the fix)",
            Classification::Covered => {
                "covered (its test is in a group; gone with the fix applied)"
            }
        };
        let seen = match f.found_in {
            super::report::FoundIn::Serial => "in the serial run".to_string(),
            super::report::FoundIn::Probe => "in a probe".to_string(),
            super::report::FoundIn::Suite => format!(
                "in {}/{} parallel runs at {} jobs{}",
                f.seen_in_runs,
                f.of_runs,
                f.jobs,
                if f.round > 1 {
                    format!(", round {}", f.round)
                } else {
                    String::new()
                }
            ),
        };
        writeln!(w, "[{}] {} — {} — {}", i + 1, f.kind.as_str(), label, seen)?;
        writeln!(w, "    signature: {}", f.signature)?;
        for s in f.signatures.iter().skip(1).take(4) {
            writeln!(w, "               {s}")?;
        }
        if f.test.is_none() && !f.in_flight.is_empty() {
            writeln!(w, "    in flight: {}", f.in_flight.join(", "))?;
        }
        if !f.conflict_set.is_empty() {
            let what = match f.classification {
                Classification::Race => "conflict set",
                Classification::Unresolved | Classification::Covered => "last set tried",
                _ => "test",
            };
            writeln!(
                w,
                "    {what}{}:",
                f.group
                    .as_ref()
                    .map(|g| format!(" (group {g})"))
                    .unwrap_or_default()
            )?;
            for t in &f.conflict_set {
                writeln!(w, "      {t}")?;
            }
        }
        if let Some(b) = &f.bisection {
            if let Some(fx) = &b.fixture_users_of {
                writeln!(
                    w,
                    "    search: the users of leaking fixture `{fx}` reproduced it (1 probe over {} candidates, {} runs); not reduced further",
                    b.candidates, b.runs
                )?;
            } else {
                writeln!(
                    w,
                    "    bisection: {} probes over {} candidates, ≤{} runs/probe, {} runs{}{}",
                    b.probes,
                    b.candidates,
                    b.runs_per_probe,
                    b.runs,
                    if b.inconclusive_probes > 0 {
                        format!(", {} inconclusive (other failures)", b.inconclusive_probes)
                    } else {
                        String::new()
                    },
                    if b.minimal {
                        ""
                    } else if b.fixture_users_of.is_some() {
                        " (the fixture's users, not reduced)"
                    } else if !b.writers_of.is_empty() {
                        " (the file's writers, not reduced)"
                    } else {
                        " (probe limit reached)"
                    }
                )?;
            }
        }
        if let Some(rep) = &f.reproduction {
            writeln!(
                w,
                "    reproduction: {}/{} runs of the set alone ({}, 95% CI {}–{})",
                rep.reproduced,
                rep.runs,
                percent(rep.rate),
                percent(rep.low),
                percent(rep.high)
            )?;
        }
        if let Some(m) = &f.minimality {
            let mut members: Vec<String> = m
                .members
                .iter()
                .map(|c| format!("without {}: {}/{}", c.test, c.reproduced, c.runs))
                .collect();
            members.extend(m.stand_ins.iter().map(|b| {
                format!(
                    "{} in place of {}: {}/{}",
                    b.replaced_by, b.test, b.reproduced, b.runs
                )
            }));
            writeln!(
                w,
                "    minimality: {} — {}{}",
                if m.minimal {
                    format!(
                        "every member needed, {:.0}% confidence",
                        m.confidence * 100.0
                    )
                } else {
                    "not shown".to_string()
                },
                if members.is_empty() {
                    "no other member".to_string()
                } else {
                    members.join(", ")
                },
                m.failing_test
                    .as_ref()
                    .map(|t| format!("; {} is the failing test", t))
                    .unwrap_or_default()
            )?;
        }
        for e in &f.evidence {
            writeln!(w, "    - {e}")?;
        }
        if let Some(l) = &f.leaking_fixture {
            writeln!(
                w,
                "    leaking fixture: `{}` ({}), blocked in {}; used by {} tests",
                l.name,
                l.location,
                l.blocked_in,
                l.used_by.len()
            )?;
        }
        if let Some(x) = &f.stack_excerpt {
            writeln!(
                w,
                "    stacks (excerpt; all threads are in the JSON report):"
            )?;
            for line in x.lines() {
                writeln!(w, "      {line}")?;
            }
        }
    }
    if !r.groups.is_empty() {
        writeln!(w)?;
        writeln!(w, "Groups (each test in exactly one):")?;
        for g in &r.groups {
            writeln!(
                w,
                "  {} — {} tests{}{}{}",
                g.group.name,
                g.group.tests.len(),
                match g.origin {
                    super::report::GroupOrigin::Unit if g.measured.is_empty() => format!(
                        ", the whole of `{}` ({} of its tests seen failing; no set measured)",
                        g.group.shared.as_deref().unwrap_or("its unit"),
                        g.seen_failing.len()
                    ),
                    super::report::GroupOrigin::Unit => match g.group.shared.as_deref() {
                        Some(u) => format!(", the whole of `{u}` ({} measured)", g.measured.len()),
                        None => format!(
                            ", whole modules or classes with the sets that join them ({} measured)",
                            g.measured.len()
                        ),
                    },
                    super::report::GroupOrigin::Fixture => format!(
                        ", every user of the leaking fixture ({} measured)",
                        g.measured.len()
                    ),
                    super::report::GroupOrigin::Writers => format!(
                        ", every test that wrote `{}` in the serial run ({} measured)",
                        g.file.as_deref().unwrap_or("one file"),
                        g.measured.len()
                    ),
                    super::report::GroupOrigin::Measured => String::new(),
                },
                if g.joined.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; joined by {} (each failed beside it, unserialized)",
                        g.joined.join(", ")
                    )
                },
                match (g.verified, g.held_runs) {
                    (true, _) => ", verified".to_string(),
                    (false, Some(n)) => format!(
                        ", not verified: none of its tests failed in the {n} runs it was applied (failures elsewhere remained)"
                    ),
                    (false, None) => String::new(),
                }
            )?;
        }
    }
    let fix_blocks = [
        ("nextest (.config/nextest.toml)", &r.fix.nextest_toml),
        ("cargo test", &r.fix.cargo_test_guard),
        ("pytest", &r.fix.pytest),
        ("root cause", &r.fix.root_cause),
    ];
    if fix_blocks.iter().any(|(_, b)| b.is_some()) {
        writeln!(w)?;
        writeln!(w, "Suggested serialization:")?;
        for (title, block) in fix_blocks {
            if let Some(text) = block {
                writeln!(w, "--- {title} ---")?;
                write!(w, "{text}")?;
                if !text.ends_with('\n') {
                    writeln!(w)?;
                }
            }
        }
    }
    if let Some(v) = &r.verify {
        writeln!(w)?;
        let word = if v.passed {
            "PASS"
        } else if v.failing() {
            "FAIL"
        } else {
            "INCOMPLETE"
        };
        writeln!(
            w,
            "verify: {word} — {}/{} runs clean with the serialization applied ({} planned)",
            v.clean_runs, v.runs, v.planned_runs
        )?;
        writeln!(
            w,
            "    failing runs before: {}; after: {}",
            v.rate_before.describe(),
            v.rate_after.describe()
        )?;
        writeln!(
            w,
            "    power: {:.0}% to see a failure at {} per run (the lowest rate measured before the fix: the suite's, or a race's in it; aimed at {:.0}%)",
            v.power * 100.0,
            percent(v.target_rate),
            v.target_power * 100.0
        )?;
        for f in &v.failures {
            writeln!(w, "    still failing: {f}")?;
        }
        if !v.excluded.is_empty() {
            writeln!(
                w,
                "    not run (they fail without concurrency): {}",
                v.excluded.join(", ")
            )?;
        }
    }
    if let Some(c) = &r.clean {
        if r.verdict == HuntVerdict::Clean {
            writeln!(w)?;
            writeln!(w, "clean: {}", c.statement)?;
        }
    }
    for e in &r.excluded {
        writeln!(w, "note: `{}` left out of parallel runs: {}", e.test, e.why)?;
    }
    for n in &r.notes {
        writeln!(w, "note: {n}")?;
    }
    Ok(())
}
