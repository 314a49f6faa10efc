//! The phases end to end on scripted suites ([`super::mock`]): every verdict here is fixed.

use std::cell::RefCell;
use std::time::Duration;

use super::config::{HuntConfig, Jobs};
use super::mock::{Effect, MockExec, MockRunner, Rule, Suite};
use super::model::FailureKind;
use super::report::{Classification, FoundIn, HuntReport, HuntVerdict};
use super::runner::RunnerKind;
use super::{run_hunt, HuntEvent, Phase};

fn cfg(verify: bool) -> HuntConfig {
    let mut c = HuntConfig::new(RunnerKind::Cargo, vec!["mock".into()]);
    c.jobs = Jobs::Fixed(4);
    c.runs = 3;
    c.verify = verify;
    c.cores = 2;
    c
}

fn hunt(suite: Suite, c: &HuntConfig) -> (HuntReport, Suite) {
    let cell = RefCell::new(suite);
    let r = run_hunt(c, &MockRunner, &mut MockExec(&cell), &mut |_| {}).unwrap();
    (r, cell.into_inner())
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn fail(victim: &str, message: &str) -> Effect {
    Effect::Fail {
        victim: victim.into(),
        message: message.into(),
    }
}

/// Every pair of `tests` conflicts: together, the later one fails with `message`, on every
/// `every(i, j)`-th chance.
fn every_pair_conflicts(
    mut suite: Suite,
    tests: &[String],
    message: &str,
    every: impl Fn(usize, usize) -> u32,
) -> Suite {
    for (i, a) in tests.iter().enumerate() {
        for (j, b) in tests.iter().enumerate().skip(i + 1) {
            let mut rule = Rule::new(&[a, b], fail(b, message));
            rule.every = every(i, j);
            suite = suite.rule(rule);
        }
    }
    suite
}

/// A dense module whose tests each fail rarely: every pair of `tests` conflicts, but only on
/// every 3rd to 7th chance.
fn rarely_clobbering_each_other(suite: Suite, tests: &[String]) -> Suite {
    every_pair_conflicts(suite, tests, "CI_NAME was not what it set", |i, j| {
        3 + ((i + j) % 5) as u32
    })
}

/// Two binaries of 12 tests; `bin_a m::t03` and `bin_a m::t09` abort their binary together.
fn two_binaries() -> Vec<String> {
    let mut t = names("bin_a m::t", 12);
    t.extend(names("bin_b n::t", 12));
    t
}

#[test]
fn a_crashing_pair_is_found_confirmed_minimal_serialized_and_verified() {
    let tests = two_binaries();
    let mut suite = Suite::new(&refs(&tests)).rule(Rule::new(
        &["bin_a m::t03", "bin_a m::t09"],
        Effect::Crash {
            message: "assertion: commit an already committed command buffer".into(),
        },
    ));
    // Runs of 2 s: member checks are planned for the set's rate (cheap runs get more).
    suite.run_time = Some(Duration::from_secs(2));
    let (r, s) = hunt(suite, &cfg(true));
    assert_eq!(r.verdict, HuntVerdict::RacesFound, "{:#?}", r.findings);
    assert!(!r.partial);
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    let f = &r.findings[0];
    assert_eq!(f.kind, FailureKind::Crash);
    assert_eq!(f.classification, Classification::Race);
    assert_eq!(f.conflict_set, vec!["bin_a m::t03", "bin_a m::t09"]);
    // A dead process names the tests in flight, and its identity is the process.
    assert_eq!(f.identity.process.as_deref(), Some("bin_a"));
    assert_eq!(f.in_flight, vec!["bin_a m::t03", "bin_a m::t09"]);
    // Candidates never span processes: only bin_a's 12 tests.
    assert_eq!(f.bisection.as_ref().unwrap().candidates, 12);
    for (tests, _, _) in &s.log {
        if tests.len() < 24 {
            assert!(
                tests.iter().all(|t| t.starts_with("bin_a ")) || tests.len() == 1,
                "a probe spanned processes: {tests:?}"
            );
        }
    }
    let rep = f.reproduction.as_ref().unwrap();
    // Confirmed past the 3 runs asked while that saves member checks: 6 of 6 puts the
    // set's rate at ≥ 54%, so each member needs 5 runs (3 of 3: ≥ 29%, 11 runs each).
    assert_eq!((rep.reproduced, rep.runs), (6, 6));
    let m = f.minimality.as_ref().unwrap();
    assert!(m.members.iter().all(|c| c.runs == 5), "{m:?}");
    assert!(m.minimal);
    assert_eq!(m.members.len(), 2);
    assert!(m.members.iter().all(|c| c.reproduced == 0 && c.runs >= 1));
    assert!(m.confidence >= 0.95, "{m:?}");
    // One group, named after the module both share.
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group.name, "m");
    assert!(r.groups[0].verified);
    assert!(r
        .fix
        .cargo_test_guard
        .as_ref()
        .unwrap()
        .contains("racegate::test_guard(\"m\")"));
    let v = r.verify.as_ref().unwrap();
    assert!(v.passed);
    assert_eq!(v.rate_after.k, 0);
    assert_eq!(v.rate_before.k, 3);
    assert!(v.power >= 0.95, "{v:?}");
}

