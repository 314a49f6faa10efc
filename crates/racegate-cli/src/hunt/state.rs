//! What a hunt has learned so far. The phases add to it; the report is built from it whether
//! the hunt finished or stopped early, so nothing found is lost.

use super::emit::LeakingFixture;
use super::model::{Failure, FailureKey, Subject};
use super::report::{
    Classification, CleanStatement, Excluded, Finding, FoundIn, Identity, LevelReport,
    MeasureReport, RoundReport, SuiteRunSummary, VerifyReport,
};
use super::stats::Rate;

/// A finding and what the phases need to work on it.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Its identity.
    pub key: FailureKey,
    /// Its first occurrence.
    pub first: Failure,
    /// Tests that may have caused it: those started by then in its process, over every
    /// occurrence (intersected: a cause was running each time).
    pub candidates: Vec<String>,
    /// The report entry being filled in.
    pub finding: Finding,
    /// Whether its analysis ended (classified).
    pub done: bool,
    /// Whether its pass is still counting runs for it.
    pub counting: bool,
    /// Its candidates reproduced it together, but the search could not narrow them to a
    /// set small enough to check: many tests take part (see [`widen_from_unnarrowed`]).
    ///
    /// [`widen_from_unnarrowed`]: super::widen::widen_from_unnarrowed
    pub unnarrowed: bool,
    /// Its test joined a group ([`Group::joined`]).
    pub joined: bool,
    /// The last round whose suite runs showed it.
    pub last_seen: u32,
}

impl Tracked {
    /// A new finding from its first occurrence.
    pub fn new(f: &Failure, found_in: FoundIn, round: u32, jobs: u32) -> Self {
        let (test, process) = match &f.key.subject {
            Subject::Test(t) => (Some(t.clone()), None),
            Subject::Process(p) => (None, Some(p.clone())),
        };
        let finding = Finding {
            kind: f.key.kind,
            classification: Classification::Unresolved,
            identity: Identity {
                class: f.key.kind,
                test,
                process,
                message: f.key.message.clone(),
            },
            signature: f.signature.clone(),
            signatures: vec![f.signature.clone()],
            test: f.test.clone(),
            in_flight: f.in_flight.clone(),
            found_in,
            round,
            jobs,
            seen_in_runs: 1,
            of_runs: 1,
            parallel_rate: 1.0,
            parallel: Rate::new(1, 1),
            conflict_set: Vec::new(),
            group: None,
            bisection: None,
            reproduction: None,
            minimality: None,
            evidence: Vec::new(),
            stack_excerpt: (!f.stacks.is_empty())
                .then(|| super::stacks::excerpt(&f.stacks, 24))
                .filter(|e| !e.is_empty()),
            stacks: f.stacks.clone(),
            leaking_fixture: None,
        };
        Tracked {
            key: f.key.clone(),
            first: f.clone(),
            candidates: f.candidates.clone(),
            finding,
            done: false,
            counting: true,
            unnarrowed: false,
            joined: false,
            last_seen: round,
        }
    }

    /// Another occurrence in the same pass.
    pub fn seen_again(&mut self, f: &Failure) {
        self.finding.seen_in_runs += 1;
        if self.key.message.is_empty() && !f.key.message.is_empty() {
            // First seen when its process died before printing why: now we know.
            self.key.message = f.key.message.clone();
            self.finding.identity.message = f.key.message.clone();
            self.finding.signature = f.signature.clone();
        }
        if !self.finding.signatures.contains(&f.signature) {
            self.finding.signatures.push(f.signature.clone());
        }
        // A cause was running every time it failed.
        let keep: Vec<String> = self
            .candidates
            .iter()
            .filter(|t| f.candidates.contains(t))
            .cloned()
            .collect();
        if !keep.is_empty() {
            self.candidates = keep;
        }
        if self.finding.stacks.is_empty() && !f.stacks.is_empty() {
            self.finding.stacks = f.stacks.clone();
            self.finding.stack_excerpt =
                Some(super::stacks::excerpt(&f.stacks, 24)).filter(|e| !e.is_empty());
        }
    }

    /// Set the runs it could have been seen in.
    pub fn set_runs(&mut self, of_runs: u32) {
        let of = of_runs.max(self.finding.seen_in_runs).max(1);
        self.finding.of_runs = of;
        self.finding.parallel = Rate::new(self.finding.seen_in_runs, of);
        self.finding.parallel_rate = self.finding.parallel.rate;
    }

    /// Whether its failing test (or every test in flight) is among `grouped`.
    pub fn covered_by(&self, grouped: &[String]) -> bool {
        match self.culprit() {
            Some(t) => grouped.iter().any(|g| g == t),
            None => {
                !self.first.in_flight.is_empty()
                    && self.first.in_flight.iter().any(|t| grouped.contains(t))
            }
        }
    }

