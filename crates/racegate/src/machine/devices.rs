//! The machine's GPUs, for a gate that spans devices: declared by a list (`--devices 0,1,2,3`)
//! or discovered — from `CUDA_VISIBLE_DEVICES` when it is set (the devices this process may
//! use), else from `nvidia-smi -L` (NVML's view of the machine) when it is installed.
//!
//! Discovery goes through the [`DeviceProbe`] seam, so that it is tested without a GPU.
//!
//! ```
//! use racegate::machine::{discover_devices_with, DeviceProbe, DeviceSource};
//! struct Fake;
//! impl DeviceProbe for Fake {
//!     fn var(&self, _key: &str) -> Option<String> { None }
//!     fn nvidia_smi_list(&self) -> Option<String> {
//!         Some("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0f0e)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-1a1b)\n".into())
//!     }
//! }
//! let found = discover_devices_with(&Fake);
//! assert_eq!(found.devices, ["0", "1"]);
//! assert_eq!(found.source, DeviceSource::NvidiaSmi);
//! ```

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::budget::{check_device_ids, BadDevices, MAX_DEVICES, MAX_DEVICE_ID_LEN};

/// Environment variable CUDA reads for the devices a process may use.
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";
/// How long `nvidia-smi -L` may take before discovery gives up on it (a wedged driver can make
/// it hang).
pub const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);

/// Where discovery looks: the seam between [`discover_devices_with`] and the machine.
pub trait DeviceProbe {
    /// The value of an environment variable, `None` if unset.
    fn var(&self, key: &str) -> Option<String>;
    /// The output of `nvidia-smi -L`, `None` if it is not installed, fails or hangs.
    fn nvidia_smi_list(&self) -> Option<String>;
}

/// The real machine: this process's environment and `nvidia-smi` on the `PATH`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemProbe;

impl DeviceProbe for SystemProbe {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }

    fn nvidia_smi_list(&self) -> Option<String> {
        run_bounded("nvidia-smi", &["-L"], NVIDIA_SMI_TIMEOUT)
    }
}

/// Runs a command with no input, returning its standard output if it exits successfully within
/// `limit` (it is killed otherwise).
fn run_bounded(program: &str, args: &[&str], limit: Duration) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(limit).ok();
    if out.is_none() {
        let _ = child.kill();
    }
    let status = child.wait().ok()?;
    let out = out?;
    status
        .success()
        .then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Where discovered devices came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSource {
    /// `CUDA_VISIBLE_DEVICES` was set.
    CudaVisibleDevices,
    /// `nvidia-smi -L` listed them.
    NvidiaSmi,
    /// Nothing said: no devices.
    Nowhere,
}

/// The devices found on this machine and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    /// Device ids, as `CUDA_VISIBLE_DEVICES` takes them (empty: none found).
    pub devices: Vec<String>,
    /// Where they came from.
    pub source: DeviceSource,
}

impl Discovered {
    /// Where the devices came from, in words for messages: "`CUDA_VISIBLE_DEVICES=1,2`".
    pub fn describe(&self, probe: &dyn DeviceProbe) -> String {
        match self.source {
            DeviceSource::CudaVisibleDevices => format!(
                "`{CUDA_VISIBLE_DEVICES}={}`",
                probe.var(CUDA_VISIBLE_DEVICES).unwrap_or_default()
            ),
            DeviceSource::NvidiaSmi => "`nvidia-smi -L`".to_owned(),
            DeviceSource::Nowhere => {
                format!(
                    "nothing (`{CUDA_VISIBLE_DEVICES}` is unset and `nvidia-smi -L` lists no GPU)"
                )
            }
        }
    }
}

/// The devices of this machine (see the module docs).
pub fn discover_devices() -> Discovered {
    discover_devices_with(&SystemProbe)
}

/// The devices `probe` shows: `CUDA_VISIBLE_DEVICES` when set (even to nothing: then no device
/// may be used), else the indices of the GPUs `nvidia-smi -L` lists.
pub fn discover_devices_with(probe: &dyn DeviceProbe) -> Discovered {
    if let Some(v) = probe.var(CUDA_VISIBLE_DEVICES) {
        return Discovered {
            devices: parse_visible_devices(&v),
            source: DeviceSource::CudaVisibleDevices,
        };
    }
    let gpus = probe
        .nvidia_smi_list()
        .map(|out| parse_nvidia_smi_list(&out))
        .unwrap_or_default();
    if gpus.is_empty() {
        return Discovered {
            devices: Vec::new(),
            source: DeviceSource::Nowhere,
        };
    }
    Discovered {
        devices: gpus.into_iter().map(|g| g.index.to_string()).collect(),
        source: DeviceSource::NvidiaSmi,
    }
}

