//! The device model: a device with a default stream and explicitly created streams, command
//! buffers that go encoding → committed → completed, compute encoders, completion handlers and
//! shared events, all checked against Metal's lifecycle rules.
//!
//! Nothing here serializes dispatchers: the lifecycle state of a stream's current command buffer
//! is shared, unguarded state, exactly as in the runtimes this models. Two dispatchers on one
//! stream, or a cross-stream signal into a stream that is busy encoding, break a rule as soon as
//! their calls overlap; one dispatcher at a time never does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::errors::{SimError, Violation};
use crate::kernel::{Kernel, Scratch};

/// What the device does when a caller breaks a lifecycle rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationPolicy {
    /// Like the real runtime: write a crash report (when a crash directory is set), print the
    /// Metal assertion line to stderr, and abort the process (SIGABRT).
    Abort,
    /// Return [`SimError::Violation`] from the call that broke the rule (for tests).
    Error,
}

/// How a [`SimDevice`] is set up.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// What to do on a violation.
    pub policy: ViolationPolicy,
    /// Where [`ViolationPolicy::Abort`] writes a macOS-style `.ips` crash report first.
    pub crash_dir: Option<PathBuf>,
    /// The process name in crash reports and their file names.
    pub app_name: String,
    /// How long a wait for a shared event may block before it fails as a GPU timeout.
    pub event_timeout: Duration,
}

impl DeviceConfig {
    /// A configuration with `policy`, no crash directory, the executable's name as app name,
    /// and a 10 s event timeout.
    pub fn new(policy: ViolationPolicy) -> Self {
        let app_name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "racegate-sim".to_owned());
        DeviceConfig {
            policy,
            crash_dir: None,
            app_name,
            event_timeout: Duration::from_secs(10),
        }
    }

    /// Write a crash report into `dir` before aborting.
    pub fn crash_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.crash_dir = Some(dir.into());
        self
    }

    /// Name the process `name` in crash reports.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = name.into();
        self
    }

    /// Fail event waits that take longer than `timeout`.
    pub fn event_timeout(mut self, timeout: Duration) -> Self {
        self.event_timeout = timeout;
        self
    }
}

struct Shared {
    config: DeviceConfig,
    next_id: AtomicU64,
}

impl Shared {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Apply the violation policy: abort (never returns) or build the error.
    fn violate(&self, violation: Violation, buffer: &BufferState) -> SimError {
        if self.config.policy == ViolationPolicy::Abort {
            crate::crash_report::abort_with(&self.config, violation);
        }
        SimError::Violation {
            violation,
            command_buffer: buffer.id,
            stream: buffer.stream,
        }
    }
}

/// A simulated GPU. Cheap to clone: clones share the device.
///
/// # Example
///
/// ```
/// use racegate_sim::{Kernel, Scratch, SimDevice, ViolationPolicy};
///
/// let device = SimDevice::new(ViolationPolicy::Error);
/// let stream = device.create_stream();
/// let kernel = Kernel { seed: 42, passes: 10 };
/// let answer = stream.eval(&kernel, &Scratch::new()).unwrap();
/// assert_eq!(answer, kernel.expected());
/// ```
#[derive(Clone)]
pub struct SimDevice {
    shared: Arc<Shared>,
    default_stream: Stream,
}

impl std::fmt::Debug for SimDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDevice")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl SimDevice {
    /// A device with `policy` and otherwise default settings ([`DeviceConfig::new`]).
    pub fn new(policy: ViolationPolicy) -> Self {
        SimDevice::with_config(DeviceConfig::new(policy))
    }

    /// A device set up by `config`.
    pub fn with_config(config: DeviceConfig) -> Self {
        let shared = Arc::new(Shared {
            config,
            next_id: AtomicU64::new(1),
        });
        let default_stream = Stream::create(&shared, true);
        SimDevice {
            shared,
            default_stream,
        }
    }

    /// The device's configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.shared.config
    }

    /// The device's one default stream. Every call returns the SAME stream: work from several
    /// dispatchers on it shares one current command buffer (this is what mlx-rs' `Stream::new()`
    /// returns, and what bug (a) is made of).
    pub fn default_stream(&self) -> Stream {
        self.default_stream.clone()
    }

    /// A new stream of its own, distinct from the default stream and every other stream.
    pub fn create_stream(&self) -> Stream {
        Stream::create(&self.shared, false)
    }

    /// A new shared event (value 0) for synchronizing streams.
    pub fn create_shared_event(&self) -> SharedEvent {
        SharedEvent::create(&self.shared)
    }
}

