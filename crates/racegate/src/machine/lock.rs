//! The cross-process protocol: lanes, tickets, the queue lock, and the watchers that wait on them.
//!
//! # Files (in `<lock dir>/<gate>/`)
//! - `lane.<i>`: one per unit of capacity. A holder keeps an exclusive `flock` on one lane for as long as it
//!   holds the gate. This lock *is* the gate: the kernel drops it when the holder dies, however
//!   it dies, so a SIGKILLed holder can never wedge the machine.
//! - `queue`: a 16-byte header (next ticket number, capacity) and a lock held only while a
//!   ticket is drawn (a few non-blocking system calls), never while waiting.
//! - `waiting`: every queued waiter keeps a shared lock on it. An arrival that can take an
//!   exclusive lock on it (without blocking) knows nobody is queued and may take a free lane
//!   at once; otherwise it must queue.
//! - `t.<seq>`: a waiter's ticket, locked exclusively by its owner from before it becomes
//!   visible (created as a temp file, locked, then renamed) until its owner holds a lane, gives
//!   up, or dies. Its contents are the waiter's record.
//! - `lane.<i>.rec`: the holder's record, rewritten in place (one padded write, checksummed)
//!   and spoiled (first byte `-`) before the lane is released.
//!
//! # Order
//! An arrival that finds nobody queued (its exclusive probe of `waiting` succeeds) and a lane
//! free takes the lane; the probe orders it against waiters registering at the same moment.
//! Otherwise it draws the next ticket number under the queue lock. Tickets are served in number order: a waiter blocks on the nearest
//! *live* ticket below its own (a shared `flock` on it, which the kernel grants when that
//! waiter leaves for any reason); the waiter with no live ticket below it is the head and is
//! the only one that waits for a lane. A dead waiter's ticket lock is released by the kernel,
//! its successor wakes, finds the ticket unlocked, deletes it and moves up: it leaves the
//! queue without stalling it.
//!
//! # Why it cannot deadlock
//! The queue lock is held only around non-blocking calls. A waiter blocks only on a ticket
//! with a smaller number or, as the head, on a lane; a lane holder blocks on nothing of ours.
//! So every wait points strictly down a total order (ticket numbers, then lanes) and the
//! wait-for graph has no cycle. (A holder that asks for the same exclusive gate again waits
//! for itself, as with any non-reentrant lock.)

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use super::dir::LockDir;
use super::history::History;
use super::record::Record;
use super::MachineGateError;

pub(crate) const QUEUE_FILE: &str = "queue";
const WAITING_FILE: &str = "waiting";
const TICKET_PREFIX: &str = "t.";
/// The largest capacity of a machine-wide gate (one lane file per unit).
pub const MAX_CAPACITY: u32 = 64;

/// The old name of [`MAX_CAPACITY`].
#[deprecated(note = "renamed to `MAX_CAPACITY`")]
pub const MAX_SLOTS: u32 = MAX_CAPACITY;

pub(crate) fn lane_path(dir: &Path, lane: u32) -> PathBuf {
    dir.join(format!("lane.{lane}"))
}

pub(crate) fn rec_path(dir: &Path, lane: u32) -> PathBuf {
    dir.join(format!("lane.{lane}.rec"))
}