#[test]
fn where_runs_are_cheap_each_member_gets_the_most_runs_a_probe_may_have() {
    // The pair of the test above with runs of 20 ms: a member whose removal only lowered
    // the rate would pass 5 runs planned for the set's 54% too easily; it gets 20.
    let tests = two_binaries();
    let suite = Suite::new(&refs(&tests)).rule(Rule::new(
        &["bin_a m::t03", "bin_a m::t09"],
        fail("bin_a m::t09", "stream clobbered"),
    ));
    let c = cfg(true);
    let (r, _) = hunt(suite, &c);
    assert_eq!(r.verdict, HuntVerdict::RacesFound, "{:#?}", r.findings);
    let m = r.findings[0].minimality.as_ref().unwrap();
    assert!(m.minimal);
    assert!(
        m.members.iter().all(|x| x.runs == c.max_runs_per_probe),
        "{m:?}"
    );
}

#[test]
fn a_test_that_fails_alone_is_broken_and_one_that_passes_alone_never_is() {
    let tests = names("bin m::t", 10);
    let mut suite = Suite::new(&refs(&tests)).rule(Rule::new(
        &["bin m::t02", "bin m::t07"],
        fail("bin m::t07", "device busy"),
    ));
    suite.broken.push(("bin m::t05".into(), "always".into()));
    let (r, _) = hunt(suite, &cfg(false));
    let broken: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.classification == Classification::Broken)
        .collect();
    assert_eq!(broken.len(), 1, "{:#?}", r.findings);
    assert_eq!(broken[0].conflict_set, vec!["bin m::t05"]);
    // It failed in the serial run, so it never entered the parallel runs.
    assert_eq!(broken[0].found_in, FoundIn::Serial);
    assert!(r.excluded.iter().any(|e| e.test == "bin m::t05"));
    let race = r
        .findings
        .iter()
        .find(|f| f.test.as_deref() == Some("bin m::t07"))
        .unwrap();
    assert_eq!(race.classification, Classification::Race);
    assert_eq!(race.conflict_set, vec!["bin m::t02", "bin m::t07"]);
    // Removing the failing test stops it by definition: only its partner is checked.
    let m = race.minimality.as_ref().unwrap();
    assert_eq!(m.failing_test.as_deref(), Some("bin m::t07"));
    assert_eq!(m.members.len(), 1);
    assert_eq!(r.verdict, HuntVerdict::RacesFound);
}

#[test]
fn another_failure_in_a_probe_is_its_own_finding_not_a_non_reproduction() {
    // t04 fails when t01 runs beside it; t01 and t08 together abort the binary, which then
    // shows up in t04's probes.
    let tests = names("bin m::t", 10);
    let suite = Suite::new(&refs(&tests))
        .rule(Rule::new(
            &["bin m::t01", "bin m::t04"],
            fail("bin m::t04", "lost the lock"),
        ))
        .rule(Rule::new(
            &["bin m::t01", "bin m::t08"],
            Effect::Crash {
                message: "panic: double free".into(),
            },
        ));
    let (r, _) = hunt(suite, &cfg(false));
    let fail = r
        .findings
        .iter()
        .find(|f| f.kind == FailureKind::Failure)
        .expect("the failure");
    let crash = r
        .findings
        .iter()
        .find(|f| f.kind == FailureKind::Crash)
        .expect("the crash");
    assert_eq!(fail.classification, Classification::Race, "{fail:#?}");
    assert_eq!(fail.conflict_set, vec!["bin m::t01", "bin m::t04"]);
    assert_eq!(crash.classification, Classification::Race, "{crash:#?}");
    assert_eq!(crash.conflict_set, vec!["bin m::t01", "bin m::t08"]);
    // The two sets share t01: one group holds all three.
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group.tests.len(), 3);
    assert_eq!(r.verdict, HuntVerdict::RacesFound);
}

