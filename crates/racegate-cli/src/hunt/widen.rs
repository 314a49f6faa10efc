//! Widening: when many tests of one module or class conflict, the whole module or class is
//! tried as one group — tentatively. The suite then runs again with it applied; a round that
//! runs clean verifies it, a conflict found inside it drops it (back to the measured sets),
//! and so does a hunt that ends without a clean round — unless none of its own tests failed
//! while it was applied ([`record_held`]): then it is kept, marked unverified.
//!
//! Two ways in:
//! - from **sets**: a group's measured members and this round's failing tests are at least
//!   [`UNIT_THRESHOLD`] of a unit and at least [`UNIT_SHARE`] of it ([`widen`]);
//! - from **failures** alone: several distinct tests of one unit failed in a round (in any
//!   round so far, for a unit of at most [`SMALL_UNIT`] tests) and none of them is in a group
//!   yet ([`widen_from_failures`]). In a dense suite each test fails rarely,
//!   so few of its findings can be bisected, while the unit they share shows at once; their
//!   findings wait for the next round, where, with the unit serialized, most do not show;
//! - from a search that could not **narrow** a failure whose candidates, many of them in its
//!   test's unit, reproduce it together ([`widen_from_unnarrowed`]).

use super::analyse::MAX_WRITERS;
use super::events::HuntEvent;
use super::report::Classification;
use super::session::Session;
use super::state::{Group, HuntState};

/// Distinct conflicting tests of one module or class before the whole of it is tried…
pub const UNIT_THRESHOLD: usize = 3;
/// …and the share of its tests they must be ("many tests of one module").
pub const UNIT_SHARE: f64 = 0.5;
/// A unit this small counts, toward [`UNIT_THRESHOLD`], its tests that failed in any round,
/// not only in this one (a class of a few tests sharing one file).
pub const SMALL_UNIT: usize = 8;

/// After the suite runs of round `round` (`runs` of them, every group applied): a group none
/// of whose tests failed held for those runs; one whose test failed did not.
pub(super) fn record_held(state: &mut HuntState, round: u32, runs: u32) {
    if round < 2 {
        return;
    }
    let mut failed: Vec<&str> = Vec::new();
    for t in state.tracked.iter().filter(|t| t.finding.round == round) {
        match t.key.test() {
            Some(x) => failed.push(x),
            None => failed.extend(t.first.in_flight.iter().map(String::as_str)),
        }
    }
    for g in &mut state.groups {
        let members = g.members();
        if members.iter().any(|m| failed.contains(&m.as_str())) {
            g.held_runs = 0;
        } else {
            g.held_runs += runs;
        }
    }
}

