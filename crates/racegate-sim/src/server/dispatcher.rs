//! The two pipelines (text, vision) on one simulated device, wired per dispatch mode.

use std::sync::{Arc, Mutex, PoisonError};

use racegate::OwnedGateGuard;
use tokio::sync::OwnedMutexGuard;

use super::api::{self, Job, PipelineKind};
use crate::{Kernel, Scratch, SimDevice, SimError, Stream};

/// How the pipelines share the device: the production bugs and the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Dispatch {
    /// Bug (a): each pipeline has its own lock, both use the device's default stream, so the
    /// text and the vision pipeline encode into one command buffer at once (aborts with an
    /// encoder-lifecycle assertion).
    Shared,
    /// Bug (b): each pipeline has its own lock and its own stream, but they share model state,
    /// so each dispatch first synchronizes with the stream that last wrote it; the signal lands
    /// on a buffer the other pipeline is encoding into (aborts with
    /// `encodeSignalEvent:value: with uncommitted encoder`).
    Streams,
    /// The fix: all device work passes through `racegate::global("gpu")` (default stream,
    /// shared scratch: everything that is unsafe without it is safe with it). The streaming
    /// path holds an owned guard until its last event is sent.
    Gated,
    /// Silent corruption: distinct streams, no dependency, but one scratch buffer shared by
    /// both pipelines without a gate. Never aborts; answers come back wrong.
    Corrupt,
}

impl Dispatch {
    /// The flag value (`shared`, `streams`, `gated`, `corrupt`).
    pub fn name(self) -> &'static str {
        match self {
            Dispatch::Shared => "shared",
            Dispatch::Streams => "streams",
            Dispatch::Gated => "gated",
            Dispatch::Corrupt => "corrupt",
        }
    }
}

struct Pipeline {
    kind: PipelineKind,
    lock: Arc<tokio::sync::Mutex<()>>,
    stream: Stream,
    scratch: Scratch,
}

/// The device, its two pipelines, and the dispatch mode that wires them.
pub struct Dispatcher {
    dispatch: Dispatch,
    passes: u32,
    pipelines: [Pipeline; 2],
    // Which pipeline last wrote the shared model state (streams mode's cross-stream dependency).
    last_writer: Mutex<Option<usize>>,
    gate: Option<&'static racegate::Gate>,
}

/// What a request holds while it uses the device: its pipeline's lock and, in gated mode, an
/// owned guard of the `gpu` gate. Dropping it releases both.
pub struct Permit {
    _gate: Option<OwnedGateGuard>,
    _pipeline: OwnedMutexGuard<()>,
}

impl Dispatcher {
    /// Wire `device` for `dispatch`; each dispatch costs `passes` kernel passes.
    pub fn new(dispatch: Dispatch, device: &SimDevice, passes: u32) -> Dispatcher {
        let shared_scratch = Scratch::new();
        let pipeline = |kind| {
            let (stream, scratch) = match dispatch {
                Dispatch::Shared => (device.default_stream(), Scratch::new()),
                Dispatch::Streams => (device.create_stream(), Scratch::new()),
                Dispatch::Gated => (device.default_stream(), shared_scratch.clone()),
                Dispatch::Corrupt => (device.create_stream(), shared_scratch.clone()),
            };
            Pipeline {
                kind,
                lock: Arc::new(tokio::sync::Mutex::new(())),
                stream,
                scratch,
            }
        };
        Dispatcher {
            dispatch,
            passes: passes.max(1),
            pipelines: [pipeline(PipelineKind::Text), pipeline(PipelineKind::Vision)],
            last_writer: Mutex::new(None),
            gate: (dispatch == Dispatch::Gated).then(|| racegate::global("gpu")),
        }
    }

    /// The dispatch mode.
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch
    }

    /// The gate all device work passes through (gated mode only).
    pub fn gate(&self) -> Option<&'static racegate::Gate> {
        self.gate
    }

    fn index(kind: PipelineKind) -> usize {
        match kind {
            PipelineKind::Text => 0,
            PipelineKind::Vision => 1,
        }
    }

    /// Wait for the right to use the device for `kind`: the pipeline's own lock, then (gated
    /// mode) the `gpu` gate, labeled with the pipeline's name.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future releases whatever it had acquired.
    pub async fn permit(&self, kind: PipelineKind) -> Permit {
        let pipeline = &self.pipelines[Self::index(kind)];
        let lock = Arc::clone(&pipeline.lock).lock_owned().await;
        let gate = match self.gate {
            Some(gate) => Some(gate.labeled(kind.name()).acquire_owned().await),
            None => None,
        };
        Permit {
            _gate: gate,
            _pipeline: lock,
        }
    }

    /// One dispatch on `kind`'s pipeline (blocking; call it from a blocking thread while
    /// holding a [`Permit`]).
    ///
    /// # Errors
    /// A device violation under the `Error` policy (under `Abort` the process is gone).
    pub fn dispatch_one(&self, kind: PipelineKind, seed: u64) -> Result<u64, SimError> {
        let idx = Self::index(kind);
        let pipeline = &self.pipelines[idx];
        debug_assert_eq!(pipeline.kind, kind);
        if self.dispatch == Dispatch::Streams {
            let previous = self
                .last_writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .replace(idx);
            if let Some(other) = previous.filter(|&o| o != idx) {
                pipeline.stream.depend_on(&self.pipelines[other].stream)?;
            }
        }
        let kernel = Kernel {
            seed,
            passes: self.passes,
        };
        pipeline.stream.eval(&kernel, &pipeline.scratch)
    }

    /// The first piece of `job`'s answer (a vision job's image prefix; empty for text) and the
    /// chain value the first token starts from.
    ///
    /// # Errors
    /// As [`dispatch_one`](Self::dispatch_one).
    pub fn prefix(&self, job: &Job) -> Result<(String, u64), SimError> {
        match job.pipeline {
            PipelineKind::Text => Ok((String::new(), 0)),
            PipelineKind::Vision => {
                let answer = self.dispatch_one(job.pipeline, api::image_seed(job))?;
                Ok((api::vision_prefix(job, answer), answer))
            }
        }
    }

    /// Token `index` of `job`'s answer, given the previous token's chain value: the text of the
    /// piece and the new chain value.
    ///
    /// # Errors
    /// As [`dispatch_one`](Self::dispatch_one).
    pub fn token(&self, job: &Job, index: u32, previous: u64) -> Result<(String, u64), SimError> {
        let answer = self.dispatch_one(job.pipeline, api::token_seed(job.seed, index, previous))?;
        let word = api::word(answer);
        let piece = if index == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        Ok((piece, answer))
    }

    /// The whole answer of `job` (blocking).
    ///
    /// # Errors
    /// As [`dispatch_one`](Self::dispatch_one).
    pub fn answer(&self, job: &Job) -> Result<String, SimError> {
        let (mut out, mut previous) = self.prefix(job)?;
        for i in 0..job.max_tokens {
            let (piece, answer) = self.token(job, i, previous)?;
            out.push_str(&piece);
            previous = answer;
        }
        Ok(out)
    }
}