    /// The test that failed, or the only test in flight when its process died or hung.
    pub fn culprit(&self) -> Option<&str> {
        self.key
            .test()
            .or(self.finding.test.as_deref())
            .or(match self.first.in_flight.as_slice() {
                [one] => Some(one.as_str()),
                _ => None,
            })
    }
}

/// A group of the fix as the rounds build it.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// Members from measured conflict sets.
    pub measured: Vec<String>,
    /// Members added by widening (module/class, fixture users).
    pub added: Vec<String>,
    /// The module or class it was widened to, if so.
    pub unit: Option<String>,
    /// Widened to the users of this leaking fixture.
    pub fixture: Option<String>,
    /// A fixed file its measured members all write (the group is named after it).
    pub file: Option<String>,
    /// Tests that joined it tentatively: each failed with the groups applied, where no probe
    /// brought it back, and came back among this group's tests run unserialized.
    pub joined: Vec<String>,
    /// The suite ran clean with it applied.
    pub verified: bool,
    /// Tests of its unit seen failing when it was tried from failures alone.
    pub seen_failing: Vec<String>,
    /// Suite runs, in the rounds since it was last changed, that ran with it applied and
    /// saw none of its tests fail (0 once one did).
    pub held_runs: u32,
}

impl Group {
    /// Every member.
    pub fn members(&self) -> Vec<String> {
        let mut v = self.measured.clone();
        for t in self.added.iter().chain(self.joined.iter()) {
            if !v.contains(t) {
                v.push(t.clone());
            }
        }
        v
    }
}

/// Everything found so far.
#[derive(Debug, Default)]
pub struct HuntState {
    /// The listed tests.
    pub tests: Vec<String>,
    /// Tests left out of parallel runs.
    pub excluded: Vec<Excluded>,
    /// The serial timing run.
    pub measure: Option<MeasureReport>,
    /// Every run of the whole suite.
    pub suite_runs: Vec<SuiteRunSummary>,
    /// Levels of concurrency tried.
    pub levels: Vec<LevelReport>,
    /// Rounds.
    pub rounds: Vec<RoundReport>,
    /// Findings, in the order found.
    pub tracked: Vec<Tracked>,
    /// Groups of the fix.
    pub groups: Vec<Group>,
    /// Workers in use.
    pub jobs: u32,
    /// Suite failure rate of the first round.
    pub rate_before: Option<Rate>,
    /// What a clean suite rules out.
    pub clean: Option<CleanStatement>,
    /// `--verify`.
    pub verify: Option<VerifyReport>,
    /// Leaking fixtures read off hang stacks.
    pub leaks: Vec<LeakingFixture>,
    /// Notes for the reader.
    pub notes: Vec<String>,
    /// The last round ran clean with the groups applied.
    pub converged: bool,
    /// Modules or classes tried as a whole and dropped.
    pub rejected_units: Vec<String>,
    /// Users of each fixture asked about so far (collecting them is a run of its own).
    pub fixture_users: Vec<(String, Vec<String>)>,
    /// The files each test wrote in the serial run, where the runner can tell.
    pub writes: Vec<(String, Vec<String>)>,
    /// A test joined a group since the groups were last merged (see [`Group::joined`]).
    pub joined_since: bool,
}

impl HuntState {
    /// Each file `test` wrote that another of `among` wrote too, with every test of `among`
    /// that wrote it (`test` first), the most written file first. Per file, not pooled: a
    /// test that wrote the ledger and a scratch file shares the ledger with the ledger's
    /// writers only.
    pub fn co_writers(&self, test: &str, among: &[String]) -> Vec<(String, Vec<String>)> {
        let Some((_, own)) = self.writes.iter().find(|(t, _)| t == test) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for path in own {
            let mut writers: Vec<String> = vec![test.to_string()];
            for (other, paths) in &self.writes {
                if other != test && among.contains(other) && paths.contains(path) {
                    writers.push(other.clone());
                }
            }
            if writers.len() >= 2 && !out.iter().any(|(_, w)| *w == writers) {
                out.push((path.clone(), writers));
            }
        }
        out.sort_by_key(|(_, w)| std::cmp::Reverse(w.len()));
        out
    }

    /// Tests left out of parallel runs.
    pub fn excluded_tests(&self) -> Vec<String> {
        self.excluded.iter().map(|e| e.test.clone()).collect()
    }

    /// Leave `test` out of parallel runs from now on.
    pub fn exclude(&mut self, test: &str, why: String) {
        if !self.excluded.iter().any(|e| e.test == test) {
            self.excluded.push(Excluded {
                test: test.to_string(),
                why,
            });
        }
    }