/// Try, as a whole, each unit where several distinct tests failed in round `round` that no
/// group holds yet. Returns whether a unit was tried.
pub(super) fn widen_from_failures(
    session: &mut Session<'_>,
    state: &mut HuntState,
    round: u32,
) -> bool {
    let runner = session.runner;
    let grouped: Vec<String> = state.groups.iter().flat_map(Group::members).collect();
    let excluded = state.excluded_tests();
    let mut failing: Vec<String> = Vec::new();
    for t in state
        .tracked
        .iter()
        .filter(|t| t.finding.round == round && !t.done)
    {
        if let Some(x) = t.key.test() {
            // A test that writes a file others write too is worked out among those writers
            // (the analysis probes them first), not through its module.
            let writes_shared = !state.co_writers(x, &state.tests).is_empty();
            if !grouped.iter().any(|g| g == x)
                && !excluded.iter().any(|e| e == x)
                && !failing.iter().any(|f| f == x)
                && !writes_shared
            {
                failing.push(x.to_string());
            }
        }
    }
    // Each failing test counts toward its narrowest unit only: a file is not tried for what
    // its classes show one by one.
    let mut by_unit: Vec<(String, Vec<String>)> = Vec::new();
    for t in &failing {
        let Some(u) = runner.units(t).into_iter().next() else {
            continue;
        };
        if state.rejected_units.contains(&u) {
            continue;
        }
        match by_unit.iter_mut().find(|(x, _)| *x == u) {
            Some((_, v)) => v.push(t.clone()),
            None => by_unit.push((u, vec![t.clone()])),
        }
    }
    // A small class or module also counts its tests that failed in earlier rounds: in a
    // suite whose tests each fail rarely, its failures seldom meet in one round.
    let mut earlier: Vec<&str> = Vec::new();
    for t in state.tracked.iter().filter(|t| t.finding.round < round) {
        let innocent = !matches!(
            t.finding.classification,
            Classification::Broken | Classification::Flaky | Classification::OrderDependent
        );
        if let Some(x) = t.key.test() {
            if innocent && !grouped.iter().any(|g| g == x) && !excluded.iter().any(|e| e == x) {
                earlier.push(x);
            }
        }
    }
    let in_unit = |t: &String, u: &str| runner.units(t).iter().any(|x| x == u);
    let mut tried = false;
    for (unit, mut seen) in by_unit {
        let size = state.tests.iter().filter(|t| in_unit(t, &unit)).count();
        if size <= SMALL_UNIT {
            for x in &earlier {
                let x = x.to_string();
                if in_unit(&x, &unit) && !seen.contains(&x) {
                    seen.push(x);
                }
            }
        }
        let whole: Vec<String> = state
            .tests
            .iter()
            .filter(|t| in_unit(t, &unit))
            .filter(|t| !excluded.contains(t) && !grouped.contains(t))
            .cloned()
            .collect();
        // Two failing tests of a class or module say little about the rest of it (a test
        // module of 8 with 2 environment readers); they are bisected instead.
        if seen.len() < UNIT_THRESHOLD || whole.len() < 2 {
            continue;
        }
        let note = format!(
            "{} tests of `{unit}` failed by round {round} (none in a group yet): trying the whole of it ({} tests) as one group; it stays only if a round runs clean with it",
            seen.len(),
            whole.len()
        );
        session.emit(HuntEvent::Note(&note));
        state.notes.push(note);
        state.groups.push(Group {
            added: whole,
            unit: Some(unit),
            seen_failing: seen,
            ..Group::default()
        });
        tried = true;
    }
    if tried {
        state.disjoint_groups();
    }
    tried
}

/// Try, as a whole, the unit of each failing test whose candidates reproduced it together
/// but could not be narrowed to a set small enough to check, when at least
/// [`UNIT_THRESHOLD`] of them share its unit: many tests of that unit take part, each
/// needed only sometimes (tests that clear and read one process-wide flag), so halves of
/// them seldom reproduce what all of them do every run. Returns whether a unit was tried.
pub(super) fn widen_from_unnarrowed(session: &mut Session<'_>, state: &mut HuntState) -> bool {
    let runner = session.runner;
    let excluded = state.excluded_tests();
    let in_unit = |t: &String, u: &str| runner.units(t).iter().any(|x| x == u);
    let mut tried = false;
    for i in 0..state.tracked.len() {
        let t = &state.tracked[i];
        if !t.unnarrowed {
            continue;
        }
        let Some(test) = t.key.test().map(str::to_string) else {
            continue;
        };
        let Some(unit) = runner.units(&test).into_iter().next() else {
            continue;
        };
        let set = &t.finding.conflict_set;
        let taking_part = set.iter().filter(|x| in_unit(x, &unit)).count();
        if taking_part < UNIT_THRESHOLD
            || state.rejected_units.contains(&unit)
            || state.groups.iter().any(|g| g.unit.as_ref() == Some(&unit))
        {
            continue;
        }
        let whole: Vec<String> = state
            .tests
            .iter()
            .filter(|x| in_unit(x, &unit))
            .filter(|x| !excluded.contains(x))
            .cloned()
            .collect();
        if whole.len() < 2 {
            continue;
        }
        let note = format!(
            "`{test}` failed with {} candidates that could not be narrowed, {taking_part} of them in `{unit}`: trying the whole of it ({} tests) as one group; it stays only if a round runs clean with it",
            set.len(),
            whole.len()
        );
        session.emit(HuntEvent::Note(&note));
        state.notes.push(note);
        state.tracked[i].finding.evidence.push(format!(
            "its unit `{unit}` was tried whole as one group ({} tests)",
            whole.len()
        ));
        state.groups.push(Group {
            added: whole,
            unit: Some(unit),
            seen_failing: vec![test],
            ..Group::default()
        });
        tried = true;
    }
    if tried {
        state.disjoint_groups();
    }
    tried
}

