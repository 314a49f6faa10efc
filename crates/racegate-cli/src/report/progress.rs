//! The live progress line: an indicatif spinner on a terminal, a plain line every few seconds
//! otherwise (CI logs). Crashes, restarts and failed probes are printed as they happen.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, EventSink};

/// How often the plain (non-terminal) line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// An [`EventSink`] that shows progress on stderr.
pub struct ProgressLine {
    bar: Option<ProgressBar>,
    last_plain: Option<Instant>,
    total: Duration,
    pipelines: Vec<String>,
    quiet: bool,
}

impl ProgressLine {
    /// Draw a spinner when both stdout and stderr are terminals, plain lines otherwise;
    /// `quiet` prints only crashes, restarts and probe failures.
    pub fn new(quiet: bool) -> ProgressLine {
        let tty = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let bar = (tty && !quiet).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        ProgressLine {
            bar,
            last_plain: None,
            total: Duration::ZERO,
            pipelines: Vec::new(),
            quiet,
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// Clear the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl EventSink for ProgressLine {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                pipelines,
                duration,
            } => {
                self.total = *duration;
                self.pipelines = pipelines.clone();
                if !self.quiet {
                    self.say(&format!(
                        "racegate: hammering {} for {}",
                        pipelines.join(", "),
                        humantime::format_duration(*duration)
                    ));
                }
            }
            Event::Progress(p) => {
                let msg = format!(
                    "{:>6.1}/{:.0} s  ok {}  errors {}  crashes {}  restarts {}",
                    p.at.as_secs_f64(),
                    self.total.as_secs_f64(),
                    p.ok,
                    p.errors,
                    p.crashes,
                    p.restarts
                );
                if let Some(bar) = &self.bar {
                    bar.set_message(msg);
                    bar.tick();
                } else if !self.quiet
                    && !self.total.is_zero()
                    && self.last_plain.map_or(true, |t| t.elapsed() >= PLAIN_EVERY)
                {
                    if self.last_plain.is_some() {
                        self.say(&format!("racegate: {msg}"));
                    }
                    self.last_plain = Some(Instant::now());
                }
            }
            Event::Crash(c) => self.say(&format!(
                "racegate: crash at {:.3} s [{}]: {}",
                c.at.as_secs_f64(),
                c.source.as_str(),
                c.signature
            )),
            Event::TargetExited { at, status } => self.say(&format!(
                "racegate: target exited at {:.3} s: {status}",
                at.as_secs_f64()
            )),
            Event::Restart {
                time_to_recover, ..
            } => self.say(&match time_to_recover {
                Some(t) => format!(
                    "racegate: target restarted, healthy again after {:.3} s",
                    t.as_secs_f64()
                ),
                None => "racegate: target restarted but not healthy again".into(),
            }),
            Event::ProbeFailed { message, .. } => self.say(&format!("racegate: {message}")),
            _ => {}
        }
    }
}
