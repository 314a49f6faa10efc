//! Turning what a run reported into failures, each with its identity ([`FailureKey`]): crash
//! (a signal or an abort), hang (no progress, with the stacks captured before the kill), or
//! failure (a test's assertions). Every crash text goes through [`crash_signature`], the one
//! door into the crash module.

use super::exec::{Execution, Termination};
use super::model::{Failure, FailureKey, FailureKind, Subject, TestStatus};
use super::runner::{RunEvent, Runner};
use crate::crash::native::NativeCrash;
use crate::crash::signal::signal_name;
use crate::crash::signature::{normalize_text, CrashSignature};
use crate::crash::stderr::StderrScanner;
use crate::crash::Traces;

/// The identity message of a run stuck once tests had started (tests in flight, or stuck
/// between or after them).
const HANG_AFTER_START: &str = "hang: no progress once tests started";
/// The identity message of a run stuck before any test started.
const HANG_BEFORE_TESTS: &str = "hang: before any test started";

/// The first crash in `text` (a process's output, a test's failure output), as the crash
/// module names it: assertion, panic (with its file), GPU error, fatal error, signal.
pub fn crash_signature(text: &str) -> Option<CrashSignature> {
    let mut scanner = StderrScanner::new();
    for line in text.lines() {
        if let Some(sig) = scanner.feed(line) {
            return Some(sig);
        }
    }
    scanner.finish()
}

/// The identifying message of a test's failure output: the crash module's signature of a
/// panic or assertion in it, else its first line normalized (numbers, addresses dropped);
/// with the location appended when the runner gave one and the text does not hold it.
pub fn failure_message(text: &str, location: Option<&str>) -> String {
    let base = match crash_signature(text) {
        Some(sig) => sig.key().to_string(),
        None => {
            let first = text.lines().map(str::trim).find(|l| !l.is_empty());
            match first {
                Some(l) => format!("failure: {}", normalize_text(l)),
                None => String::new(),
            }
        }
    };
    match location.map(str::trim).filter(|l| !l.is_empty()) {
        Some(at) if !base.contains(at) => {
            if base.is_empty() {
                format!("at {at}")
            } else {
                format!("{base} at {at}")
            }
        }
        _ => base,
    }
}

/// How a process death is named. Returns `(message, signature)`: the identity and the words
/// for people. The identity is how it died — its signal, or its exit status — because one race
/// trips several assertion texts in turn (the same two tests, the same abort); the signature
/// adds the crash module's name for it ([`death_signature`]), and the finding lists every one
/// seen.
pub fn death_message(
    output: &str,
    signal: Option<&str>,
    exit: Option<i32>,
    native: &[NativeCrash],
) -> (String, String) {
    let how = match (signal, exit) {
        (Some(s), _) => format!("signal: {s}"),
        (None, Some(code)) => format!("exit status: {code}"),
        (None, None) => "process died".to_string(),
    };
    match death_signature(output, signal, native) {
        Some(sig) if !sig.key().contains(&how) => (how.clone(), format!("{how}, {}", sig.key())),
        Some(sig) => (how, sig.key().to_string()),
        None => (how.clone(), how),
    }
}

/// The crash module's name for a death ([`crate::crash::identify`]): a specific text in the
/// output (an assertion, a panic), else the native frames of the process the tracer saw die of
/// `signal`, else what the output says, else the bare signal.
fn death_signature(
    output: &str,
    signal: Option<&str>,
    native: &[NativeCrash],
) -> Option<CrashSignature> {
    let native = native
        .iter()
        .rev()
        .find(|c| signal.map_or(true, |s| c.signal == s))
        .cloned();
    let signal = signal
        .map(str::to_string)
        .or_else(|| native.as_ref().map(|c| c.signal.clone()));
    let mut scanner = StderrScanner::new();
    let mut found: Vec<CrashSignature> = output.lines().filter_map(|l| scanner.feed(l)).collect();
    found.extend(scanner.finish());
    crate::crash::identify(Traces {
        stderr: &found,
        stderr_tail: output,
        native: native.map(Ok),
        signal: signal.as_deref(),
    })
    .map(|(sig, _)| sig)
}

/// The message of a test process that died: `signal: SIGSEGV`, or `process died` when the
/// runner does not say how (an xdist worker).
pub fn crashed_message(signal: Option<&str>) -> String {
    match signal {
        Some(s) => format!("signal: {s}"),
        None => "process died".into(),
    }
}