/// The devices in a `CUDA_VISIBLE_DEVICES` value, as CUDA reads it: a comma-separated list of
/// indices or UUIDs (`GPU-…`, `MIG-…`), cut at the first entry that is neither (CUDA ignores
/// that one and every entry after it), and without repeats. Never fails: `""`, `"-1"` or
/// garbage mean no device.
pub fn parse_visible_devices(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        let index = !item.is_empty() && item.len() <= 9 && item.bytes().all(|b| b.is_ascii_digit());
        let uuid = (item.starts_with("GPU-") || item.starts_with("MIG-"))
            && item.len() <= MAX_DEVICE_ID_LEN
            && item[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/".contains(&b));
        if !(index || uuid) || out.len() == MAX_DEVICES {
            break;
        }
        if !out.iter().any(|d| d == item) {
            out.push(item.to_owned());
        }
    }
    out
}

/// One GPU listed by `nvidia-smi -L`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvidiaGpu {
    /// Its index (what `CUDA_VISIBLE_DEVICES` takes, in PCI bus order).
    pub index: u32,
    /// Its product name.
    pub name: String,
    /// Its UUID (`GPU-…`), if listed.
    pub uuid: Option<String>,
}

/// The GPUs in `nvidia-smi -L` output: lines `GPU <i>: <name> (UUID: GPU-…)`. MIG instances
/// (indented `MIG …` lines) and anything else are skipped. Never fails.
pub fn parse_nvidia_smi_list(out: &str) -> Vec<NvidiaGpu> {
    let mut gpus: Vec<NvidiaGpu> = Vec::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("GPU ") else {
            continue;
        };
        let Some((index, rest)) = rest.split_once(':') else {
            continue;
        };
        let Ok(index) = index.trim().parse::<u32>() else {
            continue;
        };
        if gpus.iter().any(|g| g.index == index) || gpus.len() == MAX_DEVICES {
            continue;
        }
        let rest = rest.trim();
        let (name, uuid) = match rest.rfind("(UUID:") {
            Some(at) => {
                let uuid = rest[at + 6..].trim().trim_end_matches(')').trim();
                (
                    rest[..at].trim(),
                    (!uuid.is_empty()).then(|| uuid.to_owned()),
                )
            }
            None => (rest, None),
        };
        gpus.push(NvidiaGpu {
            index,
            name: name.to_owned(),
            uuid,
        });
    }
    gpus
}

/// A device list given by a person (a flag, a variable) that cannot be declared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceListError {
    /// An empty entry (`0,,1`, a trailing comma) or an empty list.
    #[error("device list `{list}` has an empty entry; hint: list ids separated by commas, e.g. `0,1,2,3`")]
    Empty {
        /// The list as given.
        list: String,
    },
    /// An id that is not a device id.
    #[error(
        "device id `{id}` is not 1 to {MAX_DEVICE_ID_LEN} letters, digits, `-`, `_`, `.`, `:` or `/`; \
         hint: name devices as `CUDA_VISIBLE_DEVICES` does, e.g. `0` or `GPU-8a1f…`"
    )]
    BadId {
        /// The id.
        id: String,
    },
    /// The same device twice.
    #[error("device `{id}` is listed twice; hint: list each device once")]
    Duplicate {
        /// The id.
        id: String,
    },
    /// More than [`MAX_DEVICES`].
    #[error("`{count}` devices listed, at most `{MAX_DEVICES}` are supported")]
    TooMany {
        /// How many.
        count: usize,
    },
}