    /// The serialization in force: every group's members.
    pub fn serialized(&self) -> Vec<Vec<String>> {
        self.groups.iter().map(Group::members).collect()
    }

    /// The serialization a probe for a finding of round `round` runs under: the groups in
    /// force in that round's runs, and — for a finding that names its failing test — the
    /// sets found for other findings of the round that do not hold that test, so that known
    /// conflicts do not drown the probes of the next one.
    pub fn probe_serialization(&self, round: u32, culprit: Option<&str>) -> Vec<Vec<String>> {
        let mut sets: Vec<Vec<String>> = if round > 1 {
            self.serialized()
        } else {
            Vec::new()
        };
        if let Some(c) = culprit {
            for t in &self.tracked {
                if t.done
                    && t.finding.round == round
                    && t.finding.classification == Classification::Race
                    && !t.finding.conflict_set.iter().any(|x| x == c)
                {
                    sets.push(t.finding.conflict_set.clone());
                }
            }
        }
        // Disjoint: sets sharing a test are one.
        let mut out: Vec<Vec<String>> = Vec::new();
        for s in sets {
            let mut merged = s;
            out.retain(|o| {
                if o.iter().any(|x| merged.contains(x)) {
                    for x in o {
                        if !merged.contains(x) {
                            merged.push(x.clone());
                        }
                    }
                    false
                } else {
                    true
                }
            });
            out.push(merged);
        }
        // A merge may have pulled the culprit's set in: leave it out again.
        if let Some(c) = culprit {
            if round == 1 {
                out.retain(|g| !g.iter().any(|x| x == c));
            }
        }
        out
    }

    /// Record a failure seen in a probe or a check: a known finding counts it, an unknown one
    /// becomes a finding of its own (never a "not reproduced" of the finding being probed).
    pub fn record_side_failure(&mut self, f: &Failure, round: u32, jobs: u32) {
        if self.tracked.iter().any(|t| t.key.same(&f.key)) {
            return;
        }
        let mut t = Tracked::new(f, FoundIn::Probe, round, jobs);
        t.counting = false;
        self.tracked.push(t);
    }

    /// Merge `set` into the groups: every group it overlaps joins it, so each test ends up in
    /// exactly one group. Returns whether the groups changed.
    pub fn merge_group(&mut self, set: &[String]) -> bool {
        let mut merged = Group {
            measured: set.to_vec(),
            ..Group::default()
        };
        let mut changed = true;
        let mut keep = Vec::new();
        for g in std::mem::take(&mut self.groups) {
            let members = g.members();
            if members.iter().any(|t| set.contains(t)) {
                if set.iter().all(|t| g.measured.contains(t)) {
                    changed = false;
                }
                for t in g.measured {
                    if !merged.measured.contains(&t) {
                        merged.measured.push(t);
                    }
                }
                for t in g.added {
                    if !merged.added.contains(&t) && !merged.measured.contains(&t) {
                        merged.added.push(t);
                    }
                }
                merged.unit = merged.unit.or(g.unit);
                merged.fixture = merged.fixture.or(g.fixture);
                merged.file = merged.file.or(g.file);
                for t in g.joined {
                    if !merged.joined.contains(&t) {
                        merged.joined.push(t);
                    }
                }
                for t in g.seen_failing {
                    if !merged.seen_failing.contains(&t) {
                        merged.seen_failing.push(t);
                    }
                }
                if !changed {
                    // The set was already in it: the group is the same one.
                    merged.verified = g.verified;
                    merged.held_runs = g.held_runs;
                }
            } else {
                keep.push(g);
            }
        }
        let order = |t: &String| self.tests.iter().position(|x| x == t).unwrap_or(usize::MAX);
        merged.measured.sort_by_key(order);
        merged.added.sort_by_key(order);
        merged.added.retain(|t| !merged.measured.contains(t));
        keep.push(merged);
        self.groups = keep;
        changed
    }

