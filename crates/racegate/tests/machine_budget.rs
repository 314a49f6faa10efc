//! Budgets and devices of the machine-wide gate, in one process: every weighted form takes its
//! share, FIFO holds for weights, placement on devices, agreement on the declaration, and
//! garbage in the `queue` file (declaration and ledger) handled safely. Separate `MachineGate`
//! handles on one directory have separate in-process gates, so only the file protocol keeps
//! them apart, as between processes. Every wait is bounded.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use racegate::{
    AcquireError, AcquireTimeoutError, GateGuard, MachineGate, MachineGateError, OwnedGateGuard,
    TryAcquireError,
};

const LIMIT: Duration = Duration::from_secs(20);
const SHORT: Duration = Duration::from_millis(20);
/// The documented layout of the `queue` file (docs/machine-gate.md): the ledger's first entry.
const LEDGER: u64 = 64;
const ENTRY: u64 = 16;

fn open(dir: &Path, capacity: u32) -> MachineGate {
    MachineGate::builder("gpu")
        .dir(dir)
        .capacity(capacity)
        .open()
        .unwrap()
}

fn poke(dir: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new()
        .write(true)
        .open(dir.join("gpu/queue"))
        .unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

enum Held<'a> {
    Borrowed(GateGuard<'a>),
    Owned(OwnedGateGuard),
}

impl Held<'_> {
    fn units(&self) -> u32 {
        match self {
            Held::Borrowed(g) => g.units(),
            Held::Owned(g) => g.units(),
        }
    }
}

/// Every weighted form, on the gate (unlabeled) and on its labeled view.
const FORMS: [&str; 20] = [
    "acquire_many",
    "acquire_many_owned",
    "acquire_many_timeout",
    "acquire_many_owned_timeout",
    "acquire_many_blocking",
    "acquire_many_owned_blocking",
    "acquire_many_blocking_timeout",
    "acquire_many_owned_blocking_timeout",
    "try_acquire_many",
    "try_acquire_many_owned",
    "labeled acquire_many",
    "labeled acquire_many_owned",
    "labeled acquire_many_timeout",
    "labeled acquire_many_owned_timeout",
    "labeled acquire_many_blocking",
    "labeled acquire_many_owned_blocking",
    "labeled acquire_many_blocking_timeout",
    "labeled acquire_many_owned_blocking_timeout",
    "labeled try_acquire_many",
    "labeled try_acquire_many_owned",
];

fn take<'a>(a: &'a MachineGate, rt: &tokio::runtime::Runtime, k: usize, n: u32) -> Held<'a> {
    use Held::{Borrowed as B, Owned as O};
    let v = a.labeled("a");
    match k {
        0 => B(rt.block_on(a.acquire_many(n)).unwrap()),
        1 => O(rt.block_on(a.acquire_many_owned(n)).unwrap()),
        2 => B(rt.block_on(a.acquire_many_timeout(n, LIMIT)).unwrap()),
        3 => O(rt.block_on(a.acquire_many_owned_timeout(n, LIMIT)).unwrap()),
        4 => B(a.acquire_many_blocking(n).unwrap()),
        5 => O(a.acquire_many_owned_blocking(n).unwrap()),
        6 => B(a.acquire_many_blocking_timeout(n, LIMIT).unwrap()),
        7 => O(a.acquire_many_owned_blocking_timeout(n, LIMIT).unwrap()),
        8 => B(a.try_acquire_many(n).unwrap()),
        9 => O(a.try_acquire_many_owned(n).unwrap()),
        10 => B(rt.block_on(v.acquire_many(n)).unwrap()),
        11 => O(rt.block_on(v.acquire_many_owned(n)).unwrap()),
        12 => B(rt.block_on(v.acquire_many_timeout(n, LIMIT)).unwrap()),
        13 => O(rt.block_on(v.acquire_many_owned_timeout(n, LIMIT)).unwrap()),
        14 => B(v.acquire_many_blocking(n).unwrap()),
        15 => O(v.acquire_many_owned_blocking(n).unwrap()),
        16 => B(v.acquire_many_blocking_timeout(n, LIMIT).unwrap()),
        17 => O(v.acquire_many_owned_blocking_timeout(n, LIMIT).unwrap()),
        18 => B(v.try_acquire_many(n).unwrap()),
        _ => O(v.try_acquire_many_owned(n).unwrap()),
    }
}