/// A device list as a person writes it: `0,1,2,3` (spaces around ids are ignored).
///
/// # Errors
///
/// [`DeviceListError`] naming the offending entry.
pub fn parse_device_list(list: &str) -> Result<Vec<String>, DeviceListError> {
    let ids: Vec<String> = list.split(',').map(|s| s.trim().to_owned()).collect();
    if ids.iter().any(String::is_empty) {
        return Err(DeviceListError::Empty {
            list: list.to_owned(),
        });
    }
    check_device_ids(&ids).map_err(|e| match e {
        BadDevices::TooMany(count) => DeviceListError::TooMany { count },
        BadDevices::Id(id) => DeviceListError::BadId { id },
        BadDevices::Duplicate(id) => DeviceListError::Duplicate { id },
    })?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Fake {
        visible: Option<&'static str>,
        smi: Option<&'static str>,
    }

    impl DeviceProbe for Fake {
        fn var(&self, key: &str) -> Option<String> {
            (key == CUDA_VISIBLE_DEVICES)
                .then_some(self.visible)
                .flatten()
                .map(str::to_owned)
        }
        fn nvidia_smi_list(&self) -> Option<String> {
            self.smi.map(str::to_owned)
        }
    }

    const SMI: &str =
        "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-4f5b7c2a-1111-2222-3333-444455556666)\n\
  MIG 3g.40gb     Device  0: (UUID: MIG-1c9a3e2b-aaaa-bbbb-cccc-ddddeeeeffff)\n\
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-9e8d7c6b-1111-2222-3333-444455556666)\n";

    #[test]
    fn cuda_visible_devices_wins_over_nvidia_smi_even_when_empty() {
        let f = |visible| Fake {
            visible,
            smi: Some(SMI),
        };
        assert_eq!(
            discover_devices_with(&f(Some("2,3"))),
            Discovered {
                devices: vec!["2".into(), "3".into()],
                source: DeviceSource::CudaVisibleDevices
            }
        );
        assert_eq!(
            discover_devices_with(&f(Some(""))).devices,
            Vec::<String>::new()
        );
        let smi = discover_devices_with(&f(None));
        assert_eq!(
            (smi.devices, smi.source),
            (
                vec!["0".to_owned(), "1".to_owned()],
                DeviceSource::NvidiaSmi
            )
        );
        let none = discover_devices_with(&Fake {
            visible: None,
            smi: None,
        });
        assert_eq!(none.source, DeviceSource::Nowhere);
        assert!(none
            .describe(&Fake {
                visible: None,
                smi: None
            })
            .contains("nvidia-smi"));
    }

    #[test]
    fn nvidia_smi_lines_parse_and_mig_lines_are_skipped() {
        let gpus = parse_nvidia_smi_list(SMI);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA A100-SXM4-80GB");
        assert_eq!(
            gpus[1].uuid.as_deref(),
            Some("GPU-9e8d7c6b-1111-2222-3333-444455556666")
        );
        assert!(parse_nvidia_smi_list("No devices were found\n").is_empty());
        assert!(parse_nvidia_smi_list(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
        )
        .is_empty());
    }

    #[test]
    fn visible_devices_follow_cuda_rules() {
        assert_eq!(parse_visible_devices("0, 2"), ["0", "2"]);
        assert_eq!(parse_visible_devices("1,-1,2"), ["1"]);
        assert_eq!(parse_visible_devices("-1"), Vec::<String>::new());
        assert_eq!(parse_visible_devices("GPU-4f5b,0"), ["GPU-4f5b", "0"]);
        assert_eq!(parse_visible_devices("1,1,2"), ["1", "2"]);
        assert_eq!(parse_visible_devices("NoDevFiles"), Vec::<String>::new());
    }

    #[test]
    fn device_lists_are_checked() {
        assert_eq!(parse_device_list("0,1, 2").unwrap(), ["0", "1", "2"]);
        assert!(matches!(
            parse_device_list("0,,1"),
            Err(DeviceListError::Empty { .. })
        ));
        assert!(matches!(
            parse_device_list(""),
            Err(DeviceListError::Empty { .. })
        ));
        assert!(matches!(
            parse_device_list("0,0"),
            Err(DeviceListError::Duplicate { .. })
        ));
        let err = parse_device_list("0,a b").unwrap_err();
        assert!(err.to_string().contains("`a b`"), "{err}");
    }

    #[test]
    fn a_missing_program_is_no_answer() {
        assert_eq!(
            run_bounded("racegate-no-such-program", &[], Duration::from_secs(1)),
            None
        );
        assert_eq!(
            run_bounded("sh", &["-c", "echo GPU 0: x"], Duration::from_secs(10)).as_deref(),
            Some("GPU 0: x\n")
        );
        assert_eq!(
            run_bounded("sh", &["-c", "exit 3"], Duration::from_secs(10)),
            None
        );
    }

    #[test]
    fn a_hanging_program_is_killed_at_the_limit() {
        let t = std::time::Instant::now();
        assert_eq!(
            run_bounded("sleep", &["30"], Duration::from_millis(200)),
            None
        );
        assert!(t.elapsed() < Duration::from_secs(20));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parsers_never_panic_and_yield_declarable_ids(s in "\\PC{0,200}") {
            let visible = parse_visible_devices(&s);
            prop_assert!(check_device_ids(&visible).is_ok(), "{visible:?}");
            let gpus = parse_nvidia_smi_list(&s);
            let ids: Vec<String> = gpus.iter().map(|g| g.index.to_string()).collect();
            prop_assert!(check_device_ids(&ids).is_ok());
            if let Ok(list) = parse_device_list(&s) {
                prop_assert!(check_device_ids(&list).is_ok());
            }
        }

        #[test]
        fn listed_gpus_come_back(indices in proptest::collection::btree_set(0u32..64, 0..8)) {
            let text: String = indices
                .iter()
                .map(|i| format!("GPU {i}: Some GPU (UUID: GPU-{i:04x})\n"))
                .collect();
            let got: Vec<u32> = parse_nvidia_smi_list(&text).iter().map(|g| g.index).collect();
            prop_assert_eq!(got, indices.into_iter().collect::<Vec<_>>());
        }
    }
}
