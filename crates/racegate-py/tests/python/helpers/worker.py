"""One "GPU job" for the exclusion tests: `worker.py LOG NAME HOLD_MS [--no-gate]`.

Appends `enter NAME` / `leave NAME` to LOG (one O_APPEND write each, so the order in the file is
the real order across processes). Inside, it stays until another job is inside or HOLD_MS pass:
with the gate nobody can be, so it holds the full time; without it (--no-gate, the control) jobs
meet, and the overlap shows in the log.
"""

import os
import sys
import time

import racegate

log, name, hold_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
gated = "--no-gate" not in sys.argv


def write(what):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{what} {name}\n".encode())
    finally:
        os.close(fd)


def someone_else_inside():
    inside = []
    with open(log) as f:
        for line in f:
            what, _, n = line.strip().partition(" ")
            if what == "enter":
                inside.append(n)
            elif what == "leave" and n in inside:
                inside.remove(n)
    return any(n != name for n in inside)


def job():
    write("enter")
    end = time.monotonic() + hold_ms / 1000
    while time.monotonic() < end and not someone_else_inside():
        time.sleep(0.002)
    write("leave")


if gated:
    with racegate.MachineGate("gpu").acquire(label=name, timeout=60):
        job()
else:
    job()
