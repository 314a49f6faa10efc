//! The machine-wide gate against bad directories, stale and garbage records, and in-process use.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use racegate::machine::{HistoryEntry, LockDir, Record};
use racegate::{AcquireTimeoutError, MachineGate, MachineGateError};

fn open(dir: &Path, name: &str) -> Result<MachineGate, MachineGateError> {
    MachineGate::builder(name).dir(dir).open()
}

#[test]
fn a_symlinked_lock_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    symlink(&real, &link).unwrap();
    let err = open(&link, "gpu").unwrap_err();
    assert!(matches!(err, MachineGateError::Symlink { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("symlink") && msg.contains(&format!("`{}`", link.display())),
        "{msg}"
    );
}

#[test]
fn a_foreign_owned_lock_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("theirs");
    fs::create_dir(&dir).unwrap();
    let me = rustix::process::getuid().as_raw();
    let other = if me == 65534 { 65533 } else { 65534 };
    if rustix::fs::chown(&dir, Some(rustix::fs::Uid::from_raw(other)), None).is_err() {
        // Only root can give a directory away; without it, the case cannot be built here.
        eprintln!("skipped: cannot chown as uid {me}");
        return;
    }
    let err = open(&dir, "gpu").unwrap_err();
    assert!(
        matches!(err, MachineGateError::ForeignOwner { owner, .. } if owner == other),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("uid `{other}`")), "{err}");
}

#[test]
fn a_world_writable_dir_a_file_and_an_uncreatable_dir_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let open_dir = tmp.path().join("open");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        open(&open_dir, "gpu"),
        Err(MachineGateError::Insecure { mode: 0o777, .. })
    ));

    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    assert!(matches!(
        open(&file, "gpu"),
        Err(MachineGateError::NotADirectory { .. })
    ));

    // Nobody, root included, can create a directory under /proc/self.
    let err = open(Path::new("/proc/self/racegate-test"), "gpu").unwrap_err();
    assert!(matches!(err, MachineGateError::Dir { .. }), "{err:?}");
    assert!(
        err.to_string().contains("RACEGATE_DIR"),
        "the error hints at the fix: {err}"
    );
}

#[test]
fn the_lock_dir_is_created_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    let ld = LockDir::at(&dir).unwrap();
    assert_eq!(
        fs::metadata(ld.path()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    open(&dir, "gpu").unwrap();
    assert_eq!(
        fs::metadata(dir.join("gpu")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(ld.gates().unwrap(), ["gpu"]);
}

#[test]
fn bad_names_and_capacities_are_refused_and_capacities_must_agree() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        open(tmp.path(), "../x"),
        Err(MachineGateError::BadName { .. })
    ));
    let zero = MachineGate::builder("gpu")
        .dir(tmp.path())
        .capacity(0)
        .open();
    assert!(matches!(zero, Err(MachineGateError::BadCapacity { .. })));
    let one = open(tmp.path(), "gpu").unwrap();
    let _held = one.acquire_blocking().unwrap();
    let two = MachineGate::builder("gpu")
        .dir(tmp.path())
        .capacity(2)
        .open()
        .unwrap_err();
    assert!(
        matches!(
            two,
            MachineGateError::CapacityMismatch {
                existing: 1,
                requested: 2,
                ..
            }
        ),
        "{two:?}"
    );
    drop(_held);
    // Idle, the gate may be reconfigured.
    MachineGate::builder("gpu")
        .dir(tmp.path())
        .capacity(2)
        .open()
        .unwrap();
}

#[test]
fn stale_recycled_and_garbage_records_are_ignored_and_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = open(tmp.path(), "gpu").unwrap();
    let dir = gate.dir().to_owned();
    // A holder record naming pid 1 (alive) with another start time: a recycled PID.
    let recycled = Record {
        pid: 1,
        start: 1,
        seq: 0,
        lane: Some(0),
        since_ms: 1,
        label: Some("ghost".into()),
        command: vec!["old".into()],
    };
    let enc = |r: &Record| r.encode();
    assert_eq!(
        Record::parse(enc(&recycled).as_bytes()).as_ref(),
        Some(&recycled)
    );
    assert!(
        !recycled.is_current(),
        "pid 1 started long before `start=1` tick"
    );
    fs::write(dir.join("lane.0.rec"), enc(&recycled)).unwrap();
    // Tickets left by dead waiters: one with the recycled record, one garbage, one truncated.
    fs::write(
        dir.join("t.00000000000000000001"),
        enc(&Record {
            lane: None,
            ..recycled.clone()
        }),
    )
    .unwrap();
    fs::write(dir.join("t.00000000000000000002"), b"\xff\xfe garbage").unwrap();
    fs::write(dir.join("t.00000000000000000003"), &enc(&recycled)[..20]).unwrap();
    fs::write(dir.join("lane.1.rec"), b"racegate-record 1\npid=").unwrap();

    let st = gate.status();
    assert!(st.holders.is_empty(), "{st:?}");
    assert!(st.waiters.is_empty(), "{st:?}");
    for f in [
        "t.00000000000000000001",
        "t.00000000000000000002",
        "t.00000000000000000003",
    ] {
        assert!(!dir.join(f).exists(), "{f} was not cleaned");
    }
    let rec = fs::read(dir.join("lane.0.rec")).unwrap();
    assert_eq!(
        rec.first(),
        Some(&b'-'),
        "the stale holder record was not spoiled"
    );
    // The gate is free at once.
    drop(gate.try_acquire().unwrap());

    // While the lane is really held, a recycled record is still not believed: the holder shows
    // with no record rather than as the ghost.
    let held = gate.acquire_blocking().unwrap();
    fs::write(dir.join("lane.0.rec"), enc(&recycled)).unwrap();
    let st = gate.status();
    assert_eq!(st.holders.len(), 1);
    assert_eq!(st.holders[0].record, None, "{st:?}");
    drop(held);
}