#[test]
fn a_set_that_does_not_reproduce_is_unresolved_never_a_race_and_never_in_the_fix() {
    // Fires on its first chance only: seen once in discovery, never again.
    let tests = names("bin m::t", 8);
    let mut rule = Rule::new(&["bin m::t01", "bin m::t06"], fail("bin m::t06", "once"));
    rule.every = 1000;
    let (r, _) = hunt(Suite::new(&refs(&tests)).rule(rule), &cfg(true));
    assert_eq!(r.findings.len(), 1);
    let f = &r.findings[0];
    assert_eq!(f.classification, Classification::Unresolved, "{f:#?}");
    assert!(
        f.evidence.iter().any(|e| e.contains("not in the fix")),
        "{f:#?}"
    );
    assert!(r.groups.is_empty());
    assert!(r.fix.nextest_toml.is_none());
    assert!(r.verify.is_none());
    assert_eq!(r.verdict, HuntVerdict::BrokenOnly);
}

#[test]
fn where_runs_are_cheap_a_rare_failure_gets_more_than_one_probe_to_come_back() {
    // Seen on its first chance, then only on every 30th: the first probe of its candidates
    // (20 runs) would call it gone. Runs of 20 ms buy it more, and the pair is found.
    let tests = names("bin m::t", 8);
    let mut rule = Rule::new(&["bin m::t01", "bin m::t06"], fail("bin m::t06", "rare"));
    rule.every = 30;
    let (r, _) = hunt(Suite::new(&refs(&tests)).rule(rule), &cfg(true));
    let f = &r.findings[0];
    assert_eq!(f.classification, Classification::Race, "{f:#?}");
    assert_eq!(f.conflict_set, vec!["bin m::t01", "bin m::t06"]);
}

#[test]
fn dense_conflicts_converge_to_one_group_per_test() {
    // Ten tests of `env` all clobber one variable: any two of them together fail the later
    // one. Eight innocent tests elsewhere.
    let env = names("bin env::t", 10);
    let mut tests = env.clone();
    tests.extend(names("bin other::x", 8));
    let mut suite = Suite::new(&refs(&tests));
    suite = every_pair_conflicts(suite, &env, "env var clobbered", |_, _| 1);
    let mut c = cfg(true);
    c.runs = 2;
    let (r, _) = hunt(suite, &c);
    assert_eq!(
        r.verdict,
        HuntVerdict::RacesFound,
        "{:#?}\n{:?}",
        r.rounds,
        r.notes
    );
    assert_eq!(r.groups.len(), 1, "{:#?}", r.groups);
    let g = &r.groups[0];
    let mut members = g.group.tests.clone();
    members.sort();
    assert_eq!(members, env, "only the env tests, all of them");
    assert_eq!(g.group.name, "env");
    assert!(g.verified);
    // Converges in a few rounds, not one round per pair.
    assert!(
        (2..=4).contains(&r.rounds.len()),
        "{:#?} {} runs",
        r.rounds,
        r.total_runs
    );
    let last = r.rounds.last().unwrap();
    assert_eq!(last.failing_runs, 0);
    // The fix parses and puts each test in exactly one group.
    let toml: toml::Table = r.fix.nextest_toml.as_ref().unwrap().parse().unwrap();
    assert_eq!(toml["test-groups"].as_table().unwrap().len(), 1);
    assert!(r.verify.as_ref().unwrap().passed);
}