/// Widen groups where many tests of one module or class conflict.
pub(super) fn widen(session: &mut Session<'_>, state: &mut HuntState, round: u32) {
    let runner = session.runner;
    // Tests seen failing this round, and the members of this round's sets.
    let mut involved: Vec<String> = Vec::new();
    for t in state.tracked.iter().filter(|t| t.finding.round == round) {
        if let Some(x) = t.finding.test.clone() {
            involved.push(x);
        }
        if t.finding.classification == Classification::Race {
            involved.extend(t.finding.conflict_set.iter().cloned());
        }
    }
    let excluded = state.excluded_tests();
    let in_unit = |t: &String, u: &str| runner.units(t).iter().any(|x| x == u);
    let mut widened: Vec<String> = Vec::new();
    for gi in 0..state.groups.len() {
        // A leaking fixture's users, or a fixed file's writers, are already all of what they
        // share.
        if state.groups[gi].fixture.is_some() || state.groups[gi].file.is_some() {
            continue;
        }
        let measured = state.groups[gi].measured.clone();
        // A set whose members all wrote one fixed file widens to that file's writers, not to
        // a module or class: the file is what they share.
        if let Some((file, writers)) = shared_file(state, &measured) {
            let unit = format!("writers of {file}");
            if !state.rejected_units.contains(&unit) {
                let members = state.groups[gi].members();
                let added: Vec<String> = writers
                    .into_iter()
                    .filter(|t| !members.contains(t) && !excluded.contains(t))
                    .collect();
                let g = &mut state.groups[gi];
                g.file = Some(file.clone());
                if !added.is_empty() {
                    let note = format!(
                        "every member of a set wrote `{file}`: trying all its writers as one group ({} more tests); it stays only if the next round runs clean",
                        added.len()
                    );
                    session.emit(HuntEvent::Note(&note));
                    g.added.extend(added);
                    g.held_runs = 0;
                    g.unit = Some(unit);
                    g.verified = false;
                }
                continue;
            }
        }
        let current = state.groups[gi].unit.clone();
        // The units (class, module, file) of this group's measured members.
        let mut units: Vec<String> = Vec::new();
        for t in &measured {
            for u in runner.units(t) {
                if !units.contains(&u) {
                    units.push(u);
                }
            }
        }
        let mut best: Option<(String, usize, usize)> = None;
        for u in units {
            if state.rejected_units.contains(&u)
                || widened.contains(&u)
                || Some(&u) == current.as_ref()
            {
                continue;
            }
            let mut distinct: Vec<&String> = measured
                .iter()
                .chain(involved.iter())
                .filter(|t| in_unit(t, &u))
                .collect();
            distinct.sort();
            distinct.dedup();
            let size = state.tests.iter().filter(|t| in_unit(t, &u)).count();
            let many = distinct.len() >= UNIT_THRESHOLD
                && distinct.len() as f64 >= UNIT_SHARE * size as f64;
            // A group already widened only widens further to a unit holding all of it.
            let holds_current = current.as_ref().map_or(true, |c| {
                state
                    .tests
                    .iter()
                    .filter(|t| in_unit(t, c))
                    .all(|t| in_unit(t, &u))
            });
            if !many || !holds_current {
                continue;
            }
            // The unit most of the conflicting tests share; on a tie, the smaller one.
            let better = best.as_ref().map_or(true, |(_, n, sz)| {
                distinct.len() > *n || (distinct.len() == *n && size < *sz)
            });
            if better {
                best = Some((u, distinct.len(), size));
            }
        }
        let Some((unit, _, _)) = best else {
            continue;
        };
        let whole: Vec<String> = state
            .tests
            .iter()
            .filter(|t| in_unit(t, &unit))
            .filter(|t| !excluded.contains(t))
            .cloned()
            .collect();
        let added: Vec<String> = whole
            .into_iter()
            .filter(|t| !state.groups[gi].members().contains(t))
            .collect();
        if added.is_empty() {
            continue;
        }
        let note = format!(
            "trying the whole of `{unit}` as one group ({} more tests); it stays only if the next round runs clean",
            added.len()
        );
        session.emit(HuntEvent::Note(&note));
        state.groups[gi].added.extend(added);
        state.groups[gi].held_runs = 0;
        widened.push(unit.clone());
        state.groups[gi].unit = Some(unit);
        state.groups[gi].verified = false;
    }
    // Widening may overlap other groups: merge to keep each test in one group.
    state.disjoint_groups();
}

