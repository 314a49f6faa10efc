//! The hold-warning watchdog: reports holders that pass [`GateConfig::hold_warning`] *while they
//! still hold*. A holder that is stuck (a hung kernel, a guard leaked into a forgotten task)
//! never reaches the release-time warning of the grant path.
//!
//! [`GateConfig::hold_warning`]: super::GateConfig::hold_warning

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::thread;
use std::time::Duration;

use super::grant::Inner;

/// One thread per gate that has a hold warning; it ends within one interval after the last
/// handle on the gate is dropped. The interval is a polling period, not synchronization: a
/// holder is reported between `threshold` and `threshold + interval` into its hold.
pub(super) fn spawn_hold_watchdog(gate: Weak<Inner>, threshold: Duration) {
    let interval = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
    let spawned = thread::Builder::new()
        .name("racegate-hold-watchdog".into())
        .spawn(move || loop {
            thread::sleep(interval);
            let Some(inner) = gate.upgrade() else { return };
            let Some(now) = inner.stamp() else { return };
            let overdue = inner.stats.overdue(threshold, now);
            for h in overdue {
                tracing::warn!(
                    gate = %inner.name,
                    label = h.label.as_deref().unwrap_or("(unlabeled)"),
                    held_ms = h.held_for.as_secs_f64() * 1e3,
                    threshold_ms = threshold.as_secs_f64() * 1e3,
                    waiters = inner.waiters.load(Ordering::Relaxed),
                    "gate still held past the hold warning"
                );
            }
        });
    if let Err(e) = spawned {
        // The gate works without it; only the while-held warning is lost.
        tracing::warn!(error = %e, "racegate: could not start the hold-warning watchdog thread");
    }
}