#[test]
fn verify_runs_enough_for_the_rarest_race_and_a_fix_that_does_not_hold_fails() {
    // Rate 1/3: verification needs 8 runs for 95% power.
    let tests = names("bin m::t", 8);
    let mut rule = Rule::new(&["bin m::t01", "bin m::t02"], fail("bin m::t02", "busy"));
    rule.every = 3;
    let (r, _) = hunt(Suite::new(&refs(&tests)).rule(rule), &cfg(true));
    assert_eq!(r.verdict, HuntVerdict::RacesFound, "{:#?}", r.findings);
    let v = r.verify.as_ref().unwrap();
    assert!(v.planned_runs >= 8, "{v:?}");
    assert_eq!(v.runs, v.planned_runs);
    assert!(v.power >= 0.95);
    assert!(v.target_rate < 0.5);

    // A conflict the serialization cannot stop: the suite still fails, verify fails.
    let mut rule = Rule::new(&["bin m::t01", "bin m::t02"], fail("bin m::t02", "busy"));
    rule.respects_groups = false;
    let (r, _) = hunt(Suite::new(&refs(&tests)).rule(rule), &cfg(true));
    assert_eq!(r.verdict, HuntVerdict::VerifyFailed, "{:#?}", r.verify);
    let v = r.verify.as_ref().unwrap();
    assert!(!v.passed);
    assert!(v.rate_after.k > 0);
    let mut out = Vec::new();
    super::summary::write_summary(&mut out, &r).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("verify: FAIL"), "{text}");
    assert!(!text.contains("PASS"), "{text}");
}

#[test]
fn concurrency_rises_while_runs_are_clean_and_a_clean_result_says_what_it_rules_out() {
    let tests = names("bin m::t", 20);
    let mut rule = Rule::new(&["bin m::t01", "bin m::t02"], fail("bin m::t02", "busy"));
    rule.min_jobs = 8;
    let mut c = cfg(false);
    c.jobs = Jobs::Escalate { start: 4, max: 16 };
    let (r, _) = hunt(Suite::new(&refs(&tests)).rule(rule), &c);
    assert_eq!(r.verdict, HuntVerdict::RacesFound);
    assert_eq!(r.levels.len(), 2);
    assert_eq!((r.levels[0].jobs, r.levels[0].failing_runs), (4, 0));
    assert!(r.levels[0].rules_out.is_some());
    assert_eq!(r.levels[1].jobs, 8);
    assert_eq!(r.jobs, 8);

    let (r, _) = hunt(Suite::new(&refs(&tests)), &c);
    assert_eq!(r.verdict, HuntVerdict::Clean);
    assert_eq!(
        r.levels.iter().map(|l| l.jobs).collect::<Vec<_>>(),
        vec![4, 8, 16]
    );
    let clean = r.clean.as_ref().unwrap();
    assert_eq!(clean.jobs, 16);
    assert!(
        clean.statement.contains("0 failures in 3 runs at 16 jobs"),
        "{}",
        clean.statement
    );
    assert!((clean.rules_out - 0.6316).abs() < 1e-3);
}

#[test]
fn a_hang_is_waited_for_once_per_pass_and_frequent_findings_go_first() {
    let tests = names("bin m::t", 12);
    let mut hang = Rule::new(&["bin m::t10", "bin m::t11"], Effect::Hang);
    hang.every = 1000; // seen once
    let suite = Suite::new(&refs(&tests)).rule(hang).rule(Rule::new(
        &["bin m::t01", "bin m::t02"],
        fail("bin m::t02", "busy"),
    ));
    let mut c = cfg(false);
    c.runs = 5;
    let cell = RefCell::new(suite);
    let mut order: Vec<usize> = Vec::new();
    let r = run_hunt(&c, &MockRunner, &mut MockExec(&cell), &mut |e| {
        if let HuntEvent::Phase(Phase::Analyse { finding }) = e {
            order.push(finding);
        }
    })
    .unwrap();
    let s = cell.into_inner();
    let hang_f = r
        .findings
        .iter()
        .position(|f| f.kind == FailureKind::Hang)
        .unwrap();
    let fail_f = r
        .findings
        .iter()
        .position(|f| f.kind == FailureKind::Failure)
        .unwrap();
    // Seen 5/5 before the hang seen once: analysed first although found later.
    assert_eq!(r.findings[fail_f].seen_in_runs, 5);
    assert_eq!(order.first(), Some(&(fail_f + 1)), "{order:?}");
    // After the hang, its tests sat out the rest of the pass.
    // The serial run, then the five parallel runs of the first pass.
    assert_eq!(s.log[0].1, 1);
    let discovery: Vec<&Vec<String>> = s.log[1..6].iter().map(|(t, _, _)| t).collect();
    assert!(s.log[1..6].iter().all(|(_, j, _)| *j == 4));
    assert!(discovery[0].contains(&"bin m::t10".to_string()));
    assert!(discovery[1..]
        .iter()
        .all(|t| !t.contains(&"bin m::t10".to_string())));
    assert_eq!(
        r.findings[hang_f].in_flight,
        vec!["bin m::t10", "bin m::t11"]
    );
}

