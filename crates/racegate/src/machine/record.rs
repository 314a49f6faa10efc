//! Holder and waiter records: who holds or waits for a machine-wide gate, for `racegate status`
//! and for timeout messages.
//!
//! Records are for visibility only. The kernel's lock on the lane or ticket file decides
//! ownership; a record is believed only while that lock is held *and* the process it names is
//! alive with the same start time (a recycled PID has a different one). Anything else — a
//! missing `end` line, bad UTF-8, an unknown version, a dead or recycled PID — is ignored.
//!
//! The format is line-oriented text so that a person can `cat` it:
//!
//! ```text
//! racegate-record 1
//! pid=4242
//! start=123456789
//! seq=17
//! lane=0
//! since_ms=1732280000000
//! label=vision
//! arg=python
//! arg=bench.py
//! sum=a4278707cdc43326
//! end
//! ```
//!
//! `sum` is the FNV-1a 64-bit hash (16 hex digits) of every byte before its line; a record
//! without a matching `sum` or an `end` line is rejected, and only empty lines may follow `end`
//! (holder records are rewritten in place and padded). Values escape `\`, newline and carriage
//! return as `\\`, `\n`, `\r`. `start` is the process
//! start time in the OS's own unit (clock ticks since boot on Linux, microseconds since the
//! epoch on macOS), `0` when unknown.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first line of every record.
const MAGIC: &str = "racegate-record 1";
/// Records longer than this are malformed: a command line is not megabytes long.
pub(crate) const MAX_RECORD_LEN: usize = 64 * 1024;

/// One process's claim to hold or wait for a gate, as written in its record file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Process id.
    pub pid: u32,
    /// Process start time in the OS's unit, `0` when unknown; tells a recycled PID apart.
    pub start: u64,
    /// Queue ticket number (0 for a holder that never queued).
    pub seq: u64,
    /// Lane held (holders) or `None` (waiters).
    pub lane: Option<u32>,
    /// When the process started holding or waiting, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// The label it acquired with, if any.
    pub label: Option<String>,
    /// Its command line (for `racegate run`, the command run under the gate).
    pub command: Vec<String>,
}

impl Record {
    /// A record for the current process, starting now.
    pub(crate) fn for_self(
        seq: u64,
        lane: Option<u32>,
        label: Option<&str>,
        command: &[String],
    ) -> Record {
        Record {
            pid: std::process::id(),
            start: self_start_time(),
            seq,
            lane,
            since_ms: now_ms(),
            label: label.map(|l| clip(l, MAX_FIELD).to_owned()),
            command: clip_command(command),
        }
    }

    /// When the holder or waiter started, as a [`SystemTime`].
    pub fn since(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.since_ms)
    }

    /// The command line as one string, words with spaces or quotes quoted like a shell would.
    pub fn command_line(&self) -> String {
        shell_join(&self.command)
    }

    /// Serialize to the text format above (the documented format, `sum` line included).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str(MAGIC);
        out.push('\n');
        out.push_str(&format!(
            "pid={}\nstart={}\nseq={}\n",
            self.pid, self.start, self.seq
        ));
        if let Some(lane) = self.lane {
            out.push_str(&format!("lane={lane}\n"));
        }
        out.push_str(&format!("since_ms={}\n", self.since_ms));
        if let Some(label) = &self.label {
            out.push_str("label=");
            escape_into(label, &mut out);
            out.push('\n');
        }
        for arg in &self.command {
            out.push_str("arg=");
            escape_into(arg, &mut out);
            out.push('\n');
        }
        let sum = fnv1a(out.as_bytes());
        out.push_str(&format!("sum={sum:016x}\nend\n"));
        out
    }

    /// Parse a record; `None` for anything malformed (never panics, whatever the bytes).
    pub fn parse(bytes: &[u8]) -> Option<Record> {
        if bytes.len() > MAX_RECORD_LEN {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.split_inclusive('\n');
        let mut offset = 0;
        let first = lines.next()?;
        if first.strip_suffix('\n')? != MAGIC {
            return None;
        }
        offset += first.len();
        let (mut pid, mut start, mut seq, mut since_ms) = (None, None, None, None);
        let mut lane = None;
        let mut label = None;
        let mut command = Vec::new();
        let mut summed = false;
        let mut ended = false;
        for raw in lines.by_ref() {
            let line = raw.strip_suffix('\n').unwrap_or(raw);
            if line == "end" {
                ended = raw.ends_with('\n');
                break;
            }
            if summed {
                return None; // only `end` may follow the checksum
            }
            let (key, value) = line.split_once('=')?;
            match key {
                "pid" => {
                    pid = Some(
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|p| *p > 0 && *p <= i32::MAX as u32)?,
                    )
                }
                "start" => start = Some(value.parse::<u64>().ok()?),
                "seq" => seq = Some(value.parse::<u64>().ok()?),
                "lane" => lane = Some(value.parse::<u32>().ok()?),
                "since_ms" => since_ms = Some(value.parse::<u64>().ok()?),
                "label" => label = Some(unescape(value)?),
                "arg" => command.push(unescape(value)?),
                "sum" => {
                    let want = u64::from_str_radix(value, 16).ok()?;
                    if value.len() != 16 || fnv1a(&bytes[..offset]) != want {
                        return None;
                    }
                    summed = true;
                }
                // Newer writers may add keys; older readers skip them.
                _ => {}
            }
            offset += raw.len();
        }
        // Records are rewritten in place and padded with newlines: only empty lines may follow
        // `end`. Without a matching checksum the bytes may mix two writers.
        if !ended || !summed || lines.any(|l| l != "\n") {
            return None;
        }
        Some(Record {
            pid: pid?,
            start: start?,
            seq: seq?,
            lane,
            since_ms: since_ms?,
            label,
            command,
        })
    }

    /// Whether the process this record names is still the one that wrote it: alive, and (where
    /// the start time can be read) started at the same moment. A recycled PID fails this.
    pub fn is_current(&self) -> bool {
        if !pid_alive(self.pid) {
            return false;
        }
        match (self.start, process_start_time(self.pid)) {
            (0, _) | (_, None) => true,
            (recorded, Some(now)) => recorded == now,
        }
    }
}

