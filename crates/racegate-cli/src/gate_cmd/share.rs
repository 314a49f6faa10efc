//! What `racegate run` takes of a gate: its devices (declared or discovered), how many units
//! (`--need`, or whole devices with `--gpus`), and the environment that tells the command which
//! devices it holds.

use racegate::machine::{discover_devices_with, DeviceProbe, DeviceSource};

/// The devices a gate spans, as asked for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// None declared: the gate is one device (no `CUDA_VISIBLE_DEVICES` is set).
    #[default]
    None,
    /// Discover them: `CUDA_VISIBLE_DEVICES` when set, else `nvidia-smi -L`.
    Auto,
    /// These ids.
    List(Vec<String>),
}

/// A run's request, resolved: the gate's devices and the units to take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// The gate's devices (empty: none).
    pub devices: Vec<String>,
    /// They are `nvidia-smi` indices (PCI bus order).
    pub pci_order: bool,
    /// Units to take.
    pub units: u32,
}

/// Resolves the device flags and the request: `--need N` units (on one device), `--gpus K`
/// whole devices (`K × capacity` units; discovers devices unless `--devices` lists them), or one
/// unit. The error says what is missing, in the flags' words.
pub fn resolve(
    choice: &DeviceChoice,
    need: Option<u32>,
    gpus: Option<u32>,
    capacity: u32,
    probe: &dyn DeviceProbe,
) -> Result<Share, String> {
    let (devices, pci_order) = match (choice, gpus) {
        (DeviceChoice::List(l), _) => (l.clone(), false),
        (DeviceChoice::Auto, _) | (DeviceChoice::None, Some(_)) => {
            let found = discover_devices_with(probe);
            if found.devices.is_empty() {
                return Err(format!(
                    "no devices found: discovery read {}; hint: declare them with `--devices 0,1,...`",
                    found.describe(probe)
                ));
            }
            let pci = found.source == DeviceSource::NvidiaSmi;
            (found.devices, pci)
        }
        (DeviceChoice::None, None) => (Vec::new(), false),
    };
    let units = match (need, gpus) {
        (Some(n), _) => n,
        (None, Some(k)) => {
            if k as usize > devices.len() {
                return Err(format!(
                    "`--gpus {k}` asks for more devices than the gate has: `{}` (`{}`); \
                     hint: ask for at most `{}`, or declare more with `--devices`",
                    devices.len(),
                    devices.join(","),
                    devices.len()
                ));
            }
            k.checked_mul(capacity).ok_or_else(|| {
                format!("`--gpus {k}` of `{capacity}` units each is too many units")
            })?
        }
        (None, None) => 1,
    };
    Ok(Share {
        devices,
        pci_order,
        units,
    })
}

/// Variables that name the devices a command holds: CUDA's, ROCm's (HIP and ROCr), and ours.
pub const DEVICE_VARS: [&str; 4] = [
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "RACEGATE_DEVICES",
];

/// The environment for a command holding `held` (empty: set nothing): the device variables,
/// and, for `nvidia-smi` indices (`pci_order`: numbered by PCI bus, while CUDA's default order
/// is fastest first), `CUDA_DEVICE_ORDER=PCI_BUS_ID` unless the caller's environment already
/// chose an order.
pub fn device_env(
    held: &[String],
    pci_order: bool,
    probe: &dyn DeviceProbe,
) -> Vec<(&'static str, String)> {
    if held.is_empty() {
        return Vec::new();
    }
    let list = held.join(",");
    let mut env: Vec<(&'static str, String)> =
        DEVICE_VARS.iter().map(|k| (*k, list.clone())).collect();
    if pci_order && probe.var("CUDA_DEVICE_ORDER").is_none() {
        env.push(("CUDA_DEVICE_ORDER", "PCI_BUS_ID".to_owned()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Option<&'static str>, Option<&'static str>);

    impl DeviceProbe for Fake {
        fn var(&self, key: &str) -> Option<String> {
            (key == "CUDA_VISIBLE_DEVICES")
                .then_some(self.0)
                .flatten()
                .map(Into::into)
        }
        fn nvidia_smi_list(&self) -> Option<String> {
            self.1.map(Into::into)
        }
    }

    const TWO: &str = "GPU 0: A (UUID: GPU-a)\nGPU 1: B (UUID: GPU-b)\n";

    #[test]
    fn gpus_discover_devices_and_take_whole_ones() {
        let s = resolve(
            &DeviceChoice::None,
            None,
            Some(2),
            80,
            &Fake(None, Some(TWO)),
        )
        .unwrap();
        assert_eq!(
            (s.devices, s.pci_order, s.units),
            (vec!["0".into(), "1".into()], true, 160)
        );
        let s = resolve(
            &DeviceChoice::None,
            None,
            Some(1),
            1,
            &Fake(Some("3"), Some(TWO)),
        )
        .unwrap();
        assert_eq!(
            (s.devices, s.pci_order, s.units),
            (vec!["3".to_owned()], false, 1)
        );
    }

    #[test]
    fn a_listed_device_set_is_not_discovered_and_need_takes_units() {
        let list = DeviceChoice::List(vec!["7".into()]);
        let s = resolve(&list, Some(20), None, 80, &Fake(None, None)).unwrap();
        assert_eq!((s.devices, s.units), (vec!["7".to_owned()], 20));
        let plain = resolve(&DeviceChoice::None, None, None, 4, &Fake(None, Some(TWO))).unwrap();
        assert_eq!(
            (plain.devices.len(), plain.units),
            (0, 1),
            "no devices unless asked"
        );
    }

    #[test]
    fn missing_devices_are_explained() {
        let err = resolve(&DeviceChoice::None, None, Some(1), 1, &Fake(None, None)).unwrap_err();
        assert!(
            err.contains("nvidia-smi") && err.contains("--devices"),
            "{err}"
        );
        let err = resolve(
            &DeviceChoice::Auto,
            Some(1),
            None,
            1,
            &Fake(Some(""), Some(TWO)),
        )
        .unwrap_err();
        assert!(err.contains("CUDA_VISIBLE_DEVICES="), "{err}");
        let err = resolve(
            &DeviceChoice::None,
            None,
            Some(3),
            1,
            &Fake(None, Some(TWO)),
        )
        .unwrap_err();
        assert!(err.contains("`--gpus 3`") && err.contains("`0,1`"), "{err}");
    }

    #[test]
    fn device_env_names_the_held_devices() {
        let held = vec!["1".to_owned(), "3".to_owned()];
        let env = device_env(&held, true, &Fake(None, None));
        assert!(env.contains(&("CUDA_VISIBLE_DEVICES", "1,3".into())));
        assert!(env.contains(&("ROCR_VISIBLE_DEVICES", "1,3".into())));
        assert!(env.contains(&("CUDA_DEVICE_ORDER", "PCI_BUS_ID".into())));
        let listed = device_env(&held, false, &Fake(None, None));
        assert_eq!(listed.len(), 4);
        assert!(device_env(&[], true, &Fake(None, None)).is_empty());
    }
}
