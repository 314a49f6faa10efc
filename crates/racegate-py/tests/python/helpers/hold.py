"""Holds a machine-wide gate in its own process: `hold.py GATE LABEL READY RELEASE [TIMEOUT]`.

Writes READY once it holds the gate and releases it when RELEASE appears (after at most 60 s).
Exit 3 if the gate was not granted within TIMEOUT seconds (default 60), with the error on stderr.
"""

import sys
import time
from pathlib import Path

import racegate

gate, label, ready, release = sys.argv[1:5]
timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
try:
    guard = racegate.MachineGate(gate).acquire(label=label, timeout=timeout)
except racegate.AcquireTimeout as e:
    print(e, file=sys.stderr)
    sys.exit(3)
Path(ready).write_text("held\n")
end = time.monotonic() + 60
while not Path(release).exists() and time.monotonic() < end:
    time.sleep(0.005)
guard.release()