/// Longest label or argument kept in a record, and most bytes of command line: records stay far
/// below [`MAX_RECORD_LEN`] whatever the caller passes, so they are always readable.
const MAX_FIELD: usize = 1024;
const MAX_COMMAND: usize = 8 * 1024;

/// `s` cut to at most `max` bytes, on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The command line for a record: long arguments clipped, and after [`MAX_COMMAND`] bytes the
/// rest replaced by one `...` word.
fn clip_command(command: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0;
    for arg in command {
        let a = clip(arg, MAX_FIELD);
        if total + a.len() > MAX_COMMAND {
            out.push("...".to_owned());
            break;
        }
        total += a.len();
        out.push(a.to_owned());
    }
    out
}

/// FNV-1a, 64 bits: enough to tell a torn or mixed record from a whole one.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                _ => return None,
            }
        } else if c == '\r' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Join words for display, quoting those a shell would split or interpret.
pub(crate) fn shell_join(words: &[String]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain = !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
        if plain {
            out.push_str(w);
        } else {
            out.push('\'');
            out.push_str(&w.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    out
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether a process with this PID exists (a zombie counts as alive until it is reaped, but its
/// locks are already released, and the lock check comes first).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

fn self_start_time() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| process_start_time(std::process::id()).unwrap_or(0))
}

/// Start time of a process in the OS's unit, `None` when it cannot be read.
#[cfg(target_os = "linux")]
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat_start(&stat)
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and
/// may itself contain spaces and parentheses, so fields are counted from the *last* `)`.
#[cfg(any(target_os = "linux", test))]
pub(crate) fn parse_proc_stat_start(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After `)` come field 3 (state) onwards; starttime is field 22, so the 20th of these.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Start time of a process in microseconds since the epoch, from `proc_pidinfo`.
#[cfg(target_os = "macos")]
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: `info` is a writable buffer of exactly `size` bytes for PROC_PIDTBSDINFO.
    let n = unsafe {
        libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    if n != size {
        return None;
    }
    Some(info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec)
}

/// Elsewhere the start time is unknown and only liveness is checked.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn process_start_time(_pid: u32) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            pid: 42,
            start: 7,
            seq: 3,
            lane: Some(1),
            since_ms: 1_700_000_000_000,
            label: Some("vi\\sion\nx".into()),
            command: vec!["python".into(), "a b".into(), String::new()],
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(Record::parse(r.encode().as_bytes()), Some(r));
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = "racegate-record 1\npid=4242\nstart=123456789\nseq=17\nlane=0\n\
                   since_ms=1732280000000\nlabel=vision\narg=python\narg=bench.py\n\
                   sum=a4278707cdc43326\nend\n";
        let r = Record::parse(doc.as_bytes()).expect("docs/machine-gate.md example");
        assert_eq!(
            (r.pid, r.lane, r.command_line().as_str()),
            (4242, Some(0), "python bench.py")
        );
        assert_eq!(r.encode(), doc);
    }

    #[test]
    fn truncated_records_are_rejected() {
        let text = sample().encode();
        for cut in 0..text.len() - 1 {
            // Every strict prefix lacks the final `end` line (or its newline), so none parses
            // except the one that stops right after `end`.
            let parsed = Record::parse(&text.as_bytes()[..cut]);
            assert!(
                parsed.is_none() || text[..cut].ends_with("end"),
                "prefix {cut} parsed"
            );
        }
    }

    #[test]
    fn proc_stat_start_skips_odd_command_names() {
        let stat = b"123 (a) b (c) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99887766 20 21\n";
        assert_eq!(parse_proc_stat_start(stat), Some(99_887_766));
        assert_eq!(parse_proc_stat_start(b"garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_record_is_current_and_a_wrong_start_time_is_not() {
        let mut r = Record::for_self(1, None, None, &[]);
        assert!(r.is_current());
        r.start += 1;
        assert!(
            !r.is_current(),
            "a recycled PID (other start time) must not look current"
        );
    }

    #[test]
    fn huge_command_lines_are_clipped_so_records_stay_readable() {
        let huge = vec!["x".repeat(100_000); 50];
        let r = Record::for_self(1, Some(0), Some(&"é".repeat(5000)), &huge);
        let bytes = r.encode();
        assert!(bytes.len() < MAX_RECORD_LEN, "{}", bytes.len());
        assert_eq!(Record::parse(bytes.as_bytes()), Some(r.clone()));
        assert_eq!(r.command.last().map(String::as_str), Some("..."));
    }

    #[test]
    fn shell_join_quotes_what_a_shell_would_split() {
        let words = ["ls".to_string(), "a b".to_string(), "it's".to_string()];
        assert_eq!(shell_join(&words), "ls 'a b' 'it'\\''s'");
    }
}
