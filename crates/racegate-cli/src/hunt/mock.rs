//! A scripted suite for the engine's tests: a runner adapter and an executor that simulate
//! tests which fail, crash or hang when certain others run at the same time — deterministically
//! (a rule that fires "every n-th chance" counts its chances), so every verdict is fixed.
//!
//! Tests are named `DOMAIN NAME` like cargo test ids: a domain is one process (a test
//! binary). Tests of one plan overlap when the plan has two workers or more, unless both are
//! in one serialized group.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use super::emit::{Fix, FixGroup, LeakingFixture};
use super::exec::{CommandSpec, Execution, Executor, Limits, Termination};
use super::model::TestStatus;
use super::runner::{rust, RunCommand, RunEvent, RunPlan, Runner, RunnerKind};

/// What a rule does when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `victim` fails its assertion with `message`.
    Fail { victim: String, message: String },
    /// The process of the set's domain dies (`message` on its output).
    Crash { message: String },
    /// The run stops making progress.
    Hang,
}

/// A conflict: when every test of `set` overlaps (at `min_jobs` workers or more), `effect`
/// happens on every `every`-th such chance.
#[derive(Debug, Clone)]
pub struct Rule {
    pub set: Vec<String>,
    pub effect: Effect,
    pub min_jobs: u32,
    pub every: u32,
    /// The chance it first fires on (1-based; 1 unless set).
    pub first: u32,
    /// Whether the serialization prevents it (false: a conflict the groups cannot stop).
    pub respects_groups: bool,
    /// Other tests of the run it also needs, whichever they are (a pair whose timing only
    /// lines up with a third test running).
    pub company: usize,
}

impl Rule {
    pub fn new(set: &[&str], effect: Effect) -> Self {
        Rule {
            set: set.iter().map(|s| s.to_string()).collect(),
            effect,
            min_jobs: 2,
            every: 1,
            first: 1,
            respects_groups: true,
            company: 0,
        }
    }
}

/// The scripted suite.
#[derive(Debug, Default)]
pub struct Suite {
    pub tests: Vec<String>,
    pub rules: Vec<Rule>,
    /// Tests that always fail, with their message.
    pub broken: Vec<(String, String)>,
    /// Executions made (listing included).
    pub executions: u32,
    /// Stop with `Interrupted` at this execution (1-based).
    pub interrupt_at: Option<u32>,
    /// Executions (1-based) stuck before any test starts (a start-up stall).
    pub stall_at: Vec<u32>,
    chances: HashMap<usize, u32>,
    /// Every plan run: (tests, jobs, groups).
    pub log: Vec<(Vec<String>, u32, Vec<Vec<String>>)>,
    /// What each run reports it took (20 ms unless set).
    pub run_time: Option<Duration>,
    /// Files each test writes, reported by the serial run of the whole suite.
    pub writes: Vec<(String, Vec<String>)>,
    /// Serialize as cargo test does: of each group only the member the run's rotation picks
    /// runs beside the other tests; the rest run one at a time afterwards.
    pub rotating: bool,
}

impl Suite {
    pub fn new(tests: &[&str]) -> Self {
        Suite {
            tests: tests.iter().map(|s| s.to_string()).collect(),
            ..Suite::default()
        }
    }

    pub fn rule(mut self, r: Rule) -> Self {
        self.rules.push(r);
        self
    }