#[test]
fn an_oversized_record_file_does_not_hide_later_holders() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = open(tmp.path(), "gpu").unwrap();
    fs::write(gate.dir().join("lane.0.rec"), vec![b'x'; 200_000]).unwrap();
    let held = gate.labeled("big").acquire_blocking().unwrap();
    let st = gate.status();
    let rec = st.holders[0]
        .record
        .as_ref()
        .expect("the holder's record is readable");
    assert_eq!(rec.label.as_deref(), Some("big"));
    assert_eq!(rec.pid, std::process::id());
    drop(held);
}

#[test]
fn a_garbage_queue_header_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path(), "gpu").unwrap());
    fs::write(tmp.path().join("gpu/queue"), b"xyz").unwrap();
    let gate = open(tmp.path(), "gpu").unwrap();
    drop(
        gate.acquire_blocking_timeout(Duration::from_secs(5))
            .unwrap(),
    );
    assert_eq!(gate.status().capacity, 1);
}

#[test]
fn threads_of_one_process_and_separate_handles_exclude_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    // Two handles on the same gate: separate in-process gates, so only the file lock keeps
    // them apart.
    let a = open(tmp.path(), "gpu").unwrap();
    let b = open(tmp.path(), "gpu").unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let g = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (inside, max) = (Arc::clone(&inside), Arc::clone(&max));
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let _guard = g.acquire_blocking_timeout(Duration::from_secs(20)).unwrap();
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(max.load(Ordering::SeqCst), 1);
    assert_eq!(
        a.gate().stats().acquisitions + b.gate().stats().acquisitions,
        160
    );
    assert_eq!(a.status().history.count, 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_acquire_times_out_and_a_cancelled_wait_leaves_the_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path(), "gpu").unwrap();
    let b = open(tmp.path(), "gpu").unwrap();
    let held = a.labeled("first").acquire().await.unwrap();
    let err = b
        .acquire_timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AcquireTimeoutError::TimedOut { .. }),
        "{err:?}"
    );
    // A wait dropped while queued machine-wide...
    let pending = tokio::time::timeout(Duration::from_millis(100), b.acquire()).await;
    assert!(pending.is_err());
    drop(held);
    // ...does not keep the gate from the next caller.
    let again = tokio::time::timeout(Duration::from_secs(5), b.acquire()).await;
    assert!(again
        .expect("gate not handed on after a cancelled wait")
        .is_ok());
}

proptest! {
    #[test]
    fn record_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Record::parse(&bytes);
    }

    #[test]
    fn record_parsing_never_panics_on_near_records(
        lines in proptest::collection::vec("(pid|start|seq|lane|since_ms|label|arg|end|x)(=[0-9a-z\\\\]{0,12})?", 0..12)
    ) {
        let text = format!("racegate-record 1\n{}", lines.join("\n"));
        let _ = Record::parse(text.as_bytes());
    }

    #[test]
    fn history_parsing_never_panics(line in "\\PC{0,80}") {
        let _ = HistoryEntry::parse(&line);
    }

    #[test]
    fn records_round_trip(
        pid in 1u32..=i32::MAX as u32, start: u64, seq: u64, lane: Option<u32>, since_ms: u64,
        label: Option<String>, command: Vec<String>,
    ) {
        let r = Record { pid, start, seq, lane, since_ms, label, command };
        prop_assert_eq!(Record::parse(r.encode().as_bytes()), Some(r));
    }

    /// A reader racing an in-place rewrite may read the new record's first bytes and the old
    /// one's rest; the checksum must reject every such mix that is neither record.
    #[test]
    fn a_mix_of_two_records_is_never_believed(
        a_label: String, b_label: String, a_pid in 1u32..1000, b_pid in 1u32..1000,
        cut: prop::sample::Index,
    ) {
        let rec = |pid, label: String| Record {
            pid, start: 7, seq: 0, lane: Some(0), since_ms: 1, label: Some(label),
            command: vec!["x".into()],
        };
        let (a, b) = (rec(a_pid, a_label), rec(b_pid, b_label));
        let (mut ea, mut eb) = (a.encode().into_bytes(), b.encode().into_bytes());
        let len = ea.len().max(eb.len());
        ea.resize(len, b'\n');
        eb.resize(len, b'\n');
        let cut = cut.index(len + 1);
        let mixed: Vec<u8> = eb[..cut].iter().chain(&ea[cut..]).copied().collect();
        if let Some(r) = Record::parse(&mixed) {
            prop_assert!(r == a || r == b, "a mix was believed: {:?}", r);
        }
    }
}