/// An ordered queue of command buffers on a device (Metal's command queue, mlx's stream).
/// Cheap to clone: clones are the same stream.
#[derive(Clone)]
pub struct Stream {
    inner: Arc<StreamInner>,
}

struct StreamInner {
    id: u64,
    is_default: bool,
    shared: Arc<Shared>,
    // A small lock around which buffer is current; the buffer's own lifecycle state is NOT
    // under it (see BufferState), which is where the races live.
    current: Mutex<Arc<BufferState>>,
    // The stream's timeline event: other streams wait on it for work produced here.
    timeline: SharedEvent,
    completed: AtomicU64,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.inner.id)
            .field("is_default", &self.inner.is_default)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Stream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
impl Eq for Stream {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these small locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stream {
    fn create(shared: &Arc<Shared>, is_default: bool) -> Stream {
        let id = shared.next_id();
        Stream {
            inner: Arc::new(StreamInner {
                id,
                is_default,
                shared: Arc::clone(shared),
                current: Mutex::new(BufferState::fresh(shared, id)),
                timeline: SharedEvent::create(shared),
                completed: AtomicU64::new(0),
            }),
        }
    }

    /// The stream's id (unique on its device).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether this is the device's default stream.
    pub fn is_default(&self) -> bool {
        self.inner.is_default
    }

    /// How many command buffers on this stream completed.
    pub fn completed_buffers(&self) -> u64 {
        self.inner.completed.load(Ordering::Relaxed)
    }

    /// The stream's current command buffer, the one new work encodes into; a fresh one once the
    /// previous one was committed. Every caller gets the SAME buffer until someone commits it,
    /// as with mlx's `get_command_buffer`.
    pub fn command_buffer(&self) -> CommandBuffer {
        let mut current = lock(&self.inner.current);
        if current.status() != BufferStatus::Encoding {
            *current = BufferState::fresh(&self.inner.shared, self.inner.id);
        }
        CommandBuffer {
            state: Arc::clone(&current),
            stream: self.clone(),
        }
    }

    /// Make later work on this stream wait for everything already encoded on `producer`:
    /// encode a signal of `producer`'s timeline event into `producer`'s current command buffer,
    /// and a wait for it into this stream's. This is mlx's cross-stream synchronization path:
    /// when `producer` is busy encoding on another thread, the signal lands on a buffer with an
    /// open encoder (bug (b)).
    ///
    /// # Errors
    /// [`Violation::SignalWithUncommittedEncoder`] and the other lifecycle violations (under
    /// [`ViolationPolicy::Error`]); [`SimError::EventTimeout`] when the wait is not satisfied.
    pub fn depend_on(&self, producer: &Stream) -> Result<(), SimError> {
        if self == producer {
            return Ok(());
        }
        let event = &producer.inner.timeline;
        let value = event.reserve();
        producer
            .command_buffer()
            .encode_signal_event(event, value)?;
        self.command_buffer().encode_wait_for_event(event, value)
    }

    /// Evaluate `kernel` on this stream the way mlx does: take the current command buffer, open
    /// a compute encoder, dispatch, end encoding, add a completion handler, commit.
    ///
    /// # Errors
    /// A lifecycle violation (under [`ViolationPolicy::Error`]) when another dispatcher uses
    /// the same stream at the same time.
    pub fn eval(&self, kernel: &Kernel, scratch: &Scratch) -> Result<u64, SimError> {
        let buffer = self.command_buffer();
        let mut encoder = buffer.compute_command_encoder()?;
        let answer = encoder.dispatch(kernel, scratch);
        encoder.end_encoding();
        let stream = self.clone();
        buffer.add_completed_handler(move |_| {
            stream.inner.completed.fetch_add(1, Ordering::Relaxed);
        })?;
        buffer.commit()?;
        Ok(answer)
    }
}

/// Where a command buffer is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferStatus {
    /// Open for encoders, handlers and events.
    Encoding,
    /// Committed; no more encoding.
    Committed,
    /// Executed; its completion handlers ran.
    Completed,
}

