//! Joins: a failure seen with the groups applied whose partner the serialization hides from
//! its probes. cargo test puts one member of a group beside the rest per run, and a probe's
//! rotation holds the failing test's place, so a failing test whose partner is a group member
//! may never fail in a probe. Run among that group's tests unserialized, it fails again, and
//! it joins the group — tentatively: kept only if a round then runs clean, or the group held.

use super::analyse::CHEAP_RUN;
use super::bisect::runs_per_probe;
use super::events::RunPurpose;
use super::probe::Probe;
use super::report::Classification;
use super::session::{Session, Stop};
use super::state::HuntState;

/// Findings left unresolved that came back in round `round`'s suite runs, with the groups
/// applied: each is tried among the group most of its candidates are in ([`join_group`]).
/// Returns whether a test joined a group.
pub fn join_recurring(
    session: &mut Session<'_>,
    state: &mut HuntState,
    round: u32,
) -> Result<bool, Stop> {
    let cfg = session.cfg;
    let mut joined = false;
    for idx in 0..state.tracked.len() {
        let t = &state.tracked[idx];
        let grouped: Vec<String> = state.groups.iter().flat_map(|g| g.members()).collect();
        if !t.done
            || t.joined
            || t.unnarrowed
            || t.last_seen != round
            || t.finding.classification != Classification::Unresolved
            || t.covered_by(&grouped)
        {
            continue;
        }
        let key = t.key.clone();
        let candidates = t.candidates.clone();
        let mut per_probe = runs_per_probe(
            t.finding.parallel.planning(),
            cfg.confidence,
            cfg.max_runs_per_probe,
        );
        if state.typical_run().is_some_and(|d| d < CHEAP_RUN) {
            per_probe = cfg.max_runs_per_probe;
        }
        let probe = Probe {
            key: &key,
            beside: None,
            jobs: t.finding.jobs.max(state.jobs).max(2),
            round,
            serialize: true,
        };
        joined |= join_group(session, state, &probe, idx, &candidates, per_probe)?;
    }
    Ok(joined)
}

/// A failure seen with the groups applied that its candidates, under the same groups, did
/// not bring back: its partner is likely a group member, kept from it there by the
/// serialization (a test that clears the environment beside a module of tests that set it).
/// Its test and the group's members among its candidates are run unserialized; if it comes
/// back, the test joins that group, tentatively — kept only if a round then runs clean.
/// Returns whether it joined.
pub(super) fn join_group(
    session: &mut Session<'_>,
    state: &mut HuntState,
    probe: &Probe<'_>,
    idx: usize,
    candidates: &[String],
    runs: u32,
) -> Result<bool, Stop> {
    let Some(test) = probe.key.test().map(str::to_string) else {
        return Ok(false);
    };
    if probe.round < 2 || state.groups.iter().any(|g| g.members().contains(&test)) {
        return Ok(false);
    }
    // The group most of its candidates are in.
    let best = state
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let inside: Vec<String> = g
                .members()
                .into_iter()
                .filter(|t| candidates.contains(t))
                .collect();
            (i, inside)
        })
        .filter(|(_, inside)| !inside.is_empty())
        .max_by_key(|(i, inside)| (inside.len(), std::cmp::Reverse(*i)));
    let Some((gi, inside)) = best else {
        return Ok(false);
    };
    let mut set = vec![test.clone()];
    set.extend(inside);
    let unserialized = Probe {
        key: probe.key,
        beside: None,
        jobs: probe.jobs,
        round: probe.round,
        serialize: false,
    };
    let out = unserialized.run(session, state, RunPurpose::Probe, &set, runs)?;
    if !out.reproduced {
        return Ok(false);
    }
    let g = &mut state.groups[gi];
    g.joined.push(test.clone());
    g.verified = false;
    g.held_runs = 0;
    state.joined_since = true;
    let t = &mut state.tracked[idx];
    t.joined = true;
    t.finding.conflict_set = set.clone();
    t.finding.evidence.push(format!(
        "no probe of its {} candidates with the groups applied showed its partner; among the {} tests of a group it shares a process with, unserialized, it failed again (within {} runs): it joins that group, tentatively (kept only if a round then runs clean)",
        candidates.len(),
        set.len() - 1,
        out.runs
    ));
    t.done = true;
    Ok(true)
}
