//! The machine-wide gate's variant matrix: every form excludes another handle (a separate
//! in-process gate, so only the file lock keeps them apart), errors come typed per kind of call,
//! and a cancelled async wait leaves the machine-wide queue. Every wait is bounded.

use std::path::Path;
use std::time::Duration;

use racegate::{
    AcquireError, AcquireTimeoutError, GateGuard, MachineGate, MachineGateError, OwnedGateGuard,
    TryAcquireError,
};

const LIMIT: Duration = Duration::from_secs(20);
const SHORT: Duration = Duration::from_millis(20);

fn open(dir: &Path) -> MachineGate {
    MachineGate::builder("gpu").dir(dir).open().unwrap()
}

enum Held<'a> {
    Borrowed(GateGuard<'a>),
    Owned(OwnedGateGuard),
}

const FORMS: [&str; 12] = [
    "acquire",
    "acquire_owned",
    "acquire_timeout",
    "acquire_owned_timeout",
    "acquire_blocking",
    "acquire_owned_blocking",
    "acquire_blocking_timeout",
    "acquire_owned_blocking_timeout",
    "try_acquire",
    "try_acquire_owned",
    // The unlabeled forms name the holder by its process and command only.
    "unlabeled acquire_owned_blocking",
    "unlabeled try_acquire",
];

/// `FORMS[k]` on `a`, labeled `a` (the first ten).
fn take<'a>(a: &'a MachineGate, rt: &tokio::runtime::Runtime, k: usize) -> Held<'a> {
    use Held::{Borrowed as B, Owned as O};
    let v = a.labeled("a");
    match k {
        0 => B(rt.block_on(v.acquire()).unwrap()),
        1 => O(rt.block_on(v.acquire_owned()).unwrap()),
        2 => B(rt.block_on(v.acquire_timeout(LIMIT)).unwrap()),
        3 => O(rt.block_on(v.acquire_owned_timeout(LIMIT)).unwrap()),
        4 => B(v.acquire_blocking().unwrap()),
        5 => O(v.acquire_owned_blocking().unwrap()),
        6 => B(v.acquire_blocking_timeout(LIMIT).unwrap()),
        7 => O(v.acquire_owned_blocking_timeout(LIMIT).unwrap()),
        8 => B(v.try_acquire().unwrap()),
        9 => O(v.try_acquire_owned().unwrap()),
        10 => O(a.acquire_owned_blocking().unwrap()),
        _ => B(a.try_acquire().unwrap()),
    }
}

/// While `a` holds through any form, the other handle can neither take nor wait its way in,
/// and both of its errors name `a`'s label; once `a` lets go, the other handle gets in.
#[test]
fn every_form_excludes_another_handle() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (open(tmp.path()), open(tmp.path()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pid = format!("pid {}", std::process::id());
    for (i, name) in FORMS.iter().enumerate() {
        let held = take(&a, &rt, i);
        let busy = b.try_acquire_owned().unwrap_err();
        assert!(
            matches!(busy, TryAcquireError::WouldBlock { .. }),
            "{name}: {busy:?}"
        );
        let waited = b.labeled("b").acquire_blocking_timeout(SHORT).unwrap_err();
        let msg = waited.to_string();
        assert!(
            matches!(waited, AcquireTimeoutError::TimedOut { .. }),
            "{name}: {waited:?}"
        );
        assert!(
            msg.contains(&pid) && msg.contains("as `b`"),
            "{name}: {msg}"
        );
        if i < 10 {
            assert!(msg.contains("as a"), "{name}: {msg}");
            assert!(busy.to_string().contains("as a"), "{name}: {busy}");
        }
        assert_eq!(a.status().holders.len(), 1, "{name}");
        match held {
            Held::Borrowed(g) => drop(g),
            Held::Owned(g) => drop(g),
        }
        drop(b.acquire_blocking_timeout(LIMIT).unwrap());
    }
    let st = a.status();
    assert!(st.holders.is_empty() && st.waiters.is_empty(), "{st:?}");
    assert_eq!(st.history.count, 2 * FORMS.len() as u64);
}

/// An owned async wait dropped while queued machine-wide gives its place up: the holder's
/// release reaches the next caller, and no lane or ticket is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_owned_timeout_wait_leaves_the_machine_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (open(tmp.path()), open(tmp.path()), open(tmp.path()));
    let held = a.labeled("first").acquire_owned().await.unwrap();
    let waiting =
        tokio::spawn(
            async move { drop(b.labeled("cancelled").acquire_owned_timeout(LIMIT).await) },
        );
    let queued = tokio::time::timeout(LIMIT, async {
        while a.status().waiters.len() != 1 {
            tokio::task::yield_now().await;
        }
    });
    queued.await.expect("the waiter queued machine-wide");
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    drop(held);
    let next = tokio::task::spawn_blocking(move || {
        let g = c.labeled("next").acquire_owned_blocking_timeout(LIMIT);
        g.map(|g| g.gate_name().to_owned())
    });
    assert_eq!(next.await.unwrap().unwrap(), "gpu");
    let st = a.status();
    assert!(st.holders.is_empty() && st.waiters.is_empty(), "{st:?}");
}

