//! The rounds: find → serialize → run again with the serialization applied → find again, until
//! a round runs clean (or nothing new can be learned).
//!
//! Conflict sets that share a test merge into one group, so each test is in exactly one. When
//! many tests of one module or class conflict or fail, the whole module or class is tried as
//! a group ([`widen`](super::widen)) — tentatively: a round must run clean for it to stay.

use super::analyse::analyse_pending;
use super::discover::discover;
use super::emit;
use super::events::{HuntEvent, Phase};
use super::model::FailureKind;
use super::report::Classification;
use super::session::{Session, Stop};
use super::state::HuntState;
use super::widen;

/// Run the rounds.
pub fn rounds(session: &mut Session<'_>, state: &mut HuntState) -> Result<(), Stop> {
    let mut round = 1;
    let mut retried = false;
    let result = loop {
        let pass = match discover(session, state, round) {
            Ok(p) => p,
            Err(e) => break Err(e),
        };
        if pass.failing_runs == 0 {
            if round > 1 {
                state.converged = true;
                for g in &mut state.groups {
                    g.verified = true;
                }
            }
            break Ok(());
        }
        widen::record_held(state, round, pass.runs);
        // Units where several tests failed are tried whole first: their findings wait for the
        // next round. Otherwise batches of the most frequent findings, until one changes the
        // groups (or none is left): the rest wait for the next round, where many will not
        // show again.
        let mut changed = widen::widen_from_failures(session, state, round);
        let mut stopped = None;
        while !changed {
            let left = match analyse_pending(session, state, round) {
                Ok(l) => l,
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            };
            changed |= std::mem::take(&mut state.joined_since);
            match update_groups(session, state, round) {
                Ok(c) => changed |= c,
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            }
            if changed || left == 0 {
                break;
            }
        }
        if let Some(e) = stopped {
            break Err(e);
        }
        changed |= widen::widen_from_unnarrowed(session, state);
        if !changed {
            // Unresolved failures that keep coming back under the groups: their partner may
            // be a group member the serialization hides from their probes.
            match super::join::join_recurring(session, state, round) {
                Ok(j) => changed |= j,
                Err(e) => break Err(e),
            }
        }
        widen::check_widenings(state, round);
        if !changed {
            // A failure that bridges two groups can be rare enough that its probes missed
            // it: where runs are cheap, the suite runs once more under the same groups
            // before the hunt gives up.
            let cheap = state
                .typical_run()
                .is_some_and(|d| d < super::analyse::CHEAP_RUN);
            if cheap && !retried && !state.groups.is_empty() && round < session.cfg.max_rounds {
                retried = true;
                state.note(format!(
                    "round {round} still failed with the serialization applied and its failures gave no new conflict set; the suite's runs are cheap, so it ran once more under the same groups"
                ));
                round += 1;
                continue;
            }
            if state.any_race() {
                state.note(format!(
                    "round {round} still failed with the serialization applied, and its failures gave no new conflict set"
                ));
            }
            break Ok(());
        }
        if round >= session.cfg.max_rounds {
            state.note(format!(
                "stopped after {round} rounds of find → serialize → rerun without a clean round"
            ));
            break Ok(());
        }
        widen::widen(session, state, round);
        round += 1;
    };
    let grouped: Vec<String> = state.groups.iter().flat_map(|g| g.members()).collect();
    // Findings left for a later round that never showed again.
    for t in state.tracked.iter_mut().filter(|t| !t.done) {
        t.done = true;
        if state.converged && t.covered_by(&grouped) {
            t.finding.classification = Classification::Covered;
            t.finding.evidence.push(
                "its test is in a group of the fix, and with the groups applied it did not come back; not analysed on its own"
                    .into(),
            );
        } else if state.converged {
            t.finding.evidence.push(
                "not seen again once the groups were applied, although its test is in no group; not analysed on its own"
                    .into(),
            );
        } else {
            t.finding
                .evidence
                .push("not analysed: the hunt ended first".into());
        }
    }
    if !state.converged {
        // A widening is kept only when a clean round verified it — or, unverified and said
        // so, when none of its own tests failed in the runs it was applied, while the
        // failures left were elsewhere.
        for g in &mut state.groups {
            if !g.verified && g.unit.is_some() && g.held_runs == 0 {
                g.added.clear();
                g.unit = None;
                g.seen_failing.clear();
            }
            // So is a test that joined a group.
            if !g.verified && g.held_runs == 0 {
                g.joined.clear();
            }
        }
        // A unit tried from failures alone has no measured members left.
        state.groups.retain(|g| !g.members().is_empty());
    }
    // A failure no search could narrow, gone once its unit was serialized; a test that
    // joined a group, gone with it (a clean round, or the group held while failures were
    // left elsewhere).
    let grouped: Vec<String> = state.groups.iter().flat_map(|g| g.members()).collect();
    for t in state
        .tracked
        .iter_mut()
        .filter(|t| t.unnarrowed || t.joined)
    {
        if t.finding.classification == Classification::Unresolved && t.covered_by(&grouped) {
            t.finding.classification = Classification::Covered;
            t.finding.evidence.push(if t.joined {
                "it stays in that group: with it there, none of the group's tests failed again; covered by the group, not a set of its own".into()
            } else {
                "its unit stays a group: with it applied, none of its tests failed again; covered by that group, not a set of its own".into()
            });
        }
    }
    result
}

