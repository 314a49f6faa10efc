//! [`Holder`]: who holds a gate, as stats and errors name it.

use std::fmt;
use std::time::Duration;

/// One current holder of a gate, as reported in [`GateStats`](crate::GateStats) and in timeout
/// and busy errors.
///
/// For a machine-wide gate, errors also name the holders in other processes this way (the label
/// then reads "pid 4242 running `cmd` as vision"); `racegate status` shows them in full as
/// [`MachineHolder`](crate::machine::MachineHolder)s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The holder's label, if it acquired with one.
    pub label: Option<String>,
    /// How many units of the gate's capacity it holds.
    pub units: u32,
    /// How long it has held them.
    pub held_for: Duration,
}

/// The old name of [`Holder`].
#[deprecated(note = "renamed to `Holder`")]
pub type HolderInfo = Holder;

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label {
            Some(label) => write!(f, "`{label}`")?,
            None => f.write_str("an unlabeled holder")?,
        }
        if self.units != 1 {
            write!(f, " ({} units)", self.units)?;
        }
        write!(f, " for {}", fmt_duration(self.held_for))
    }
}

/// A list of holders as one phrase: "`vision` for 1.2s, `text` for 30ms".
pub(crate) struct Holders<'a>(pub(crate) &'a [Holder]);

impl fmt::Display for Holders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no holder recorded (stats are off, or the holder just left)");
        }
        for (i, h) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{h}")?;
        }
        Ok(())
    }
}

/// Durations in messages: microseconds below one millisecond, milliseconds below ten seconds,
/// seconds above.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(10) {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