const ENCODING: u8 = 0;
const COMMITTED: u8 = 1;
const COMPLETED: u8 = 2;

type Handler = Box<dyn FnOnce(&CommandBuffer) + Send>;

struct BufferState {
    id: u64,
    stream: u64,
    shared: Arc<Shared>,
    // Lifecycle state: atomics checked and then acted on in separate steps, like the
    // unsynchronized Objective-C state they model.
    status: AtomicU8,
    encoder_open: AtomicBool,
    handlers: Mutex<Vec<Handler>>,
    signals: Mutex<Vec<(SharedEvent, u64)>>,
}

impl BufferState {
    fn fresh(shared: &Arc<Shared>, stream: u64) -> Arc<BufferState> {
        Arc::new(BufferState {
            id: shared.next_id(),
            stream,
            shared: Arc::clone(shared),
            status: AtomicU8::new(ENCODING),
            encoder_open: AtomicBool::new(false),
            handlers: Mutex::new(Vec::new()),
            signals: Mutex::new(Vec::new()),
        })
    }

    fn status(&self) -> BufferStatus {
        match self.status.load(Ordering::Acquire) {
            ENCODING => BufferStatus::Encoding,
            COMMITTED => BufferStatus::Committed,
            _ => BufferStatus::Completed,
        }
    }

    fn violate(&self, violation: Violation) -> SimError {
        self.shared.violate(violation, self)
    }
}

/// A command buffer: encoders, events and handlers go in while it is encoding; `commit` sends it
/// to the (simulated) GPU. Cheap to clone: clones are the same buffer.
#[derive(Clone)]
pub struct CommandBuffer {
    state: Arc<BufferState>,
    stream: Stream,
}

impl std::fmt::Debug for CommandBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandBuffer")
            .field("id", &self.state.id)
            .field("stream", &self.state.stream)
            .field("status", &self.status())
            .finish()
    }
}

impl CommandBuffer {
    /// The buffer's id (unique on its device).
    pub fn id(&self) -> u64 {
        self.state.id
    }

    /// The stream this buffer belongs to.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Where the buffer is in its lifecycle.
    pub fn status(&self) -> BufferStatus {
        self.state.status()
    }

