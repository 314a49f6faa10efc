//! Crash-report folders, watched by polling.
//!
//! Polling every `crash.poll` (150 ms by default) is portable (macOS, Linux, network and
//! container file systems alike), needs no OS-specific notification API, and costs one
//! directory listing per folder per poll; a crash report is a rare event that takes the OS far
//! longer than that to write. Files that existed before the run are remembered and skipped
//! unless they change; a report that cannot be parsed yet (still being written) is retried on
//! the next polls before it is counted under a signature made from its name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime};

use globset::{Glob, GlobSet, GlobSetBuilder};
use tokio::sync::mpsc::UnboundedSender;

use crate::crash::{self, CrashDir, CrashSignature, CrashSource, ReportFormat, SignatureKind};
use crate::events::{CrashSeen, Event};

struct Folder {
    path: PathBuf,
    globs: GlobSet,
}

/// One poll's state: what was there before, what is being retried.
pub struct DirScanner {
    folders: Vec<Folder>,
    known: HashMap<PathBuf, (Option<SystemTime>, u64)>,
    retries: HashMap<PathBuf, u32>,
    since: SystemTime,
}

/// Folders that will not be watched as asked: missing ones (still polled: they may appear)
/// and unreadable ones.
pub fn folder_warnings(dirs: &[CrashDir]) -> Vec<String> {
    let defaults: Vec<_> = crash::default_dirs().into_iter().map(|d| d.path).collect();
    let mut out = Vec::new();
    for d in dirs {
        match std::fs::read_dir(&d.path) {
            Ok(_) => {}
            // A missing OS default (no systemd-coredump, no apport) is normal.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !defaults.contains(&d.path) {
                    out.push(format!(
                        "crash folder `{}` does not exist (it is still polled, in case it appears)",
                        d.path.display()
                    ));
                }
            }
            Err(e) => out.push(format!(
                "cannot read crash folder `{}`: {e}; crashes reported there will not be seen",
                d.path.display()
            )),
        }
    }
    out
}

/// A report found by a poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The sighting (its `at` is relative to the scanner's `since`).
    pub crash: CrashSeen,
}

const PARSE_RETRIES: u32 = 5;

impl DirScanner {
    /// Remember what is in the folders now; only files added or changed later are reported.
    pub fn new(dirs: &[CrashDir], since: SystemTime) -> DirScanner {
        let folders = dirs
            .iter()
            .filter_map(|d| {
                let mut b = GlobSetBuilder::new();
                for p in &d.patterns {
                    // Patterns were validated when the scenario was resolved.
                    if let Ok(g) = Glob::new(p) {
                        b.add(g);
                    }
                }
                b.build().ok().map(|globs| Folder {
                    path: d.path.clone(),
                    globs,
                })
            })
            .collect();
        let mut s = DirScanner {
            folders,
            known: HashMap::new(),
            retries: HashMap::new(),
            since,
        };
        for (path, stamp) in s.list() {
            s.known.insert(path, stamp);
        }
        s
    }

    fn list(&self) -> Vec<(PathBuf, (Option<SystemTime>, u64))> {
        let mut out = Vec::new();
        for f in &self.folders {
            let Ok(rd) = std::fs::read_dir(&f.path) else {
                continue;
            };
            for entry in rd.flatten() {
                let name = entry.file_name();
                if !f.globs.is_match(Path::new(&name)) {
                    continue;
                }
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                out.push((entry.path(), (meta.modified().ok(), meta.len())));
            }
        }
        out
    }

    /// Look once; return the new reports.
    pub fn poll(&mut self) -> Vec<Found> {
        let mut found = Vec::new();
        for (path, stamp) in self.list() {
            if self.known.get(&path) == Some(&stamp) {
                continue;
            }
            let at = stamp
                .0
                .and_then(|m| m.duration_since(self.since).ok())
                .unwrap_or_default();
            match crash::parse_file(&path) {
                Ok(report) => {
                    self.known.insert(path.clone(), stamp);
                    self.retries.remove(&path);
                    let source = match report.format {
                        ReportFormat::Coredump => CrashSource::CoreDump,
                        ReportFormat::Ips | ReportFormat::Apport => CrashSource::CrashReport,
                    };
                    let mut detail = Vec::new();
                    if let Some(p) = &report.process {
                        detail.push(format!("process {p}"));
                    }
                    if let Some(s) = &report.signal {
                        detail.push(s.clone());
                    }
                    if let Some(f) = report.frames.first() {
                        detail.push(format!("at {f}"));
                    }
                    found.push(Found {
                        crash: CrashSeen {
                            source,
                            signature: report.signature.key().to_string(),
                            at,
                            path: Some(path),
                            detail: (!detail.is_empty()).then(|| detail.join(", ")),
                            evidence: Box::new(crate::crash::Evidence {
                                frames_from: (!report.stack.is_empty())
                                    .then(|| format!("{:?}", report.format).to_lowercase()),
                                frames: report.stack,
                                ..Default::default()
                            }),
                        },
                    });
                }
                Err(err) => {
                    let n = self.retries.entry(path.clone()).or_insert(0);
                    *n += 1;
                    if *n < PARSE_RETRIES {
                        continue; // maybe still being written
                    }
                    self.known.insert(path.clone(), stamp);
                    self.retries.remove(&path);
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let sig = CrashSignature::new(
                        SignatureKind::Fatal,
                        &format!("unreadable crash report {name}"),
                        CrashSource::CrashReport,
                    );
                    found.push(Found {
                        crash: CrashSeen {
                            source: CrashSource::CrashReport,
                            signature: sig.key().to_string(),
                            at,
                            path: Some(path),
                            detail: Some(err.to_string()),
                            evidence: Default::default(),
                        },
                    });
                }
            }
        }
        found
    }
}

