//! Hold warnings (`hold_warning=`) reach Python's `logging`: the Rust gate reports them as
//! `tracing` warnings, which this subscriber forwards to the `racegate` logger.
//!
//! Installed as the process's global `tracing` subscriber the first time a gate asks for hold
//! warnings (an extension module has no other); it only passes on the `racegate` crate's
//! warnings and errors.

use std::fmt::{self, Write};
use std::sync::Once;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

struct ToPythonLogging;

/// `message key=value ...`, the way `tracing`'s own formatter writes an event.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl Subscriber for ToPythonLogging {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= Level::WARN && m.target().starts_with("racegate")
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let method = if *event.metadata().level() == Level::ERROR {
            "error"
        } else {
            "warning"
        };
        // From the hold-warning thread or any releasing thread; not at all once the interpreter
        // is shutting down.
        Python::try_attach(|py| {
            static GET_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let logged = GET_LOGGER
                .import(py, "logging", "getLogger")
                .and_then(|get| get.call1(("racegate",)))
                .and_then(|logger| {
                    logger.call_method1(method, ("%s%s", line.message, line.fields))
                });
            if let Err(e) = logged {
                e.write_unraisable(py, None);
            }
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Routes the gate's warnings to `logging.getLogger("racegate")` (once).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if something else in this process installed a subscriber: then it gets them.
        let _ = tracing::subscriber::set_global_default(ToPythonLogging);
    });
}
