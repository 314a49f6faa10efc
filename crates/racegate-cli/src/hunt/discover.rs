//! Phase 2: the whole suite in parallel, K runs a pass. In the first round, with no
//! serialization, concurrency starts at the first level and doubles while every run is clean
//! (races need overlap, not cores). In later rounds the groups found so far are applied, and
//! with `--verify` the pass is long enough for the rarest finding in the fix to show with the
//! stated power.
//!
//! A hang is not waited for twice in one pass: once seen, its tests in flight sit out the rest
//! of the pass, so the runs go on exercising everything else.

use super::events::{HuntEvent, Phase, RunPurpose};
use super::model::FailureKind;
use super::report::{
    Classification, CleanStatement, FoundIn, LevelReport, RoundReport, SuiteRunSummary,
    VerifyReport,
};
use super::runner::RunPlan;
use super::session::{Session, Stop};
use super::state::{HuntState, Tracked};
use super::stats::{detectable_rate, percent, power, runs_for_power, Rate};

/// What one pass saw.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Runs made.
    pub runs: u32,
    /// Runs with a failure (or a test that never reported).
    pub failing_runs: u32,
}

/// The runs a pass of round `round` makes.
fn planned_runs(session: &Session<'_>, state: &HuntState, round: u32) -> u32 {
    let k = session.cfg.runs;
    if round == 1 || !session.cfg.verify {
        return k;
    }
    let needed = state
        .verify_target_rate()
        .map(|p| runs_for_power(p, session.cfg.confidence))
        .unwrap_or(k);
    k.max(needed).min(1000)
}

