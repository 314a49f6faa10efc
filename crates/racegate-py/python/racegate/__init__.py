"""racegate: one fair, timeout-bounded, observable gate that all GPU work passes through.

The same gate as the Rust library, from Python::

    import racegate

    gpu = racegate.Gate("gpu")                       # in-process
    with gpu.acquire(label="vision", timeout=5.0):   # threads: the GIL is released while waiting
        ...
    async with gpu.acquire_async(label="text"):      # asyncio: the loop is not blocked
        ...

    machine = racegate.MachineGate("gpu")            # every process on the machine, shared with
                                                     # `racegate run --gate gpu` and Rust tests
    print(gpu.stats())

pytest: ``@pytest.mark.racegate("gpu")`` (the plugin ships in this package). See docs/python.md.
"""

from ._errors import (
    AcquireTimeout,
    ConfigError,
    MachineGateError,
    RacegateError,
    TooLarge,
    WouldBlock,
)
from ._native import (
    DeviceStatus,
    Gate,
    GateStats,
    Guard,
    HistorySummary,
    Holder,
    LabelStats,
    MachineGate,
    MachineHolder,
    MachineStatus,
    Percentiles,
    configure,
    configure_machine_wide,
    discover_devices,
    global_gate,
    parse_device_list,
)

# The Rust name of the timeout error, for readers coming from the Rust API.
AcquireTimeoutError = AcquireTimeout

try:
    from importlib.metadata import version as _version

    __version__ = _version("racegate")
except Exception:  # not installed (e.g. imported from a source tree)
    from ._native import RUST_VERSION as __version__

__all__ = [
    "AcquireTimeout",
    "AcquireTimeoutError",
    "ConfigError",
    "DeviceStatus",
    "Gate",
    "GateStats",
    "Guard",
    "HistorySummary",
    "Holder",
    "LabelStats",
    "MachineGate",
    "MachineGateError",
    "MachineHolder",
    "MachineStatus",
    "Percentiles",
    "RacegateError",
    "TooLarge",
    "WouldBlock",
    "configure",
    "configure_machine_wide",
    "discover_devices",
    "global_gate",
    "parse_device_list",
]