pub(crate) fn ticket_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(TICKET_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn ticket_name(seq: u64) -> String {
    format!("{TICKET_PREFIX}{seq:020}")
}

/// Open (creating) a file in a gate directory: owner-only, never through a symlink.
pub(crate) fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

pub(crate) fn open_ro(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// `Ok(true)` locked, `Ok(false)` held by someone else.
pub(crate) fn try_flock(file: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match flock(file, op) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn blocking_flock(file: &File, exclusive: bool) -> io::Result<()> {
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    loop {
        match flock(file, op) {
            Err(Errno::INTR) => continue,
            r => return r.map_err(Into::into),
        }
    }
}

/// Delete `path` only if it is still the file `file` has open: a name can be reused after we
/// opened it, and we must never delete someone else's fresh file.
pub(crate) fn unlink_if_same(path: &Path, file: &File) {
    if let (Ok(a), Ok(b)) = (file.metadata(), fs::symlink_metadata(path)) {
        if a.dev() == b.dev() && a.ino() == b.ino() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Read a small file whole, refusing anything larger than `cap`.
pub(crate) fn read_capped(file: &mut File, cap: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.take(cap as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The queue header: next ticket number and capacity, little-endian.
pub(crate) fn read_header(queue: &File) -> Option<(u64, u32)> {
    let mut buf = [0u8; 16];
    queue.read_exact_at(&mut buf, 0).ok()?;
    let seq = u64::from_le_bytes(buf[..8].try_into().ok()?);
    let capacity = u64::from_le_bytes(buf[8..].try_into().ok()?);
    let capacity = u32::try_from(capacity)
        .ok()
        .filter(|s| (1..=MAX_CAPACITY).contains(s))?;
    Some((seq, capacity))
}

fn write_header(queue: &File, seq: u64, capacity: u32) -> io::Result<()> {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..].copy_from_slice(&(capacity as u64).to_le_bytes());
    queue.write_all_at(&buf, 0)
}

/// Releases a `flock` when dropped.
struct Unlock<'a>(&'a File);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        let _ = flock(self.0, FlockOperation::Unlock);
    }
}

/// What the caller asked for, beyond the gate itself.
pub(crate) struct Spec<'a> {
    pub(crate) label: Option<&'a str>,
    pub(crate) command: &'a [String],
}

/// Why an acquisition did not succeed.
pub(crate) enum Failure {
    /// `try` only: the gate is busy or others are queued.
    WouldBlock,
    /// The deadline passed.
    TimedOut,
    /// Something in the lock directory failed.
    Err(MachineGateError),
}

impl From<MachineGateError> for Failure {
    fn from(e: MachineGateError) -> Self {
        Failure::Err(e)
    }
}

/// The files of one gate, opened by one process. Threads of the process share it; the queue
/// mutex keeps them from sharing the queue lock's open file description at the same time
/// (`flock` locks belong to open file descriptions, so two threads on one description would
/// not exclude each other). Every lane and ticket lock is taken on a fresh description.
pub(crate) struct GateFiles {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) capacity: u32,
    queue: Mutex<QueueFiles>,
    queue_path: PathBuf,
    pub(crate) history: History,
    /// Write holder records (off: faster, but `status` and timeout messages cannot name holders).
    pub(crate) records: bool,
    /// `lane.<i>.rec`, opened once: only the lane's holder writes it, so no two threads do.
    rec_files: Vec<OnceLock<File>>,
}

struct QueueFiles {
    queue: File,
    waiting_probe: File,
}

impl GateFiles {
    pub(crate) fn open(
        root: &LockDir,
        name: &str,
        capacity: u32,
    ) -> Result<GateFiles, MachineGateError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(MachineGateError::BadCapacity {
                gate: name.to_owned(),
                requested: capacity,
                max: MAX_CAPACITY,
            });
        }
        let dir = root.gate_dir(name)?;
        let io_err = |op: &'static str, path: &Path| {
            let (gate, path) = (name.to_owned(), path.to_owned());
            move |source| MachineGateError::Io {
                gate,
                op,
                path,
                source,
            }
        };
        let queue_path = dir.join(QUEUE_FILE);
        let queue = open_rw(&queue_path).map_err(io_err("open", &queue_path))?;
        {
            blocking_flock(&queue, true).map_err(io_err("lock", &queue_path))?;
            let _unlock = Unlock(&queue);
            match read_header(&queue) {
                Some((_, existing)) if existing == capacity => {}
                Some((seq, existing)) => {
                    // A different capacity is only safe to adopt while nobody uses the gate.
                    if !idle(&dir, existing.max(capacity)).map_err(io_err("inspect", &dir))? {
                        return Err(MachineGateError::CapacityMismatch {
                            gate: name.to_owned(),
                            existing,
                            requested: capacity,
                        });
                    }
                    write_header(&queue, seq, capacity).map_err(io_err("write", &queue_path))?;
                }
                None => {
                    // New or damaged header: restart numbering above every ticket present, so
                    // ticket order still matches arrival order.
                    let seq = max_ticket(&dir).map_err(io_err("read", &dir))?;
                    write_header(&queue, seq, capacity).map_err(io_err("write", &queue_path))?;
                }
            }
        }
        let waiting_path = dir.join(WAITING_FILE);
        let waiting_probe = open_rw(&waiting_path).map_err(io_err("open", &waiting_path))?;
        Ok(GateFiles {
            name: name.to_owned(),
            history: History::new(&dir),
            dir,
            capacity,
            queue: Mutex::new(QueueFiles {
                queue,
                waiting_probe,
            }),
            queue_path,
            records: true,
            rec_files: (0..capacity).map(|_| OnceLock::new()).collect(),
        })
    }

    fn io_err(&self, op: &'static str, path: &Path, source: io::Error) -> MachineGateError {
        MachineGateError::Io {
            gate: self.name.clone(),
            op,
            path: path.to_owned(),
            source,
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, QueueFiles> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take a lane: at once if nobody is queued and one is free; else (unless `try_only`) queue
    /// for one until `deadline`.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        spec: &Spec<'_>,
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Lease, Failure> {
        let start = Instant::now();
        let (ticket, waiting) = {
            let q = self.lock_queue();
            // Fast path, without the queue lock: nobody queued (nobody holds `waiting` shared)
            // and a lane free. An arrival is ordered by this probe: a waiter that registers
            // after it queues behind us, one that registered before it makes us queue.
            let nobody_queued = try_flock(&q.waiting_probe, true)
                .map_err(|e| self.io_err("lock", &self.dir.join(WAITING_FILE), e))?;
            if nobody_queued {
                let _ = flock(&q.waiting_probe, FlockOperation::Unlock);
                if let Some((lane, file)) = self.try_lanes()? {
                    drop(q);
                    return Ok(self.lease(lane, file, spec, start));
                }
            }
            if try_only {
                return Err(Failure::WouldBlock);
            }
            blocking_flock(&q.queue, true).map_err(|e| self.io_err("lock", &self.queue_path, e))?;
            let _unlock = Unlock(&q.queue);
            let (seq, capacity) = read_header(&q.queue).unwrap_or((0, self.capacity));
            let seq = seq + 1;
            write_header(&q.queue, seq, capacity)
                .map_err(|e| self.io_err("write", &self.queue_path, e))?;
            let ticket = self.create_ticket(seq, spec)?;
            let waiting_path = self.dir.join(WAITING_FILE);
            let waiting =
                open_rw(&waiting_path).map_err(|e| self.io_err("open", &waiting_path, e))?;
            // Blocks at most for the two system calls during which another process's fast path
            // holds its exclusive probe.
            blocking_flock(&waiting, false).map_err(|e| self.io_err("lock", &waiting_path, e))?;
            (ticket, waiting)
        };
        let (lane, file) = self.wait_in_queue(&ticket, deadline)?;
        // Leave the queue: our successor wakes and becomes the head.
        drop(ticket);
        drop(waiting);
        Ok(self.lease(lane, file, spec, start))
    }

    fn wait_in_queue(
        &self,
        ticket: &Ticket,
        deadline: Option<Instant>,
    ) -> Result<(u32, File), Failure> {
        loop {
            if let Some(pred) = self.nearest_live_ticket_before(ticket.seq)? {
                match deadline {
                    None => {
                        // Wait for that one waiter to leave; then look again.
                        match open_ro(&pred) {
                            Ok(f) => blocking_flock(&f, false)
                                .map_err(|e| self.io_err("lock", &pred, e))?,
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(self.io_err("open", &pred, e).into()),
                        }
                    }
                    Some(_) => {
                        if !wait_until_free(&[pred], false, deadline) {
                            return Err(Failure::TimedOut);
                        }
                    }
                }
                continue;
            }
            // Head of the queue.
            if let Some(lane) = self.try_lanes()? {
                return Ok(lane);
            }
            if self.capacity == 1 && deadline.is_none() {
                // The one lane: let the kernel hand it over directly.
                let path = lane_path(&self.dir, 0);
                let f = open_rw(&path).map_err(|e| self.io_err("open", &path, e))?;
                blocking_flock(&f, true).map_err(|e| self.io_err("lock", &path, e))?;
                return Ok((0, f));
            }
            let lanes: Vec<PathBuf> = (0..self.capacity)
                .map(|i| lane_path(&self.dir, i))
                .collect();
            if !wait_until_free(&lanes, true, deadline) {
                return Err(Failure::TimedOut);
            }
        }
    }

    fn try_lanes(&self) -> Result<Option<(u32, File)>, MachineGateError> {
        for lane in 0..self.capacity {
            let path = lane_path(&self.dir, lane);
            let f = open_rw(&path).map_err(|e| self.io_err("open", &path, e))?;
            if try_flock(&f, true).map_err(|e| self.io_err("lock", &path, e))? {
                return Ok(Some((lane, f)));
            }
        }
        Ok(None)
    }

    fn create_ticket(&self, seq: u64, spec: &Spec<'_>) -> Result<Ticket, MachineGateError> {
        let tmp = self.dir.join(format!(".{}.tmp", ticket_name(seq)));
        let path = self.dir.join(ticket_name(seq));
        let _ = fs::remove_file(&tmp); // left by a writer that died mid-way
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.io_err("create", &tmp, e))?;
        // Locked before it has its visible name, so nobody ever sees an unlocked live ticket.
        try_flock(&file, true).map_err(|e| self.io_err("lock", &tmp, e))?;
        let record = Record::for_self(seq, None, spec.label, spec.command);
        file.write_all(record.encode().as_bytes())
            .map_err(|e| self.io_err("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| self.io_err("rename", &tmp, e))?;
        Ok(Ticket { seq, path, file })
    }

    /// The live ticket with the largest number below `seq`, deleting dead ones on the way.
    fn nearest_live_ticket_before(&self, seq: u64) -> Result<Option<PathBuf>, MachineGateError> {
        let mut below: Vec<u64> = fs::read_dir(&self.dir)
            .map_err(|e| self.io_err("read", &self.dir, e))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(ticket_seq))
            .filter(|s| *s < seq)
            .collect();
        below.sort_unstable_by(|a, b| b.cmp(a));
        for s in below {
            let path = self.dir.join(ticket_name(s));
            let f = match open_ro(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_err("open", &path, e)),
            };
            if try_flock(&f, false).map_err(|e| self.io_err("lock", &path, e))? {
                // Nobody holds it: its owner died between queueing and leaving.
                unlink_if_same(&path, &f);
            } else {
                return Ok(Some(path));
            }
        }
        Ok(None)
    }

    fn lease(self: &Arc<Self>, lane: u32, file: File, spec: &Spec<'_>, start: Instant) -> Lease {
        let waited = start.elapsed();
        if self.records {
            let record = Record::for_self(0, Some(lane), spec.label, spec.command);
            // Visibility only: a failure here must not cost the caller the gate it now holds.
            if let Err(e) = self.write_holder_record(lane, record.encode().as_bytes()) {
                tracing::debug!(gate = %self.name, error = %e, "could not write holder record");
            }
        }
        Lease {
            files: Arc::clone(self),
            lane,
            file: Some(file),
            waited,
            acquired: Instant::now(),
            label: spec.label.map(str::to_owned),
        }
    }

    fn rec_file(&self, lane: u32) -> io::Result<&File> {
        let cell = &self.rec_files[lane as usize];
        if let Some(f) = cell.get() {
            return Ok(f);
        }
        let f = open_rw(&rec_path(&self.dir, lane))?;
        Ok(cell.get_or_init(|| f))
    }

    /// Rewrite the lane's record in place: the whole record in one write at offset 0, padded
    /// with newlines to the file's length. The file never shrinks or grows back, so after the
    /// first use no blocks are allocated or freed (on ext4 and APFS that is most of the cost
    /// of a temp file and a rename). A reader racing the write may see a mix of the old and
    /// new bytes; the record's checksum line rejects that, as it rejects the invalidated
    /// record a released lane leaves (see `Lease::drop`).
    fn write_holder_record(&self, lane: u32, bytes: &[u8]) -> io::Result<()> {
        let f = self.rec_file(lane)?;
        let mut len = f.metadata()?.len() as usize;
        if len > super::record::MAX_RECORD_LEN {
            // Padding to this length would make every later record unreadable: start over.
            f.set_len(0)?;
            len = 0;
        }
        if len > bytes.len() {
            let mut padded = Vec::with_capacity(len);
            padded.extend_from_slice(bytes);
            padded.resize(len, b'\n');
            f.write_all_at(&padded, 0)
        } else {
            f.write_all_at(bytes, 0)
        }
    }

    /// Current holders whose records can be believed (lane locked, process the same).
    pub(crate) fn holders(&self) -> Vec<Record> {
        (0..self.capacity)
            .filter_map(|lane| believed_holder(&self.dir, lane))
            .collect()
    }
}