/// While `a` holds 7 of 10 units through any weighted form, another handle gets 3 more and no
/// more: a request for 4 can neither take nor wait its way in, and the errors name `a`'s share.
#[test]
fn every_weighted_form_takes_its_share_and_no_more_fits_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (open(tmp.path(), 10), open(tmp.path(), 10));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (i, name) in FORMS.iter().enumerate() {
        let held = take(&a, &rt, i, 7);
        assert_eq!(held.units(), 7, "{name}");
        let st = a.status();
        assert_eq!(st.holders.len(), 1, "{name}");
        assert_eq!(
            (st.holders[0].units, st.units_used, st.units_total),
            (Some(7), 7, 10),
            "{name}"
        );
        let busy = b.try_acquire_many(4).unwrap_err();
        assert!(
            matches!(busy, TryAcquireError::WouldBlock { .. }),
            "{name}: {busy:?}"
        );
        assert!(busy.to_string().contains("(7 units)"), "{name}: {busy}");
        let waited = b.acquire_many_blocking_timeout(4, SHORT).unwrap_err();
        assert!(
            matches!(waited, AcquireTimeoutError::TimedOut { .. }),
            "{name}: {waited:?}"
        );
        drop(b.try_acquire_many(3).unwrap());
        match held {
            Held::Borrowed(g) => drop(g),
            Held::Owned(g) => drop(g),
        }
        drop(b.acquire_many_blocking_timeout(10, LIMIT).unwrap());
    }
    let st = a.status();
    assert!(st.holders.is_empty() && st.waiters.is_empty(), "{st:?}");
    assert_eq!(st.units_used, 0);
}

/// FIFO with weights: a request for the whole budget, queued behind a holder, is served before
/// a small request that arrived after it, although the small one would have fit at once.
#[test]
fn a_large_request_at_the_head_is_not_overtaken_by_smaller_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let holder = open(tmp.path(), 10);
    let held = holder.acquire_many_blocking(6).unwrap();
    let (order_tx, order) = mpsc::channel::<&str>();
    let (release_big, big_release) = mpsc::channel::<()>();
    let dir = tmp.path().to_owned();
    let tx = order_tx.clone();
    let big = std::thread::spawn(move || {
        let g = open(&dir, 10)
            .acquire_many_owned_blocking_timeout(10, LIMIT)
            .unwrap();
        tx.send("big").unwrap();
        big_release.recv_timeout(LIMIT).unwrap();
        drop(g);
    });
    wait_for(|| holder.status().waiters.len() == 1);
    let small = open(tmp.path(), 10);
    // 4 units are free, but a try never overtakes the queue.
    assert!(matches!(
        small.try_acquire_many(2),
        Err(TryAcquireError::WouldBlock { waiters: 0, .. })
    ));
    let small_thread = std::thread::spawn(move || {
        let g = small.acquire_many_blocking_timeout(2, LIMIT).unwrap();
        order_tx.send("small").unwrap();
        drop(g);
    });
    wait_for(|| holder.status().waiters.len() == 2);
    assert!(
        order.try_recv().is_err(),
        "nobody may enter while 6 of 10 are held and the head wants 10"
    );
    drop(held);
    assert_eq!(order.recv_timeout(LIMIT).unwrap(), "big");
    // The big one holds all 10: the small one must still be waiting.
    assert_eq!(holder.status().waiters.len(), 1);
    release_big.send(()).unwrap();
    assert_eq!(order.recv_timeout(LIMIT).unwrap(), "small");
    big.join().unwrap();
    small_thread.join().unwrap();
}