    /// Open a compute encoder. One encoder at a time per buffer.
    ///
    /// # Errors
    /// [`Violation::EncoderAlreadyEncoding`] when another encoder is open on this buffer,
    /// [`Violation::EncoderAfterCommit`] when the buffer is already committed.
    pub fn compute_command_encoder(&self) -> Result<CommandEncoder<'_>, SimError> {
        if self.state.status() != BufferStatus::Encoding {
            return Err(self.state.violate(Violation::EncoderAfterCommit));
        }
        if self.state.encoder_open.swap(true, Ordering::AcqRel) {
            return Err(self.state.violate(Violation::EncoderAlreadyEncoding));
        }
        Ok(CommandEncoder {
            buffer: self,
            open: true,
        })
    }

    /// Add a handler that runs once the buffer completed.
    ///
    /// # Errors
    /// [`Violation::HandlerAfterCommit`] when the buffer is already committed.
    pub fn add_completed_handler(
        &self,
        handler: impl FnOnce(&CommandBuffer) + Send + 'static,
    ) -> Result<(), SimError> {
        if self.state.status() != BufferStatus::Encoding {
            return Err(self.state.violate(Violation::HandlerAfterCommit));
        }
        lock(&self.state.handlers).push(Box::new(handler));
        Ok(())
    }

    /// Encode a signal: `event` reaches `value` once everything encoded before it executed.
    /// Work executes as it is dispatched in this model, so the signal takes effect at once.
    ///
    /// # Errors
    /// [`Violation::SignalWithUncommittedEncoder`] while an encoder is open on this buffer,
    /// [`Violation::EncoderAfterCommit`] when the buffer is already committed.
    pub fn encode_signal_event(&self, event: &SharedEvent, value: u64) -> Result<(), SimError> {
        if self.state.encoder_open.load(Ordering::Acquire) {
            return Err(self.state.violate(Violation::SignalWithUncommittedEncoder));
        }
        if self.state.status() != BufferStatus::Encoding {
            return Err(self.state.violate(Violation::EncoderAfterCommit));
        }
        lock(&self.state.signals).push((event.clone(), value));
        event.signal(value);
        Ok(())
    }

    /// Encode a wait: nothing encoded after it runs before `event` reaches `value`.
    ///
    /// # Errors
    /// [`Violation::WaitWithUncommittedEncoder`] while an encoder is open on this buffer;
    /// [`SimError::EventTimeout`] when the event does not reach `value` within the device's
    /// event timeout (a GPU hang).
    pub fn encode_wait_for_event(&self, event: &SharedEvent, value: u64) -> Result<(), SimError> {
        if self.state.encoder_open.load(Ordering::Acquire) {
            return Err(self.state.violate(Violation::WaitWithUncommittedEncoder));
        }
        if self.state.status() != BufferStatus::Encoding {
            return Err(self.state.violate(Violation::EncoderAfterCommit));
        }
        let timeout = self.state.shared.config.event_timeout;
        if event.wait_for(value, timeout) {
            Ok(())
        } else {
            Err(SimError::EventTimeout {
                event: event.id(),
                value,
                timeout,
            })
        }
    }

    /// Commit the buffer: it executes and completes, its completion handlers run on this thread,
    /// and its stream moves on to a fresh buffer.
    ///
    /// # Errors
    /// [`Violation::CommitWithUncommittedEncoder`] while an encoder is open,
    /// [`Violation::CommitCommitted`] when the buffer is already committed.
    pub fn commit(&self) -> Result<(), SimError> {
        if self.state.encoder_open.load(Ordering::Acquire) {
            return Err(self.state.violate(Violation::CommitWithUncommittedEncoder));
        }
        if self
            .state
            .status
            .compare_exchange(ENCODING, COMMITTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(self.state.violate(Violation::CommitCommitted));
        }
        {
            let mut current = lock(&self.stream.inner.current);
            if Arc::ptr_eq(&current, &self.state) {
                *current = BufferState::fresh(&self.state.shared, self.state.stream);
            }
        }
        // Every dispatch already ran on the CPU: executing is just completing.
        self.state.status.store(COMPLETED, Ordering::Release);
        let handlers = std::mem::take(&mut *lock(&self.state.handlers));
        for handler in handlers {
            handler(self);
        }
        Ok(())
    }
}

/// An open compute encoder on a command buffer. Call [`end_encoding`](Self::end_encoding) when
/// done; dropping it ends encoding too.
#[must_use = "an encoder stays open until end_encoding or drop"]
pub struct CommandEncoder<'a> {
    buffer: &'a CommandBuffer,
    open: bool,
}

impl std::fmt::Debug for CommandEncoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandEncoder")
            .field("buffer", &self.buffer.id())
            .field("open", &self.open)
            .finish()
    }
}

impl CommandEncoder<'_> {
    /// Dispatch `kernel`, staging through `scratch`, and return its answer. The work runs now,
    /// on this thread, for as long as the kernel costs: the encoder stays open all that time.
    pub fn dispatch(&mut self, kernel: &Kernel, scratch: &Scratch) -> u64 {
        kernel.run(scratch)
    }

    /// End encoding: the buffer accepts another encoder, events, or a commit.
    pub fn end_encoding(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            self.buffer
                .state
                .encoder_open
                .store(false, Ordering::Release);
        }
    }
}

impl Drop for CommandEncoder<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// A shared event: a counter other streams (or the CPU) wait on. Cheap to clone.
#[derive(Clone)]
pub struct SharedEvent {
    inner: Arc<EventInner>,
}

struct EventInner {
    id: u64,
    value: Mutex<u64>,
    reached: Condvar,
    reserved: AtomicU64,
}

impl std::fmt::Debug for SharedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedEvent")
            .field("id", &self.inner.id)
            .field("value", &self.value())
            .finish()
    }
}

impl SharedEvent {
    fn create(shared: &Shared) -> SharedEvent {
        SharedEvent {
            inner: Arc::new(EventInner {
                id: shared.next_id(),
                value: Mutex::new(0),
                reached: Condvar::new(),
                reserved: AtomicU64::new(0),
            }),
        }
    }

    /// The event's id (unique on its device).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The value the event has reached.
    pub fn value(&self) -> u64 {
        *lock(&self.inner.value)
    }

