//! Process-wide gates: one gate per name, configured once; conflicts are errors.

use std::time::Duration;

use racegate::{configure, global, ConfigError, GateConfig};

#[test]
fn global_returns_the_same_gate_everywhere() {
    let a = global("g-same");
    let b = std::thread::spawn(|| global("g-same")).join().unwrap();
    assert!(a.same_gate(b));
    assert!(!a.same_gate(global("g-other")));
    assert_eq!(a.capacity(), 1);
    assert_eq!(a.name(), "g-same");
}

#[test]
fn configure_before_use_sets_capacity_and_is_idempotent() {
    let cfg = GateConfig::default()
        .with_capacity(3)
        .with_hold_warning(Duration::from_secs(1));
    let g = configure("g-configured", cfg.clone()).unwrap();
    assert_eq!(g.capacity(), 3);
    assert!(g.same_gate(global("g-configured")));
    // The same configuration again is harmless.
    assert!(configure("g-configured", cfg).unwrap().same_gate(g));
}

#[test]
fn a_second_conflicting_configuration_is_an_error() {
    configure("g-conflict", GateConfig::default().with_capacity(2)).unwrap();
    let err = configure("g-conflict", GateConfig::default().with_capacity(4)).unwrap_err();
    assert!(matches!(err, ConfigError::Conflict { ref gate, .. } if gate == "g-conflict"));
    let msg = err.to_string();
    assert!(
        msg.contains("capacity `2`") && msg.contains("capacity `4`"),
        "{msg}"
    );
    assert_eq!(global("g-conflict").capacity(), 2);
}

#[test]
fn configuring_after_first_use_is_an_error() {
    let used = global("g-used");
    let err = configure("g-used", GateConfig::default().with_capacity(8)).unwrap_err();
    assert!(matches!(err, ConfigError::AlreadyInUse { .. }), "{err}");
    assert!(err.to_string().contains("before the first"), "{err}");
    assert_eq!(used.capacity(), 1);
    // Re-stating the configuration it already runs with is not a conflict.
    assert!(configure("g-used", GateConfig::default()).is_ok());
}

#[test]
fn invalid_configuration_is_rejected_without_creating_the_gate() {
    let err = configure("g-zero", GateConfig::default().with_capacity(0)).unwrap_err();
    assert_eq!(
        err,
        ConfigError::ZeroCapacity {
            gate: "g-zero".into()
        }
    );
    assert!(configure("g-zero", GateConfig::default().with_capacity(2)).is_ok());
}

#[test]
#[should_panic(expected = "capacity must be at least `1`")]
fn with_capacity_zero_panics_with_the_config_message() {
    let _ = racegate::Gate::with_capacity("zero", 0);
}

#[tokio::test]
async fn owned_guards_work_on_the_static_global_gate() {
    let gpu = global("g-owned");
    let guard = gpu.labeled("stream").acquire_owned().await;
    let task = tokio::spawn(async move {
        assert_eq!(guard.gate().name(), "g-owned");
    });
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
    assert!(gpu.try_acquire().is_ok());
}
