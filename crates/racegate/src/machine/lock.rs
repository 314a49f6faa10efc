//! The cross-process protocol: lanes, the ledger, tickets, the queue lock.
//!
//! # Files (in `<lock dir>/<gate>/`)
//! - `lane.<i>`: one per possible holder (`min(capacity × devices, 64)` of them). A holder keeps
//!   an exclusive `flock` on one lane for as long as it holds its share of the gate. The kernel
//!   drops it when the holder dies, however it dies, so a SIGKILLed holder gives back its whole
//!   share (all its units, on all its devices) at once and can never wedge the machine.
//! - `queue`: the gate's declaration (capacity per device, devices), the next ticket number and
//!   the ledger: per lane, the share of its holder (`budget.rs` has the layout). Its lock is held
//!   only around a few non-blocking system calls (drawing a ticket; checking and taking a
//!   share), never while waiting.
//! - `waiting`: every queued waiter keeps a shared lock on it. An arrival that can take an
//!   exclusive lock on it (without blocking) knows nobody is queued and may take a share at
//!   once; otherwise it must queue.
//! - `t.<seq>`: a waiter's ticket, locked exclusively by its owner from before it becomes
//!   visible (created as a temp file, locked, then renamed) until its owner holds a lane, gives
//!   up, or dies. Its contents are the waiter's record.
//! - `lane.<i>.rec`: the holder's record, rewritten in place (one padded write, checksummed)
//!   and spoiled (first byte `-`) before the lane is released.
//!
//! # Two ways to hold
//! - **Exclusive gates** (capacity 1, at most one device: one lane): the lane's lock *is* the
//!   whole gate, so an arrival takes it without the queue lock and the ledger is not used.
//! - **Shared gates** (one lane per holder): a share is taken under the queue lock. The taker
//!   accounts for the ledger (`budget::account`: entries of locked lanes count, stale ones are
//!   cleared, garbage counts as the whole gate), places its request (`budget::place`), locks a
//!   free lane and writes its entry, all before releasing the queue lock. A holder zeroes its
//!   entry before it unlocks its lane; one that dies leaves an entry whose lane is unlocked,
//!   which the next taker sees as stale.
//!
//! # Order
//! An arrival that finds nobody queued (its exclusive probe of `waiting` succeeds) and room for
//! its request takes it; otherwise it draws the next ticket number under the queue lock.
//! Tickets are served in number order: a waiter blocks on the nearest *live* ticket below its
//! own (a shared `flock` on it, which the kernel grants when that waiter leaves for any reason);
//! the waiter with no live ticket below it is the head, the only one that takes from the gate
//! while others are queued. A large request at the head therefore holds back smaller ones
//! behind it until it fits: it is never starved. A dead waiter's ticket lock is released by the
//! kernel; its successor finds the ticket unlocked, deletes it and moves up.
//!
//! # Why it cannot deadlock
//! The queue lock is held only around non-blocking calls. A waiter blocks only on a ticket
//! with a smaller number or, as the head, on lanes held by holders; a holder blocks on nothing
//! of ours. So every wait points strictly down a total order (ticket numbers, then holders) and
//! the wait-for graph has no cycle. The head holds nothing while it waits (it takes its whole
//! share in one step under the queue lock), so no holder ever waits for it. (A holder that asks
//! for more of the same gate while holding may wait for itself, as with any non-reentrant lock.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use super::budget::{
    self, account, decode_declaration, decode_header, place, Declaration, Entry, Header, Shape,
    DEVICES_OFFSET, ENTRY_LEN, HEADER_LEN, LEDGER_OFFSET, MAX_HOLDERS,
};
use super::dir::LockDir;
use super::history::History;
use super::record::Record;
use super::watch::wait_until_free;
use super::MachineGateError;

