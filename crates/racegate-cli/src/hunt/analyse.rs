//! Phase 3: each finding, most frequent first, is worked out to a classification.
//!
//! 1. **Alone.** The test it names (or the only test in flight) is run alone: failing the same
//!    way there makes it *broken*, not a race.
//! 2. **Known sets.** A set found for another finding of this round is tried first (two tests
//!    racing for one resource fail in turn, one finding each).
//! 3. **Shared state first.** A hang under a leaking fixture is probed among the fixture's
//!    users; a failing test that wrote a fixed file others wrote too (in the serial run), among
//!    that file's writers. If they reproduce it, the set is all of them, not reduced.
//! 4. **Bisection** ([`bisect`](super::bisect)) over the candidates — the tests of the failing
//!    process that had started by the time it failed — always holding the failing test. A
//!    failure the candidates do not bring back under the groups may [`join`](super::join) one.
//! 5. **Confirmation.** The final set alone, K runs: its rate, with a 95% interval. A set that
//!    never reproduces is *unresolved*, never a race.
//! 6. **Minimality.** The set less each member, enough runs each that a failure at the set's
//!    rate would show with the stated confidence; a member without which it still fails is
//!    dropped and the set confirmed again. A member whose [stand-in](super::bystander)
//!    reproduces it too is a bystander, left out.
//!
//! A probe ([`probe`](super::probe)) reproduces a finding only when the same test fails the
//! same way; any other failure in a probe is a finding of its own, and the probe does not count
//! as "not reproduced".

use super::bisect::{bisect_with, probe_limit, runs_per_probe};
use super::events::{HuntEvent, Phase, RunPurpose};
use super::join::join_group;
use super::model::Subject;
use super::probe::{Probe, ProbeOutcome, SEARCH_CAP_STRETCH, SEARCH_TIME};
use super::report::{
    BisectionReport, Classification, FoundIn, MemberCheck, Minimality, Reproduction, StandIn,
};
use super::runner::RunPlan;
use super::session::{Session, Stop};
use super::state::HuntState;
use super::stats::{runs_for_power, Rate};
use std::time::{Duration, Instant};

/// Findings first seen in probes that are analysed in one round, at most.
const MAX_SIDE_FINDINGS: usize = 20;

/// The largest set whose members are each checked for necessity; a search that ends larger
/// did not narrow the failure down.
const MAX_CHECKED_SET: usize = 8;

/// The most writers of one file tried as a set, or widened to: more is a file every test
/// touches (a log), which says nothing about one failure.
pub(super) const MAX_WRITERS: usize = 16;

/// Runs one search over `n` candidates may spend: twelve per probe of a pair's search
/// (`2·ceil(log2 n) + 2` probes, `12·(ceil(log2 n) + 1)` runs)…
fn search_run_cap(n: usize) -> u32 {
    let log = usize::BITS - n.max(2).saturating_sub(1).leading_zeros();
    12 * (log + 1)
}

/// A run this short is cheap: a probe then takes `--max-runs-per-probe` runs before it calls a
/// set clean, each member of a set gets at least that many checks (a rare set's, what its
/// rate needs), and a round that changed nothing runs once more ([`super::converge`]).
pub(super) const CHEAP_RUN: Duration = Duration::from_secs(1);

/// The evidence for a set taken whole from one probe: `what` reproduced it (without the
/// `others` tests of the pool), and `why` the set is not reduced further.
fn whole_set_evidence(what: &str, others: usize, why: &str) -> String {
    format!(
        "{what} reproduced it{}: the set is all of them, not reduced further ({why})",
        if others > 0 {
            format!(" without the other {others}")
        } else {
            String::new()
        }
    )
}

/// The bisection report of a set taken whole from one probe (`out`, `runs` runs): not a
/// search, so never minimal.
fn one_probe(
    candidates: usize,
    per_probe: u32,
    out: &ProbeOutcome,
    confidence: f64,
    runs: u32,
) -> BisectionReport {
    BisectionReport {
        candidates,
        probes: 1,
        runs_per_probe: per_probe,
        runs,
        confidence,
        minimal: false,
        inconclusive_probes: out.other as usize,
        fixture_users_of: None,
        writers_of: Vec::new(),
    }
}

