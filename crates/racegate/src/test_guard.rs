//! [`test_guard`]: one line that makes a test exclusive with every other test that takes the
//! same guard, under `cargo test` (threads of one process) and `cargo nextest run` (a process
//! per test) alike, while the rest of the suite stays parallel.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_var("RACEGATE_DIR", dir.path());
//! // At the top of each GPU test:
//! let _gpu = racegate::test_guard("gpu");
//! // ... dispatch to the GPU: no other GPU test of any test process runs now ...
//! ```

use std::time::Duration;

use crate::gate::{Labeled, OwnedGateGuard};
use crate::machine::machine_wide;
use crate::stats::Label;

/// Environment variable: how long a test may wait for its guard (e.g. `90s`, default `600s`),
/// so that a wedged suite fails with the holder's name instead of hanging CI.
pub const TEST_GUARD_TIMEOUT_ENV: &str = "RACEGATE_TEST_GUARD_TIMEOUT";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A held test guard; the gate is released when it is dropped (also when the test panics).
#[must_use = "the guard releases the gate when dropped: bind it, `let _gpu = test_guard(..)`"]
#[derive(Debug)]
pub struct TestGuard {
    _guard: OwnedGateGuard,
}

/// Wait until no other test on this machine holds the guard `name`, then hold it.
///
/// The guard is the machine-wide global gate `name` with capacity 1 (see
/// [`configure_machine_wide`](crate::configure_machine_wide)): threads of this test process
/// queue in-process, and the winner queues with other processes (nextest) for the file lock,
/// in the lock directory (`RACEGATE_DIR`, else `$XDG_RUNTIME_DIR/racegate`, else
/// `/tmp/racegate-<uid>`). The label shown in `racegate status` is the test's name.
///
/// # Panics
///
/// If the lock directory cannot be used (the message says why and how to fix it), if
/// `RACEGATE_TEST_GUARD_TIMEOUT` is not a duration, if the wait
/// exceeds `RACEGATE_TEST_GUARD_TIMEOUT` (default 600 s; the message names the holder), or when
/// called from within an async runtime (use a `#[test]`, or `spawn_blocking`).
pub fn test_guard(name: &str) -> TestGuard {
    let timeout = match std::env::var(TEST_GUARD_TIMEOUT_ENV) {
        Err(_) => DEFAULT_TIMEOUT,
        Ok(v) => parse_secs(&v).unwrap_or_else(|| {
            panic!("`{TEST_GUARD_TIMEOUT_ENV}` is `{v}`, not a duration; hint: write e.g. `90s`, `1500ms`, `10m`")
        }),
    };
    let gate = match machine_wide(name, 1) {
        Ok(g) => g,
        Err(e) => panic!("racegate::test_guard({name:?}): {e}"),
    };
    let thread = std::thread::current();
    // libtest names each test's thread after the test; a lone `main` says nothing.
    let label = thread
        .name()
        .filter(|n| *n != "main")
        .map(|n| Label::from(n.to_owned()));
    match Labeled::new(&gate.machine, label).acquire_owned_blocking_timeout(timeout) {
        Ok(guard) => TestGuard { _guard: guard },
        Err(e) => panic!("racegate::test_guard({name:?}): {e}"),
    }
}

/// `90`, `90s`, `1500ms`, `10m`.
fn parse_secs(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Some(ms) = v.strip_suffix("ms") {
        return ms.trim().parse().ok().map(Duration::from_millis);
    }
    if let Some(m) = v.strip_suffix('m') {
        return m
            .trim()
            .parse::<u64>()
            .ok()
            .map(|m| Duration::from_secs(m * 60));
    }
    v.strip_suffix('s')
        .unwrap_or(v)
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_secs("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_secs("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_secs("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_secs("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_secs("soon"), None);
    }
}