/// Polls a condition on the lock directory (the state under test lives in files and other
/// threads' kernel waits, so there is nothing to block on); bounded.
fn wait_for(mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "condition not reached in {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn units_spread_to_the_freest_device_and_whole_devices_take_idle_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let gpu = MachineGate::builder("gpu")
        .dir(tmp.path())
        .capacity(4)
        .devices(["0", "1", "2"])
        .open()
        .unwrap();
    assert_eq!((gpu.capacity(), gpu.devices().len()), (4, 3));
    let three = gpu.acquire_many_blocking(3).unwrap();
    let two = gpu.acquire_many_blocking(2).unwrap();
    let four = gpu.acquire_many_blocking(4).unwrap();
    assert_eq!(three.devices(), ["0"]);
    assert_eq!(two.devices(), ["1"], "the freest device");
    assert_eq!(four.devices(), ["2"], "4 units fit only on the idle device");
    let st = gpu.status();
    let used: Vec<(String, u32, usize)> = st
        .devices
        .iter()
        .map(|d| (d.id.clone(), d.used, d.holder_lanes.len()))
        .collect();
    assert_eq!(
        used,
        [("0".into(), 3, 1), ("1".into(), 2, 1), ("2".into(), 4, 1)]
    );
    assert!(matches!(
        gpu.try_acquire_many(8),
        Err(TryAcquireError::WouldBlock { .. })
    ));
    drop((three, four));
    let whole = gpu.try_acquire_many(8).unwrap();
    assert_eq!(
        whole.devices(),
        ["0", "2"],
        "two idle devices, lowest first"
    );
    let mut units: Vec<Option<u32>> = gpu.status().holders.iter().map(|h| h.units).collect();
    units.sort();
    assert_eq!(units, [Some(2), Some(8)]);
    drop((two, whole));
    // No units hold nothing, at once.
    let none = gpu.try_acquire_many(0).unwrap();
    assert!(none.devices().is_empty());
    assert_eq!(gpu.status().holders.len(), 0);
}