/// Findings analysed before the round's sets are applied and the suite runs again: in a dense
/// suite most of the rest are the same conflicts seen from another test, and disappear.
pub const BATCH: usize = 3;

/// Analyse up to [`BATCH`] findings of round `round` not yet classified, most frequent first.
/// Returns how many are left for later (deferred): the next round re-homes those it sees
/// again, and those it does not see again end unresolved.
pub fn analyse_pending(
    session: &mut Session<'_>,
    state: &mut HuntState,
    round: u32,
) -> Result<usize, Stop> {
    let mut analysed = 0usize;
    let mut side = 0usize;
    // A finding left from an earlier round whose test a group now holds waits: if it does
    // not show again under the groups it ends covered; if it does, it comes back to this
    // round (discover re-homes it) and is worked out here.
    let grouped: Vec<String> = state.groups.iter().flat_map(|g| g.members()).collect();
    let pending = |t: &super::state::Tracked| {
        !t.done
            && (t.finding.round == round || (t.finding.round < round && !t.covered_by(&grouped)))
    };
    loop {
        let next = state
            .tracked
            .iter()
            .enumerate()
            .filter(|(_, t)| pending(t))
            .min_by_key(|(i, t)| {
                (
                    std::cmp::Reverse(t.finding.seen_in_runs),
                    t.finding.found_in == FoundIn::Probe,
                    t.key.kind,
                    *i,
                )
            })
            .map(|(i, _)| i);
        let Some(idx) = next else { break };
        if analysed >= BATCH {
            let left = state.tracked.iter().filter(|t| pending(t)).count();
            return Ok(left);
        }
        if state.tracked[idx].finding.found_in == FoundIn::Probe {
            side += 1;
            if side > MAX_SIDE_FINDINGS {
                for t in state.tracked.iter_mut().filter(|t| !t.done) {
                    t.finding.evidence.push(format!(
                        "not analysed: more than {MAX_SIDE_FINDINGS} findings came up in probes this round"
                    ));
                    t.done = true;
                }
                break;
            }
        }
        analysed += 1;
        // A finding left from an earlier round is worked out under this round's groups.
        state.tracked[idx].finding.round = round;
        if let Err(stop) = analyse(session, state, idx, round) {
            let why = match stop {
                Stop::Budget => "analysis stopped: the budget ran out",
                Stop::Interrupted => "analysis stopped: interrupted",
                Stop::Error(_) => "analysis stopped: the test command failed",
            };
            state.tracked[idx].finding.evidence.push(why.into());
            return Err(stop);
        }
    }
    Ok(0)
}

