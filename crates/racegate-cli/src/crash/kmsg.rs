//! The kernel log: NVIDIA's `NVRM: Xid` lines, the driver's word that a GPU faulted.
//!
//! A GPU fault (an MMU fault, a fallen-off-the-bus GPU, an ECC error) is often visible only
//! there: the process sees a generic CUDA error, or nothing. The driver writes
//!
//! ```text
//! NVRM: Xid (PCI:0000:0a:00): 31, pid=13332, name=cuda_plot_k32_v, Ch 00000010, intr 00000000. MMU Fault: …
//! ```
//!
//! [`xid`] reads one such line, as `dmesg`, `journalctl -k` or `/dev/kmsg` show it; the
//! signature names the Xid number and what NVIDIA's catalog calls it
//! (`driver: NVIDIA Xid 31: GPU memory page fault`), not the pid or the addresses.
//! [`KernelLogWatcher`] reads `/dev/kmsg` during a run, where that is permitted.

use super::signature::{CrashSignature, CrashSource, SignatureKind};

/// One `NVRM: Xid` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xid {
    /// The GPU's PCI address (`0000:0a:00`).
    pub pci: String,
    /// The Xid number.
    pub number: u32,
    /// `pid=` when the driver named the process.
    pub pid: Option<u32>,
    /// `name=` when the driver named the process.
    pub process: Option<String>,
    /// The rest of the line.
    pub text: String,
}

/// NVIDIA's names for the Xids a GPU workload meets (from the Xid catalog).
const XIDS: [(u32, &str); 22] = [
    (13, "Graphics Engine Exception"),
    (31, "GPU memory page fault"),
    (32, "Invalid or corrupted push buffer stream"),
    (38, "Driver firmware error"),
    (43, "GPU stopped processing"),
    (45, "Preemptive cleanup, due to previous errors"),
    (48, "Double Bit ECC Error"),
    (56, "Display Engine error"),
    (61, "Internal micro-controller breakpoint/warning"),
    (62, "Internal micro-controller halt"),
    (63, "ECC page retirement or row remapping recording event"),
    (64, "ECC page retirement or row remapper recording failure"),
    (68, "NVDEC0 Exception"),
    (69, "Graphics Engine class error"),
    (74, "NVLINK Error"),
    (79, "GPU has fallen off the bus"),
    (92, "High single-bit ECC error rate"),
    (94, "Contained ECC error"),
    (95, "Uncontained ECC error"),
    (109, "Context Switch Timeout Error"),
    (119, "GSP RPC Timeout"),
    (120, "GSP Error"),
];

impl Xid {
    /// What NVIDIA's catalog calls this Xid, when it is one racegate knows.
    pub fn description(&self) -> Option<&'static str> {
        XIDS.iter()
            .find(|(n, _)| *n == self.number)
            .map(|(_, d)| *d)
    }

    /// `driver: NVIDIA Xid 79: GPU has fallen off the bus` (or `driver: NVIDIA Xid 150`).
    pub fn signature(&self, source: CrashSource) -> CrashSignature {
        // The number is the identity here, not noise: it is kept as it is.
        let text = match self.description() {
            Some(d) => format!("NVIDIA Xid {}: {d}", self.number),
            None => format!("NVIDIA Xid {}", self.number),
        };
        CrashSignature::composed(SignatureKind::Driver, &text, source)
    }
}

/// The Xid on `line`, if it has one: `NVRM: Xid (PCI:0000:01:00): 31, pid=…, name=…, …`,
/// with or without a dmesg timestamp or a kmsg record prefix before it.
pub fn xid(line: &str) -> Option<Xid> {
    let at = line.find("NVRM: Xid (PCI:")?;
    let rest = &line[at + "NVRM: Xid (PCI:".len()..];
    let (pci, rest) = rest.split_once("):")?;
    let rest = rest.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let number: u32 = digits.parse().ok()?;
    let text = rest[digits.len()..]
        .trim_start_matches(',')
        .trim()
        .to_string();
    let field = |name: &str| {
        text.split(", ")
            .find_map(|f| f.strip_prefix(name))
            .map(|v| v.trim_matches(|c| c == '\'' || c == ',').to_string())
    };
    Some(Xid {
        pci: pci.trim().to_string(),
        number,
        pid: field("pid=").and_then(|p| p.parse().ok()),
        process: field("name=").filter(|n| n != "<unknown>"),
        text,
    })
}

/// The message of a `/dev/kmsg` record (`6,1234,5678901,-;NVRM: …` → `NVRM: …`); continuation
/// lines (starting with a space) and anything else are returned as they are.
pub fn kmsg_message(record: &str) -> &str {
    match record.split_once(';') {
        Some((head, msg))
            if head.split(',').count() >= 3
                && head.bytes().next().is_some_and(|b| b.is_ascii_digit()) =>
        {
            msg
        }
        _ => record,
    }
}