/// Run one pass of round `round`.
pub fn discover(
    session: &mut Session<'_>,
    state: &mut HuntState,
    round: u32,
) -> Result<Pass, Stop> {
    let k = session.cfg.runs;
    let levels = if round == 1 {
        session.cfg.jobs.levels(state.tests.len())
    } else {
        vec![state.jobs]
    };
    let mut pass = Pass {
        runs: 0,
        failing_runs: 0,
    };
    for t in &mut state.tracked {
        t.counting = false;
    }
    for (level_index, &jobs) in levels.iter().enumerate() {
        state.jobs = jobs;
        session.emit(HuntEvent::Phase(Phase::Discover { round, jobs }));
        let planned = planned_runs(session, state, round);
        if round == 1 {
            state.levels.push(LevelReport {
                jobs,
                runs: 0,
                failing_runs: 0,
                rules_out: None,
            });
        }
        state.rounds.push(RoundReport {
            round,
            jobs,
            runs: 0,
            failing_runs: 0,
            groups_applied: state.groups.len(),
            new_findings: 0,
        });
        pass = Pass {
            runs: 0,
            failing_runs: 0,
        };
        let mut quarantine: Vec<String> = Vec::new();
        let serialized = state.serialized();
        let mut failures_seen: Vec<String> = Vec::new();
        for i in 0..planned {
            let mut excluded = state.excluded_tests();
            excluded.extend(quarantine.iter().cloned());
            let tests: Vec<String> = state
                .tests
                .iter()
                .filter(|t| !excluded.contains(t))
                .cloned()
                .collect();
            let plan = RunPlan {
                tests: &tests,
                whole_suite: true,
                excluded: &excluded,
                jobs,
                serialized: &serialized,
                rotation: i as usize,
            };
            let t0 = std::time::Instant::now();
            let (obs, _) = session.run(RunPurpose::Discover, &plan, true)?;
            pass.runs += 1;
            let failing = !obs.clean();
            if failing {
                pass.failing_runs += 1;
            }
            state.suite_runs.push(SuiteRunSummary {
                index: state.suite_runs.len() as u32 + 1,
                round,
                jobs,
                elapsed_ms: t0.elapsed().as_millis() as u64,
                passed: obs.passed(),
                failed: obs.failed(),
                failures: obs.failures.iter().map(|f| f.key.kind).collect(),
            });
            if obs.failures.is_empty() && !obs.unreported.is_empty() {
                let s = format!(
                    "{} test(s) reported no result although the run ended normally: {}",
                    obs.unreported.len(),
                    obs.unreported
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                state.note(s.clone());
                failures_seen.push(s);
            }
            for f in &obs.failures {
                if !failures_seen.contains(&f.signature) {
                    failures_seen.push(f.signature.clone());
                }
                let counting = state
                    .tracked
                    .iter()
                    .position(|t| t.key.same(&f.key) && t.counting);
                match counting {
                    Some(i) => state.tracked[i].seen_again(f),
                    None if state
                        .tracked
                        .iter()
                        .any(|t| t.key.same(&f.key) && !t.done && t.finding.round < round) =>
                    {
                        // Left from an earlier round and back with this round's groups: it
                        // is this round's now, counted afresh.
                        let i = state
                            .tracked
                            .iter()
                            .position(|t| t.key.same(&f.key) && !t.done && t.finding.round < round)
                            .expect("just found");
                        let t = &mut state.tracked[i];
                        t.finding.round = round;
                        t.finding.jobs = jobs;
                        t.finding.seen_in_runs = 1;
                        t.candidates = f.candidates.clone();
                        t.first = f.clone();
                        t.finding.in_flight = f.in_flight.clone();
                        t.counting = true;
                        if let Some(r) = state.rounds.last_mut() {
                            r.new_findings += 1;
                        }
                    }
                    None => {
                        let known = state.tracked.iter().position(|t| t.key.same(&f.key));
                        // A race whose set is serialized now, failing again: something
                        // outside its set conflicts too. Anything else known is not news.
                        let again = known.map_or(true, |i| {
                            state.tracked[i].finding.classification == Classification::Race
                                && round > state.tracked[i].finding.round
                        }) && !state
                            .tracked
                            .iter()
                            .any(|t| t.key.same(&f.key) && t.finding.round == round);
                        if again {
                            state
                                .tracked
                                .push(Tracked::new(f, FoundIn::Suite, round, jobs));
                            if let Some(r) = state.rounds.last_mut() {
                                r.new_findings += 1;
                            }
                        } else if let Some(i) = known {
                            let t = &mut state.tracked[i];
                            t.last_seen = round;
                            if t.finding.round == round && t.finding.found_in == FoundIn::Suite {
                                // This pass, after it stopped counting (a hang already
                                // seen): its rate is over the runs up to its last sighting.
                                t.finding.seen_in_runs += 1;
                                t.set_runs(pass.runs);
                            } else if !t
                                .finding
                                .evidence
                                .iter()
                                .any(|e| e.contains(&format!("round {round}")))
                            {
                                t.finding
                                    .evidence
                                    .push(format!("seen again in round {round} ({jobs} jobs)"));
                            }
                        }
                    }
                }
                if f.key.kind == FailureKind::Hang {
                    // Seen once is enough: its tests sit out the rest of the pass, and its
                    // rate is what the runs up to now showed.
                    if let Some(t) = state
                        .tracked
                        .iter_mut()
                        .find(|t| t.key.same(&f.key) && t.counting)
                    {
                        t.set_runs(pass.runs);
                        t.counting = false;
                    }
                    for t in &f.in_flight {
                        if !quarantine.contains(t) {
                            quarantine.push(t.clone());
                        }
                    }
                }
            }
            if let Some(r) = state.rounds.last_mut() {
                r.runs = pass.runs;
                r.failing_runs = pass.failing_runs;
            }
            if round == 1 {
                if let Some(l) = state.levels.last_mut() {
                    l.runs = pass.runs;
                    l.failing_runs = pass.failing_runs;
                }
            }
            if round > 1 && session.cfg.verify {
                // After every run: a budget that ends the pass still leaves its power stated.
                record_verify(session, state, pass, planned, failures_seen.clone());
            }
            // After a failure, later rounds need only enough runs to measure it.
            if round > 1 && pass.failing_runs > 0 && pass.runs >= k {
                break;
            }
        }
        for t in state.tracked.iter_mut().filter(|t| t.counting) {
            t.set_runs(pass.runs);
            t.counting = false;
        }
        if round == 1 {
            if let Some(l) = state.levels.last_mut() {
                if l.failing_runs == 0 {
                    l.rules_out = Some(detectable_rate(l.runs, 0.95));
                }
            }
            state.rate_before = Some(Rate::new(pass.failing_runs, pass.runs));
            if pass.failing_runs == 0 && level_index + 1 == levels.len() {
                let total: u32 = state.levels.iter().map(|l| l.runs).sum();
                let x = detectable_rate(pass.runs, 0.95);
                state.clean = Some(CleanStatement {
                    runs: pass.runs,
                    jobs,
                    rules_out: x,
                    statement: format!(
                        "0 failures in {} runs at {jobs} jobs ({total} parallel runs at {} jobs): a race failing in ≥ {} of runs at {jobs} jobs would have shown with 95% probability",
                        pass.runs,
                        levels.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
                        percent(x)
                    ),
                });
            }
        }
        if pass.failing_runs > 0 {
            break;
        }
    }
    Ok(pass)
}

/// The verification: this round's runs, with every group applied.
fn record_verify(
    session: &Session<'_>,
    state: &mut HuntState,
    pass: Pass,
    planned: u32,
    failures: Vec<String>,
) {
    let target = state.verify_target_rate().unwrap_or(1.0);
    let clean_runs = pass.runs - pass.failing_runs;
    let rate_before = state.rate_before.unwrap_or(Rate::new(0, 0));
    state.verify = Some(VerifyReport {
        runs: pass.runs,
        clean_runs,
        passed: pass.failing_runs == 0 && pass.runs >= planned,
        failures,
        planned_runs: planned,
        target_power: session.cfg.confidence,
        target_rate: target,
        power: power(target, pass.runs),
        rate_before,
        rate_after: Rate::new(pass.failing_runs, pass.runs),
        excluded: state.excluded_tests(),
    });
}
