//! The bounded, append-only history of one gate: one line per acquisition, for `racegate status`.
//!
//! `history.log` holds lines `1 <released_ms> <wait_us> <hold_us> <pid> <label>` (`-` for no
//! label; the label escaped like records). Each line is one `write` on an `O_APPEND` file, so
//! lines from different processes never interleave. When the file passes [`HISTORY_CAP`] bytes
//! it is renamed to `history.log.1` (replacing the previous one), so at most twice the cap is
//! ever kept. Readers skip lines they cannot parse.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::record::now_ms;

/// Size at which `history.log` is rotated.
pub const HISTORY_CAP: u64 = 256 * 1024;
const HISTORY_FILE: &str = "history.log";
const HISTORY_OLD: &str = "history.log.1";

/// One acquisition, as logged when its guard was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When the guard was dropped, in milliseconds since the Unix epoch.
    pub released_ms: u64,
    /// How long the acquisition waited.
    pub wait: Duration,
    /// How long the gate was held.
    pub hold: Duration,
    /// The holder's process id.
    pub pid: u32,
    /// The holder's label.
    pub label: Option<String>,
}

impl HistoryEntry {
    fn encode(&self) -> String {
        let label = match &self.label {
            None => "-".to_owned(),
            Some(l) => {
                let mut out = String::new();
                for c in l.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '-' if l == "-" => out.push_str("\\-"),
                        c => out.push(c),
                    }
                }
                out
            }
        };
        format!(
            "1 {} {} {} {} {}\n",
            self.released_ms,
            self.wait.as_micros(),
            self.hold.as_micros(),
            self.pid,
            label
        )
    }

    /// Parse one line (without its newline); `None` if malformed.
    pub fn parse(line: &str) -> Option<HistoryEntry> {
        let mut parts = line.splitn(6, ' ');
        if parts.next()? != "1" {
            return None;
        }
        let released_ms = parts.next()?.parse().ok()?;
        let wait = Duration::from_micros(parts.next()?.parse().ok()?);
        let hold = Duration::from_micros(parts.next()?.parse().ok()?);
        let pid = parts.next()?.parse().ok()?;
        let raw = parts.next()?;
        let label = if raw == "-" {
            None
        } else {
            let mut out = String::new();
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next()? {
                        '\\' => out.push('\\'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        '-' => out.push('-'),
                        _ => return None,
                    }
                } else {
                    out.push(c);
                }
            }
            Some(out)
        };
        Some(HistoryEntry {
            released_ms,
            wait,
            hold,
            pid,
            label,
        })
    }
}

/// The history log of one gate, as written by this process.
pub(crate) struct History {
    path: PathBuf,
    old: PathBuf,
    file: Mutex<(Option<File>, u32)>,
}

/// The size is checked every this many appends (and on the first): the cap is a soft bound,
/// exceeded by at most this many lines per writing process, for one system call fewer on
/// most releases.
const CHECK_EVERY: u32 = 32;

impl History {
    pub(crate) fn new(dir: &Path) -> History {
        History {
            path: dir.join(HISTORY_FILE),
            old: dir.join(HISTORY_OLD),
            file: Mutex::new((None, 0)),
        }
    }

    /// Append one entry. Failures are ignored: history is for people, the gate must not fail
    /// because a disk is full.
    pub(crate) fn append(&self, wait: Duration, hold: Duration, label: Option<&str>) {
        let entry = HistoryEntry {
            released_ms: now_ms(),
            wait,
            hold,
            pid: std::process::id(),
            label: label.map(str::to_owned),
        };
        let line = entry.encode();
        let mut state = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let (slot, appended) = &mut *state;
        if slot.is_none() {
            *slot = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&self.path)
                .ok();
            *appended = 0;
        }
        let Some(file) = slot.as_mut() else { return };
        if file.write_all(line.as_bytes()).is_err() {
            *slot = None;
            return;
        }
        *appended += 1;
        if *appended % CHECK_EVERY != 1 {
            return;
        }
        let Ok(md) = file.metadata() else { return };
        if md.len() > HISTORY_CAP {
            // Rotate only the file we wrote to: another process may have rotated it already,
            // and renaming its fresh file would throw away the newer history.
            let same = fs::symlink_metadata(&self.path)
                .map(|p| p.dev() == md.dev() && p.ino() == md.ino())
                .unwrap_or(false);
            if same {
                let _ = fs::rename(&self.path, &self.old);
            }
            *slot = None;
        }
    }
}

/// Every readable entry of the gate in `dir`, oldest first.
pub fn read_history(dir: &Path) -> Vec<HistoryEntry> {
    let mut out = Vec::new();
    for name in [HISTORY_OLD, HISTORY_FILE] {
        let Ok(mut f) = super::lock::open_ro(&dir.join(name)) else {
            continue;
        };
        let Ok(bytes) = super::lock::read_capped(&mut f, 2 * HISTORY_CAP as usize) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        out.extend(text.lines().filter_map(HistoryEntry::parse));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_including_odd_labels() {
        for label in [None, Some("vision"), Some("a b\nc\\d"), Some("-"), Some("")] {
            let e = HistoryEntry {
                released_ms: 5,
                wait: Duration::from_micros(12),
                hold: Duration::from_micros(3400),
                pid: 9,
                label: label.map(Into::into),
            };
            let line = e.encode();
            assert_eq!(
                HistoryEntry::parse(line.trim_end_matches('\n')),
                Some(e),
                "{line:?}"
            );
        }
        assert_eq!(HistoryEntry::parse("2 1 2 3 4 x"), None);
        assert_eq!(HistoryEntry::parse("1 1 2"), None);
    }

    #[test]
    fn log_rotates_at_the_cap_and_keeps_both_halves_readable() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path());
        let label = "x".repeat(200);
        let n = (2 * HISTORY_CAP / 220) as usize + 10;
        for _ in 0..n {
            h.append(
                Duration::from_micros(1),
                Duration::from_micros(2),
                Some(&label),
            );
        }
        let slack = 220 * u64::from(CHECK_EVERY);
        let cur = fs::metadata(dir.path().join(HISTORY_FILE)).unwrap().len();
        let old = fs::metadata(dir.path().join(HISTORY_OLD)).unwrap().len();
        assert!(
            cur <= HISTORY_CAP + slack && old <= HISTORY_CAP + slack,
            "{cur} {old}"
        );
        let entries = read_history(dir.path());
        assert!(!entries.is_empty() && entries.len() < n);
        assert!(entries
            .iter()
            .all(|e| e.label.as_deref() == Some(label.as_str())));
    }
}