/// Per-test failure texts of one command's events (the last one wins).
fn messages(events: &[RunEvent]) -> Vec<(&str, &str, Option<&str>)> {
    let mut out: Vec<(&str, &str, Option<&str>)> = Vec::new();
    for ev in events {
        if let RunEvent::Message {
            test,
            text,
            location,
        } = ev
        {
            out.retain(|(t, _, _)| t != test);
            out.push((test, text, location.as_deref()));
        }
    }
    out
}

/// Classify one command's execution: its events (in output order) and how it ended.
/// `push` receives each failure; results are returned.
pub fn classify(
    runner: &dyn Runner,
    jobs: u32,
    execution: &Execution,
    events: &[RunEvent],
    failures: &mut Vec<Failure>,
) -> Vec<(String, TestStatus)> {
    let msgs = messages(events);
    let slack = runner.start_slack(jobs);
    let mut results: Vec<(String, TestStatus)> = Vec::new();
    let mut started: Vec<&str> = Vec::new();
    let mut finished: Vec<&str> = Vec::new();
    let push = |f: Failure, failures: &mut Vec<Failure>| {
        if !failures.iter().any(|g| g.key == f.key) {
            failures.push(f);
        }
    };
    // Tests of `domain` started by event `i` (plus the runner's slack of later starts).
    let started_by = |i: usize, domain: &str, started: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = started
            .iter()
            .filter(|t| runner.domain(t) == domain)
            .map(|t| t.to_string())
            .collect();
        let later = events[i + 1..]
            .iter()
            .filter_map(|e| match e {
                RunEvent::Started(t) if runner.domain(t) == domain => Some(t.to_string()),
                _ => None,
            })
            .take(slack);
        for t in later {
            if !v.contains(&t) {
                v.push(t);
            }
        }
        v
    };
    let in_flight = |started: &[&str], finished: &[&str], domain: Option<&str>| -> Vec<String> {
        started
            .iter()
            .filter(|t| !finished.contains(t))
            .filter(|t| domain.map_or(true, |d| runner.domain(t) == d))
            .map(|t| t.to_string())
            .collect()
    };

    let mut died = false;
    for (i, ev) in events.iter().enumerate() {
        match ev {
            RunEvent::Started(t) => {
                if !started.contains(&t.as_str()) {
                    started.push(t);
                }
            }
            RunEvent::Message { .. } => {}
            RunEvent::Finished(t, status) => {
                if !started.contains(&t.as_str()) {
                    started.push(t);
                }
                finished.push(t);
                results.push((t.clone(), status.clone()));
                let domain = runner.domain(t);
                let mut candidates = started_by(i, &domain, &started);
                if !candidates.contains(t) {
                    candidates.push(t.clone());
                }
                let (key, signature, flight) = match status {
                    TestStatus::Passed | TestStatus::Skipped => continue,
                    TestStatus::Failed => {
                        let (text, location) = msgs
                            .iter()
                            .find(|(n, _, _)| n == t)
                            .map(|(_, text, loc)| (*text, *loc))
                            .unwrap_or(("", None));
                        let message = failure_message(text, location);
                        let signature = if message.is_empty() {
                            format!("`{t}` failed")
                        } else {
                            format!("`{t}` failed: {message}")
                        };
                        (
                            FailureKey {
                                kind: FailureKind::Failure,
                                subject: Subject::Test(t.clone()),
                                message,
                            },
                            signature,
                            Vec::new(),
                        )
                    }
                    TestStatus::Crashed { signal } => {
                        let message = crashed_message(signal.as_deref());
                        let text = msgs
                            .iter()
                            .find(|(n, _, _)| n == t)
                            .map(|(_, text, _)| *text)
                            .unwrap_or("");
                        let detail = crash_signature(text)
                            .map(|s| format!(", {}", s.key()))
                            .unwrap_or_default();
                        (
                            FailureKey {
                                kind: FailureKind::Crash,
                                subject: Subject::Test(t.clone()),
                                message: message.clone(),
                            },
                            format!("`{t}` crashed ({message}{detail})"),
                            vec![t.clone()],
                        )
                    }
                    TestStatus::TimedOut => (
                        FailureKey {
                            kind: FailureKind::Hang,
                            subject: Subject::Test(t.clone()),
                            message: "runner timeout".into(),
                        },
                        format!("`{t}` hit the runner's own timeout"),
                        vec![t.clone()],
                    ),
                };
                push(
                    Failure {
                        key,
                        signature,
                        test: Some(t.clone()),
                        in_flight: flight,
                        candidates,
                        stacks: Vec::new(),
                    },
                    failures,
                );
            }
            RunEvent::Died {
                domain,
                test,
                message,
                signature,
            } => {
                died = true;
                let flight = match test {
                    Some(t) => vec![t.clone()],
                    None => in_flight(&started, &finished, Some(domain)),
                };
                let mut candidates = started_by(i, domain, &started);
                if let Some(t) = test {
                    if !candidates.contains(t) {
                        candidates.push(t.clone());
                    }
                    finished.push(t);
                }
                let subject = match test {
                    Some(t) => Subject::Test(t.clone()),
                    None => Subject::Process(domain.clone()),
                };
                let named = match (test, flight.as_slice()) {
                    (Some(t), _) => Some(t.clone()),
                    (None, [one]) => Some(one.clone()),
                    _ => None,
                };
                push(
                    Failure {
                        key: FailureKey {
                            kind: FailureKind::Crash,
                            subject,
                            message: message.clone(),
                        },
                        signature: signature.clone(),
                        test: named,
                        in_flight: flight,
                        candidates,
                        stacks: Vec::new(),
                    },
                    failures,
                );
            }
        }
    }

    let whole = |started: &[&str], finished: &[&str]| {
        let flight = in_flight(started, finished, None);
        // The process of the tests in flight; with none, the one every started test ran in.
        let ran: Vec<String> = if flight.is_empty() {
            started.iter().map(|t| t.to_string()).collect()
        } else {
            flight.clone()
        };
        let domain = ran
            .first()
            .map(|t| runner.domain(t))
            .filter(|d| ran.iter().all(|t| runner.domain(t) == *d))
            .unwrap_or_default();
        let candidates: Vec<String> = started
            .iter()
            .filter(|t| runner.domain(t) == domain)
            .map(|t| t.to_string())
            .collect();
        (flight, domain, candidates)
    };
    match &execution.termination {
        Termination::Hung { idle } => {
            let (flight, domain, candidates) = whole(&started, &finished);
            // A run stuck before any test started (start-up, collection, a loaded machine) is
            // not the same failure as a run stuck once tests ran: with tests in flight, or
            // with every started test finished (in a teardown, or at exit).
            let (message, context) = if started.is_empty() {
                (HANG_BEFORE_TESTS, " (before any test started)")
            } else if flight.is_empty() {
                (HANG_AFTER_START, " (after the last test finished)")
            } else {
                (HANG_AFTER_START, "")
            };
            push(
                Failure {
                    key: FailureKey {
                        kind: FailureKind::Hang,
                        subject: Subject::Process(domain),
                        message: message.into(),
                    },
                    signature: format!(
                        "no test finished for {}{context}",
                        humantime::format_duration(std::time::Duration::from_secs(
                            idle.as_secs().max(1)
                        )),
                    ),
                    test: (flight.len() == 1).then(|| flight[0].clone()),
                    in_flight: flight,
                    candidates,
                    stacks: execution.stacks.clone(),
                },
                failures,
            );
        }
        Termination::Signaled(sig) if !died => {
            let (flight, domain, candidates) = whole(&started, &finished);
            let name = signal_name(*sig).map(str::to_string);
            let (message, signature) = death_message(
                &execution.output,
                name.as_deref(),
                None,
                &execution.native_crashes,
            );
            push(
                Failure {
                    key: FailureKey {
                        kind: FailureKind::Crash,
                        subject: Subject::Process(domain),
                        message,
                    },
                    signature,
                    test: (flight.len() == 1).then(|| flight[0].clone()),
                    in_flight: flight,
                    candidates,
                    stacks: Vec::new(),
                },
                failures,
            );
        }
        _ => {}
    }
    results
}