#[test]
fn budget_and_interrupts_still_give_a_report_of_what_was_found() {
    let tests = names("bin m::t", 10);
    let mk = || {
        Suite::new(&refs(&tests)).rule(Rule::new(
            &["bin m::t01", "bin m::t02"],
            fail("bin m::t02", "busy"),
        ))
    };
    // Interrupted at the 6th execution: listing, serial, 3 discovery runs, then the alone run.
    let mut s = mk();
    s.interrupt_at = Some(6);
    let (r, _) = hunt(s, &cfg(false));
    assert_eq!(r.verdict, HuntVerdict::Interrupted);
    assert!(r.partial);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].seen_in_runs, 3);
    assert!(r.findings[0]
        .evidence
        .iter()
        .any(|e| e.contains("interrupted")));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["partial"], true);
    assert_eq!(json["verdict"], "interrupted");

    let mut c = cfg(false);
    c.budget = Duration::from_millis(1);
    let (r, _) = hunt(mk(), &c);
    assert_eq!(r.verdict, HuntVerdict::Incomplete);
    assert!(r.partial);
    assert!(r.notes.iter().any(|n| n.contains("budget")));
}

#[test]
fn module_widening_stays_only_when_the_next_round_is_clean() {
    // Four of the five `db` tests conflict pairwise with `db::t00`; the fifth is innocent
    // but widening to the module costs nothing and the next round is clean.
    let db = names("bin db::t", 5);
    let mut tests = db.clone();
    tests.extend(names("bin x::y", 5));
    let mut suite = Suite::new(&refs(&tests));
    for t in &db[1..4] {
        suite = suite.rule(Rule::new(&[&db[0], t], fail(t, "table locked")));
    }
    let (r, _) = hunt(suite, &cfg(true));
    assert_eq!(r.verdict, HuntVerdict::RacesFound);
    assert_eq!(r.groups.len(), 1);
    let g = &r.groups[0];
    assert!(g.verified);
    // Measured members are exactly the conflicting ones, whatever the group holds.
    let mut measured = g.measured.clone();
    measured.sort();
    assert!(measured.iter().all(|t| db[..4].contains(t)), "{measured:?}");
    assert!(g.group.tests.iter().all(|t| t.starts_with("bin db::")));
}

#[test]
fn a_module_whose_tests_each_fail_rarely_is_tried_whole_from_its_failures_and_kept_once_clean() {
    // Twelve `cfg` tests rewrite one environment: every pair conflicts, but each pair only
    // now and then (every 3rd to 7th chance), so a finding rarely comes back in a probe. The
    // module shows at once: several of its tests fail in the first round. Six innocents.
    let cfgs = names("bin cfg::t", 12);
    let mut tests = cfgs.clone();
    tests.extend(names("bin other::x", 6));
    let suite = rarely_clobbering_each_other(Suite::new(&refs(&tests)), &cfgs);
    let (r, s) = hunt(suite, &cfg(true));
    assert_eq!(
        r.verdict,
        HuntVerdict::RacesFound,
        "{:#?}\n{:?}",
        r.rounds,
        r.notes
    );
    assert_eq!(r.groups.len(), 1, "{:#?}", r.groups);
    let g = &r.groups[0];
    let mut members = g.group.tests.clone();
    members.sort();
    assert_eq!(members, cfgs, "the whole module, and no innocent");
    assert_eq!(g.origin, super::report::GroupOrigin::Unit);
    assert!(
        g.measured.is_empty(),
        "no set was bisected: {:?}",
        g.measured
    );
    assert!(g.seen_failing.len() >= 3, "{:?}", g.seen_failing);
    assert!(g.verified);
    assert!(r.verify.as_ref().unwrap().passed, "{:#?}", r.verify);
    // Its findings were not bisected one by one: they ended covered by the group.
    assert!(r
        .findings
        .iter()
        .all(|f| f.classification == Classification::Covered));
    // The second round ran with the module serialized.
    assert!(s
        .log
        .iter()
        .any(|(_, _, groups)| groups.iter().any(|g| g.len() == 12)));
}

