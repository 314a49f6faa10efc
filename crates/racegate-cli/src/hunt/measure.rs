//! Phase 1: the whole suite once, one test at a time. It tells which tests fail without any
//! concurrency (they are broken or order-dependent, not racing, and stay out of the parallel
//! runs), and how long the tests take: unless `--test-timeout` is given, the hang timeout is
//! derived from it, so a suite that runs in a second is not given a minute to hang.

use std::time::Duration;

use super::events::{HuntEvent, Phase, RunPurpose};
use super::exec::Execution;
use super::report::{Classification, FoundIn, MeasureReport, SuiteRunSummary};
use super::runner::RunPlan;
use super::session::{Session, Stop, Timeouts};
use super::state::{HuntState, Tracked};

/// The longest stretch between two finished tests of an execution (start-up not counted).
fn slowest_test(ex: &Execution) -> Duration {
    ex.progress
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(Duration::ZERO)
}

/// Run the serial timing run and classify what fails in it.
pub fn measure(session: &mut Session<'_>, state: &mut HuntState) -> Result<(), Stop> {
    session.emit(HuntEvent::Phase(Phase::Measure));
    let tests = state.tests.clone();
    let plan = RunPlan {
        tests: &tests,
        whole_suite: true,
        excluded: &[],
        jobs: 1,
        serialized: &[],
        rotation: 0,
    };
    let t0 = std::time::Instant::now();
    let (obs, execs) = session.run(RunPurpose::Measure, &plan, true)?;
    let slowest = execs.iter().map(slowest_test).max().unwrap_or_default();
    for ex in &execs {
        state
            .writes
            .extend(session.runner.written_paths(&ex.output));
    }
    let startup = execs
        .iter()
        .filter_map(Execution::startup)
        .max()
        .unwrap_or_default();
    state.measure = Some(MeasureReport {
        elapsed_ms: t0.elapsed().as_millis() as u64,
        slowest_test_ms: slowest.as_millis() as u64,
        startup_ms: startup.as_millis() as u64,
        failed: obs.failed(),
    });
    state.suite_runs.push(SuiteRunSummary {
        index: state.suite_runs.len() as u32 + 1,
        round: 0,
        jobs: 1,
        elapsed_ms: t0.elapsed().as_millis() as u64,
        passed: obs.passed(),
        failed: obs.failed(),
        failures: obs.failures.iter().map(|f| f.key.kind).collect(),
    });
    if !session.timeouts.from_flag && !obs.results.is_empty() {
        session.timeouts = Timeouts::derive(slowest, startup);
        let note = format!(
            "hang timeout {} (derived: slowest test {} in the serial run; stretched by workers per core)",
            humantime::format_duration(round_ms(
                session.timeouts.idle.max(Timeouts::FLOOR)
            )),
            humantime::format_duration(round_ms(slowest)),
        );
        session.emit(HuntEvent::Note(&note));
    }

    // What fails one test at a time does not need concurrency.
    for f in &obs.failures {
        let mut t = Tracked::new(f, FoundIn::Serial, 0, 1);
        t.counting = false;
        state.tracked.push(t);
        let idx = state.tracked.len() - 1;
        session.emit(HuntEvent::Phase(Phase::Analyse { finding: idx + 1 }));
        let culprit = state.tracked[idx].culprit().map(str::to_string);
        let Some(test) = culprit else {
            let t = &mut state.tracked[idx];
            t.finding.evidence.push(
                "failed in the serial run with several tests in flight; not bisected (it does not need concurrency)"
                    .into(),
            );
            t.done = true;
            continue;
        };
        let alone = [test.clone()];
        let (a, _) = session.run(RunPurpose::Alone, &RunPlan::subset(&alone, 1), false)?;
        let key = state.tracked[idx].key.clone();
        let t = &mut state.tracked[idx];
        t.finding.conflict_set = vec![test.clone()];
        if a.has(&key) {
            t.finding.classification = Classification::Broken;
            t.finding.evidence.push(format!(
                "failed in the serial run and again alone (`{test}`)"
            ));
        } else {
            t.finding.classification = Classification::OrderDependent;
            t.finding.evidence.push(format!(
                "failed in the serial run (after the tests before it) but not alone (`{test}`)"
            ));
        }
        t.done = true;
        let why = match t.finding.classification {
            Classification::Broken => "fails alone",
            _ => "fails in a serial run (order-dependent)",
        };
        state.exclude(&test, why.into());
        for other in a.failures.iter().filter(|g| !g.key.same(&key)) {
            state.record_side_failure(other, 0, 1);
        }
    }
    Ok(())
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
