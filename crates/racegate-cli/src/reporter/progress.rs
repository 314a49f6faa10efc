//! Progress on stderr while a command runs. For a stress run, [`ProgressLine`]: an indicatif
//! spinner on a terminal, a plain line every few seconds otherwise (CI logs); crashes,
//! restarts and failed smoke probes are printed as they happen. `compare` and `demo` show one
//! such line per stress run, framed by their own lines ([`CompareProgress`], [`DemoProgress`]),
//! including the pid of every server they start, so that a user (or a test) can check that
//! none outlives the command.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, EventSink};
use crate::report::compare::CompareEvent;
use crate::report::demo::{DemoEvent, Mode};

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

    /// Print a line above the spinner.
    pub fn say(&self, line: &str) {
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
            Event::SmokeProbeFailed { message, .. } => self.say(&format!("racegate: {message}")),
            _ => {}
        }
    }
}

/// The progress of `racegate compare`.
pub struct CompareProgress {
    quiet: bool,
    label: String,
    line: Option<ProgressLine>,
}

impl CompareProgress {
    /// `quiet` keeps only what a stress run prints when quiet.
    pub fn new(quiet: bool) -> CompareProgress {
        CompareProgress {
            quiet,
            label: String::new(),
            line: None,
        }
    }

    fn say(&self, line: &str) {
        match &self.line {
            Some(l) => l.say(line),
            None => eprintln!("{line}"),
        }
    }

    /// Show one event.
    pub fn event(&mut self, e: CompareEvent<'_>) {
        match e {
            CompareEvent::RunStarting { index, of, build } => {
                if !self.quiet {
                    self.say(&format!(
                        "racegate compare: run {index}/{of} of {} ({})",
                        build.label,
                        build.command.join(" ")
                    ));
                }
                self.label = build.label.clone();
                self.line = Some(ProgressLine::new(self.quiet));
            }
            CompareEvent::Stress(e) => {
                if let (Event::TargetStarted { pid, .. }, false) = (e, self.quiet) {
                    if *pid != 0 {
                        self.say(&format!(
                            "racegate compare: {}: target started (pid {pid})",
                            self.label
                        ));
                    }
                }
                if let Some(l) = &mut self.line {
                    l.event(e);
                }
            }
            CompareEvent::RunEnded { build, report } => {
                if let Some(l) = self.line.take() {
                    l.finish();
                }
                if !self.quiet {
                    eprintln!(
                        "racegate compare: {}: {} ({})",
                        build.label, report.verdict, report.reason
                    );
                }
            }
        }
    }
}

/// The progress of `racegate demo`.
pub struct DemoProgress {
    quiet: bool,
    mode: Option<Mode>,
    line: Option<ProgressLine>,
}

impl DemoProgress {
    /// `quiet` keeps only what a stress run prints when quiet.
    pub fn new(quiet: bool) -> DemoProgress {
        DemoProgress {
            quiet,
            mode: None,
            line: None,
        }
    }

    fn say(&self, line: &str) {
        match &self.line {
            Some(l) => l.say(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish_line(&mut self) {
        if let Some(l) = self.line.take() {
            l.finish();
        }
    }

    /// Show one event.
    pub fn event(&mut self, e: DemoEvent<'_>) {
        match e {
            DemoEvent::ModeStarting {
                mode,
                workers,
                duration,
            } => {
                if !self.quiet {
                    self.say(&format!(
                        "racegate demo: {} dispatch, {workers} workers per pipeline, {}",
                        mode.as_str(),
                        humantime::format_duration(duration)
                    ));
                }
                self.mode = Some(mode);
                self.line = Some(ProgressLine::new(self.quiet));
            }
            DemoEvent::AloneStarting { pipeline } => {
                if !self.quiet {
                    self.say(&format!(
                        "racegate demo: the cost of the fix: one client alone on `{pipeline}`"
                    ));
                }
                // A short measurement: only what a quiet run prints.
                self.mode = None;
                self.line = Some(ProgressLine::new(true));
            }
            DemoEvent::Stress(e) => {
                if let (Event::TargetStarted { pid, .. }, false, Some(mode)) =
                    (e, self.quiet, self.mode)
                {
                    self.say(&format!(
                        "racegate demo: {}: sim server started (pid {pid})",
                        mode.as_str()
                    ));
                }
                if let Some(l) = &mut self.line {
                    l.event(e);
                }
            }
            DemoEvent::ModeEnded { mode, report } => {
                self.finish_line();
                if !self.quiet {
                    eprintln!(
                        "racegate demo: {}: {} ({})",
                        mode.as_str(),
                        report.verdict,
                        report.reason
                    );
                }
            }
            DemoEvent::AloneEnded { .. } => self.finish_line(),
        }
    }
}
