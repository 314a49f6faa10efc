//! Turning one execution into failures: crash (signal or abort, with its signature), hang (no
//! progress, with the stacks captured before the kill), or failure (a test's assertions).
//! Signatures come from the crash module's stderr scanner and signal naming; nothing here
//! re-parses crash text.

use super::exec::{Execution, Termination};
use super::model::{Failure, FailureKey, RunObservation, TestStatus};
use crate::crash::signal::signal_name;
use crate::crash::signature::{CrashSignature, CrashSource};
use crate::crash::stderr::StderrScanner;

/// The signature of a crash by `signal` in this execution: its native frames when the tracer
/// caught the process that died of it, else what stderr says (see [`crate::crash::identify`]).
fn crash_signature(exec: &Execution, signal: Option<&str>) -> Option<String> {
    let native = exec
        .native_crashes
        .iter()
        .rev()
        .find(|c| signal.map_or(true, |s| c.signal == s))
        .cloned();
    let signal = signal
        .map(str::to_string)
        .or_else(|| native.as_ref().map(|c| c.signal.clone()))?;
    let mut scanner = StderrScanner::new();
    let mut found: Vec<CrashSignature> = exec
        .stderr
        .lines()
        .filter_map(|l| scanner.feed(l))
        .collect();
    found.extend(scanner.finish());
    crate::crash::identify(crate::crash::Traces {
        stderr: &found,
        stderr_tail: &exec.stderr,
        native: native.map(Ok),
        signal: Some(&signal),
    })
    .map(|(sig, _)| sig.key().to_string())
}

/// The first crash signature in `stderr`, as the crash module reads it.
pub fn stderr_signature(stderr: &str) -> Option<String> {
    let mut scanner = StderrScanner::new();
    for line in stderr.lines() {
        if let Some(sig) = scanner.feed(line) {
            return Some(sig.key().to_string());
        }
    }
    scanner.finish().map(|s| s.key().to_string())
}

/// The signal named in a cargo-style `process didn't exit successfully: … (signal: 6,
/// SIGABRT: process abort signal)` line.
fn reported_signal(stderr: &str) -> Option<String> {
    for line in stderr.lines() {
        // racegate's own pytest shards (see `runner::pytest`).
        if let Some(n) = line.trim().strip_prefix("racegate-shard-signal ") {
            if let Some(name) = n.parse::<i32>().ok().and_then(signal_name) {
                return Some(name.to_string());
            }
        }
        if let Some(rest) = line.split("(signal: ").nth(1) {
            let num: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Some(name) = num.parse::<i32>().ok().and_then(signal_name) {
                return Some(name.to_string());
            }
            let name: String = rest
                .split(", ")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if name.starts_with("SIG") {
                return Some(name);
            }
        }
    }
    None
}