#[test]
fn a_third_test_that_only_needs_to_be_running_is_a_bystander_and_stays_out_of_the_fix() {
    // `env::b` fails beside `env::a` only while some third test runs too: the search ends
    // on a set of three, and removing the third stops it as surely as removing `env::a`.
    // Put any uninvolved test in its place and it fails again: a bystander.
    let mut tests = names("bin env::t", 2);
    tests.extend(names("bin other::x", 6));
    let mut rule = Rule::new(
        &["bin env::t00", "bin env::t01"],
        fail("bin env::t01", "CI was not set"),
    );
    rule.company = 1;
    let (r, _) = hunt(Suite::new(&refs(&tests)).rule(rule), &cfg(true));
    assert_eq!(r.verdict, HuntVerdict::RacesFound, "{:#?}", r.findings);
    let f = r
        .findings
        .iter()
        .find(|f| f.classification == Classification::Race)
        .expect("the race");
    assert_eq!(
        f.conflict_set,
        vec!["bin env::t00", "bin env::t01"],
        "{f:#?}"
    );
    let m = f.minimality.as_ref().unwrap();
    let b = m
        .stand_ins
        .iter()
        .find(|b| b.reproduced > 0)
        .unwrap_or_else(|| panic!("no bystander: {m:#?}"));
    assert!(b.test.starts_with("bin other::"), "{b:?}");
    assert!(b.replaced_by.starts_with("bin other::"), "{b:?}");
    // A true party's stand-in does not reproduce it.
    assert!(
        m.stand_ins
            .iter()
            .any(|b| b.test == "bin env::t00" && b.reproduced == 0),
        "{m:#?}"
    );
    assert_eq!(r.groups.len(), 1);
    assert_eq!(
        r.groups[0].group.tests,
        vec!["bin env::t00", "bin env::t01"]
    );
    assert!(r.verify.as_ref().unwrap().passed, "{:#?}", r.verify);
}

#[test]
fn a_failure_no_search_can_narrow_gets_its_files_tests_tried_whole() {
    // An integration-test file of twelve tests at its crate root: `t09` fails only when nine
    // of them run together, so no half of them reproduces it and the search cannot narrow it.
    // The file's tests (its binary's root module) are tried as one group, and hold.
    let tests = names("signals t", 12);
    let needed: Vec<String> = tests[1..10].to_vec();
    let rule = Rule::new(&refs(&needed), fail("signals t09", "toggle was cleared"));
    let (r, s) = hunt(Suite::new(&refs(&tests)).rule(rule), &cfg(true));
    assert_eq!(r.verdict, HuntVerdict::RacesFound, "{:#?}", r.findings);
    let f = &r.findings[0];
    assert_eq!(f.classification, Classification::Covered, "{f:#?}");
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("could not be narrowed")),
        "{f:#?}"
    );
    assert_eq!(r.groups.len(), 1, "{:#?}", r.groups);
    let g = &r.groups[0];
    assert_eq!(g.group.name, "signals");
    assert_eq!(g.group.tests.len(), 12);
    assert_eq!(g.origin, super::report::GroupOrigin::Unit);
    assert!(g.verified);
    assert!(r.verify.as_ref().unwrap().passed, "{:#?}", r.verify);
    assert!(s
        .log
        .iter()
        .any(|(_, _, groups)| groups.iter().any(|g| g.len() == 12)));
}

