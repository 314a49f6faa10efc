//! [`Engine`]: one run of a plan through the runner and the executor, bounded by the budget
//! and the hang timeout, classified into a [`RunObservation`]. Every phase runs tests through
//! it, and stops with a [`Stop`] when the budget is spent, the hunt is interrupted, or the
//! test command cannot be run.

use std::time::{Duration, Instant};

use super::classify;
use super::config::HuntConfig;
use super::events::{HuntEvent, RunPurpose};
use super::exec::{Executor, Limits, Termination};
use super::model::{RunObservation, TestStatus};
use super::runner::{RunPlan, Runner};
use super::HuntError;

/// Why the phases stopped before the end.
#[derive(Debug)]
pub enum Stop {
    /// `--budget` ran out.
    Budget,
    /// SIGINT, SIGTERM or SIGHUP.
    Interrupted,
    /// The test command could not be run.
    Error(HuntError),
}

/// The hang timeout: given by the user, or derived from the serial timing run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// No test finishing for this long is a hang (at one worker per core).
    pub idle: Duration,
    /// Start-up allowance before the first test finishes (at one worker per core).
    pub startup: Duration,
    /// Whether `idle` came from `--test-timeout`.
    pub from_flag: bool,
}

impl Timeouts {
    /// Below this, a derived timeout would misfire on a loaded machine.
    pub const FLOOR: Duration = Duration::from_secs(3);
    /// Start-up allowances double after a stall up to this (at one worker per core).
    pub const MAX_STARTUP: Duration = Duration::from_secs(60);

    /// Derived from a serial run: the slowest test (longest gap between two finished tests)
    /// five times over; start-up three times over, at least 5 s (an interpreter starting on a
    /// loaded machine is slow, and a start-up stall is not a hang of the tests). [`Self::limits`] applies
    /// the floor of [`Self::FLOOR`] after stretching.
    pub fn derive(longest_test: Duration, startup: Duration) -> Self {
        Timeouts {
            idle: longest_test * 5,
            startup: (startup * 3).max(Duration::from_secs(5)),
            from_flag: false,
        }
    }

    /// The limits of a run with `jobs` workers on `cores` cores: slower tests when workers
    /// outnumber cores, so the derived bounds stretch by `jobs / cores`; a given
    /// `--test-timeout` is kept as is (start-up still stretches).
    pub fn limits(&self, jobs: u32, cores: u32, total: Duration) -> Limits {
        let stretch = f64::from(jobs.max(1)) / f64::from(cores.max(1));
        let stretch = stretch.max(1.0);
        let idle = if self.from_flag {
            self.idle
        } else {
            // The floor already holds slack for a loaded machine; stretch what is above it.
            self.idle.mul_f64(stretch).max(Self::FLOOR)
        };
        Limits {
            idle,
            first_progress: idle + self.startup.mul_f64(stretch),
            total,
            capture_stacks: false,
        }
    }
}

/// Runs plans for the phases.
pub struct Session<'a> {
    /// The configuration.
    pub cfg: &'a HuntConfig,
    /// The runner adapter.
    pub runner: &'a dyn Runner,
    exec: &'a mut dyn Executor,
    /// When the hunt started.
    pub started: Instant,
    /// Executions of the test command (listing excluded).
    pub total_runs: u32,
    /// The hang bounds in force.
    pub timeouts: Timeouts,
    on_event: &'a mut dyn FnMut(HuntEvent<'_>),
}