/// Merge this round's race sets into the groups. Returns whether the groups changed.
fn update_groups(
    session: &mut Session<'_>,
    state: &mut HuntState,
    round: u32,
) -> Result<bool, Stop> {
    let mut changed = false;
    let races: Vec<usize> = (0..state.tracked.len())
        .filter(|&i| {
            let t = &state.tracked[i];
            t.finding.round == round && t.finding.classification == Classification::Race
        })
        .collect();
    for i in races {
        let set = state.tracked[i].finding.conflict_set.clone();
        changed |= state.merge_group(&set);
        // All writers of one fixed file: the group is named after the file.
        let file = state.tracked[i]
            .finding
            .bisection
            .as_ref()
            .and_then(|b| b.writers_of.first().cloned());
        if let Some(file) = file {
            if let Some(g) = state
                .groups
                .iter_mut()
                .find(|g| g.members().iter().any(|t| set.contains(t)))
            {
                g.file = g.file.take().or(Some(file));
            }
        }
        // A hang under a leaking fixture: every user of it belongs in the group.
        if state.tracked[i].key.kind == FailureKind::Hang {
            let leak = emit::leaking_fixtures(&state.tracked[i].finding.stacks)
                .into_iter()
                .next();
            if let Some(mut leak) = leak {
                leak.used_by = fixture_users(session, state, &leak.name)?;
                let users: Vec<String> = state
                    .tests
                    .iter()
                    .filter(|t| leak.used_by.contains(t))
                    .filter(|t| !state.excluded.iter().any(|e| e.test == **t))
                    .cloned()
                    .collect();
                if let Some(g) = state
                    .groups
                    .iter_mut()
                    .find(|g| g.members().iter().any(|t| set.contains(t)))
                {
                    for u in users {
                        if !g.members().contains(&u) {
                            g.added.push(u);
                            g.fixture = Some(leak.name.clone());
                            g.held_runs = 0;
                            changed = true;
                        }
                    }
                }
                // Keep groups disjoint after adding the users.
                state.disjoint_groups();
                state.tracked[i].finding.leaking_fixture = Some(leak.clone());
                if !state.leaks.iter().any(|l| l.name == leak.name) {
                    state.leaks.push(leak);
                }
            }
        }
    }
    Ok(changed)
}

/// Tests that use fixture `name`, when the runner can tell.
pub(super) fn fixture_users(
    session: &mut Session<'_>,
    state: &mut HuntState,
    name: &str,
) -> Result<Vec<String>, Stop> {
    if let Some((_, users)) = state.fixture_users.iter().find(|(n, _)| n == name) {
        return Ok(users.clone());
    }
    let users = collect_fixture_users(session, state, name)?;
    state.fixture_users.push((name.to_string(), users.clone()));
    Ok(users)
}

fn collect_fixture_users(
    session: &mut Session<'_>,
    state: &HuntState,
    name: &str,
) -> Result<Vec<String>, Stop> {
    let dir = std::env::temp_dir().join(format!("racegate-hunt-fixtures-{}", std::process::id()));
    let out = dir.join("fixtures.tsv");
    let Some(spec) = session.runner.fixtures_command(&out) else {
        return Ok(Vec::new());
    };
    if std::fs::create_dir_all(&dir).is_err() {
        return Ok(Vec::new());
    }
    session.emit(HuntEvent::Phase(Phase::Fixtures));
    let ran = session.execute_plain(&spec);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    ran?;
    Ok(session
        .runner
        .parse_fixtures(&text)
        .into_iter()
        .filter(|(id, fx)| fx.iter().any(|f| f == name) && state.tests.contains(id))
        .map(|(id, _)| id)
        .collect())
}