/// Weighted requests take shares of the budget; one that no placement can satisfy (more than a
/// device's units, not whole devices) is refused at once with each kind of call's own error, and
/// the units it took in-process come back.
#[test]
fn weighted_requests_take_shares_and_unplaceable_ones_are_refused_with_each_kinds_error() {
    let tmp = tempfile::tempdir().unwrap();
    let m = MachineGate::builder("gpu")
        .dir(tmp.path())
        .capacity(2)
        .devices(["a", "b"])
        .open()
        .unwrap();
    assert_eq!(
        m.gate().capacity(),
        4,
        "the in-process gate covers both devices"
    );
    let unplaceable =
        |e: &MachineGateError| matches!(e, MachineGateError::Unplaceable { requested: 3, .. });
    match m.acquire_many_blocking(3) {
        Err(AcquireError::Machine(e)) => assert!(unplaceable(&e), "{e}"),
        other => panic!("{other:?}"),
    }
    match m.acquire_many_blocking_timeout(3, LIMIT) {
        Err(AcquireTimeoutError::Machine(e)) => assert!(unplaceable(&e), "{e}"),
        other => panic!("{other:?}"),
    }
    match m.try_acquire_many(3) {
        Err(TryAcquireError::Machine(e)) => assert!(unplaceable(&e), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.gate().available(), 4);
    let (two, one) = (
        m.acquire_many_blocking(2).unwrap(),
        m.try_acquire_many_owned(1).unwrap(),
    );
    assert_eq!(
        (two.devices(), one.devices()),
        (&["a".to_owned()][..], &["b".to_owned()][..])
    );
    let st = m.status();
    let units: Vec<Option<u32>> = st.holders.iter().map(|h| h.units).collect();
    assert_eq!(units, [Some(2), Some(1)]);
    assert_eq!((st.units_used, st.units_total), (3, 4));
    drop((two, one));
    let whole = m.acquire_many_owned_blocking(4).unwrap();
    assert_eq!(whole.devices(), ["a", "b"]);
}

/// The lock directory failing under an acquisition is an error of the call, not a panic, on the
/// `MachineGate`; the infallible in-process face panics with the same message.
#[test]
fn a_lock_directory_failing_under_a_call_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let m = open(tmp.path());
    std::fs::remove_dir_all(m.dir()).unwrap();
    let err = m.acquire_blocking().unwrap_err();
    assert!(
        matches!(err, AcquireError::Machine(MachineGateError::Io { .. })),
        "{err:?}"
    );
    assert!(matches!(
        m.try_acquire(),
        Err(TryAcquireError::Machine(MachineGateError::Io { .. }))
    ));
    assert!(matches!(
        m.acquire_blocking_timeout(LIMIT),
        Err(AcquireTimeoutError::Machine(MachineGateError::Io { .. }))
    ));
    let face = m.gate().clone();
    let panicked = std::thread::spawn(move || drop(face.acquire_blocking()))
        .join()
        .unwrap_err();
    let msg = panicked
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(msg.contains(&err.to_string()), "{msg}");
    assert_eq!(m.gate().available(), 1, "the unit came back");
}