impl<'a> Session<'a> {
    /// An engine for one hunt.
    pub fn new(
        cfg: &'a HuntConfig,
        runner: &'a dyn Runner,
        exec: &'a mut dyn Executor,
        on_event: &'a mut dyn FnMut(HuntEvent<'_>),
    ) -> Self {
        let timeouts = match cfg.test_timeout {
            Some(t) => Timeouts {
                idle: t,
                startup: Duration::from_secs(5),
                from_flag: true,
            },
            None => Timeouts {
                idle: cfg.first_timeout,
                startup: Duration::from_secs(10),
                from_flag: false,
            },
        };
        Session {
            cfg,
            runner,
            exec,
            started: Instant::now(),
            total_runs: 0,
            timeouts,
            on_event,
        }
    }

    /// Budget left.
    pub fn remaining(&self) -> Duration {
        self.cfg.budget.saturating_sub(self.started.elapsed())
    }

    /// Tell the printer.
    pub fn emit(&mut self, ev: HuntEvent<'_>) {
        (self.on_event)(ev)
    }

    /// Execute a command that is not a test run (listing, helpers), bounded by the budget.
    pub fn execute_plain(
        &mut self,
        spec: &super::exec::CommandSpec,
    ) -> Result<super::exec::Execution, Stop> {
        let remaining = self.remaining();
        if remaining < Duration::from_millis(200) {
            return Err(Stop::Budget);
        }
        let ex = self
            .exec
            .execute(spec, Limits::flat(remaining), &|_| false)
            .map_err(|source| {
                Stop::Error(HuntError::Spawn {
                    command: spec.display(),
                    source,
                })
            })?;
        match ex.termination {
            Termination::Interrupted => Err(Stop::Interrupted),
            _ => Ok(ex),
        }
    }

    /// Execute one command of a run.
    fn execute(
        &mut self,
        cmd: &super::runner::RunCommand,
        limits: Limits,
    ) -> Result<super::exec::Execution, Stop> {
        let runner = self.runner;
        let ex = self
            .exec
            .execute(&cmd.spec, limits, &|l| runner.is_progress(l))
            .map_err(|source| {
                Stop::Error(HuntError::Spawn {
                    command: cmd.spec.display(),
                    source,
                })
            })?;
        self.total_runs += 1;
        Ok(ex)
    }

    /// Whether `ex` hung before its runner reported any test starting or ending.
    fn stalled_at_start(
        &self,
        cmd: &super::runner::RunCommand,
        ex: &super::exec::Execution,
    ) -> bool {
        matches!(ex.termination, Termination::Hung { .. })
            && !self.runner.parse_run(cmd, ex).iter().any(|e| {
                matches!(
                    e,
                    super::runner::RunEvent::Started(_) | super::runner::RunEvent::Finished(..)
                )
            })
    }

    /// Run `plan` once (every command of it, one after the other) and classify what happened.
    /// `capture_stacks`: dump a hung tree before killing it.
    pub fn run(
        &mut self,
        purpose: RunPurpose,
        plan: &RunPlan<'_>,
        capture_stacks: bool,
    ) -> Result<(RunObservation, Vec<super::exec::Execution>), Stop> {
        let t0 = Instant::now();
        let mut obs = RunObservation::default();
        let mut planned: Vec<String> = Vec::new();
        let mut executions = Vec::new();
        let mut tail = String::new();
        let mut nonzero = false;
        let commands = self.runner.run_commands(plan);
        for cmd in &commands {
            let remaining = self.remaining();
            if remaining < Duration::from_millis(200) {
                return Err(Stop::Budget);
            }
            let mut limits = self.timeouts.limits(cmd.jobs, self.cfg.cores, remaining);
            limits.capture_stacks = capture_stacks;
            let mut ex = self.execute(cmd, limits)?;
            if self.stalled_at_start(cmd, &ex) && self.timeouts.startup < Timeouts::MAX_STARTUP {
                // Stuck before any test started: on a loaded machine, start-up (an
                // interpreter, workers, collection) outgrew its allowance. That is no finding
                // of the suite's: the allowance doubles and the command runs again, once.
                self.timeouts.startup = (self.timeouts.startup * 2).min(Timeouts::MAX_STARTUP);
                let remaining = self.remaining();
                if remaining < Duration::from_millis(200) {
                    return Err(Stop::Budget);
                }
                let mut limits = self.timeouts.limits(cmd.jobs, self.cfg.cores, remaining);
                limits.capture_stacks = capture_stacks;
                ex = self.execute(cmd, limits)?;
            }
            match ex.termination {
                Termination::OutOfTime => return Err(Stop::Budget),
                Termination::Interrupted => return Err(Stop::Interrupted),
                Termination::Exited(0) => {}
                _ => nonzero = true,
            }
            let events = self.runner.parse_run(cmd, &ex);
            let results =
                classify::classify(self.runner, cmd.jobs, &ex, &events, &mut obs.failures);
            obs.results.extend(results);
            for t in &cmd.tests {
                if !planned.contains(t) {
                    planned.push(t.clone());
                }
            }
            tail = tail_of(&ex.output, 15);
            executions.push(ex);
        }
        obs.unreported = planned
            .iter()
            .filter(|t| !obs.results.iter().any(|(n, _)| n == *t))
            .cloned()
            .collect();
        if obs.results.is_empty() && obs.failures.is_empty() && nonzero {
            let hint = executions
                .iter()
                .find_map(|e| self.runner.no_results_hint(&e.output))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(Stop::Error(HuntError::NoResults {
                command: commands
                    .first()
                    .map(|c| c.spec.display())
                    .unwrap_or_default(),
                detail: format!("it failed before any test ran{hint}:\n{tail}"),
            }));
        }
        let jobs = commands.iter().map(|c| c.jobs).max().unwrap_or(plan.jobs);
        (self.on_event)(HuntEvent::Run {
            purpose,
            tests: plan.tests.len(),
            jobs,
            observation: &obs,
            elapsed: t0.elapsed(),
        });
        Ok((obs, executions))
    }
}

/// Tests of `obs` that reported anything but passed or skipped.
pub fn failed_tests(obs: &RunObservation) -> Vec<String> {
    obs.results
        .iter()
        .filter(|(_, s)| !matches!(s, TestStatus::Passed | TestStatus::Skipped))
        .map(|(t, _)| t.clone())
        .collect()
}

/// The last `lines` lines of a text, for error messages.
pub fn tail_of(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_timeouts_follow_the_suite_and_stretch_with_oversubscription() {
        let t = Timeouts::derive(Duration::from_millis(100), Duration::from_millis(400));
        let l = t.limits(2, 2, Duration::from_secs(100));
        assert_eq!(l.idle, Timeouts::FLOOR);
        assert_eq!(l.first_progress, Duration::from_secs(8));
        // 0.5 s × 4 is still under the floor; 0.5 s × 8 is not.
        assert_eq!(
            t.limits(8, 2, Duration::from_secs(100)).idle,
            Timeouts::FLOOR
        );
        assert_eq!(
            t.limits(16, 2, Duration::from_secs(100)).idle,
            Duration::from_secs(4)
        );
        let t = Timeouts::derive(Duration::from_secs(10), Duration::ZERO);
        assert_eq!(t.idle, Duration::from_secs(50));
        let flag = Timeouts {
            idle: Duration::from_secs(7),
            startup: Duration::from_secs(5),
            from_flag: true,
        };
        assert_eq!(
            flag.limits(8, 2, Duration::from_secs(100)).idle,
            Duration::from_secs(7)
        );
    }
}
