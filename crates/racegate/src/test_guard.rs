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
use crate::machine::global::machine_wide_on;
use crate::machine::{discover_devices, parse_device_list};
use crate::stats::Label;

/// Environment variable: how long a test may wait for its guard (e.g. `90s`, default `600s`),
/// so that a wedged suite fails with the holder's name instead of hanging CI.
pub const TEST_GUARD_TIMEOUT_ENV: &str = "RACEGATE_TEST_GUARD_TIMEOUT";
/// Environment variable: the guard's gate capacity in units per device (default `1`), e.g.
/// `80` to share out the GiB of an 80 GiB GPU with [`test_guard_with`]. Every process using the
/// gate must agree (set it in `.cargo/config.toml`'s `[env]`, which `cargo test` and
/// `cargo nextest` both apply).
pub const TEST_GUARD_CAPACITY_ENV: &str = "RACEGATE_TEST_GUARD_CAPACITY";
/// Environment variable: the devices the guard's gate spans, `0,1,2,3`, or `auto` to discover
/// them ([`discover_devices`]: `CUDA_VISIBLE_DEVICES`, else `nvidia-smi -L`; nothing found is
/// no devices). Unset: no devices (the gate is one device).
pub const TEST_GUARD_DEVICES_ENV: &str = "RACEGATE_TEST_GUARD_DEVICES";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A held test guard; its share of the gate is released when it is dropped (also when the test
/// panics).
#[must_use = "the guard releases the gate when dropped: bind it, `let _gpu = test_guard(..)`"]
#[derive(Debug)]
pub struct TestGuard {
    guard: OwnedGateGuard,
}

impl TestGuard {
    /// Units held.
    pub fn units(&self) -> u32 {
        self.guard.units()
    }

    /// The devices held (empty when the gate declares none): point the test's GPU work at
    /// these, e.g. the first one as its CUDA device.
    pub fn devices(&self) -> &[String] {
        self.guard.devices()
    }
}

/// Wait until no other test on this machine holds the guard `name`, then hold it: all units of
/// one device (with the default capacity of 1 and no devices, the whole gate).
///
/// The guard is the machine-wide global gate `name` (see
/// [`configure_machine_wide`](crate::configure_machine_wide)) with the capacity in
/// [`TEST_GUARD_CAPACITY_ENV`] and the devices in [`TEST_GUARD_DEVICES_ENV`]: threads of this
/// test process queue in-process, and the winner queues with other processes (nextest) for the
/// file lock, in the lock directory (`RACEGATE_DIR`, else `$XDG_RUNTIME_DIR/racegate`, else
/// `/tmp/racegate-<uid>`). The label shown in `racegate status` is the test's name.
///
/// # Panics
///
/// If the lock directory cannot be used (the message says why and how to fix it), if one of
/// the `RACEGATE_TEST_GUARD_*` variables cannot be read, if the gate is in use with another
/// capacity or other devices, if the wait exceeds `RACEGATE_TEST_GUARD_TIMEOUT` (default 600 s;
/// the message names the holder), or when called from within an async runtime (use a
/// `#[test]`, or `spawn_blocking`).
pub fn test_guard(name: &str) -> TestGuard {
    take(name, None)
}

/// Wait for a share of `units` of the guard `name`, then hold it, like [`test_guard`]: tests
/// with shares run side by side as long as their shares fit the capacity
/// ([`TEST_GUARD_CAPACITY_ENV`]), in first-come order across every test process.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_var("RACEGATE_DIR", dir.path());
/// # std::env::set_var("RACEGATE_TEST_GUARD_CAPACITY", "80");
/// // With RACEGATE_TEST_GUARD_CAPACITY=80 (e.g. in .cargo/config.toml [env]):
/// let gpu = racegate::test_guard_with("doc-share", 20);
/// assert_eq!(gpu.units(), 20);
/// // ... at most 80 units' worth of GPU tests run now, across every test process ...
/// ```
///
/// # Panics
///
/// As [`test_guard`], and if `units` cannot be placed: more than the capacity that is not a
/// whole number of devices.
pub fn test_guard_with(name: &str, units: u32) -> TestGuard {
    take(name, Some(units))
}

fn take(name: &str, units: Option<u32>) -> TestGuard {
    let fail = |what: String| -> ! { panic!("racegate::test_guard({name:?}): {what}") };
    let var = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
    let timeout = match var(TEST_GUARD_TIMEOUT_ENV) {
        None => DEFAULT_TIMEOUT,
        Some(v) => parse_secs(&v).unwrap_or_else(|| {
            fail(format!("`{TEST_GUARD_TIMEOUT_ENV}` is `{v}`, not a duration; hint: write e.g. `90s`, `1500ms`, `10m`"))
        }),
    };
    let capacity = match var(TEST_GUARD_CAPACITY_ENV) {
        None => 1,
        Some(v) => v.trim().parse::<u32>().ok().filter(|c| *c >= 1).unwrap_or_else(|| {
            fail(format!("`{TEST_GUARD_CAPACITY_ENV}` is `{v}`, not a capacity; hint: write the units of one device, e.g. `80` or `100`"))
        }),
    };
    let devices = match var(TEST_GUARD_DEVICES_ENV) {
        None => Vec::new(),
        Some(v) if v.trim() == "auto" => discover_devices().devices,
        Some(v) => parse_device_list(&v)
            .unwrap_or_else(|e| fail(format!("`{TEST_GUARD_DEVICES_ENV}`: {e}"))),
    };
    let units = units.unwrap_or(capacity);
    let gate = machine_wide_on(name, capacity, &devices).unwrap_or_else(|e| fail(e.to_string()));
    let thread = std::thread::current();
    // libtest names each test's thread after the test; a lone `main` says nothing.
    let label = thread
        .name()
        .filter(|n| *n != "main")
        .map(|n| Label::from(n.to_owned()));
    match Labeled::new(&gate.machine, label).acquire_many_owned_blocking_timeout(units, timeout) {
        Ok(guard) => TestGuard { guard },
        Err(e) => fail(e.to_string()),
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