/// The signal named in a cargo-style `process didn't exit successfully: … (signal: 6,
/// SIGABRT: process abort signal)` line, or its exit status.
pub fn reported_exit(line: &str) -> Option<(Option<String>, Option<i32>)> {
    if let Some(rest) = line.split("(signal: ").nth(1) {
        let num: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Some(name) = num.parse::<i32>().ok().and_then(signal_name) {
            return Some((Some(name.to_string()), None));
        }
        let name: String = rest
            .split(", ")
            .nth(1)
            .unwrap_or("")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        return Some((name.starts_with("SIG").then_some(name), None));
    }
    let rest = line.split("(exit status: ").nth(1)?;
    let num: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((None, num.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_keep_their_location() {
        let rust = "thread 'dev::up' (7) panicked at src/lib.rs:43:36:\ndevice busy\n";
        assert_eq!(
            failure_message(rust, None),
            "panic: device busy at src/lib.rs"
        );
        // Numbers in the message are normalized; the location is kept.
        assert_eq!(
            failure_message("AssertionError: assert 3 == 4", Some("tests/t.py:40")),
            "failure: AssertionError: assert <n> == <n> at tests/t.py:40"
        );
        assert_eq!(failure_message("", Some("t.py:3")), "at t.py:3");
        assert_eq!(failure_message("", None), "");
    }

    #[test]
    fn deaths_name_the_crash_and_the_signal() {
        let out = "-[SimCommandBuffer commit]:214: failed assertion `commit an already committed command buffer'\n";
        let (m, s) = death_message(out, Some("SIGABRT"), None, &[]);
        assert_eq!(m, "signal: SIGABRT");
        assert_eq!(
            s,
            "signal: SIGABRT, assertion: commit an already committed command buffer"
        );
        let (m, _) = death_message("", None, Some(1), &[]);
        assert_eq!(m, "exit status: 1");
        assert_eq!(
            reported_exit("  process didn't exit successfully: `/t/x-1 --exact a` (signal: 6, SIGABRT: process abort signal)"),
            Some((Some("SIGABRT".into()), None))
        );
        assert_eq!(
            reported_exit("process didn't exit successfully: `/t/x-1` (exit status: 101)"),
            Some((None, Some(101)))
        );
        assert_eq!(reported_exit("test a ... ok"), None);
    }

    #[test]
    fn a_traced_death_is_named_by_its_frames_and_keyed_by_its_signal() {
        use crate::crash::Frame;
        let crash = NativeCrash {
            pid: 7,
            tid: 7,
            thread_name: None,
            signal: "SIGSEGV".into(),
            frames: vec![Frame::native("mlx::core::array::release", "libmlx.so")],
            problem: None,
            capture: std::time::Duration::from_millis(1),
            received: std::time::Instant::now(),
            died: true,
        };
        let (m, s) = death_message("", Some("SIGSEGV"), None, std::slice::from_ref(&crash));
        assert_eq!(m, "signal: SIGSEGV");
        assert_eq!(s, "signal: SIGSEGV at libmlx.so!mlx::core::array::release");
        // Frames of a death by another signal are not this one's.
        let (_, s) = death_message("", Some("SIGABRT"), None, &[crash]);
        assert_eq!(s, "signal: SIGABRT");
    }

    #[test]
    fn a_start_up_stall_is_not_the_hang_of_tests_that_ran() {
        use crate::hunt::exec::{Execution, Termination};
        let runner = crate::hunt::runner::cargo::CargoTest::new(&["cargo".into(), "test".into()]);
        let hang = |events: &[RunEvent]| {
            let execution = Execution {
                termination: Termination::Hung {
                    idle: std::time::Duration::from_secs(4),
                },
                output: String::new(),
                progress: Vec::new(),
                stacks: Vec::new(),
                native_crashes: Vec::new(),
                elapsed: std::time::Duration::from_secs(9),
            };
            let mut failures = Vec::new();
            classify(&runner, 2, &execution, events, &mut failures);
            assert_eq!(failures.len(), 1, "{failures:?}");
            failures.remove(0)
        };
        let a = || RunEvent::Started("bin a".into());
        let a_done = || RunEvent::Finished("bin a".into(), TestStatus::Passed);
        let b = || RunEvent::Started("bin b".into());
        let before = hang(&[]);
        let in_flight = hang(&[a(), a_done(), b()]);
        let after = hang(&[a(), a_done()]);
        assert_ne!(before.key, in_flight.key);
        assert!(before.signature.contains("before any test started"));
        assert_eq!(in_flight.in_flight, vec!["bin b".to_string()]);
        // Stuck in a teardown or at exit once its tests ran: the same hang of that process.
        assert_eq!(after.key, in_flight.key);
        assert!(after.signature.contains("after the last test finished"));
    }

    proptest! {
        #[test]
        fn message_helpers_never_panic(s in "\\PC*", l in "\\PC{0,20}") {
            let _ = failure_message(&s, Some(&l));
            let _ = death_message(&s, None, None, &[]);
            let _ = reported_exit(&s);
        }
    }
}