    fn simulate(
        &mut self,
        tests: &[String],
        jobs: u32,
        groups: &[Vec<String>],
        rotation: usize,
    ) -> Execution {
        self.log.push((tests.to_vec(), jobs, groups.to_vec()));
        let rotating = self.rotating;
        // Whether `a` may overlap tests outside its group: always, unless groups rotate and
        // `a` is not the member this run puts beside the rest.
        let beside = |a: &String| match groups.iter().find(|g| g.contains(a)) {
            Some(g) if rotating => g.iter().position(|x| x == a) == Some(rotation % g.len()),
            _ => true,
        };
        let together = |a: &String, b: &String| {
            let same = groups.iter().any(|g| g.contains(a) && g.contains(b));
            !same && beside(a) && beside(b)
        };
        let mut fired: Vec<Effect> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let present = r.set.iter().all(|t| tests.contains(t))
                && tests.iter().filter(|t| !r.set.contains(t)).count() >= r.company;
            let overlap = jobs >= r.min_jobs.max(2)
                && (!r.respects_groups
                    || r.set
                        .iter()
                        .enumerate()
                        .all(|(x, a)| r.set[x + 1..].iter().all(|b| together(a, b))));
            if present && overlap {
                let n = self.chances.entry(i).or_insert(0);
                *n += 1;
                if *n >= r.first.max(1) && (*n - r.first.max(1)) % r.every.max(1) == 0 {
                    fired.push(r.effect.clone());
                }
            }
        }
        let mut out = String::new();
        for t in tests {
            out.push_str(&format!("start {t}\n"));
        }
        if jobs == 1 && tests.len() == self.tests.len() {
            for (t, paths) in &self.writes {
                out.push_str(&format!("racegate-writes {t}\t{}\n", paths.join("\t")));
            }
        }
        let hang = fired.contains(&Effect::Hang);
        let crash = fired.iter().find_map(|e| match e {
            Effect::Crash { message } => Some(message.clone()),
            _ => None,
        });
        let crash_domain = crash.as_ref().and_then(|_| {
            self.rules
                .iter()
                .find(|r| {
                    matches!(r.effect, Effect::Crash { .. })
                        && r.set.iter().all(|t| tests.contains(t))
                })
                .map(|r| domain(&r.set[0]).to_string())
        });
        for t in tests {
            if hang
                && self
                    .rules
                    .iter()
                    .any(|r| r.effect == Effect::Hang && r.set.contains(t))
            {
                continue;
            }
            if crash_domain.as_deref() == Some(domain(t))
                && self
                    .rules
                    .iter()
                    .any(|r| matches!(r.effect, Effect::Crash { .. }) && r.set.contains(t))
            {
                continue;
            }
            let broken = self.broken.iter().find(|(b, _)| b == t);
            let failed = fired.iter().find_map(|e| match e {
                Effect::Fail { victim, message } if victim == t => Some(message.clone()),
                _ => None,
            });
            match broken.map(|(_, m)| m.clone()).or(failed) {
                Some(m) => out.push_str(&format!("done {t} fail\nmsg {t}\t{m}\n")),
                None => out.push_str(&format!("done {t} ok\n")),
            }
        }
        if let (Some(m), Some(d)) = (&crash, &crash_domain) {
            out.push_str(&format!("died {d}\t{m}\n"));
        }
        Execution {
            termination: if hang {
                Termination::Hung {
                    idle: Duration::from_secs(3),
                }
            } else {
                Termination::Exited(i32::from(out.contains(" fail\n") || crash.is_some()))
            },
            output: out,
            progress: vec![Duration::from_millis(10), Duration::from_millis(20)],
            stacks: Vec::new(),
            native_crashes: Vec::new(),
            elapsed: self.run_time.unwrap_or(Duration::from_millis(20)),
        }
    }
}

fn domain(t: &str) -> &str {
    rust::split_id(t).0
}

/// The executor over a [`Suite`].
pub struct MockExec<'a>(pub &'a RefCell<Suite>);