/// Watch the kernel log for NVIDIA `NVRM: Xid` lines during the run; each is a crash sighting
/// (a GPU fault fails the gate whichever process caused it). `Err(Some(warning))` when the log
/// cannot be read on a machine with an NVIDIA driver; `Err(None)` elsewhere (nothing to watch).
pub fn watch_kernel_log(
    tx: UnboundedSender<Event>,
    clock: super::Clock,
) -> Result<crate::crash::kmsg::KernelLogWatcher, Option<String>> {
    crate::crash::kmsg::KernelLogWatcher::start(move |xid| {
        let sig = xid.signature(CrashSource::KernelLog);
        let mut detail = format!("GPU {}", xid.pci);
        if let Some(p) = &xid.process {
            detail.push_str(&format!(", process {p}"));
        }
        if let Some(p) = xid.pid {
            detail.push_str(&format!(" (pid {p})"));
        }
        let _ = tx.send(Event::Crash(CrashSeen {
            source: CrashSource::KernelLog,
            signature: sig.key().to_string(),
            at: clock.elapsed(),
            path: None,
            detail: Some(detail),
            evidence: Box::default(),
        }));
    })
    .map_err(|why| Path::new("/dev/nvidiactl").exists().then_some(why))
}

/// Commands to the watcher thread.
enum Ctl {
    /// Poll until a report shows up or the deadline passes, then stop.
    Settle(Instant),
    /// Poll once more and stop.
    Stop,
}

/// A thread that polls the crash folders and sends [`Event::Crash`].
pub struct DirWatcher {
    ctl: std_mpsc::Sender<Ctl>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DirWatcher {
    /// Snapshot the folders now and start polling. `run_start` is the offset origin for
    /// `at` (the caller rebases: the watcher reports times since `since`).
    pub fn start(
        dirs: &[CrashDir],
        since: SystemTime,
        poll: Duration,
        offset: std::sync::Arc<std::sync::OnceLock<SystemTime>>,
        tx: UnboundedSender<Event>,
    ) -> DirWatcher {
        let mut scanner = DirScanner::new(dirs, since);
        let (ctl, rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("racegate-crash-dirs".into())
            .spawn(move || {
                let send = |found: Vec<Found>| -> bool {
                    let any = !found.is_empty();
                    for mut f in found {
                        // Rebase from the watch start to the load start when it is known.
                        if let (Some(load), Some(path)) = (offset.get(), f.crash.path.as_ref()) {
                            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                            f.crash.at = mtime
                                .and_then(|m| m.duration_since(*load).ok())
                                .unwrap_or_default();
                        }
                        let _ = tx.send(Event::Crash(f.crash));
                    }
                    any
                };
                loop {
                    match rx.recv_timeout(poll) {
                        Err(std_mpsc::RecvTimeoutError::Timeout) => {
                            send(scanner.poll());
                        }
                        Ok(Ctl::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                            send(scanner.poll());
                            return;
                        }
                        Ok(Ctl::Settle(deadline)) => loop {
                            if send(scanner.poll()) || Instant::now() >= deadline {
                                return;
                            }
                            std::thread::park_timeout(
                                poll.min(deadline.saturating_duration_since(Instant::now())),
                            );
                        },
                    }
                }
            })
            .expect("spawning a thread");
        DirWatcher {
            ctl,
            thread: Some(thread),
        }
    }

    /// Stop after one last poll, or, with `settle`, keep polling until a report shows up or
    /// `settle` passes (crash reporters write reports seconds after the crash).
    pub fn finish(mut self, settle: Option<Duration>) {
        let msg = match settle {
            Some(d) => Ctl::Settle(Instant::now() + d),
            None => Ctl::Stop,
        };
        let _ = self.ctl.send(msg);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        let _ = self.ctl.send(Ctl::Stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPS: &str = "{\"app_name\":\"sim\",\"bug_type\":\"309\",\"name\":\"sim\"}\n{\"procName\":\"sim\",\"pid\":7,\"exception\":{\"type\":\"EXC_CRASH\",\"signal\":\"SIGABRT\"},\"asi\":{\"Metal\":[\"-[X commit]:1: failed assertion `boom'\"]}}";

    #[test]
    fn only_new_or_changed_reports_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old-1.ips"), IPS).unwrap();
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        let dirs = [CrashDir {
            path: dir.path().into(),
            patterns: vec!["*.ips".into()],
        }];
        let mut s = DirScanner::new(&dirs, SystemTime::now());
        assert!(s.poll().is_empty());
        std::fs::write(dir.path().join("new-2.ips"), IPS).unwrap();
        let found = s.poll();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].crash.signature, "assertion: boom");
        assert_eq!(found[0].crash.source, CrashSource::CrashReport);
        assert!(s.poll().is_empty(), "reported once");
    }

    #[test]
    fn unparsable_reports_are_retried_then_counted() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [CrashDir {
            path: dir.path().into(),
            patterns: vec!["*.ips".into()],
        }];
        let mut s = DirScanner::new(&dirs, SystemTime::now());
        std::fs::write(dir.path().join("torn.ips"), "{\"app_name\":").unwrap();
        for _ in 1..PARSE_RETRIES {
            assert!(s.poll().is_empty());
        }
        let found = s.poll();
        assert_eq!(found.len(), 1);
        assert!(found[0].crash.signature.contains("unreadable crash report"));
    }
}