    /// The next unused value (for a signal about to be encoded).
    pub fn reserve(&self) -> u64 {
        self.inner.reserved.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Raise the event to `value` (never lowers it) and wake waiters.
    pub fn signal(&self, value: u64) {
        let mut current = lock(&self.inner.value);
        if value > *current {
            *current = value;
            self.inner.reached.notify_all();
        }
    }

    /// Block until the event reaches `value`; `false` when `timeout` passed first.
    pub fn wait_for(&self, value: u64, timeout: Duration) -> bool {
        let current = lock(&self.inner.value);
        let (current, _) = self
            .inner
            .reached
            .wait_timeout_while(current, timeout, |v| *v < value)
            .unwrap_or_else(PoisonError::into_inner);
        *current >= value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    fn device() -> SimDevice {
        SimDevice::new(ViolationPolicy::Error)
    }

    fn violation<T: std::fmt::Debug>(r: Result<T, SimError>) -> Violation {
        r.expect_err("expected a violation")
            .violation()
            .expect("a violation, not a timeout")
    }

    #[test]
    fn default_stream_is_one_stream_and_created_streams_are_distinct() {
        let d = device();
        assert_eq!(d.default_stream(), d.default_stream());
        assert!(d.default_stream().is_default());
        let (a, b) = (d.create_stream(), d.create_stream());
        assert_ne!(a, b);
        assert_ne!(a, d.default_stream());
        assert!(!a.is_default());
        assert_eq!(
            a.command_buffer().id(),
            a.command_buffer().id(),
            "current buffer is shared"
        );
    }

    #[test]
    fn each_rule_is_enforced() {
        let d = device();
        let s = d.create_stream();

        let cb = s.command_buffer();
        let enc = cb.compute_command_encoder().unwrap();
        assert_eq!(
            violation(cb.compute_command_encoder()),
            Violation::EncoderAlreadyEncoding
        );
        let other = d.create_shared_event();
        assert_eq!(
            violation(cb.encode_signal_event(&other, 1)),
            Violation::SignalWithUncommittedEncoder
        );
        assert_eq!(
            violation(cb.encode_wait_for_event(&other, 0)),
            Violation::WaitWithUncommittedEncoder
        );
        assert_eq!(
            violation(cb.commit()),
            Violation::CommitWithUncommittedEncoder
        );
        enc.end_encoding();

        cb.commit().unwrap();
        assert_eq!(cb.status(), BufferStatus::Completed);
        assert_eq!(violation(cb.commit()), Violation::CommitCommitted);
        assert_eq!(
            violation(cb.add_completed_handler(|_| {})),
            Violation::HandlerAfterCommit
        );
        assert_eq!(
            violation(cb.compute_command_encoder()),
            Violation::EncoderAfterCommit
        );
        assert_ne!(
            s.command_buffer().id(),
            cb.id(),
            "stream moved on after commit"
        );
    }

    #[test]
    fn completion_handlers_run_once_on_commit() {
        let d = device();
        let cb = d.create_stream().command_buffer();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        cb.add_completed_handler(move |b| {
            assert_eq!(b.status(), BufferStatus::Completed);
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        cb.commit().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cross_stream_wait_is_satisfied_by_the_signal_and_times_out_without_it() {
        let d = SimDevice::with_config(
            DeviceConfig::new(ViolationPolicy::Error).event_timeout(Duration::from_millis(50)),
        );
        let (a, b) = (d.create_stream(), d.create_stream());
        b.depend_on(&a).unwrap();
        b.depend_on(&a).unwrap();
        let never = d.create_shared_event();
        let err = b
            .command_buffer()
            .encode_wait_for_event(&never, 1)
            .unwrap_err();
        assert!(
            matches!(err, SimError::EventTimeout { value: 1, .. }),
            "{err}"
        );
    }

    /// The control: one dispatcher, however long, never breaks a rule, on the default stream or
    /// across streams.
    #[test]
    fn one_dispatcher_never_violates() {
        let d = device();
        let (shared, a, b) = (d.default_stream(), d.create_stream(), d.create_stream());
        let scratch = Scratch::new();
        for i in 0..3_000u64 {
            let k = Kernel { seed: i, passes: 2 };
            assert_eq!(shared.eval(&k, &scratch).unwrap(), k.expected());
            a.depend_on(&b).unwrap();
            a.eval(&k, &scratch).unwrap();
            b.depend_on(&a).unwrap();
            b.eval(&k, &scratch).unwrap();
        }
        assert_eq!(shared.completed_buffers(), 3_000);
    }

    /// Run `threads` dispatchers until one reports an error or `deadline` passes; the errors seen.
    fn race(
        threads: usize,
        deadline: Duration,
        step: impl Fn(usize, u64) -> Result<u64, SimError> + Sync,
    ) -> Vec<SimError> {
        let stop = AtomicBool::new(false);
        let errors = Mutex::new(Vec::new());
        let end = Instant::now() + deadline;
        std::thread::scope(|s| {
            for t in 0..threads {
                let (stop, errors, step) = (&stop, &errors, &step);
                s.spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                        if let Err(e) = step(t, i) {
                            lock(errors).push(e);
                            stop.store(true, Ordering::Relaxed);
                        }
                        i += 1;
                    }
                });
            }
        });
        errors.into_inner().unwrap()
    }

    #[test]
    fn shared_default_stream_races_on_the_encoder_lifecycle() {
        let d = device();
        let errors = race(4, Duration::from_secs(20), |t, i| {
            let k = Kernel {
                seed: (t as u64) << 32 | i,
                passes: 50,
            };
            d.default_stream().eval(&k, &Scratch::new())
        });
        let first = errors
            .first()
            .expect("4 dispatchers on one stream must collide");
        let v = first.violation().unwrap();
        assert!(
            matches!(
                v,
                Violation::EncoderAlreadyEncoding
                    | Violation::CommitCommitted
                    | Violation::HandlerAfterCommit
                    | Violation::CommitWithUncommittedEncoder
                    | Violation::EncoderAfterCommit
            ),
            "{first}"
        );
    }

    #[test]
    fn distinct_streams_with_a_dependency_race_on_the_signal() {
        let d = device();
        let streams = [d.create_stream(), d.create_stream()];
        let errors = race(2, Duration::from_secs(20), |t, i| {
            let (mine, other) = (&streams[t], &streams[1 - t]);
            mine.depend_on(other)?;
            let k = Kernel {
                seed: i,
                passes: 50,
            };
            mine.eval(&k, &Scratch::new())
        });
        let first = errors
            .first()
            .expect("cross-stream signals must hit an open encoder");
        assert_eq!(
            first.violation(),
            Some(Violation::SignalWithUncommittedEncoder),
            "{first}"
        );
    }

    #[test]
    fn distinct_streams_without_a_dependency_never_violate() {
        let d = device();
        let streams = [d.create_stream(), d.create_stream()];
        let errors = race(2, Duration::from_millis(300), |t, i| {
            let k = Kernel {
                seed: i,
                passes: 20,
            };
            streams[t].eval(&k, &Scratch::new())
        });
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn shared_scratch_corrupts_answers_silently_and_private_scratch_does_not() {
        let d = device();
        let streams = [d.create_stream(), d.create_stream()];
        let shared = Scratch::new();
        let wrong = AtomicUsize::new(0);
        // A wrong answer is reported as an "error" only to stop the race early.
        let errors = race(2, Duration::from_secs(20), |t, i| {
            let k = Kernel {
                seed: (t as u64 + 1) << 40 | i,
                passes: 50,
            };
            let answer = streams[t].eval(&k, &shared)?;
            if answer != k.expected() {
                wrong.fetch_add(1, Ordering::Relaxed);
                return Err(SimError::EventTimeout {
                    event: 0,
                    value: 0,
                    timeout: Duration::ZERO,
                });
            }
            Ok(answer)
        });
        assert!(wrong.load(Ordering::Relaxed) > 0, "no corruption seen");
        assert!(errors.iter().all(|e| e.violation().is_none()), "{errors:?}");

        let private = [Scratch::new(), Scratch::new()];
        let errors = race(2, Duration::from_millis(300), |t, i| {
            let k = Kernel {
                seed: i,
                passes: 20,
            };
            let answer = streams[t].eval(&k, &private[t])?;
            assert_eq!(answer, k.expected());
            Ok(answer)
        });
        assert!(errors.is_empty(), "{errors:?}");
    }
}