#[test]
fn tests_writing_one_fixed_file_are_one_set_and_their_module_is_not_tried_whole() {
    // Six of the twelve `db` tests write one fixed file (as the serial run saw), and every
    // pair of them collides now and then; the other six write nothing. Several `db` tests fail
    // in the first round, which alone would try the whole module; the writers are the set.
    let db = names("bin db::t", 12);
    let writers: Vec<String> = db[..6].to_vec();
    let mut tests = db.clone();
    tests.extend(names("bin other::x", 4));
    let mut suite = rarely_clobbering_each_other(Suite::new(&refs(&tests)), &writers);
    suite.writes = writers
        .iter()
        .map(|t| (t.clone(), vec!["/suite/data/ledger.db".to_string()]))
        .collect();
    let (r, _) = hunt(suite, &cfg(true));
    assert_eq!(r.verdict, HuntVerdict::RacesFound, "{:#?}", r.findings);
    assert_eq!(r.groups.len(), 1, "{:#?}", r.groups);
    let g = &r.groups[0];
    assert_eq!(g.group.tests, writers, "the writers, and no innocent");
    assert_eq!(g.group.name, "ledger");
    assert_eq!(g.origin, super::report::GroupOrigin::Writers);
    assert_eq!(g.file.as_deref(), Some("/suite/data/ledger.db"));
    let f = r
        .findings
        .iter()
        .find(|f| f.classification == Classification::Race)
        .expect("a race");
    let b = f.bisection.as_ref().unwrap();
    assert_eq!(b.writers_of, vec!["/suite/data/ledger.db"]);
    assert_eq!(b.probes, 1);
    assert!(f.minimality.is_none());
    assert!(r.verify.as_ref().unwrap().passed, "{:#?}", r.verify);
}

#[test]
fn a_test_whose_partner_the_groups_hide_from_its_probes_joins_that_group() {
    // Cargo-style serialization: of the `cfg` group only one member (a different one each
    // run) runs beside the rest. `lib::get` fails beside `cfg::t01`: in the suite's runs
    // whenever the rotation puts `t01` beside it, never in its probes (whose rotation holds
    // the failing test's place), so no search can find its partner. Among `cfg`'s tests run
    // unserialized it fails again: it joins the group, and the suite then runs clean.
    let cfgs = names("bin cfg::t", 6);
    let mut tests = cfgs.clone();
    tests.push("bin lib::get".into());
    tests.extend(names("bin other::x", 4));
    let mut suite = every_pair_conflicts(Suite::new(&refs(&tests)), &cfgs, "CI unset", |_, _| 1)
        .rule(Rule::new(
            &["bin cfg::t01", "bin lib::get"],
            fail("bin lib::get", "env was cleared"),
        ));
    suite.rotating = true;
    let (r, _) = hunt(suite, &cfg(true));
    assert_eq!(
        r.verdict,
        HuntVerdict::RacesFound,
        "{:#?}\n{:?}",
        r.findings,
        r.notes
    );
    assert_eq!(r.groups.len(), 1, "{:#?}", r.groups);
    let g = &r.groups[0];
    assert_eq!(g.joined, vec!["bin lib::get"]);
    let mut want = cfgs.clone();
    want.push("bin lib::get".into());
    let mut got = g.group.tests.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(g.verified);
    let f = r
        .findings
        .iter()
        .find(|f| f.test.as_deref() == Some("bin lib::get"))
        .unwrap();
    assert_eq!(f.classification, Classification::Covered, "{f:#?}");
    assert!(r.verify.as_ref().unwrap().passed, "{:#?}", r.verify);
}

