//! The vocabulary of a hunt: tests, what a run reported about them, and the failures a run
//! shows, each with the identity that decides whether a later run "failed the same way".

use serde::Serialize;

/// How one test ended in one run, as the runner reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TestStatus {
    /// The test passed.
    Passed,
    /// The test failed (an assertion or a panic caught by the harness).
    Failed,
    /// The test's own process died of a signal (runners that isolate tests: nextest, xdist).
    Crashed {
        /// The signal name (`SIGABRT`), when the runner said.
        signal: Option<String>,
    },
    /// The runner's own per-test timeout fired.
    TimedOut,
    /// Skipped or ignored.
    Skipped,
}

impl TestStatus {
    /// Passed or skipped.
    pub fn is_ok(&self) -> bool {
        matches!(self, TestStatus::Passed | TestStatus::Skipped)
    }
}

/// The class of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A signal or an abort (e.g. a failed `MTLCommandBuffer` assertion).
    Crash,
    /// No progress past the hang timeout.
    Hang,
    /// A test failed its assertions.
    Failure,
}

impl FailureKind {
    /// The word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Crash => "crash",
            FailureKind::Hang => "hang",
            FailureKind::Failure => "failure",
        }
    }
}

/// What failed: a test the runner named, or a whole process whose tests were in flight.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// This test.
    Test(String),
    /// The process of this concurrency domain (a cargo test binary; `""`: the run) died or
    /// hung with several tests in flight.
    Process(String),
}

/// The identity of a failure: a probe reproduces a finding only when it shows a failure with
/// the same key ([`FailureKey::same`]) — the same test (or process) failing in the same class,
/// with the same normalized message, or at the same location.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FailureKey {
    /// Crash, hang or failure.
    pub kind: FailureKind,
    /// What failed.
    pub subject: Subject,
    /// The normalized message with its location (`panic: device busy at src/lib.rs`); empty
    /// for hangs.
    pub message: String,
}

impl FailureKey {
    /// Whether two observations are the same failure: same class, same test (or process),
    /// and the same message — where an empty message means "not known" (a test binary that
    /// died before printing its failures) and matches any. A test's assertion failures at
    /// the same location are the same failure whatever their text: one race shows through
    /// several messages at one place (sqlite's "disk I/O error" and "attempt to write a
    /// readonly database" at one line; an unset variable read as `None` or as the wrong
    /// value by one test), and counting each text apart would take the others for "not
    /// reproduced".
    pub fn same(&self, other: &FailureKey) -> bool {
        self.kind == other.kind
            && self.subject == other.subject
            && (self.message == other.message
                || self.message.is_empty()
                || other.message.is_empty()
                || (self.kind == FailureKind::Failure
                    && matches!(self.subject, Subject::Test(_))
                    && self.location().is_some()
                    && self.location() == other.location()))
    }

    /// Where the failure was raised: the location its message ends with (`src/lib.rs`,
    /// `sqlitedict.py:521`), when it has one.
    pub fn location(&self) -> Option<&str> {
        self.message
            .rsplit_once(" at ")
            .map(|(_, at)| at)
            .or_else(|| self.message.strip_prefix("at "))
            .filter(|at| !at.is_empty())
    }

    /// The failing test, when the key names one.
    pub fn test(&self) -> Option<&str> {
        match &self.subject {
            Subject::Test(t) => Some(t),
            Subject::Process(_) => None,
        }
    }
}

/// One thread dump of one process, captured before a hung run was killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessStack {
    /// Process id.
    pub pid: u32,
    /// Its command line (or name).
    pub command: String,
    /// The tool that produced the dump (`gdb`, `py-spy`, `eu-stack`, `lldb`, `faulthandler`).
    pub tool: String,
    /// The dump, as the tool printed it.
    pub text: String,
}

/// A failure seen in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its identity.
    pub key: FailureKey,
    /// Human-readable signature: the failing test and its message, the crash's assertion,
    /// panic or signal, or "no test finished for 5s".
    pub signature: String,
    /// The test that failed or crashed, when known (a dead process with one test in flight
    /// names it too).
    pub test: Option<String>,
    /// Tests that had started and not finished when it happened (a dead process, a hang).
    pub in_flight: Vec<String>,
    /// Tests that may have caused it: those of the same process (concurrency domain) that had
    /// started by the time it showed, in run order. Always holds the failing test.
    pub candidates: Vec<String>,
    /// Thread dumps (hangs only).
    pub stacks: Vec<ProcessStack>,
}