/// Work out finding `idx` (found in round `round`).
fn analyse(
    session: &mut Session<'_>,
    state: &mut HuntState,
    idx: usize,
    round: u32,
) -> Result<(), Stop> {
    session.emit(HuntEvent::Phase(Phase::Analyse { finding: idx + 1 }));
    let key = state.tracked[idx].key.clone();
    let culprit = state.tracked[idx].culprit().map(str::to_string);
    let rate = state.tracked[idx].finding.parallel;
    let jobs = state.tracked[idx].finding.jobs.max(state.jobs).max(2);
    let cfg = session.cfg;
    let probe = Probe {
        key: &key,
        beside: culprit.clone(),
        jobs,
        round,
        serialize: true,
    };

    // 1. Alone.
    if let Some(test) = &culprit {
        let alone = [test.clone()];
        let (a, _) = session.run(RunPurpose::Alone, &RunPlan::subset(&alone, 1), false)?;
        for f in a.failures.iter().filter(|f| !f.key.same(&key)) {
            state.record_side_failure(f, round, 1);
        }
        let t = &mut state.tracked[idx];
        if a.has(&key) {
            t.finding.classification = Classification::Broken;
            t.finding.conflict_set = vec![test.clone()];
            t.finding
                .evidence
                .push(format!("failed the same way alone (`{test}`, 1 run)"));
            t.done = true;
            state.exclude(test, "fails alone".into());
            return Ok(());
        }
        t.finding
            .evidence
            .push(format!("passed alone (`{test}`, 1 run)"));
    }

    let mut per_probe = runs_per_probe(rate.planning(), cfg.confidence, cfg.max_runs_per_probe);
    // A rate from a few runs can be far above the truth (1 in 5 seen, 1 in 12 real); where the
    // suite's runs are cheap, a probe that shows nothing takes the most runs it may.
    if state.typical_run().is_some_and(|d| d < CHEAP_RUN) {
        per_probe = cfg.max_runs_per_probe;
    }

    // 2. A set found for another finding of this round.
    let known: Vec<(usize, Vec<String>)> = state
        .tracked
        .iter()
        .enumerate()
        .filter(|(i, o)| {
            *i != idx
                && o.done
                && o.finding.round == round
                && o.finding.classification == Classification::Race
        })
        .filter(|(_, o)| match &culprit {
            Some(c) => o.finding.conflict_set.contains(c),
            None => o
                .finding
                .conflict_set
                .iter()
                .all(|t| state.tracked[idx].candidates.contains(t)),
        })
        .map(|(i, o)| (i, o.finding.conflict_set.clone()))
        .collect();
    let mut set: Option<Vec<String>> = None;
    // Runs of the known set alone count toward its confirmation: a conflict seen from its
    // rarer side (the test that loses less often) is measured on every run it had.
    let mut prior: Option<ProbeOutcome> = None;
    // Why the set is taken whole rather than reduced member by member, if it is: a leaking
    // fixture's users or a fixed file's writers (3a, 3b), or a known set that was one.
    let mut unreduced: Option<String> = None;
    for (other, s) in known {
        let out = probe.run(session, state, RunPurpose::Known, &s, per_probe)?;
        if out.reproduced {
            prior = Some(out);
            let whole = state.tracked[other]
                .finding
                .bisection
                .as_ref()
                .and_then(|b| {
                    if let Some(f) = &b.fixture_users_of {
                        Some(format!("they are the users of leaking fixture `{f}`"))
                    } else if !b.writers_of.is_empty() {
                        let files: Vec<String> =
                            b.writers_of.iter().map(|p| format!("`{p}`")).collect();
                        Some(format!("they all write {}", files.join(", ")))
                    } else {
                        None
                    }
                });
            state.tracked[idx]
                .finding
                .evidence
                .push(format!("reproduced by the set of finding [{}]", other + 1));
            unreduced = whole;
            set = Some(s);
            break;
        }
    }

    // 3a. A hang whose stacks show workers blocked under a fixture that leaks its work: the
    // users of that fixture are the suspects. When they hang without the others, the set is
    // all of them, not a bisected few: every user leaves work behind, so any few of them hang
    // together, and a "minimal" three would name three of six equally guilty tests.
    if set.is_none() && key.kind == super::model::FailureKind::Hang {
        let leak = super::emit::leaking_fixtures(&state.tracked[idx].finding.stacks)
            .into_iter()
            .next();
        if let Some(leak) = leak {
            let candidates = state.tracked[idx].candidates.clone();
            let users = super::converge::fixture_users(session, state, &leak.name)?;
            let suspects: Vec<String> = candidates
                .iter()
                .filter(|t| users.contains(t))
                .cloned()
                .collect();
            if suspects.len() >= 2 {
                let runs_before = session.total_runs;
                let out = probe.run(session, state, RunPurpose::Probe, &suspects, per_probe)?;
                if out.reproduced {
                    let others = candidates.len() - suspects.len();
                    let what = format!(
                        "the {} users of fixture `{}` (the hung workers were blocked under it)",
                        suspects.len(),
                        leak.name
                    );
                    state.tracked[idx].finding.evidence.push(whole_set_evidence(
                        &what,
                        others,
                        "each user leaks, so any few of them hang together",
                    ));
                    state.tracked[idx].finding.bisection = Some(BisectionReport {
                        fixture_users_of: Some(leak.name.clone()),
                        ..one_probe(
                            candidates.len(),
                            per_probe,
                            &out,
                            cfg.confidence,
                            session.total_runs - runs_before,
                        )
                    });
                    prior = Some(out);
                    unreduced = Some("they share the leaking fixture".into());
                    set = Some(suspects);
                }
            }
        }
    }

    // 3b. A failing test that writes a fixed file other candidates write too (as the serial
    // run saw): those writers are the suspects. When they reproduce it without the others, the
    // set is all of them, not a bisected few: any two writers of one fixed file can collide,
    // and a rare failure leaves member checks too few runs to tell them apart.
    if set.is_none() {
        if let Some(test) = key.test() {
            let candidates = state.tracked[idx].candidates.clone();
            // Every writer in the failing test's process domain, not only the candidates (the
            // tests running at each of its failures): a writer absent from one occurrence is
            // no less a writer.
            let excluded = state.excluded_tests();
            let domain = session.runner.domain(test);
            let pool: Vec<String> = state
                .tests
                .iter()
                .filter(|t| session.runner.domain(t) == domain && !excluded.contains(t))
                .cloned()
                .collect();
            // The writers of each file it shares, the most written first (at most three
            // files): the first set that reproduces it is the set.
            let files: Vec<(String, Vec<String>)> = state
                .co_writers(test, &pool)
                .into_iter()
                .filter(|(_, w)| w.len() <= MAX_WRITERS)
                .take(3)
                .collect();
            for (file, writers) in files {
                let runs_before = session.total_runs;
                let out = probe.run(session, state, RunPurpose::Probe, &writers, per_probe)?;
                if !out.reproduced {
                    continue;
                }
                let others = pool.len().saturating_sub(writers.len());
                let what = format!(
                    "the {} tests that write `{file}` (as the serial run saw)",
                    writers.len()
                );
                state.tracked[idx].finding.evidence.push(whole_set_evidence(
                    &what,
                    others,
                    "any two writers of one fixed file can collide",
                ));
                state.tracked[idx].finding.bisection = Some(BisectionReport {
                    writers_of: vec![file.clone()],
                    ..one_probe(
                        candidates.len(),
                        per_probe,
                        &out,
                        cfg.confidence,
                        session.total_runs - runs_before,
                    )
                });
                prior = Some(out);
                unreduced = Some(format!("they all write `{file}`"));
                set = Some(writers);
                break;
            }
        }
    }

    // 3c. Bisection.
    let mut set = match set {
        Some(s) => s,
        None => {
            session.emit(HuntEvent::Note("bisecting"));
            let candidates = state.tracked[idx].candidates.clone();
            let fixed: Vec<String> = culprit
                .iter()
                .filter(|c| candidates.contains(c) || key.test() == Some(c.as_str()))
                .cloned()
                .collect();
            let rest: Vec<String> = candidates
                .iter()
                .filter(|t| !fixed.contains(t))
                .cloned()
                .collect();
            let runs_before = session.total_runs;
            // The whole candidate set first: a finding that does not come back there is not
            // worth a search.
            let all: Vec<String> = fixed.iter().chain(rest.iter()).cloned().collect();
            let first = if state.typical_run().is_some_and(|d| d < CHEAP_RUN) {
                probe.run_long(session, state, &all, per_probe)?
            } else {
                probe.run(session, state, RunPurpose::Probe, &all, per_probe)?
            };
            if !first.reproduced {
                if join_group(session, state, &probe, idx, &all, per_probe)? {
                    return Ok(());
                }
                let t = &mut state.tracked[idx];
                t.finding.conflict_set = all;
                t.finding.classification = Classification::Unresolved;
                t.finding.evidence.push(format!(
                    "did not come back in {} runs of its {} candidates ({} inconclusive): not bisected, not in the fix",
                    first.runs,
                    candidates.len(),
                    first.other
                ));
                t.done = true;
                return Ok(());
            }
            let mut stop: Option<Stop> = None;
            let mut inconclusive = 0usize;
            let limit = probe_limit(candidates.len().max(1), 8);
            // A rare finding must not eat the budget of the others: past this many runs the
            // search stops running probes (its answers are then "not reproduced", which only
            // leaves the set larger) and the set is checked as it is.
            let run_cap = search_run_cap(candidates.len());
            let search_started = Instant::now();
            let mut truncated = false;
            let result = bisect_with(&fixed, &rest, limit, |subset: &[String]| {
                if stop.is_some() || truncated {
                    return false;
                }
                let spent = session.total_runs - runs_before;
                if spent >= run_cap
                    && (search_started.elapsed() >= SEARCH_TIME
                        || spent >= run_cap * SEARCH_CAP_STRETCH)
                {
                    truncated = true;
                    return false;
                }
                match probe.run(session, state, RunPurpose::Probe, subset, per_probe) {
                    Ok(o) => {
                        if !o.reproduced && o.other > 0 {
                            inconclusive += 1;
                        }
                        o.reproduced
                    }
                    Err(s) => {
                        stop = Some(s);
                        false
                    }
                }
            });
            let t = &mut state.tracked[idx];
            t.finding.bisection = Some(BisectionReport {
                candidates: candidates.len(),
                probes: result.probes,
                runs_per_probe: per_probe,
                runs: session.total_runs - runs_before,
                confidence: cfg.confidence,
                minimal: result.minimal && stop.is_none() && !truncated,
                inconclusive_probes: inconclusive,
                fixture_users_of: None,
                writers_of: Vec::new(),
            });
            t.finding.conflict_set = result.conflict_set.clone();
            if let Some(s) = stop {
                return Err(s);
            }
            if truncated {
                t.finding.evidence.push(format!(
                    "the search stopped after {} runs (a rare failure): its set is checked as it stands",
                    session.total_runs - runs_before
                ));
            }
            if result.conflict_set.len() > MAX_CHECKED_SET {
                t.unnarrowed = true;
                t.finding.classification = Classification::Unresolved;
                t.finding.evidence.push(format!(
                    "could not be narrowed below {} tests: not shown to be a race, not in the fix",
                    result.conflict_set.len()
                ));
                t.done = true;
                return Ok(());
            }
            result.conflict_set
        }
    };
    set.sort_by_key(|t| state.tests.iter().position(|x| x == t));

    // 4 and 5. Confirmation and minimality, until no member can be dropped.
    let trivially_needed = key.test().map(str::to_string);
    loop {
        state.tracked[idx].finding.conflict_set = set.clone();
        let mut rep = Reproduction {
            runs: 0,
            reproduced: 0,
            rate: 0.0,
            low: 0.0,
            high: 1.0,
            other_failures: 0,
        };
        if let Some(p) = prior.take() {
            rep.runs = p.runs;
            rep.reproduced = u32::from(p.reproduced);
            rep.other_failures = p.other;
        }
        // K runs (3 for a hang: each reproduction costs a whole timeout), more for a rare
        // one: until it showed 3 times, or twice as many runs (at least 10). The rate plans
        // the minimality runs, so a rare set is measured, not guessed.
        let hang = key.kind == super::model::FailureKind::Hang;
        let confirm_runs = if hang { cfg.runs.min(3) } else { cfg.runs };
        let most = (confirm_runs * 2).max(10).max(confirm_runs);
        // A set that reproduces every time is confirmed further while that saves more member
        // checks than it costs (the members are checked at the lower end of its rate).
        let members_to_check = set
            .iter()
            .filter(|t| Some(*t) != trivially_needed.as_ref())
            .count();
        let worth = if unreduced.is_some() {
            0
        } else {
            super::stats::confirm_runs_for_members(
                members_to_check,
                1.0 - (1.0 - cfg.confidence) / members_to_check.max(1) as f64,
                cfg.max_runs_per_probe,
                if hang { 2.0 } else { 1.0 },
                confirm_runs,
                most,
            )
        };
        // Cheap runs buy a rare set more of them, as in the search.
        let confirm_started = Instant::now();
        let mut confirm_time = (0u32, Duration::ZERO);
        let cheap =
            |runs: u32| confirm_started.elapsed() < SEARCH_TIME && runs < most * SEARCH_CAP_STRETCH;
        while rep.runs < confirm_runs
            || (rep.reproduced < 3 && (rep.runs < most || cheap(rep.runs)))
            || (rep.reproduced == rep.runs && rep.runs < worth)
        {
            let out = probe.run(session, state, RunPurpose::Confirm, &set, 1)?;
            rep.runs += 1;
            confirm_time = (confirm_time.0 + out.runs, confirm_time.1 + out.elapsed);
            if out.reproduced {
                rep.reproduced += 1;
            } else if out.other > 0 {
                rep.other_failures += 1;
            }
            if rep.runs >= confirm_runs
                && rep.reproduced == 0
                && rep.runs >= 2 * confirm_runs
                && !cheap(rep.runs)
            {
                break;
            }
        }
        let r = Rate::new(rep.reproduced, rep.runs);
        rep.rate = r.rate;
        rep.low = r.low;
        rep.high = r.high;
        state.tracked[idx].finding.reproduction = Some(rep.clone());
        if rep.reproduced == 0 {
            let t = &mut state.tracked[idx];
            t.finding.classification = Classification::Unresolved;
            t.finding.evidence.push(format!(
                "the set did not reproduce on its own: 0 of {} runs (95% CI of its rate {}–{}); it is not a race and not in the fix",
                rep.runs,
                super::stats::percent(r.low),
                super::stats::percent(r.high)
            ));
            t.done = true;
            return Ok(());
        }
        if unreduced.is_some() {
            break;
        }
        let members: Vec<String> = set
            .iter()
            .filter(|t| Some(*t) != trivially_needed.as_ref())
            .cloned()
            .collect();
        // Plan for the lowest rate the set plausibly has (the lower end of its 95% interval):
        // a member kept on too few runs is an innocent test in the fix.
        let planning = r.low.max(0.01);
        let share = (1.0 - cfg.confidence) / members.len().max(1) as f64;
        let mut per_member = runs_for_power(planning, 1.0 - share).min(cfg.max_runs_per_probe);
        // A member whose removal only lowers the rate (a third test that makes a pair's
        // failure likelier) passes a check planned for the set's own rate too easily. Where
        // runs are cheap, each member gets the most runs a probe may have.
        // A rare set's members need more than that: where runs are cheap, they get up to
        // what its rate needs, within SEARCH_TIME for all of them (at most 10x the cap).
        if let (made @ 1.., took) = confirm_time {
            let mean = took / made;
            if mean < CHEAP_RUN {
                let needed = runs_for_power(planning, 1.0 - share);
                let affordable = (SEARCH_TIME.as_secs_f64()
                    / mean.as_secs_f64().max(1e-3)
                    / members.len().max(1) as f64) as u32;
                per_member = needed
                    .min(affordable)
                    .min(cfg.max_runs_per_probe * SEARCH_CAP_STRETCH)
                    .max(cfg.max_runs_per_probe);
            }
        }
        let mut checks = Vec::new();
        let mut dropped = None;
        for m in &members {
            let without: Vec<String> = set.iter().filter(|t| *t != m).cloned().collect();
            if without.is_empty() {
                continue;
            }
            let out = probe.run(session, state, RunPurpose::Minimality, &without, per_member)?;
            checks.push(MemberCheck {
                test: m.clone(),
                runs: out.runs,
                reproduced: u32::from(out.reproduced),
                other_failures: out.other,
            });
            if out.reproduced {
                dropped = Some(m.clone());
                break;
            }
        }
        if let Some(m) = dropped {
            state.tracked[idx]
                .finding
                .evidence
                .push(format!("still failed without `{m}`: dropped from the set"));
            set.retain(|t| *t != m);
            continue;
        }
        let miss: f64 = checks
            .iter()
            .map(|c| (1.0 - planning).powi((c.runs - c.other_failures) as i32))
            .sum();
        let minimal = checks
            .iter()
            .all(|c| c.reproduced == 0 && c.runs > c.other_failures)
            && checks.len() == members.len();
        let confidence = (1.0 - miss).max(0.0);
        if minimal && confidence < cfg.confidence {
            state.tracked[idx].finding.evidence.push(format!(
                "the set fails rarely (at least {:.0}% of runs, 95%): each member was checked in {} runs, {:.0}% confidence, below the {:.0}% asked (--max-runs-per-probe caps it)",
                planning * 100.0,
                per_member,
                confidence * 100.0,
                cfg.confidence * 100.0
            ));
        }
        // A member may take part only by running (a third test that shifts a pair's timing):
        // where runs are cheap, each member of a set of three or more is replaced by a test
        // implicated in nothing, and one whose stand-in reproduces it too is a bystander.
        let mut stand_ins = Vec::new();
        let cheap_runs = confirm_time.0 > 0 && confirm_time.1 / confirm_time.0 < CHEAP_RUN;
        if minimal && members.len() >= 2 && cheap_runs {
            for m in &members {
                let Some(other) = super::bystander::stand_in(state, session.runner, &set, m) else {
                    continue;
                };
                let with: Vec<String> = set
                    .iter()
                    .map(|t| if t == m { other.clone() } else { t.clone() })
                    .collect();
                let out = probe.run(session, state, RunPurpose::Minimality, &with, per_member)?;
                stand_ins.push(StandIn {
                    test: m.clone(),
                    replaced_by: other,
                    runs: out.runs,
                    reproduced: u32::from(out.reproduced),
                });
            }
        }
        let t = &mut state.tracked[idx];
        for b in stand_ins.iter().filter(|b| b.reproduced > 0) {
            t.finding.evidence.push(format!(
                "`{}` is a bystander: with `{}` in its place the rest of the set still failed ({} of {} runs); its part is only to be running, so it is left out of the set and the fix (the set's rate was measured with it)",
                b.test, b.replaced_by, b.reproduced, b.runs
            ));
            set.retain(|x| *x != b.test);
        }
        t.finding.minimality = Some(Minimality {
            members: checks,
            failing_test: trivially_needed.clone().filter(|c| set.contains(c)),
            planning_rate: planning,
            confidence,
            minimal,
            stand_ins,
        });
        if set.len() == 1 && trivially_needed.as_ref() == set.first() {
            t.finding.conflict_set = set;
            t.finding.classification = Classification::Unresolved;
            t.finding.evidence.push(
                "every other member was a bystander: it fails beside tests that share nothing with it, so no test is shown to conflict with it; not in the fix".into(),
            );
            t.done = true;
            return Ok(());
        }
        break;
    }

    let t = &mut state.tracked[idx];
    t.finding.conflict_set = set.clone();
    if set.len() == 1 {
        // Only the failing test, and it fails alone now and then.
        t.finding.classification = Classification::Flaky;
        t.finding.evidence.push(format!(
            "the search ended on `{}` alone, which reproduced it: it fails alone, sometimes",
            set[0]
        ));
        t.done = true;
        state.exclude(&set[0], "fails alone, sometimes (flaky)".into());
        return Ok(());
    }
    t.finding.classification = Classification::Race;
    let rep = t.finding.reproduction.clone().expect("confirmed above");
    t.finding.evidence.push(format!(
        "the set reproduced it alone in {}/{} runs; {}",
        rep.reproduced,
        rep.runs,
        match &t.finding.minimality {
            Some(m) if m.minimal => format!(
                "without any one member it did not (confidence {:.0}% at {:.0}%, the lower end of the set's rate)",
                m.confidence * 100.0,
                m.planning_rate * 100.0
            ),
            _ if unreduced.is_some() => format!(
                "its members were not checked one by one: {}",
                unreduced.as_deref().unwrap_or_default()
            ),
            _ => "not every member could be shown necessary".into(),
        }
    ));
    if matches!(key.subject, Subject::Process(_)) && !t.first.in_flight.is_empty() {
        let flight = t.first.in_flight.clone();
        t.finding.evidence.push(format!(
            "in flight when it failed first: {}",
            flight.join(", ")
        ));
    }
    t.done = true;
    Ok(())
}