/// The holder of `lane` if its lock is held and its record is current.
pub(crate) fn believed_holder(dir: &Path, lane: u32) -> Option<Record> {
    let lock = open_ro(&lane_path(dir, lane)).ok()?;
    if try_flock(&lock, false).ok()? {
        return None; // free
    }
    let mut f = open_ro(&rec_path(dir, lane)).ok()?;
    let bytes = read_capped(&mut f, super::record::MAX_RECORD_LEN).ok()?;
    Record::parse(&bytes).filter(Record::is_current)
}

/// Live tickets (locked by their owner) with their records, in queue order. A record that
/// cannot be read or believed still counts as a waiter, with `None`.
pub(crate) fn live_tickets(dir: &Path) -> Vec<(u64, Option<Record>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut seqs: Vec<u64> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(ticket_seq))
        .collect();
    seqs.sort_unstable();
    let mut out = Vec::new();
    for seq in seqs {
        let path = dir.join(ticket_name(seq));
        let Ok(mut f) = open_ro(&path) else { continue };
        match try_flock(&f, false) {
            Ok(true) => unlink_if_same(&path, &f),
            Ok(false) => {
                let rec = read_capped(&mut f, super::record::MAX_RECORD_LEN)
                    .ok()
                    .and_then(|b| Record::parse(&b))
                    .filter(Record::is_current);
                out.push((seq, rec));
            }
            Err(_) => {}
        }
    }
    out
}

