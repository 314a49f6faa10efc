//! What every engine is given besides its config: a way to be stopped ([`CancelToken`]) and the
//! list its child processes go on ([`Children`]), bundled as a [`Control`].
//!
//! `cli/` makes one `Control` per command, hands it to the engine, and gives the same one to
//! its interrupt policy (`cli/interrupt.rs`): the first SIGINT, SIGTERM or SIGHUP cancels the
//! token, the engine stops its children and returns what it has; a second one kills every
//! listed child and exits. Nothing here ends the process or prints.

pub mod cancel;
pub mod children;

pub use cancel::CancelToken;
pub use children::{Children, Registration};

/// The controls of one engine run. Cheap to clone; clones share the token and the list.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Cancelled on the first interrupt: stop, stop the children, return what you have.
    pub cancel: CancelToken,
    /// The child processes started and not yet reaped.
    pub children: Children,
}

impl Control {
    /// A control not cancelled, with no children.
    pub fn new() -> Control {
        Control::default()
    }
}
