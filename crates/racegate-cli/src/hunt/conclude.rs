//! The end of a hunt, finished or stopped: the groups named, the fix written, the verdict
//! computed, and everything found put in the [`HuntReport`].

use super::emit::{self, FixGroup};
use super::report::{
    Classification, GroupOrigin, GroupReport, HuntReport, HuntVerdict, SCHEMA, SCHEMA_VERSION,
};
use super::runner::split_command;
use super::session::{Session, Stop};
use super::state::HuntState;

/// Build the report from `state`; `stop` says why the phases ended early, if they did.
pub fn conclude(session: &Session<'_>, mut state: HuntState, stop: Option<&Stop>) -> HuntReport {
    let cfg = session.cfg;
    let runner = session.runner;
    match stop {
        Some(Stop::Budget) => state.note(format!(
            "the budget ({}) ran out before the hunt finished; raise --budget",
            humantime::format_duration(cfg.budget)
        )),
        Some(Stop::Interrupted) => state.note(
            "interrupted: the running tests were killed; this is what was found so far".into(),
        ),
        Some(Stop::Error(e)) => state.note(format!("the hunt stopped: {e}")),
        None => {}
    }
    if state.tracked.iter().any(|t| {
        t.key.kind == super::model::FailureKind::Hang
            && t.finding.stacks.is_empty()
            && t.finding.found_in != super::report::FoundIn::Probe
    }) {
        state.note(
            "no thread dumps for a hang: install gdb (native) or py-spy (Python) to get them"
                .into(),
        );
    }

    // Groups: only races' sets (and their verified widenings) are in the fix.
    let raw: Vec<Vec<String>> = state.groups.iter().map(|g| g.members()).collect();
    let units = |t: &str| runner.units(t);
    let short = |u: &str| runner.unit_name(u);
    // A leaking fixture's users are named after it, a fixed file's writers after the file.
    let preferred: Vec<Option<String>> = state
        .groups
        .iter()
        .map(|g| {
            g.fixture.clone().or_else(|| {
                g.file.as_deref().map(|f| {
                    let name = std::path::Path::new(f)
                        .file_name()
                        .map_or(f.into(), |n| n.to_string_lossy());
                    name.split('.').next().unwrap_or_default().to_string()
                })
            })
        })
        .collect();
    let named: Vec<FixGroup> = emit::name_groups_as(&raw, &preferred, &units, &short);
    let groups: Vec<GroupReport> = state
        .groups
        .iter()
        .zip(named.iter())
        .map(|(g, n)| GroupReport {
            group: n.clone(),
            origin: if g.file.is_some() {
                GroupOrigin::Writers
            } else if g.unit.is_some() {
                GroupOrigin::Unit
            } else if g.fixture.is_some() {
                GroupOrigin::Fixture
            } else {
                GroupOrigin::Measured
            },
            measured: g.measured.clone(),
            verified: g.verified,
            seen_failing: g.seen_failing.clone(),
            joined: g.joined.clone(),
            file: g.file.clone(),
            held_runs: (!g.verified && g.held_runs > 0).then_some(g.held_runs),
        })
        .collect();
    for t in &mut state.tracked {
        if t.finding.classification != Classification::Race {
            continue;
        }
        t.finding.group = named
            .iter()
            .find(|g| t.finding.conflict_set.iter().any(|x| g.tests.contains(x)))
            .map(|g| g.name.clone());
    }
    let fix = runner.fix(&named, &state.leaks);

    // A unit kept from failures alone is a race shown by its fix: with it serialized, the
    // failures of its tests stopped.
    let any_race = state.any_race() || !state.groups.is_empty();
    let verify_failed = (cfg.verify && state.verify.as_ref().is_some_and(|v| v.failing()))
        || (any_race && !state.converged && stop.is_none());
    let verdict = match stop {
        Some(Stop::Interrupted) => HuntVerdict::Interrupted,
        Some(_) => HuntVerdict::Incomplete,
        None if verify_failed => HuntVerdict::VerifyFailed,
        None if any_race && cfg.verify && state.verify.as_ref().is_some_and(|v| !v.passed) => {
            HuntVerdict::Incomplete
        }
        None if any_race => HuntVerdict::RacesFound,
        None if state.tracked.is_empty() => HuntVerdict::Clean,
        None => HuntVerdict::BrokenOnly,
    };
    if let Some(v) = &state.verify {
        if !v.passed && !v.failing() {
            state.note(format!(
                "verify made {} of the {} runs planned: power {:.0}% to see a failure at {:.0}% per run (aimed at {:.0}%)",
                v.runs,
                v.planned_runs,
                v.power * 100.0,
                v.target_rate * 100.0,
                v.target_power * 100.0
            ));
        }
    }
    let findings = state.tracked.into_iter().map(|t| t.finding).collect();
    HuntReport {
        schema: SCHEMA,
        schema_version: SCHEMA_VERSION,
        partial: stop.is_some(),
        runner: cfg.runner,
        command: split_command(&cfg.command, None).display(),
        jobs: state.jobs,
        runs: cfg.runs,
        test_timeout_ms: if session.timeouts.from_flag {
            session.timeouts.idle
        } else {
            session.timeouts.idle.max(super::session::Timeouts::FLOOR)
        }
        .as_millis() as u64,
        test_timeout_derived: !session.timeouts.from_flag,
        budget_ms: cfg.budget.as_millis() as u64,
        confidence: cfg.confidence,
        tests: state.tests.len(),
        measure: state.measure,
        levels: state.levels,
        rounds: state.rounds,
        suite_runs: state.suite_runs,
        rate_before: state.rate_before,
        findings,
        groups,
        fix,
        verify: state.verify,
        clean: state.clean,
        excluded: state.excluded,
        total_runs: session.total_runs,
        elapsed_ms: session.started.elapsed().as_millis() as u64,
        verdict,
        notes: state.notes,
    }
}