pub(crate) const QUEUE_FILE: &str = "queue";
/// The most bytes of the `queue` file an acquisition reads: header and a full ledger.
const QUEUE_PREFIX: usize = HEADER_LEN + ENTRY_LEN * MAX_HOLDERS as usize;
const WAITING_FILE: &str = "waiting";
const TICKET_PREFIX: &str = "t.";
/// The largest capacity of a machine-wide gate, in units per device (e.g. MiB of 1 TiB).
pub const MAX_CAPACITY: u32 = 1 << 20;

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

pub(crate) fn blocking_flock(file: &File, exclusive: bool) -> io::Result<()> {
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

/// Up to `len` bytes at `offset` (fewer at the end of the file).
pub(crate) fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let got = read_into(file, offset, &mut buf)?;
    buf.truncate(got);
    Ok(buf)
}

/// Fills `buf` from `offset` as far as the file goes; returns how many bytes were read.
fn read_into(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// What the `queue` file says, as far as it can be read: the header, the whole declaration
/// when it is intact, and the ledger.
pub(crate) struct QueueState {
    pub(crate) header: Option<Header>,
    pub(crate) declaration: Option<Declaration>,
    pub(crate) ledger: Vec<u8>,
}

/// Reads the whole `queue` file's state (for opening and for `status`).
pub(crate) fn read_queue_state(queue: &File) -> io::Result<QueueState> {
    let head = read_at(queue, 0, HEADER_LEN)?;
    let header = decode_header(&head).ok().flatten();
    let declaration = match &header {
        Some(h) => {
            let text = read_at(queue, DEVICES_OFFSET, h.devices_len as usize)?;
            decode_declaration(h, &text).ok()
        }
        None => None,
    };
    let ledger = read_at(queue, LEDGER_OFFSET, ENTRY_LEN * MAX_HOLDERS as usize)?;
    Ok(QueueState {
        header,
        declaration,
        ledger,
    })
}

/// Writes a declaration with ticket number `seq` and an empty ledger.
fn write_declaration(queue: &File, seq: u64, decl: &Declaration) -> io::Result<()> {
    let (head, text) = decl.encode(seq);
    queue.write_all_at(&[0u8; ENTRY_LEN * MAX_HOLDERS as usize], LEDGER_OFFSET)?;
    queue.write_all_at(&text, DEVICES_OFFSET)?;
    queue.write_all_at(&head, 0)
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
    pub(crate) decl: Declaration,
    /// `decl`'s device list checksum, as the header holds it (computed once).
    fingerprint: u64,
    /// Lane files: `decl.lanes()`. One lane means an exclusive gate (see the module docs).
    pub(crate) lanes: u32,
    queue: Mutex<QueueFiles>,
    queue_path: PathBuf,
    /// The `queue` file for writing ledger entries without the queue lock (a holder zeroing its
    /// own entry); `pwrite` needs no lock and this description never takes one.
    ledger: File,
    pub(crate) history: History,
    /// Write holder records (off: faster, but `status` and timeout messages cannot name holders).
    pub(crate) records: bool,
    /// `lane.<i>.rec`, opened once: only the lane's holder writes it, so no two threads do.
    rec_files: Vec<OnceLock<File>>,
    /// Descriptions of the lane files for probing whether a lane is held, opened once (an open
    /// and a close cost more than the probe's two `flock` calls). Used only under the queue
    /// mutex, and never to hold a lane.
    probes: Mutex<Vec<Option<File>>>,
}

struct QueueFiles {
    queue: File,
    waiting_probe: File,
}

/// The result of one attempt to take a share under the queue lock.
enum Take {
    Taken {
        lane: u32,
        file: File,
        entry: Entry,
    },
    /// No room now: wait for one of these lanes to be released, then look again.
    Busy(Vec<u32>),
}

impl GateFiles {
    pub(crate) fn open(
        root: &LockDir,
        name: &str,
        decl: Declaration,
    ) -> Result<GateFiles, MachineGateError> {
        if decl.capacity == 0 || decl.capacity > MAX_CAPACITY {
            return Err(MachineGateError::BadCapacity {
                gate: name.to_owned(),
                requested: decl.capacity,
                max: MAX_CAPACITY,
            });
        }
        if let Err(e) = budget::check_device_ids(&decl.devices) {
            return Err(MachineGateError::BadDevices {
                gate: name.to_owned(),
                reason: match e {
                    budget::BadDevices::TooMany(n) => format!(
                        "`{n}` devices declared, at most `{}` are supported",
                        budget::MAX_DEVICES
                    ),
                    budget::BadDevices::Id(id) => format!(
                        "device id `{id}` is not 1 to {} letters, digits, `-`, `_`, `.`, `:` or `/`",
                        budget::MAX_DEVICE_ID_LEN
                    ),
                    budget::BadDevices::Duplicate(id) => format!("device `{id}` is listed twice"),
                },
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
            let state = read_queue_state(&queue).map_err(io_err("read", &queue_path))?;
            let head = read_at(&queue, 0, HEADER_LEN).map_err(io_err("read", &queue_path))?;
            let write = |seq| write_declaration(&queue, seq, &decl);
            match (&state.header, &state.declaration) {
                (Some(h), Some(existing)) if *existing == decl => {
                    if head.len() < HEADER_LEN {
                        // The 16-byte header of an earlier version: write the full one.
                        write(h.seq).map_err(io_err("write", &queue_path))?;
                    }
                }
                (Some(h), Some(existing)) => {
                    // A different declaration is only safe to adopt while nobody uses the gate.
                    let lanes = existing.lanes().max(decl.lanes());
                    if !idle(&dir, lanes).map_err(io_err("inspect", &dir))? {
                        return Err(mismatch(name, existing, &decl));
                    }
                    write(h.seq).map_err(io_err("write", &queue_path))?;
                }
                (None, _) if head.is_empty() => {
                    // New: number tickets above any left from an earlier directory.
                    let seq = max_ticket(&dir).map_err(io_err("read", &dir))?;
                    write(seq).map_err(io_err("write", &queue_path))?;
                }
                _ => {
                    // Unreadable: only safe to replace while nobody uses the gate (its users'
                    // shares are in the ledger it belongs to). Numbering restarts above every
                    // ticket present, so ticket order still matches arrival order.
                    if !idle(&dir, MAX_HOLDERS).map_err(io_err("inspect", &dir))? {
                        return Err(MachineGateError::Damaged {
                            gate: name.to_owned(),
                            path: queue_path,
                        });
                    }
                    let seq = max_ticket(&dir).map_err(io_err("read", &dir))?;
                    write(seq).map_err(io_err("write", &queue_path))?;
                }
            }
        }
        let waiting_path = dir.join(WAITING_FILE);
        let waiting_probe = open_rw(&waiting_path).map_err(io_err("open", &waiting_path))?;
        let ledger = open_rw(&queue_path).map_err(io_err("open", &queue_path))?;
        let lanes = decl.lanes();
        Ok(GateFiles {
            name: name.to_owned(),
            history: History::new(&dir),
            dir,
            fingerprint: decl.fingerprint(),
            decl,
            lanes,
            queue: Mutex::new(QueueFiles {
                queue,
                waiting_probe,
            }),
            queue_path,
            ledger,
            records: true,
            rec_files: (0..lanes).map(|_| OnceLock::new()).collect(),
            probes: Mutex::new((0..lanes).map(|_| None).collect()),
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

    /// Header and ledger: the bytes of the `queue` file an acquisition reads.
    fn prefix_len(&self) -> usize {
        HEADER_LEN + ENTRY_LEN * self.lanes as usize
    }

    fn lock_queue(&self) -> MutexGuard<'_, QueueFiles> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The header and the ledger entries that fit in `buf` after it, checked against our
    /// declaration: every process must agree on it, also one that opened the gate while it was
    /// idle and then changed. Reads into the caller's (stack) buffer: this is on every
    /// acquisition's path.
    fn read_checked<'b>(
        &self,
        queue: &File,
        buf: &'b mut [u8],
    ) -> Result<(u64, &'b [u8]), MachineGateError> {
        let n = read_into(queue, 0, buf).map_err(|e| self.io_err("read", &self.queue_path, e))?;
        let bytes = &buf[..n];
        match decode_header(bytes) {
            Ok(Some(h)) if self.decl.matches_fingerprint(&h, self.fingerprint) => {
                Ok((h.seq, bytes.get(HEADER_LEN..).unwrap_or_default()))
            }
            _ => Err(
                match read_queue_state(queue).ok().and_then(|s| s.declaration) {
                    Some(existing) if existing != self.decl => {
                        mismatch(&self.name, &existing, &self.decl)
                    }
                    _ => MachineGateError::Damaged {
                        gate: self.name.clone(),
                        path: self.queue_path.clone(),
                    },
                },
            ),
        }
    }

    /// Take a share of `units` (at least one): at once if nobody is queued and it fits; else
    /// (unless `try_only`) queue for it until `deadline`.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        spec: &Spec<'_>,
        units: u32,
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Lease, Failure> {
        let start = Instant::now();
        let shape = self
            .decl
            .shape(units)
            .ok_or_else(|| self.unplaceable(units))?;
        if self.lanes == 1 {
            return self.acquire_exclusive(spec, deadline, try_only, start);
        }
        let (ticket, waiting) = {
            let q = self.lock_queue();
            blocking_flock(&q.queue, true).map_err(|e| self.io_err("lock", &self.queue_path, e))?;
            let unlock = Unlock(&q.queue);
            let nobody_queued = try_flock(&q.waiting_probe, true)
                .map_err(|e| self.io_err("lock", &self.dir.join(WAITING_FILE), e))?;
            if nobody_queued {
                let _ = flock(&q.waiting_probe, FlockOperation::Unlock);
            }
            let mut buf = [0u8; QUEUE_PREFIX];
            let (seq, ledger) = self.read_checked(&q.queue, &mut buf[..self.prefix_len()])?;
            if nobody_queued {
                if let Take::Taken { lane, file, entry } = self.try_take(ledger, shape)? {
                    drop(unlock);
                    drop(q);
                    return Ok(self.lease(lane, file, Some(entry), spec, start));
                }
            }
            if try_only {
                return Err(Failure::WouldBlock);
            }
            let queued = self.queue_up(&q, seq, spec)?;
            drop(unlock);
            queued
        };
        let (lane, file, entry) = self.wait_for_share(&ticket, shape, deadline)?;
        // Leave the queue: our successor wakes and becomes the head.
        drop(ticket);
        drop(waiting);
        Ok(self.lease(lane, file, Some(entry), spec, start))
    }

    /// The exclusive gate: its one lane is the whole gate, taken without the queue lock.
    fn acquire_exclusive(
        self: &Arc<Self>,
        spec: &Spec<'_>,
        deadline: Option<Instant>,
        try_only: bool,
        start: Instant,
    ) -> Result<Lease, Failure> {
        let (ticket, waiting) = {
            let q = self.lock_queue();
            self.read_checked(&q.queue, &mut [0u8; HEADER_LEN])?;
            // Fast path, without the queue lock: nobody queued (nobody holds `waiting` shared)
            // and the lane free. An arrival is ordered by this probe: a waiter that registers
            // after it queues behind us, one that registered before it makes us queue.
            let nobody_queued = try_flock(&q.waiting_probe, true)
                .map_err(|e| self.io_err("lock", &self.dir.join(WAITING_FILE), e))?;
            if nobody_queued {
                let _ = flock(&q.waiting_probe, FlockOperation::Unlock);
                if let Some(file) = self.try_lane(0)? {
                    drop(q);
                    return Ok(self.lease(0, file, None, spec, start));
                }
            }
            if try_only {
                return Err(Failure::WouldBlock);
            }
            blocking_flock(&q.queue, true).map_err(|e| self.io_err("lock", &self.queue_path, e))?;
            let _unlock = Unlock(&q.queue);
            let (seq, _) = self.read_checked(&q.queue, &mut [0u8; HEADER_LEN])?;
            self.queue_up(&q, seq, spec)?
        };
        let file = self.wait_for_lane(&ticket, deadline)?;
        drop(ticket);
        drop(waiting);
        Ok(self.lease(0, file, None, spec, start))
    }

    /// Under the queue lock: draw ticket `seq + 1`, create it, and register in `waiting`.
    fn queue_up(
        &self,
        q: &QueueFiles,
        seq: u64,
        spec: &Spec<'_>,
    ) -> Result<(Ticket, File), MachineGateError> {
        let seq = seq + 1;
        q.queue
            .write_all_at(&seq.to_le_bytes(), 0)
            .map_err(|e| self.io_err("write", &self.queue_path, e))?;
        let ticket = self.create_ticket(seq, spec)?;
        let waiting_path = self.dir.join(WAITING_FILE);
        let waiting = open_rw(&waiting_path).map_err(|e| self.io_err("open", &waiting_path, e))?;
        // Blocks at most for the two system calls during which another process's fast path
        // holds its exclusive probe.
        blocking_flock(&waiting, false).map_err(|e| self.io_err("lock", &waiting_path, e))?;
        Ok((ticket, waiting))
    }

    /// Wait until `ticket` is the head (every live ticket below it has left).
    fn wait_for_turn(&self, ticket: &Ticket, deadline: Option<Instant>) -> Result<(), Failure> {
        while let Some(pred) = self.nearest_live_ticket_before(ticket.seq)? {
            match deadline {
                None => {
                    // Wait for that one waiter to leave; then look again.
                    match open_ro(&pred) {
                        Ok(f) => {
                            blocking_flock(&f, false).map_err(|e| self.io_err("lock", &pred, e))?
                        }
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
        }
        Ok(())
    }

    /// As the head of the exclusive gate's queue, wait for its lane.
    fn wait_for_lane(&self, ticket: &Ticket, deadline: Option<Instant>) -> Result<File, Failure> {
        loop {
            self.wait_for_turn(ticket, deadline)?;
            if let Some(f) = self.try_lane(0)? {
                return Ok(f);
            }
            if deadline.is_none() {
                // Let the kernel hand the lane over directly.
                let path = lane_path(&self.dir, 0);
                let f = open_rw(&path).map_err(|e| self.io_err("open", &path, e))?;
                blocking_flock(&f, true).map_err(|e| self.io_err("lock", &path, e))?;
                return Ok(f);
            }
            if !wait_until_free(&[lane_path(&self.dir, 0)], true, deadline) {
                return Err(Failure::TimedOut);
            }
        }
    }

    /// As the head of a shared gate's queue, wait until the request fits and take it.
    fn wait_for_share(
        &self,
        ticket: &Ticket,
        shape: Shape,
        deadline: Option<Instant>,
    ) -> Result<(u32, File, Entry), Failure> {
        loop {
            self.wait_for_turn(ticket, deadline)?;
            let busy = {
                let q = self.lock_queue();
                blocking_flock(&q.queue, true)
                    .map_err(|e| self.io_err("lock", &self.queue_path, e))?;
                let _unlock = Unlock(&q.queue);
                let mut buf = [0u8; QUEUE_PREFIX];
                let (_, ledger) = self.read_checked(&q.queue, &mut buf[..self.prefix_len()])?;
                match self.try_take(ledger, shape)? {
                    Take::Taken { lane, file, entry } => return Ok((lane, file, entry)),
                    Take::Busy(lanes) => lanes,
                }
            };
            // Wait for a holder to leave (the kernel grants a shared lock on its lane then),
            // and look again. Holding nothing meanwhile, the head can block no one.
            let busy = if busy.is_empty() {
                (0..self.lanes).collect()
            } else {
                busy
            };
            let paths: Vec<PathBuf> = busy.iter().map(|&l| lane_path(&self.dir, l)).collect();
            if let ([path], None) = (&paths[..], deadline) {
                match open_ro(path) {
                    Ok(f) => blocking_flock(&f, false).map_err(|e| self.io_err("lock", path, e))?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io_err("open", path, e).into()),
                }
            } else if !wait_until_free(&paths, false, deadline) {
                return Err(Failure::TimedOut);
            }
        }
    }

    /// Under the queue lock: account for the ledger, place the request, and take a free lane
    /// for it, writing its entry.
    fn try_take(&self, ledger: &[u8], shape: Shape) -> Result<Take, MachineGateError> {
        let usage = account(&self.decl, self.lanes, ledger, |lane| {
            self.lane_locked(lane)
        })?;
        for &lane in &usage.stale {
            // Its holder died without zeroing it; a failure here only costs a probe next time.
            let _ = self.write_entry(lane, None);
        }
        let Some(entry) = place(&self.decl, &usage, shape) else {
            return Ok(Take::Busy(usage.locked));
        };
        let mut busy = usage.locked;
        for lane in usage.free {
            match self.try_lane(lane)? {
                Some(file) => {
                    self.write_entry(lane, Some(entry))
                        .map_err(|e| self.io_err("write", &self.queue_path, e))?;
                    return Ok(Take::Taken { lane, file, entry });
                }
                // Its holder is releasing it, or a reader holds it for a moment.
                None => busy.push(lane),
            }
        }
        Ok(Take::Busy(busy))
    }

    /// Whether someone holds `lane`: a shared lock on our probe description of it is refused
    /// (and when it is granted, it is released at once). Called under the queue mutex.
    fn lane_locked(&self, lane: u32) -> Result<bool, MachineGateError> {
        let path = lane_path(&self.dir, lane);
        let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut probes[lane as usize];
        // A lane file deleted under us (it never is by racegate) would probe as free forever.
        if slot
            .as_ref()
            .is_some_and(|f| f.metadata().map_or(true, |m| m.nlink() == 0))
        {
            *slot = None;
        }
        let f = match slot {
            Some(f) => f,
            None => match open_ro(&path) {
                Ok(f) => slot.insert(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(self.io_err("open", &path, e)),
            },
        };
        let free = try_flock(f, false).map_err(|e| self.io_err("lock", &path, e))?;
        if free {
            let _ = flock(&*f, FlockOperation::Unlock);
        }
        Ok(!free)
    }

    /// The lane locked for us, or `None` if someone holds it.
    fn try_lane(&self, lane: u32) -> Result<Option<File>, MachineGateError> {
        let path = lane_path(&self.dir, lane);
        let f = open_rw(&path).map_err(|e| self.io_err("open", &path, e))?;
        Ok(try_flock(&f, true)
            .map_err(|e| self.io_err("lock", &path, e))?
            .then_some(f))
    }

    fn write_entry(&self, lane: u32, entry: Option<Entry>) -> io::Result<()> {
        let bytes = entry.map_or([0u8; ENTRY_LEN], Entry::encode);
        self.ledger
            .write_all_at(&bytes, LEDGER_OFFSET + (lane as usize * ENTRY_LEN) as u64)
    }

    fn unplaceable(&self, units: u32) -> MachineGateError {
        MachineGateError::Unplaceable {
            gate: self.name.clone(),
            requested: units,
            capacity: self.decl.capacity,
            devices: self.decl.device_slots() as u32,
        }
    }

    /// Whether `units` can ever be granted (see [`Declaration::shape`]).
    pub(crate) fn check_request(&self, units: u32) -> Result<(), MachineGateError> {
        match units {
            0 => Ok(()),
            n => self
                .decl
                .shape(n)
                .map(|_| ())
                .ok_or_else(|| self.unplaceable(n)),
        }
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

    /// The held lane as a lease; `entry` is its ledger entry (`None`: the exclusive gate,
    /// whose one holder holds everything).
    fn lease(
        self: &Arc<Self>,
        lane: u32,
        file: File,
        entry: Option<Entry>,
        spec: &Spec<'_>,
        start: Instant,
    ) -> Lease {
        let waited = start.elapsed();
        if self.records {
            let record = Record::for_self(0, Some(lane), spec.label, spec.command);
            // Visibility only: a failure here must not cost the caller the gate it now holds.
            if let Err(e) = self.write_holder_record(lane, record.encode().as_bytes()) {
                tracing::debug!(gate = %self.name, error = %e, "could not write holder record");
            }
        }
        let mask = entry.map_or(self.decl.all_mask(), |e| e.mask);
        Lease {
            files: Arc::clone(self),
            lane,
            file: Some(file),
            shared: entry.is_some(),
            devices: if self.decl.devices.is_empty() {
                Vec::new()
            } else {
                self.decl.names(mask)
            },
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

    /// Current holders whose records can be believed (lane locked, process the same), with
    /// the units they hold (`None`: unknown).
    pub(crate) fn holders(&self) -> Vec<(Record, Option<u32>)> {
        let ledger = if self.lanes > 1 {
            read_at(&self.ledger, LEDGER_OFFSET, ENTRY_LEN * self.lanes as usize)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        (0..self.lanes)
            .filter_map(|lane| {
                let r = believed_holder(&self.dir, lane)?;
                Some((r, share_units(&self.decl, self.lanes, &ledger, lane)))
            })
            .collect()
    }
}

/// The units the holder of `lane` holds, as its ledger entry says (all of them on an exclusive
/// gate); `None` when the entry does not say.
pub(crate) fn share_units(decl: &Declaration, lanes: u32, ledger: &[u8], lane: u32) -> Option<u32> {
    if lanes == 1 {
        return u32::try_from(decl.total()).ok();
    }
    let at = lane as usize * ENTRY_LEN;
    let bytes = ledger
        .get(at..)
        .map_or(&[][..], |b| &b[..b.len().min(ENTRY_LEN)]);
    match budget::decode_entry(bytes, decl) {
        budget::Slot::Held(e) => Some(e.units * e.mask.count_ones()),
        _ => None,
    }
}

fn mismatch(gate: &str, existing: &Declaration, requested: &Declaration) -> MachineGateError {
    if existing.capacity != requested.capacity {
        MachineGateError::CapacityMismatch {
            gate: gate.to_owned(),
            existing: existing.capacity,
            requested: requested.capacity,
        }
    } else {
        MachineGateError::DevicesMismatch {
            gate: gate.to_owned(),
            existing: existing.devices.clone(),
            requested: requested.devices.clone(),
        }
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
        let f = match open_ro(&lane_path(dir, lane)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
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

/// A held lane: a share of the gate. Dropping it spoils the holder record, zeroes the ledger
/// entry (shared gates), releases the lane, and appends the acquisition to the history log.
pub(crate) struct Lease {
    files: Arc<GateFiles>,
    lane: u32,
    file: Option<File>,
    /// Whether the lane has a ledger entry to zero.
    shared: bool,
    /// The devices held (empty for a gate without declared devices).
    pub(crate) devices: Vec<String>,
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
        // Entry before the lock: a taker that sees the zero entry while the lane is still
        // locked cannot take this lane yet (it waits for it), and these units are given up.
        if self.shared {
            let _ = self.files.write_entry(self.lane, None);
        }
        drop(self.file.take());
        self.files
            .history
            .append(self.waited, held, self.label.as_deref());
    }
}