#[test]
fn a_small_class_counts_its_failures_over_the_rounds() {
    // The rare, dense `cfg` module keeps the rounds going; the 5 tests of `small` share one
    // file, and each pair of them fails only now and then, so their failures seldom meet in
    // one round.
    let cfgs = names("bin cfg::t", 12);
    let small = names("bin small::s", 5);
    let mut tests = cfgs.clone();
    tests.extend(small.clone());
    tests.extend(names("bin other::x", 4));
    let mut suite = rarely_clobbering_each_other(Suite::new(&refs(&tests)), &cfgs);
    for (a, b, first) in [(0, 1, 2), (2, 3, 5), (2, 4, 6)] {
        let mut rule = Rule::new(
            &[&small[a], &small[b]],
            fail(&small[b], "database is locked"),
        );
        rule.every = 40;
        rule.first = first;
        suite = suite.rule(rule);
    }
    let (r, _) = hunt(suite, &cfg(true));
    assert_eq!(
        r.verdict,
        HuntVerdict::RacesFound,
        "{:#?}\n{:?}",
        r.groups,
        r.notes
    );
    let g = r
        .groups
        .iter()
        .find(|g| g.group.tests.iter().any(|t| t.starts_with("bin small::")))
        .expect("the small class is in the fix");
    let mut members = g.group.tests.clone();
    members.sort();
    assert_eq!(members, small);
    assert!(g.verified);
    // One of them failed in round 1, two in round 2: tried in round 2.
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("3 tests of `bin small` failed by round 2")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_unit_that_held_is_kept_unverified_when_failures_elsewhere_remain() {
    // The rare, dense `cfg` module of the test above, and a pair in `io` that no
    // serialization stops (it races with something outside the suite): no round runs clean.
    let cfgs = names("bin cfg::t", 12);
    let mut tests = cfgs.clone();
    tests.extend(names("bin io::x", 4));
    let mut suite = rarely_clobbering_each_other(Suite::new(&refs(&tests)), &cfgs);
    let mut io = Rule::new(
        &["bin io::x00", "bin io::x01"],
        fail("bin io::x01", "port taken"),
    );
    io.respects_groups = false;
    suite = suite.rule(io);
    let (r, _) = hunt(suite, &cfg(true));
    assert_eq!(
        r.verdict,
        HuntVerdict::VerifyFailed,
        "{:#?}\n{:?}",
        r.rounds,
        r.notes
    );
    let unit = r
        .groups
        .iter()
        .find(|g| g.group.tests.iter().any(|t| t.starts_with("bin cfg::")))
        .expect("the cfg unit is kept");
    assert_eq!(unit.group.tests.len(), 12);
    assert!(!unit.verified);
    assert!(unit.held_runs.unwrap_or(0) > 0, "{unit:#?}");
    // The pair the groups cannot stop is in the fix too, and not verified either.
    assert!(r.groups.iter().all(|g| !g.verified));
}

/// Every field of the JSON document (top level, findings, and the objects inside them) is
/// documented in docs/hunt.md, and the schema stays `racegate.hunt.v1`.
#[test]
fn json_fields_are_documented() {
    let tests = names("bin m::t", 8);
    let mut s = Suite::new(&refs(&tests)).rule(Rule::new(
        &["bin m::t01", "bin m::t02"],
        fail("bin m::t02", "busy"),
    ));
    s.broken.push(("bin m::t05".into(), "always".into()));
    let (r, _) = hunt(s, &cfg(true));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["schema"], "racegate.hunt.v1");
    assert_eq!(v["schema_version"], 1);
    let doc = include_str!("../../../../docs/hunt.md");
    let mut missing = Vec::new();
    fn walk(v: &serde_json::Value, doc: &str, missing: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if !doc.contains(&format!("`{k}"))
                        && !doc.contains(&format!(", {k}"))
                        && !doc.contains(&format!("{{{k}"))
                    {
                        missing.push(k.clone());
                    }
                    walk(x, doc, missing);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, doc, missing)),
            _ => {}
        }
    }
    walk(&v, doc, &mut missing);
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "not in docs/hunt.md: {missing:?}");
}

#[test]
fn a_start_up_stall_is_run_again_with_more_time_and_only_a_repeated_one_is_a_finding() {
    let tests = names("bin m::t", 6);
    // The third execution (the second parallel run) is stuck before any test starts.
    let mut suite = Suite::new(&refs(&tests));
    suite.stall_at = vec![3];
    let (r, s) = hunt(suite, &cfg(false));
    assert_eq!(r.verdict, HuntVerdict::Clean, "{:#?}", r.findings);
    assert!(r.findings.is_empty());
    // Listing, serial run, 3 parallel runs, and the stalled one run again.
    assert_eq!(s.executions, 6);

    // Stuck again with twice the allowance: a finding, apart from any hang of tests.
    let mut suite = Suite::new(&refs(&tests));
    suite.stall_at = vec![3, 4];
    let (r, _) = hunt(suite, &cfg(false));
    let stall = r
        .findings
        .iter()
        .find(|f| f.kind == FailureKind::Hang)
        .expect("the repeated stall is reported");
    assert_eq!(stall.identity.message, "hang: before any test started");
    assert!(stall.in_flight.is_empty());
    assert_ne!(stall.classification, Classification::Race);
}
