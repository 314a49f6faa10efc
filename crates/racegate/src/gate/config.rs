//! [`GateConfig`]: what a gate is built with.

use std::fmt;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::errors::ConfigError;

/// Configuration of one gate.
///
/// ```
/// use std::time::Duration;
/// let config = racegate::GateConfig::default()
///     .with_capacity(2)
///     .with_hold_warning(Duration::from_millis(500));
/// let gate = racegate::Gate::with_config("gpu", config).unwrap();
/// assert_eq!(gate.capacity(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GateConfig {
    /// How many units the gate has: how many callers may hold it at once when each takes one
    /// unit, or a budget that weighted (`*_many`) calls take shares of. Default 1.
    pub capacity: u32,
    /// Whether to keep histograms, per-label figures and the holder list. Default on. Off, the
    /// gate is a bare fair semaphore: timeout errors cannot name holders and there are no hold
    /// warnings. The stats' clock (a calibrated CPU counter, via `quanta`) is calibrated once per
    /// process, when the first gate with stats is built: about 0.6 ms of that thread.
    pub stats: bool,
    /// Emit a `tracing` warning, naming the label and duration, when a holder passes this
    /// threshold (once, while it still holds: a stuck holder is reported too) and again when it
    /// releases after holding longer. Default none. Needs stats. A gate with a hold warning runs
    /// one small watchdog thread.
    pub hold_warning: Option<Duration>,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            capacity: 1,
            stats: true,
            hold_warning: None,
        }
    }
}

impl GateConfig {
    /// Sets the capacity, in units.
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Turns bookkeeping on or off.
    pub fn with_stats(mut self, on: bool) -> Self {
        self.stats = on;
        self
    }

    /// Sets the hold-too-long threshold.
    pub fn with_hold_warning(mut self, threshold: Duration) -> Self {
        self.hold_warning = Some(threshold);
        self
    }

    pub(crate) fn validate(&self, gate: &str) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::ZeroCapacity { gate: gate.into() });
        }
        if self.capacity as u64 > Semaphore::MAX_PERMITS as u64 {
            return Err(ConfigError::CapacityTooLarge {
                gate: gate.into(),
                requested: self.capacity.into(),
                max: Semaphore::MAX_PERMITS as u64,
            });
        }
        Ok(())
    }
}

impl fmt::Display for GateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capacity `{}`, stats `{}`",
            self.capacity,
            if self.stats { "on" } else { "off" }
        )?;
        if let Some(w) = self.hold_warning {
            write!(f, ", hold warning `{w:?}`")?;
        }
        Ok(())
    }
}