fn max_ticket(dir: &Path) -> io::Result<u64> {
    Ok(fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(ticket_seq))
        .max()
        .unwrap_or(0))
}

/// Nobody holds a lane below `lanes` and nobody is queued.
fn idle(dir: &Path, lanes: u32) -> io::Result<bool> {
    for lane in 0..lanes {
        let f = open_rw(&lane_path(dir, lane))?;
        if !try_flock(&f, true)? {
            return Ok(false);
        }
    }
    let w = open_rw(&dir.join(WAITING_FILE))?;
    try_flock(&w, true)
}

/// Spoil a holder record's first line (one byte, no truncation), so no reader believes it.
pub(crate) fn invalidate_record(f: &File) -> io::Result<()> {
    f.write_all_at(b"-", 0)
}

/// A waiter's place in the queue. Dropping it deletes the file, then closes it, which releases
/// the lock and wakes the successor.
struct Ticket {
    seq: u64,
    path: PathBuf,
    file: File,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        unlink_if_same(&self.path, &self.file);
    }
}

/// A held lane. Dropping it deletes the holder record, releases the lane, and appends the
/// acquisition to the history log.
pub(crate) struct Lease {
    files: Arc<GateFiles>,
    lane: u32,
    file: Option<File>,
    pub(crate) waited: Duration,
    acquired: Instant,
    label: Option<String>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let held = self.acquired.elapsed();
        // Record first: once the lane is free the next holder writes its own.
        if self.files.records {
            if let Some(f) = self.files.rec_files[self.lane as usize].get() {
                let _ = invalidate_record(f);
            }
        }
        drop(self.file.take());
        self.files
            .history
            .append(self.waited, held, self.label.as_deref());
    }
}

