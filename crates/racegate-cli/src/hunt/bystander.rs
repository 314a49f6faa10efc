//! Bystanders: a member of a conflict set whose part is only to be running.
//!
//! A rare race can need a third test beside the pair, not because it touches what they share
//! but because it shifts their timing (a test that only iterates an enum, beside two tests
//! rewriting one environment variable). Removing it stops the failure as surely as removing
//! a true party would, so the member checks keep it. To tell the two apart, the member is
//! replaced by a test that is implicated in nothing — same process, never seen failing, in
//! no set or group, from the member's own module when it can be — and the set is run again.
//! If the finding still shows, the member's part is any test's: it is a bystander, and it is
//! left out of the set (and so of the fix), with the check as its evidence.

use super::report::Classification;
use super::runner::Runner;
use super::state::HuntState;

/// The stand-in for `member` of `set`: a test in the same process as the set, implicated in
/// nothing so far, from `member`'s narrowest unit if one is, else the nearest in listing order.
/// `None` when there is none.
pub(super) fn stand_in(
    state: &HuntState,
    runner: &dyn Runner,
    set: &[String],
    member: &str,
) -> Option<String> {
    let mut implicated: Vec<&str> = set.iter().map(String::as_str).collect();
    implicated.extend(state.excluded.iter().map(|e| e.test.as_str()));
    for g in &state.groups {
        implicated.extend(g.measured.iter().map(String::as_str));
        implicated.extend(g.added.iter().map(String::as_str));
    }
    for t in &state.tracked {
        if let Some(x) = t.key.test() {
            implicated.push(x);
        }
        implicated.extend(t.first.in_flight.iter().map(String::as_str));
        if t.finding.classification == Classification::Race {
            implicated.extend(t.finding.conflict_set.iter().map(String::as_str));
        }
    }
    let domain = runner.domain(member);
    let unit = runner.units(member).into_iter().next();
    let at = state.tests.iter().position(|t| t == member)?;
    state
        .tests
        .iter()
        .enumerate()
        .filter(|(_, t)| !implicated.contains(&t.as_str()) && runner.domain(t) == domain)
        .min_by_key(|(i, t)| {
            let same_unit = unit
                .as_ref()
                .is_some_and(|u| runner.units(t).first() == Some(u));
            (!same_unit, i.abs_diff(at))
        })
        .map(|(_, t)| t.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hunt::mock::MockRunner;
    use crate::hunt::state::Group;

    fn state(tests: &[&str]) -> HuntState {
        HuntState {
            tests: tests.iter().map(|t| t.to_string()).collect(),
            ..HuntState::default()
        }
    }

    #[test]
    fn a_stand_in_comes_from_the_members_module_and_is_implicated_in_nothing() {
        let runner = MockRunner;
        let mut s = state(&[
            "suite env::a",
            "suite env::b",
            "suite env::c",
            "suite types::x",
            "suite types::y",
            "suite types::z",
        ]);
        s.groups.push(Group {
            measured: vec!["suite types::y".into(), "suite env::c".into()],
            ..Group::default()
        });
        let set: Vec<String> = vec!["suite env::a".into(), "suite types::x".into()];
        // types::y is in a group; types::z is the member's module's only free test.
        assert_eq!(
            stand_in(&s, &runner, &set, "suite types::x").as_deref(),
            Some("suite types::z")
        );
        // For env::a, the free test of its own module.
        assert_eq!(
            stand_in(&s, &runner, &set, "suite env::a").as_deref(),
            Some("suite env::b")
        );
        s.groups[0].added.push("suite types::z".into());
        s.groups[0].added.push("suite env::b".into());
        assert_eq!(stand_in(&s, &runner, &set, "suite types::x"), None);
    }
}
