//! Errors of the simulated device: Metal-style rule violations and the few other ways a device
//! call can fail.

use std::fmt;
use std::time::Duration;

/// A rule of the command-buffer lifecycle that a caller broke.
///
/// Each variant carries the text of the assertion Metal's validation layer prints for the same
/// misuse, so crash signatures read exactly like the real ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Violation {
    /// `commit` on a command buffer that is already committed (two dispatchers shared it).
    CommitCommitted,
    /// `addCompletedHandler:` on a command buffer that is already committed.
    HandlerAfterCommit,
    /// `encodeSignalEvent:value:` while an encoder is still open on the buffer (the cross-stream
    /// synchronization path of a second dispatcher hit a buffer the first one is encoding into).
    SignalWithUncommittedEncoder,
    /// A second encoder opened while another is still encoding to the same buffer.
    EncoderAlreadyEncoding,
    /// `commit` while an encoder is still open on the buffer.
    CommitWithUncommittedEncoder,
    /// An encoder, event or wait encoded on a buffer that another dispatcher committed in the
    /// meantime.
    EncoderAfterCommit,
    /// `encodeWaitForEvent:value:` while an encoder is still open on the buffer.
    WaitWithUncommittedEncoder,
}

impl Violation {
    /// Every violation, in a fixed order (for tables and tests).
    pub const ALL: [Violation; 7] = [
        Violation::CommitCommitted,
        Violation::HandlerAfterCommit,
        Violation::SignalWithUncommittedEncoder,
        Violation::EncoderAlreadyEncoding,
        Violation::CommitWithUncommittedEncoder,
        Violation::EncoderAfterCommit,
        Violation::WaitWithUncommittedEncoder,
    ];

    /// The assertion text, exactly as Metal words it.
    pub fn message(self) -> &'static str {
        match self {
            Violation::CommitCommitted => "commit an already committed command buffer",
            Violation::HandlerAfterCommit => "Completed handler provided after commit call",
            Violation::SignalWithUncommittedEncoder => {
                "encodeSignalEvent:value: with uncommitted encoder"
            }
            Violation::EncoderAlreadyEncoding => {
                "A command encoder is already encoding to this command buffer"
            }
            Violation::CommitWithUncommittedEncoder => {
                "commit command buffer with uncommitted encoder"
            }
            Violation::EncoderAfterCommit => "Command encoder created after commit call",
            Violation::WaitWithUncommittedEncoder => {
                "encodeWaitForEvent:value: with uncommitted encoder"
            }
        }
    }

    /// The Objective-C selector of the `SimCommandBuffer` method that asserts.
    pub fn method(self) -> &'static str {
        match self {
            Violation::CommitCommitted | Violation::CommitWithUncommittedEncoder => "commit",
            Violation::HandlerAfterCommit => "addCompletedHandler:",
            Violation::SignalWithUncommittedEncoder => "encodeSignalEvent:value:",
            Violation::EncoderAlreadyEncoding | Violation::EncoderAfterCommit => {
                "computeCommandEncoder"
            }
            Violation::WaitWithUncommittedEncoder => "encodeWaitForEvent:value:",
        }
    }

    /// The source line the assertion names. Fixed per violation (the lines of the real
    /// assertions where known) so that crash signatures stay stable across builds.
    pub fn line(self) -> u32 {
        match self {
            Violation::CommitCommitted => 690,
            Violation::HandlerAfterCommit => 1011,
            Violation::SignalWithUncommittedEncoder => 427,
            Violation::EncoderAlreadyEncoding => 1090,
            Violation::CommitWithUncommittedEncoder => 694,
            Violation::EncoderAfterCommit => 1084,
            Violation::WaitWithUncommittedEncoder => 412,
        }
    }

    /// The full assertion line, as printed to stderr before an abort:
    /// ``-[SimCommandBuffer commit]:690: failed assertion `commit an already committed command buffer'``
    pub fn assertion_line(self) -> String {
        format!(
            "-[SimCommandBuffer {}]:{}: failed assertion `{}'",
            self.method(),
            self.line(),
            self.message()
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.assertion_line())
    }
}

/// Why a call on the simulated device failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A lifecycle rule was broken (only returned under [`ViolationPolicy::Error`]; under
    /// [`ViolationPolicy::Abort`] the process aborts instead).
    ///
    /// [`ViolationPolicy::Error`]: crate::ViolationPolicy::Error
    /// [`ViolationPolicy::Abort`]: crate::ViolationPolicy::Abort
    #[error("{violation} (command buffer `{command_buffer}` on stream `{stream}`)")]
    Violation {
        /// The rule that was broken.
        violation: Violation,
        /// The id of the command buffer it happened on.
        command_buffer: u64,
        /// The id of the stream that buffer belongs to.
        stream: u64,
    },
    /// A wait for a shared event was not satisfied in time: on a real GPU the command buffer
    /// would hang until the watchdog kills it.
    #[error(
        "shared event `{event}` did not reach value `{value}` within {timeout:?} (gpu timeout)"
    )]
    EventTimeout {
        /// The id of the event.
        event: u64,
        /// The value waited for.
        value: u64,
        /// How long the wait lasted.
        timeout: Duration,
    },
}

impl SimError {
    /// The broken rule, when this error is a violation.
    pub fn violation(&self) -> Option<Violation> {
        match self {
            SimError::Violation { violation, .. } => Some(*violation),
            SimError::EventTimeout { .. } => None,
        }
    }
}