/// Reads the kernel log during a run and reports every `NVRM: Xid` line written after it
/// started. Off (with the reason) where `/dev/kmsg` cannot be read: an unprivileged user with
/// `kernel.dmesg_restrict=1`, a container without it, macOS.
pub struct KernelLogWatcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KernelLogWatcher {
    /// Start watching; `on_xid` is called (on the watcher's thread) for each Xid line. Returns
    /// why not when the kernel log cannot be read.
    pub fn start<F>(on_xid: F) -> Result<KernelLogWatcher, String>
    where
        F: FnMut(Xid) + Send + 'static,
    {
        #[cfg(target_os = "linux")]
        {
            linux::start(on_xid)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = on_xid;
            Err("the kernel log is read on Linux only".into())
        }
    }

    /// Stop watching (bounded: the reader wakes at least every 100 ms).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KernelLogWatcher {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::{kmsg_message, xid, KernelLogWatcher, Xid};

    pub fn start<F>(on_xid: F) -> Result<KernelLogWatcher, String>
    where
        F: FnMut(Xid) + Send + 'static,
    {
        start_at(std::path::Path::new("/dev/kmsg"), on_xid)
    }

    /// Watch `path`, a file in `/dev/kmsg`'s record format.
    pub fn start_at<F>(path: &std::path::Path, mut on_xid: F) -> Result<KernelLogWatcher, String>
    where
        F: FnMut(Xid) + Send + 'static,
    {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| {
                format!(
                    "the kernel log `{}` cannot be read ({e}); NVIDIA Xid lines are not watched",
                    path.display()
                )
            })?;
        // Only what is written from now on: earlier Xids belong to earlier runs.
        // SAFETY: lseek on an owned, open fd.
        unsafe {
            libc::lseek(std::os::fd::AsRawFd::as_raw_fd(&file), 0, libc::SEEK_END);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("racegate-kmsg".into())
            .spawn(move || {
                // One record per read(); 8 KiB is the kernel's maximum record size.
                let mut buf = vec![0u8; 8192];
                while !flag.load(Ordering::SeqCst) {
                    match file.read(&mut buf) {
                        Ok(0) => std::thread::sleep(std::time::Duration::from_millis(100)),
                        Ok(n) => {
                            let record = String::from_utf8_lossy(&buf[..n]);
                            for line in record.lines() {
                                if let Some(x) = xid(kmsg_message(line)) {
                                    on_xid(x);
                                }
                            }
                        }
                        // EAGAIN: nothing new; EPIPE: records were overwritten, go on.
                        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
                    }
                }
            })
            .map_err(|e| format!("cannot start the kernel log watcher: {e}"))?;
        Ok(KernelLogWatcher {
            stop,
            thread: Some(thread),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_xid_lines_in_every_framing() {
        for line in [
            "[14328.198504] NVRM: Xid (PCI:0000:0a:00): 31, pid=13332, name=cuda_plot_k32_v, Ch 00000010, intr 00000000. MMU Fault: ENGINE CE2 HUBCLIENT_CE0 faulted @ 0x7f29_5b8c9000. Fault is of type FAULT_PRIV_VIOLATION ACCESS_TYPE_VIRT_READ",
            "4,1234,14328198504,-;NVRM: Xid (PCI:0000:0a:00): 31, pid=13332, name=cuda_plot_k32_v, Ch 00000010",
            "Feb 14 05:03:41 gpu-1 kernel: NVRM: Xid (PCI:0000:0a:00): 31, pid=13332, name=cuda_plot_k32_v",
        ] {
            let x = xid(kmsg_message(line)).unwrap();
            assert_eq!(x.pci, "0000:0a:00");
            assert_eq!(x.number, 31);
            assert_eq!(x.pid, Some(13332));
            assert_eq!(x.process.as_deref(), Some("cuda_plot_k32_v"));
            assert_eq!(
                x.signature(CrashSource::KernelLog).key(),
                "driver: NVIDIA Xid 31: GPU memory page fault"
            );
        }
        let unknown =
            xid("NVRM: Xid (PCI:0000:0a:00): 62, pid='<unknown>', name=<unknown>, 2023b230")
                .unwrap();
        assert_eq!(unknown.pid, None);
        assert_eq!(unknown.process, None);
        assert!(xid("NVRM: GPU at PCI:0000:0a:00: GPU-760d0170").is_none());
        assert!(xid("NVRM: Xid (PCI:0000:0a:00): , x").is_none());
    }

    /// The watcher's reading loop on a FIFO standing in for `/dev/kmsg` (writing the real kernel
    /// log would reach every other run on the machine): a record written during the watch is
    /// reported in its kmsg framing, and the real log either opens or is refused with a reason.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_watcher_reports_xid_records_as_they_are_written() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("kmsg");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let watcher = linux::start_at(&fifo, move |x| {
            let _ = tx.send((x.number, x.process));
        })
        .unwrap();
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(b"6,100,200,-;NVRM: GPU at PCI:0000:99:00: GPU-1\n")
            .unwrap();
        w.write_all(b"4,101,201,-;NVRM: Xid (PCI:0000:99:00): 79, pid=7, name=server, GPU has fallen off the bus.\n").unwrap();
        let got = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(got, (79, Some("server".to_string())));
        watcher.stop();
        match KernelLogWatcher::start(|_| {}) {
            Ok(w) => w.stop(),
            Err(why) => assert!(why.contains("/dev/kmsg"), "{why}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = xid(&s);
            let _ = xid(&format!("NVRM: Xid (PCI:{s}"));
            let _ = kmsg_message(&s);
        }
    }
}