/// A fixed file every one of `tests` wrote in the serial run, and all the tests that wrote it
/// (at most [`MAX_WRITERS`]); `None` when there is none.
fn shared_file(state: &HuntState, tests: &[String]) -> Option<(String, Vec<String>)> {
    let wrote = |t: &String| {
        state
            .writes
            .iter()
            .find(|(x, _)| x == t)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    let first = tests.first()?;
    let file = wrote(first)
        .into_iter()
        .find(|p| tests.iter().all(|t| wrote(t).contains(p)))?;
    let writers: Vec<String> = state
        .tests
        .iter()
        .filter(|t| wrote(t).contains(&file))
        .cloned()
        .collect();
    (writers.len() <= MAX_WRITERS).then_some((file, writers))
}

/// A widened group whose own tests still conflicted among themselves while it was applied
/// (a race set of this round inside it) did not hold: back to its measured members. A set
/// that reaches outside the group only shows the group is incomplete: the set joins it.
pub(super) fn check_widenings(state: &mut HuntState, round: u32) {
    let sets: Vec<Vec<String>> = state
        .tracked
        .iter()
        .filter(|t| t.finding.round == round && t.finding.classification == Classification::Race)
        .map(|t| t.finding.conflict_set.clone())
        .collect();
    for g in &mut state.groups {
        let Some(unit) = g.unit.clone() else { continue };
        if g.verified {
            continue;
        }
        let members = g.members();
        let inside = sets.iter().any(|s| {
            s.len() >= 2
                && s.iter().all(|t| members.contains(t))
                && s.iter().any(|t| g.added.contains(t))
        });
        if inside {
            g.added.clear();
            g.unit = None;
            state.rejected_units.push(unit.clone());
            state.notes.push(format!(
                "`{unit}` as a whole did not hold in round {round}: back to the measured sets"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_whose_members_all_wrote_one_file_names_it_and_its_writers() {
        let tests: Vec<String> = (0..6).map(|i| format!("t.py::t{i}")).collect();
        let mut state = HuntState {
            tests: tests.clone(),
            ..HuntState::default()
        };
        let w =
            |t: usize, p: &[&str]| (tests[t].clone(), p.iter().map(|x| x.to_string()).collect());
        state.writes = vec![
            w(0, &["/d/log", "/d/a.db"]),
            w(1, &["/d/a.db"]),
            w(2, &["/d/a.db", "/d/log"]),
            w(3, &["/d/b.db"]),
            w(4, &["/d/log"]),
        ];
        let set = vec![tests[0].clone(), tests[1].clone()];
        assert_eq!(
            shared_file(&state, &set),
            Some((
                "/d/a.db".to_string(),
                vec![tests[0].clone(), tests[1].clone(), tests[2].clone()]
            ))
        );
        // Nothing in common, or a member that wrote nothing.
        assert_eq!(
            shared_file(&state, &[tests[1].clone(), tests[3].clone()]),
            None
        );
        assert_eq!(
            shared_file(&state, &[tests[0].clone(), tests[5].clone()]),
            None
        );
        // A file more than MAX_WRITERS tests wrote says nothing.
        let many: Vec<String> = (0..=MAX_WRITERS).map(|i| format!("m.py::t{i}")).collect();
        state.tests = many.clone();
        state.writes = many
            .iter()
            .map(|t| (t.clone(), vec!["/d/log".into()]))
            .collect();
        assert_eq!(shared_file(&state, &many[..2]), None);
    }
}