    /// Merge groups that share a test until every test is in one group at most.
    pub fn disjoint_groups(&mut self) {
        let order =
            |tests: &[String], t: &String| tests.iter().position(|x| x == t).unwrap_or(usize::MAX);
        loop {
            let pair = (0..self.groups.len()).find_map(|i| {
                let mi = self.groups[i].members();
                (i + 1..self.groups.len())
                    .find(|&j| self.groups[j].members().iter().any(|t| mi.contains(t)))
                    .map(|j| (i, j))
            });
            let Some((i, j)) = pair else { break };
            let other = self.groups.remove(j);
            let g = &mut self.groups[i];
            for t in other.measured {
                if !g.measured.contains(&t) {
                    g.measured.push(t);
                }
            }
            for t in other.added {
                if !g.added.contains(&t) {
                    g.added.push(t);
                }
            }
            let measured = g.measured.clone();
            g.added.retain(|t| !measured.contains(t));
            g.unit = g.unit.take().or(other.unit);
            g.fixture = g.fixture.take().or(other.fixture);
            g.file = g.file.take().or(other.file);
            for t in other.joined {
                if !g.joined.contains(&t) {
                    g.joined.push(t);
                }
            }
            g.verified &= other.verified;
            g.held_runs = 0;
            for t in other.seen_failing {
                if !g.seen_failing.contains(&t) {
                    g.seen_failing.push(t);
                }
            }
            g.measured.sort_by_key(|t| order(&self.tests, t));
            g.added.sort_by_key(|t| order(&self.tests, t));
        }
    }

    /// The verdict's inputs: any race in the fix.
    pub fn any_race(&self) -> bool {
        self.tracked
            .iter()
            .any(|t| t.finding.classification == Classification::Race)
    }

    /// Suite runs made so far in round `round`.
    pub fn runs_in_round(&self, round: u32) -> u32 {
        self.suite_runs.iter().filter(|r| r.round == round).count() as u32
    }

    /// Add a note once.
    pub fn note(&mut self, n: String) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    /// The smallest measured rate of a race finding (what verification must be able to see).
    /// The rate verification plans for: the lowest of the fix's findings' rates and the
    /// suite's own failing-run rate before any fix. A hang's tests sit out the rest of a pass
    /// once it is seen, so its own rate counts only the runs it could show in, and can read
    /// 100% where the suite failed in 40% of runs; verify must catch the 40%.
    pub fn verify_target_rate(&self) -> Option<f64> {
        let before = self.rate_before.map(|r| r.rate).filter(|r| *r > 0.0);
        match (self.lowest_race_rate(), before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The median time of a parallel run of the whole suite so far.
    pub fn typical_run(&self) -> Option<std::time::Duration> {
        let mut v: Vec<u64> = self
            .suite_runs
            .iter()
            .filter(|r| r.round >= 1)
            .map(|r| r.elapsed_ms)
            .collect();
        v.sort_unstable();
        v.get(v.len() / 2)
            .map(|ms| std::time::Duration::from_millis(*ms))
    }

    /// The lowest per-run rate among the findings the groups fix (races, and findings whose
    /// tests the groups cover).
    pub fn lowest_race_rate(&self) -> Option<f64> {
        let grouped: Vec<String> = self.groups.iter().flat_map(Group::members).collect();
        self.tracked
            .iter()
            .filter(|t| {
                t.finding.classification == Classification::Race
                    || t.finding.classification == Classification::Covered
                    || (!t.done && t.covered_by(&grouped))
            })
            .map(|t| t.finding.parallel_rate)
            .filter(|r| *r > 0.0)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn co_writers_are_per_file_the_most_written_first() {
        let ids = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<String>>();
        let state = HuntState {
            tests: ids(&["t", "a", "b", "c", "d"]),
            writes: vec![
                ("t".into(), ids(&["/scratch", "/ledger.db", "/own"])),
                ("a".into(), ids(&["/ledger.db"])),
                ("b".into(), ids(&["/ledger.db"])),
                ("c".into(), ids(&["/scratch"])),
                ("d".into(), ids(&["/ledger.db"])),
            ],
            ..HuntState::default()
        };
        let among = ids(&["t", "a", "b", "c"]);
        assert_eq!(
            state.co_writers("t", &among),
            vec![
                ("/ledger.db".to_string(), ids(&["t", "a", "b"])),
                ("/scratch".to_string(), ids(&["t", "c"])),
            ]
        );
        assert!(state.co_writers("c", &ids(&["a", "b"])).is_empty());
        assert!(state.co_writers("x", &among).is_empty());
    }

    #[test]
    fn overlapping_sets_merge_so_each_test_is_in_one_group() {
        let mut s = HuntState {
            tests: (0..10).map(|i| format!("t{i}")).collect(),
            ..HuntState::default()
        };
        let v = |x: &[&str]| x.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert!(s.merge_group(&v(&["t1", "t2"])));
        assert!(s.merge_group(&v(&["t5", "t6"])));
        assert!(s.merge_group(&v(&["t6", "t3"])));
        assert!(!s.merge_group(&v(&["t1", "t2"])));
        assert_eq!(s.groups.len(), 2);
        let all: Vec<String> = s.groups.iter().flat_map(|g| g.members()).collect();
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(all.len(), dedup.len());
        assert!(s
            .groups
            .iter()
            .any(|g| g.measured == v(&["t3", "t5", "t6"])));
    }
}
