//! The vocabulary of a hunt: tests, their outcomes in one run, and the failures a run shows.

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

/// What kind of failure a run showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A signal or an abort (e.g. a failed `MTLCommandBuffer` assertion).
    Crash,
    /// No progress past `--test-timeout`.
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

/// What makes two observed failures "the same": a probe reproduces a finding only when it shows
/// a failure with the same key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKey {
    /// A crash, keyed by signal (`SIGABRT`; `None` when unknown): one race often trips several
    /// assertion texts, so the text is kept as the signature, not the identity.
    Crash(Option<String>),
    /// The suite stopped making progress.
    Hang,
    /// This test failed.
    Failure(String),
}

impl FailureKey {
    /// Whether two observed failures are the same. A crash whose signal the runner did not
    /// name (an xdist worker that died) matches a crash of any signal.
    pub fn matches(&self, other: &FailureKey) -> bool {
        match (self, other) {
            (FailureKey::Crash(a), FailureKey::Crash(b)) => a.is_none() || b.is_none() || a == b,
            _ => self == other,
        }
    }

    /// The kind of this key.
    pub fn kind(&self) -> FailureKind {
        match self {
            FailureKey::Crash(_) => FailureKind::Crash,
            FailureKey::Hang => FailureKind::Hang,
            FailureKey::Failure(_) => FailureKind::Failure,
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
    /// The tool that produced the dump (`gdb`, `py-spy`, `eu-stack`, `lldb`).
    pub tool: String,
    /// The dump, as the tool printed it.
    pub text: String,
}

/// A failure seen in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its identity for reproduction.
    pub key: FailureKey,
    /// Human-readable signature: assertion text, panic message, signal name, or "no progress
    /// for 5s".
    pub signature: String,
    /// The test that failed or crashed, when the runner names it.
    pub test: Option<String>,
    /// Tests that had not finished when it happened.
    pub unfinished: Vec<String>,
    /// Thread dumps (hangs only).
    pub stacks: Vec<ProcessStack>,
}

/// The parsed result of one run of a set of tests.
#[derive(Debug, Clone, Default)]
pub struct RunObservation {
    /// Every test the runner reported on, with its status.
    pub results: Vec<(String, TestStatus)>,
    /// Failures, at most one per key.
    pub failures: Vec<Failure>,
}

impl RunObservation {
    /// Whether this run shows a failure matching `key`.
    pub fn has(&self, key: &FailureKey) -> bool {
        self.failures.iter().any(|f| f.key.matches(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_crashes_match_any_signal() {
        let abrt = FailureKey::Crash(Some("SIGABRT".into()));
        let segv = FailureKey::Crash(Some("SIGSEGV".into()));
        let unknown = FailureKey::Crash(None);
        assert!(abrt.matches(&abrt));
        assert!(!abrt.matches(&segv));
        assert!(unknown.matches(&segv) && segv.matches(&unknown));
        assert!(!unknown.matches(&FailureKey::Hang));
        assert!(!FailureKey::Failure("a".into()).matches(&FailureKey::Failure("b".into())));
    }
}
