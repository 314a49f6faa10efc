//! [`Labeled`]: the one way to label an acquisition, on every front.

use std::fmt;

use crate::stats::Label;

/// A view of a gate front whose acquisitions carry a label (shown in stats, errors, hold
/// warnings and `racegate status`).
///
/// Every front makes one with `labeled(label)`, and the view has the same acquisition methods as
/// its front, with the same errors, cancel safety and panics:
///
/// | front `G` | made by | methods |
/// |---|---|---|
/// | [`Gate`](crate::Gate) | [`Gate::labeled`](crate::Gate::labeled) | the [`Gate`](crate::Gate) variant matrix |
/// | [`MachineGate`](crate::MachineGate) | [`MachineGate::labeled`](crate::MachineGate::labeled) | the [`MachineGate`](crate::MachineGate) variant matrix |
/// | [`Gated<T>`](crate::Gated) | [`Gated::labeled`](crate::Gated::labeled) | the borrowed `lock*` methods |
/// | `Arc<Gated<T>>` | `Labeled::new(&arc, Some(label))` | the owned `lock_owned*` methods |
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let gate = racegate::Gate::new("gpu");
/// let guard = gate.labeled("text").acquire().await;
/// assert_eq!(gate.stats().holders[0].label.as_deref(), Some("text"));
/// # drop(guard); }
/// ```
///
/// A label known only at run time (a command-line flag, a keyword argument) may be absent:
///
/// ```
/// use racegate::{Gate, Label, Labeled};
/// let gate = Gate::new("gpu");
/// let from_flag: Option<String> = None;
/// let guard = Labeled::new(&gate, from_flag.map(Label::from)).acquire_blocking();
/// assert_eq!(gate.stats().holders[0].label, None);
/// # drop(guard);
/// ```
#[must_use = "a labeled view does nothing until one of its acquire methods is called"]
pub struct Labeled<'a, G: ?Sized = crate::Gate> {
    pub(crate) front: &'a G,
    pub(crate) label: Option<Label>,
}

impl<'a, G: ?Sized> Labeled<'a, G> {
    /// A view of `front` whose acquisitions carry `label` (none: unlabeled, like the front's own
    /// methods).
    pub fn new(front: &'a G, label: Option<Label>) -> Self {
        Labeled { front, label }
    }

    /// The label the view's acquisitions carry.
    pub fn label(&self) -> Option<&Label> {
        self.label.as_ref()
    }
}

impl<G: ?Sized + fmt::Debug> fmt::Debug for Labeled<'_, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Labeled")
            .field("front", &self.front)
            .field("label", &self.label)
            .finish()
    }
}