/// What one run says about one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It showed the same failure.
    Reproduced,
    /// The failing test ran to the end and passed; or, for a process that died or hung, the
    /// process lived and finished.
    NotReproduced,
    /// Something else ended the run first (the process died another way, the run hung, the
    /// failing test failed another way): no evidence either way.
    Inconclusive,
}

/// The parsed result of one run of a set of tests.
#[derive(Debug, Clone, Default)]
pub struct RunObservation {
    /// Every test the runner reported on, with its status, in the order reported.
    pub results: Vec<(String, TestStatus)>,
    /// Failures, one per key.
    pub failures: Vec<Failure>,
    /// Planned tests that reported no result.
    pub unreported: Vec<String>,
}

impl RunObservation {
    /// Whether this run shows the failure `key` identifies.
    pub fn has(&self, key: &FailureKey) -> bool {
        self.failures.iter().any(|f| f.key.same(key))
    }

    /// What this run says about the failure `key` identifies (`domain` gives a test's
    /// process).
    pub fn verdict(&self, key: &FailureKey, domain: &dyn Fn(&str) -> String) -> Verdict {
        if self.has(key) {
            return Verdict::Reproduced;
        }
        match &key.subject {
            Subject::Test(t) => {
                let passed = self
                    .results
                    .iter()
                    .any(|(n, s)| n == t && matches!(s, TestStatus::Passed));
                if passed {
                    Verdict::NotReproduced
                } else {
                    Verdict::Inconclusive
                }
            }
            Subject::Process(d) => {
                let ended = self.failures.iter().any(|f| {
                    f.key.kind == FailureKind::Hang
                        || (f.key.kind == FailureKind::Crash
                            && match &f.key.subject {
                                Subject::Process(p) => p == d,
                                Subject::Test(t) => domain(t) == *d,
                            })
                });
                if ended {
                    Verdict::Inconclusive
                } else {
                    Verdict::NotReproduced
                }
            }
        }
    }

    /// Whether the run was clean: no failure and every planned test reported.
    pub fn clean(&self) -> bool {
        self.failures.is_empty() && self.unreported.is_empty()
    }

    /// Tests reported passed.
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, s)| *s == TestStatus::Passed)
            .count()
    }

    /// Tests reported failed, crashed or timed out.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|(_, s)| !s.is_ok()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: FailureKind, test: &str, message: &str) -> FailureKey {
        FailureKey {
            kind,
            subject: Subject::Test(test.into()),
            message: message.into(),
        }
    }

    #[test]
    fn one_place_is_one_failure_whatever_its_text() {
        let a = key(
            FailureKind::Failure,
            "t::a",
            "failure: sqlite3.OperationalError: disk I/O error at sqlitedict.py:521",
        );
        let b = key(
            FailureKind::Failure,
            "t::a",
            "failure: sqlite3.OperationalError: attempt to write a readonly database at sqlitedict.py:521",
        );
        assert!(a.same(&b) && b.same(&a));
        assert_eq!(a.location(), Some("sqlitedict.py:521"));
        // Another place, another test or another class is another failure.
        let elsewhere = key(
            FailureKind::Failure,
            "t::a",
            "failure: sqlite3.OperationalError: unable to open database file at sqlitedict.py:474",
        );
        assert!(!a.same(&elsewhere));
        assert!(!a.same(&key(FailureKind::Failure, "t::b", &b.message)));
        let crash = |m: &str| key(FailureKind::Crash, "t::a", m);
        assert!(!crash("signal: SIGSEGV at x.rs").same(&crash("signal: SIGABRT at x.rs")));
        // Without a location only the text decides.
        let plain = |m: &str| key(FailureKind::Failure, "t::a", m);
        assert!(!plain("failure: one").same(&plain("failure: two")));
        assert!(plain("failure: one").same(&plain("")));
    }
}