impl Executor for MockExec<'_> {
    fn execute(
        &mut self,
        spec: &CommandSpec,
        _limits: Limits,
        _is_progress: &dyn Fn(&str) -> bool,
    ) -> std::io::Result<Execution> {
        let mut s = self.0.borrow_mut();
        s.executions += 1;
        if s.interrupt_at == Some(s.executions) {
            return Ok(Execution {
                termination: Termination::Interrupted,
                output: String::new(),
                progress: Vec::new(),
                stacks: Vec::new(),
                native_crashes: Vec::new(),
                elapsed: Duration::ZERO,
            });
        }
        if s.stall_at.contains(&s.executions) {
            return Ok(Execution {
                termination: Termination::Hung {
                    idle: Duration::from_secs(8),
                },
                output: String::new(),
                progress: Vec::new(),
                stacks: Vec::new(),
                native_crashes: Vec::new(),
                elapsed: Duration::from_secs(8),
            });
        }
        if spec.program == "list" {
            let out: String = s.tests.iter().map(|t| format!("{t}\n")).collect();
            return Ok(Execution {
                termination: Termination::Exited(0),
                output: out,
                progress: Vec::new(),
                stacks: Vec::new(),
                native_crashes: Vec::new(),
                elapsed: Duration::from_millis(1),
            });
        }
        let plan: (Vec<String>, u32, Vec<Vec<String>>, usize) =
            serde_json::from_str(&spec.args[0].to_string_lossy()).expect("mock plan");
        Ok(s.simulate(&plan.0, plan.1, &plan.2, plan.3))
    }
}

/// The runner over a [`Suite`]: one command per run, the plan in its argument.
pub struct MockRunner;

impl Runner for MockRunner {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Cargo
    }
    fn list_command(&self) -> CommandSpec {
        CommandSpec {
            program: "list".into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }
    fn parse_list(&self, output: &str) -> Result<Vec<String>, String> {
        Ok(output.lines().map(str::to_string).collect())
    }
    fn run_commands(&self, plan: &RunPlan<'_>) -> Vec<RunCommand> {
        let groups: Vec<Vec<String>> = plan
            .serialized
            .iter()
            .map(|g| {
                g.iter()
                    .filter(|t| plan.tests.contains(t))
                    .cloned()
                    .collect()
            })
            .collect();
        let arg = serde_json::to_string(&(plan.tests, plan.jobs, &groups, plan.rotation)).unwrap();
        vec![RunCommand {
            spec: CommandSpec {
                program: "run".into(),
                args: vec![arg.into()],
                env: Vec::new(),
                cwd: None,
            },
            tests: plan.tests.to_vec(),
            jobs: plan.jobs,
        }]
    }
    fn is_progress(&self, line: &str) -> bool {
        line.starts_with("done ")
    }
    fn written_paths(&self, output: &str) -> Vec<(String, Vec<String>)> {
        super::runner::pytest::parse_writes(output)
    }
    fn parse_run(&self, _command: &RunCommand, execution: &Execution) -> Vec<RunEvent> {
        let mut ev = Vec::new();
        for line in execution.output.lines() {
            if let Some(t) = line.strip_prefix("start ") {
                ev.push(RunEvent::Started(t.into()));
            } else if let Some(rest) = line.strip_prefix("done ") {
                let (t, st) = rest.rsplit_once(' ').unwrap();
                let st = if st == "ok" {
                    TestStatus::Passed
                } else {
                    TestStatus::Failed
                };
                ev.push(RunEvent::Finished(t.into(), st));
            } else if let Some(rest) = line.strip_prefix("msg ") {
                let (t, m) = rest.split_once('\t').unwrap();
                ev.push(RunEvent::Message {
                    test: t.into(),
                    text: m.into(),
                    location: Some("src/lib.rs:10".into()),
                });
            } else if let Some(rest) = line.strip_prefix("died ") {
                let (d, m) = rest.split_once('\t').unwrap();
                ev.push(RunEvent::Died {
                    domain: d.into(),
                    test: None,
                    message: format!("signal: SIGABRT, {m}"),
                    signature: m.into(),
                });
            }
        }
        ev
    }
    fn domain(&self, test: &str) -> String {
        domain(test).to_string()
    }
    fn unit(&self, test: &str) -> Option<String> {
        rust::module_of(test)
    }
    fn unit_name(&self, unit: &str) -> String {
        rust::module_short(unit)
    }
    fn fix(&self, groups: &[FixGroup], _leaks: &[LeakingFixture]) -> Fix {
        rust::fix(
            groups,
            &|t| Some(format!("test(={})", rust::split_id(t).1)),
            &[],
        )
    }
}
