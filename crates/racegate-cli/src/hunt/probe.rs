//! One probe: a set of tests run on its own, repeatedly, until a finding shows or enough
//! runs come out clean. Every phase after discovery asks its questions this way.

use std::time::{Duration, Instant};

use super::events::RunPurpose;
use super::model::{FailureKey, Verdict};
use super::runner::RunPlan;
use super::session::{Session, Stop};
use super::state::HuntState;

/// Parallelism of a probe of `tests` tests: at least `jobs`, and for small sets one worker
/// per test (up to [`PROBE_JOBS_CAP`]). Runners place tests on workers in chunks (xdist sends
/// each worker two consecutive tests first), so with fewer workers than tests two members of
/// a small conflict set can land on one worker and run one after the other; with a worker each
/// they always run at the same time.
pub fn probe_jobs(jobs: u32, tests: usize) -> u32 {
    jobs.max(tests.min(PROBE_JOBS_CAP as usize) as u32)
}

/// The most workers [`probe_jobs`] adds for a small set.
pub const PROBE_JOBS_CAP: u32 = 4;

/// …unless its runs are cheap: a search goes on past its cap until it has taken this long
/// (a suite whose run takes 50 ms can afford the hundreds of runs a failure seen once in
/// ten needs, where one of 5 s cannot)…
pub(super) const SEARCH_TIME: Duration = Duration::from_secs(30);
/// …up to this many times its cap.
pub(super) const SEARCH_CAP_STRETCH: u32 = 10;

/// What repeated runs of one set showed for one finding.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProbeOutcome {
    pub reproduced: bool,
    pub runs: u32,
    pub clean: u32,
    pub other: u32,
    /// Time its runs took, as the executor measured them.
    pub elapsed: Duration,
}

/// Everything one probe needs besides the set.
pub(super) struct Probe<'k> {
    pub key: &'k FailureKey,
    /// A test to keep beside the rest when its group is serialized (the failing one).
    pub beside: Option<String>,
    pub jobs: u32,
    pub round: u32,
    /// Whether the groups in force are applied (all but a join probe's runs).
    pub serialize: bool,
}

impl Probe<'_> {
    /// Run `tests` until the finding shows, or `clean_runs` runs showed nothing at all (at
    /// most twice that many runs: runs with other failures prove nothing either way).
    pub fn run(
        &self,
        session: &mut Session<'_>,
        state: &mut HuntState,
        purpose: RunPurpose,
        tests: &[String],
        clean_runs: u32,
    ) -> Result<ProbeOutcome, Stop> {
        let mut tests = tests.to_vec();
        tests.sort_by_key(|t| state.tests.iter().position(|x| x == t));
        let groups = if self.serialize {
            state.probe_serialization(self.round, self.beside.as_deref())
        } else {
            Vec::new()
        };
        let rotation = self
            .beside
            .as_ref()
            .and_then(|b| {
                groups
                    .iter()
                    .find(|g| g.contains(b))
                    .and_then(|g| g.iter().filter(|t| tests.contains(t)).position(|t| t == b))
            })
            .unwrap_or(0);
        let jobs = probe_jobs(self.jobs, tests.len());
        let plan = RunPlan {
            tests: &tests,
            whole_suite: false,
            excluded: &[],
            jobs,
            serialized: &groups,
            rotation,
        };
        let mut out = ProbeOutcome::default();
        let clean_runs = clean_runs.max(1);
        let runner = session.runner;
        // Inconclusive runs get two more chances in all, not unbounded ones.
        while out.clean < clean_runs && out.runs < clean_runs + 2 {
            let (obs, executions) = session.run(purpose, &plan, false)?;
            out.runs += 1;
            out.elapsed += executions.iter().map(|e| e.elapsed).sum::<Duration>();
            for f in obs.failures.iter().filter(|f| !f.key.same(self.key)) {
                state.record_side_failure(f, self.round, jobs);
            }
            match obs.verdict(self.key, &|t| runner.domain(t)) {
                Verdict::Reproduced => {
                    out.reproduced = true;
                    break;
                }
                Verdict::NotReproduced => out.clean += 1,
                Verdict::Inconclusive => out.other += 1,
            }
        }
        Ok(out)
    }
}

impl Probe<'_> {
    /// [`Probe::run`] for a whole candidate set where runs are cheap: a failure seen in 1 of
    /// 12 suite runs can take more than a probe's runs to show among its candidates, so the
    /// probe goes on, `clean_runs` at a time, while it has taken under [`SEARCH_TIME`] (at
    /// most [`SEARCH_CAP_STRETCH`] times `clean_runs`).
    pub fn run_long(
        &self,
        session: &mut Session<'_>,
        state: &mut HuntState,
        tests: &[String],
        clean_runs: u32,
    ) -> Result<ProbeOutcome, Stop> {
        let started = Instant::now();
        let mut total = ProbeOutcome::default();
        for _ in 0..SEARCH_CAP_STRETCH {
            let out = self.run(session, state, RunPurpose::Probe, tests, clean_runs)?;
            total.reproduced = out.reproduced;
            total.runs += out.runs;
            total.clean += out.clean;
            total.other += out.other;
            total.elapsed += out.elapsed;
            if out.reproduced || started.elapsed() >= SEARCH_TIME {
                break;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_probes_get_a_worker_per_test() {
        assert_eq!(probe_jobs(2, 1), 2);
        assert_eq!(probe_jobs(2, 3), 3);
        assert_eq!(probe_jobs(2, 30), 4);
        assert_eq!(probe_jobs(8, 3), 8);
    }
}