#[test]
fn every_process_must_agree_on_the_declaration_and_a_change_while_idle_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let builder = |capacity, devices: &[&str]| {
        MachineGate::builder("gpu")
            .dir(tmp.path())
            .capacity(capacity)
            .devices(devices.iter().copied())
    };
    let a = builder(80, &["0", "1"]).open().unwrap();
    let held = a.acquire_many_blocking(20).unwrap();
    let err = builder(40, &["0", "1"]).open().unwrap_err();
    assert!(
        matches!(
            err,
            MachineGateError::CapacityMismatch {
                existing: 80,
                requested: 40,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`80`") && err.to_string().contains("`40`"),
        "{err}"
    );
    let err = builder(80, &["0"]).open().unwrap_err();
    assert!(
        matches!(err, MachineGateError::DevicesMismatch { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`0,1`") && err.to_string().contains("`0`"),
        "{err}"
    );
    let err = builder(80, &[]).open().unwrap_err();
    assert!(err.to_string().contains("`(none)`"), "{err}");
    drop(held);
    // Idle: a new declaration is adopted, and the old handle's next acquisition says so.
    let b = builder(40, &["0", "1"]).open().unwrap();
    drop(b.acquire_many_blocking(40).unwrap());
    let err = a.acquire_many_blocking(1).unwrap_err();
    assert!(
        matches!(
            err,
            AcquireError::Machine(MachineGateError::CapacityMismatch {
                existing: 40,
                requested: 80,
                ..
            })
        ),
        "{err:?}"
    );
    let err = builder(4, &["0", "0"]).open().unwrap_err();
    assert!(
        matches!(err, MachineGateError::BadDevices { .. }),
        "{err:?}"
    );
    let err = builder(0, &[]).open().unwrap_err();
    assert!(
        matches!(err, MachineGateError::BadCapacity { .. }),
        "{err:?}"
    );
}

#[test]
fn garbage_on_a_held_lanes_entry_counts_as_the_whole_gate_and_is_cleared_once_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (open(tmp.path(), 10), open(tmp.path(), 10));
    let held = a.acquire_many_blocking(3).unwrap();
    assert!(b.try_acquire_many(7).is_ok());
    poke(tmp.path(), LEDGER, &[0xAB; ENTRY as usize]);
    assert!(
        matches!(
            b.try_acquire_many(1),
            Err(TryAcquireError::WouldBlock { .. })
        ),
        "a holder whose share cannot be read holds everything"
    );
    assert_eq!(a.status().units_used, 10);
    assert_eq!(a.status().holders[0].units, None);
    drop(held);
    // Its lane is free now: the garbage is stale, cleared, and the whole budget is free.
    let all = b.try_acquire_many(10).unwrap();
    drop(all);
    let f = std::fs::read(tmp.path().join("gpu/queue")).unwrap();
    assert_eq!(&f[LEDGER as usize..(LEDGER + ENTRY) as usize], &[0; 16]);
}

#[test]
fn a_damaged_declaration_is_refused_while_in_use_and_rewritten_when_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path(), 10);
    let held = a.acquire_many_blocking(5).unwrap();
    poke(tmp.path(), 8, &u64::MAX.to_le_bytes());
    let err = MachineGate::builder("gpu")
        .dir(tmp.path())
        .capacity(10)
        .open()
        .unwrap_err();
    assert!(matches!(err, MachineGateError::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains("queue"), "{err}");
    let err = a.try_acquire_many(1).unwrap_err();
    assert!(
        matches!(
            err,
            TryAcquireError::Machine(MachineGateError::Damaged { .. })
        ),
        "{err:?}"
    );
    drop(held);
    let fresh = open(tmp.path(), 10);
    drop(fresh.acquire_many_blocking(10).unwrap());
    // The device list text is covered by the header's checksum.
    let d = MachineGate::builder("devs")
        .dir(tmp.path())
        .devices(["0", "1"])
        .open()
        .unwrap();
    let g = d.acquire_blocking().unwrap();
    let f = OpenOptions::new()
        .write(true)
        .open(tmp.path().join("devs/queue"))
        .unwrap();
    f.write_all_at(b"9", 64 + 16 * 64).unwrap();
    let err = MachineGate::builder("devs")
        .dir(tmp.path())
        .devices(["0", "1"])
        .open()
        .unwrap_err();
    assert!(matches!(err, MachineGateError::Damaged { .. }), "{err:?}");
    drop(g);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Holders with known shares hold their lanes; random bytes are written over random ledger
    /// entries (never a forged all-zero entry); a newcomer then gets a share only if it truly
    /// fits beside the real holders.
    #[test]
    fn garbage_in_the_ledger_never_lets_a_share_exceed_the_budget(
        shares in proptest::collection::vec(1u32..6, 1..5),
        garbage in proptest::collection::vec((0u64..6, proptest::collection::vec(any::<u8>(), 16)), 0..6),
        ask in 1u32..13,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (open(tmp.path(), 12), open(tmp.path(), 12));
        let mut held = Vec::new();
        let mut used = 0;
        for s in shares {
            if used + s <= 12 {
                held.push(a.try_acquire_many(s).unwrap());
                used += s;
            }
        }
        for (entry, bytes) in &garbage {
            if bytes.iter().any(|b| *b != 0) {
                poke(tmp.path(), LEDGER + entry * ENTRY, bytes);
            }
        }
        match b.try_acquire_many(ask) {
            Ok(g) => prop_assert!(used + g.units() <= 12, "{used} held + {ask} > 12"),
            Err(TryAcquireError::WouldBlock { .. }) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
        drop(held);
        // Every lane is free: whatever garbage is left is stale, and everything fits again.
        prop_assert!(b.try_acquire_many(12).is_ok());
    }
}