/// Block until one of `paths` could be locked (shared or exclusive), or until `deadline`.
/// Returns `false` on deadline. The lock itself is released again at once: the caller looks
/// again and takes what it needs under the protocol's rules.
///
/// Each path is watched by at most one helper thread per process, blocked in `flock`, shared by
/// every thread waiting on that path. A caller that times out simply stops listening; the
/// helper ends when the path is released (by its owner leaving, or its death), so helpers never
/// pile up beyond one per watched file.
pub(crate) fn wait_until_free(
    paths: &[PathBuf],
    exclusive: bool,
    deadline: Option<Instant>,
) -> bool {
    let (registry, cv) = watchers();
    let mut reg = registry.lock().unwrap_or_else(PoisonError::into_inner);
    let watches: Vec<Arc<Watch>> = paths
        .iter()
        .map(|p| {
            let key = (p.clone(), exclusive);
            Arc::clone(reg.entry(key.clone()).or_insert_with(|| {
                let watch = Arc::new(Watch {
                    fired: std::sync::atomic::AtomicBool::new(false),
                });
                spawn_watcher(key, Arc::clone(&watch));
                watch
            }))
        })
        .collect();
    loop {
        if watches.iter().any(|w| w.fired.load(Ordering::Acquire)) {
            // A watch whose thread could not start fired at once; forget it so the next waiter
            // tries again rather than spinning on it.
            reg.retain(|_, w| !w.fired.load(Ordering::Acquire));
            return true;
        }
        match deadline {
            None => reg = cv.wait(reg).unwrap_or_else(PoisonError::into_inner),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return false;
                }
                reg = cv
                    .wait_timeout(reg, d - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}

struct Watch {
    fired: std::sync::atomic::AtomicBool,
}

type Registry = Mutex<HashMap<(PathBuf, bool), Arc<Watch>>>;

fn watchers() -> &'static (Registry, Condvar) {
    static W: OnceLock<(Registry, Condvar)> = OnceLock::new();
    W.get_or_init(|| (Mutex::new(HashMap::new()), Condvar::new()))
}

fn spawn_watcher(key: (PathBuf, bool), watch: Arc<Watch>) {
    let mine = Arc::clone(&watch);
    let run = move || {
        // Any outcome wakes the waiters: released, gone (its owner left), or an error that the
        // waiters will meet themselves when they look again.
        if let Ok(f) = open_ro(&key.0) {
            let _ = blocking_flock(&f, key.1);
        }
        let (registry, cv) = watchers();
        let mut reg = registry.lock().unwrap_or_else(PoisonError::into_inner);
        watch.fired.store(true, Ordering::Release);
        if reg.get(&key).is_some_and(|w| Arc::ptr_eq(w, &watch)) {
            reg.remove(&key);
        }
        cv.notify_all();
    };
    if std::thread::Builder::new()
        .name("racegate-watch".into())
        .spawn(run)
        .is_err()
    {
        // No thread: report "fired" so the caller looks again instead of sleeping forever.
        mine.fired.store(true, Ordering::Release);
    }
}