/// Classify one execution of the tests in `planned`.
///
/// `failure_output` is the runner's per-test failure text: a failed test whose text holds a
/// panic or assertion is keyed by that signature, so the same failure is recognized whichever
/// test shows it; without one it is keyed by the test.
pub fn classify(
    exec: &Execution,
    results: Vec<(String, TestStatus)>,
    failure_output: &[(String, String)],
    planned: &[String],
) -> RunObservation {
    let unfinished: Vec<String> = planned
        .iter()
        .filter(|t| !results.iter().any(|(n, _)| n == *t))
        .cloned()
        .collect();
    let mut failures: Vec<Failure> = Vec::new();
    let mut push = |f: Failure| {
        if !failures.iter().any(|g| g.key.matches(&f.key)) {
            failures.push(f);
        }
    };

    match &exec.termination {
        Termination::Hung { idle } => push(Failure {
            key: FailureKey::Hang,
            signature: format!(
                "no test finished for {}",
                humantime::format_duration(std::time::Duration::from_secs(idle.as_secs()))
            ),
            test: None,
            unfinished: unfinished.clone(),
            stacks: exec.stacks.clone(),
        }),
        Termination::Signaled(sig) => {
            let name = signal_name(*sig).map(str::to_string);
            push(Failure {
                key: FailureKey::Crash(name.clone()),
                signature: crash_signature(exec, name.as_deref())
                    .or_else(|| stderr_signature(&exec.stderr))
                    .or(name)
                    .unwrap_or_else(|| format!("signal {sig}")),
                test: None,
                unfinished: unfinished.clone(),
                stacks: Vec::new(),
            })
        }
        Termination::Exited(_) | Termination::OutOfTime => {
            // In-process runners (cargo test) report a dead test binary on stderr.
            if let Some(sig) = reported_signal(&exec.stderr) {
                push(Failure {
                    key: FailureKey::Crash(Some(sig.clone())),
                    signature: stderr_signature(&exec.stderr).unwrap_or(sig),
                    test: if unfinished.len() == 1 {
                        unfinished.first().cloned()
                    } else {
                        None
                    },
                    unfinished: unfinished.clone(),
                    stacks: Vec::new(),
                });
            }
        }
    }

    for (name, status) in &results {
        match status {
            TestStatus::Crashed { signal } => push(Failure {
                key: FailureKey::Crash(signal.clone()),
                signature: stderr_signature(&exec.stderr)
                    .or_else(|| signal.clone())
                    .unwrap_or_else(|| "test process crashed".into()),
                test: Some(name.clone()),
                unfinished: unfinished.clone(),
                stacks: Vec::new(),
            }),
            TestStatus::TimedOut => push(Failure {
                key: FailureKey::Hang,
                signature: format!("`{name}` hit the runner's own timeout"),
                test: Some(name.clone()),
                unfinished: unfinished.clone(),
                stacks: Vec::new(),
            }),
            TestStatus::Failed => {
                let message =
                    failure_output
                        .iter()
                        .find(|(t, _)| t == name)
                        .and_then(|(_, text)| {
                            // A panic or assertion the crash scanner knows; else a runner that
                            // reports the bare message (pytest's helper plugin) on one line.
                            stderr_signature(text).or_else(|| {
                                let line = text.trim();
                                (!line.is_empty() && !line.contains('\n')).then(|| {
                                    CrashSignature::assertion(line, CrashSource::Stderr)
                                        .key()
                                        .to_string()
                                })
                            })
                        });
                push(Failure {
                    key: FailureKey::Failure(message.clone().unwrap_or_else(|| name.clone())),
                    signature: match &message {
                        Some(m) => format!("`{name}` failed: {m}"),
                        None => format!("`{name}` failed"),
                    },
                    test: Some(name.clone()),
                    unfinished: unfinished.clone(),
                    stacks: Vec::new(),
                })
            }
            TestStatus::Passed | TestStatus::Skipped => {}
        }
    }
    RunObservation { results, failures }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn exec(t: Termination, stderr: &str) -> Execution {
        Execution {
            termination: t,
            stdout: String::new(),
            stderr: stderr.into(),
            stacks: Vec::new(),
            native_crashes: Vec::new(),
            elapsed: Duration::from_millis(10),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cargo_abort_is_a_crash_with_the_assertion() {
        let stderr = "-[SimCommandBuffer commit]:214: failed assertion `commit an already committed command buffer'\nerror: test failed, to rerun pass `--test gpu`\n\nCaused by:\n  process didn't exit successfully: `/t/gpu-123 --exact a b` (signal: 6, SIGABRT: process abort signal)\n";
        let obs = classify(
            &exec(Termination::Exited(101), stderr),
            vec![("a".into(), TestStatus::Passed)],
            &[],
            &names(&["a", "b", "c"]),
        );
        assert_eq!(obs.failures.len(), 1);
        let f = &obs.failures[0];
        assert_eq!(f.key, FailureKey::Crash(Some("SIGABRT".into())));
        assert!(
            f.signature.contains("commit an already committed"),
            "{}",
            f.signature
        );
        assert_eq!(f.unfinished, names(&["b", "c"]));
    }

    #[test]
    fn hang_and_failures() {
        let obs = classify(
            &exec(
                Termination::Hung {
                    idle: Duration::from_secs(3),
                },
                "",
            ),
            vec![("a".into(), TestStatus::Failed)],
            &[],
            &names(&["a", "b"]),
        );
        let keys: Vec<_> = obs.failures.iter().map(|f| f.key.clone()).collect();
        assert_eq!(
            keys,
            vec![FailureKey::Hang, FailureKey::Failure("a".into())]
        );
        assert!(obs.failures[0].signature.contains("3s"));
    }

    #[test]
    fn failures_with_one_message_are_one_failure() {
        let text =
            |line: u32| format!("thread 'x' (7) panicked at src/lib.rs:{line}:36:\ndevice busy\n");
        let key_of = |test: &str, line: u32| {
            classify(
                &exec(Termination::Exited(101), ""),
                vec![(test.into(), TestStatus::Failed)],
                &[(test.into(), text(line))],
                &names(&[test]),
            )
            .failures[0]
                .key
                .clone()
        };
        assert_eq!(key_of("dev::up", 43), key_of("dev::down", 37));
        let plain = classify(
            &exec(Termination::Exited(101), ""),
            vec![("t".into(), TestStatus::Failed)],
            &[],
            &names(&["t"]),
        );
        assert_eq!(plain.failures[0].key, FailureKey::Failure("t".into()));
        let bare = classify(
            &exec(Termination::Exited(1), ""),
            vec![("t".into(), TestStatus::Failed)],
            &[("t".into(), "AssertionError: device busy".into())],
            &names(&["t"]),
        );
        assert_eq!(
            bare.failures[0].key,
            FailureKey::Failure("assertion: AssertionError: device busy".into())
        );
    }

    #[test]
    fn clean_run_has_no_failures() {
        let obs = classify(
            &exec(Termination::Exited(0), "   Compiling x\n"),
            vec![("a".into(), TestStatus::Passed)],
            &[],
            &names(&["a"]),
        );
        assert!(obs.failures.is_empty());
    }
}
