//! An async bounded wait on a machine-wide gate whose lock is held elsewhere names that holder,
//! whichever ends the wait first: the backend's own deadline or the async timer around it (the
//! timer used to win on a loaded machine and report "no holder recorded").

use std::time::Duration;

use racegate::{AcquireTimeoutError, MachineGate};

#[test]
fn an_async_timeout_names_the_machine_wide_holder_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let open = || MachineGate::builder("gpu").dir(dir.path()).open().unwrap();
    // Two handles: separate in-process gates, so only the file lock keeps them apart and the
    // wait always reaches the machine-wide backend.
    let (holder, waiter) = (open(), open());
    let _held = holder.labeled("holder").acquire_blocking().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for round in 0..20 {
        let err = rt
            .block_on(
                waiter
                    .labeled("late")
                    .acquire_owned_timeout(Duration::from_millis(5)),
            )
            .unwrap_err();
        match &err {
            AcquireTimeoutError::TimedOut { holders, .. } => assert!(
                holders
                    .iter()
                    .any(|h| h.label.as_deref().is_some_and(|l| l.ends_with("as holder"))),
                "round {round}: {err}"
            ),
            other => panic!("round {round}: {other}"),
        }
    }
}
