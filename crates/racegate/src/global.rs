//! Process-wide named gates: [`global`] and [`configure`].

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::errors::ConfigError;
use crate::gate::{Gate, GateConfig};

struct Entry {
    gate: &'static Gate,
    /// True when `configure` created it; false when the first `global` call did (defaults).
    configured: bool,
}

fn registry() -> &'static Mutex<HashMap<String, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The process-wide gate named `name`: every call with the same name, from any thread or crate,
/// returns the same gate.
///
/// It is created on first use with the configuration given to [`configure`] before that, or
/// else [`GateConfig::default()`] (one holder, stats on). The lookup takes a short lock; keep the
/// returned `&'static Gate` (it is `Copy`-cheap) rather than calling `global` in a hot loop.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let gpu: &'static racegate::Gate = racegate::global("doc-gpu");
/// assert!(gpu.same_gate(racegate::global("doc-gpu")));
/// let guard = gpu.acquire_owned().await; // owned guards work on the `&'static Gate` directly
/// tokio::spawn(async move { drop(guard) }).await.unwrap();
/// # }
/// ```
pub fn global(name: &str) -> &'static Gate {
    let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = reg.get(name) {
        return e.gate;
    }
    let gate: &'static Gate = Box::leak(Box::new(
        Gate::with_config(name, GateConfig::default()).expect("the default configuration is valid"),
    ));
    reg.insert(
        name.to_owned(),
        Entry {
            gate,
            configured: false,
        },
    );
    gate
}

/// Configures the process-wide gate `name` (capacity, stats, hold warning) and returns it.
///
/// Call it once, at startup, before the first [`global`] call for that name. Calling it again
/// with the same configuration is harmless and returns the same gate.
///
/// # Errors
///
/// - [`ConfigError::Conflict`] if it was already configured differently;
/// - [`ConfigError::AlreadyInUse`] if [`global`] already created it with the default
///   configuration and `config` differs (its users would silently see a different gate);
/// - [`ConfigError::ZeroCapacity`] / [`ConfigError::CapacityTooLarge`] for an invalid `config`.
///
/// ```
/// use racegate::{configure, global, ConfigError, GateConfig};
/// let gate = configure("doc-vram", GateConfig::default().with_capacity(24_000)).unwrap();
/// assert!(gate.same_gate(global("doc-vram")));
/// let err = configure("doc-vram", GateConfig::default().with_capacity(8_000)).unwrap_err();
/// assert!(matches!(err, ConfigError::Conflict { .. }));
/// ```
pub fn configure(name: &str, config: GateConfig) -> Result<&'static Gate, ConfigError> {
    config.validate(name)?;
    let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = reg.get(name) {
        if *e.gate.config() == config {
            return Ok(e.gate);
        }
        let existing = e.gate.config().to_string();
        let requested = config.to_string();
        let gate = name.to_owned();
        return Err(if e.configured {
            ConfigError::Conflict {
                gate,
                existing,
                requested,
            }
        } else {
            ConfigError::AlreadyInUse {
                gate,
                existing,
                requested,
            }
        });
    }
    let gate: &'static Gate = Box::leak(Box::new(Gate::with_config(name, config)?));
    reg.insert(
        name.to_owned(),
        Entry {
            gate,
            configured: true,
        },
    );
    Ok(gate)
}

/// Every process-wide gate, in no particular order (the OpenMetrics export lists them).
#[cfg(feature = "metrics")]
pub(crate) fn all() -> Vec<&'static Gate> {
    let reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    reg.values().map(|e| e.gate).collect()
}

/// The global gate `name` if it exists (`false`), else the one `make` builds, registered as
/// configured (`true`). For front types whose construction can fail (the machine-wide gate).
pub(crate) fn get_or_try_register<E>(
    name: &str,
    make: impl FnOnce() -> Result<Gate, E>,
) -> Result<(&'static Gate, bool), E> {
    let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = reg.get(name) {
        return Ok((e.gate, false));
    }
    let gate: &'static Gate = Box::leak(Box::new(make()?));
    reg.insert(
        name.to_owned(),
        Entry {
            gate,
            configured: true,
        },
    );
    Ok((gate, true))
}
