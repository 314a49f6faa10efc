"""The machine-wide gate from Python against the Rust CLI, with real processes: a Python holder
makes `racegate run --gate` wait and the other way round, `racegate status` shows Python holders
with their labels, and mixed Python / `racegate run` jobs never overlap (while the same jobs
without the gate do: the control)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

import racegate
from conftest import HELPERS, max_inside, spawn_holder, until


def status_json(racegate_bin, gate):
    out = subprocess.run(
        [racegate_bin, "status", "--gate", gate, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    [g] = json.loads(out.stdout)["gates"]
    return g


def test_a_python_holder_makes_racegate_run_wait(lock_dir, tmp_path, racegate_bin):
    holder, ready, release = spawn_holder("gpu", "py-vision", tmp_path, "holder")
    try:
        until(ready.exists, what="the Python holder")
        g = status_json(racegate_bin, "gpu")
        assert [(h["pid"], h["label"]) for h in g["holders"]] == [(holder.pid, "py-vision")]
        assert any(arg.endswith("hold.py") for arg in g["holders"][0]["command"])
        text = subprocess.run(
            [racegate_bin, "status", "--gate", "gpu"], capture_output=True, text=True, timeout=60
        ).stdout
        assert "py-vision" in text and str(holder.pid) in text

        ran = tmp_path / "ran"
        run = subprocess.Popen(
            [racegate_bin, "run", "--gate", "gpu", "--label", "shell-job", "--",
             "sh", "-c", f"echo ran > {ran}"]
        )
        gate = racegate.MachineGate("gpu")
        until(
            lambda: [w.label for w in gate.status().waiters] == ["shell-job"],
            what="`racegate run` to queue behind the Python holder",
        )
        assert not ran.exists(), "`racegate run` ran its command while Python held the gate"
        release.touch()
        assert holder.wait(30) == 0
        assert run.wait(30) == 0 and ran.exists()
    finally:
        release.touch()
        holder.wait(30)


def test_racegate_run_makes_python_wait_and_is_named_in_its_timeout(lock_dir, tmp_path, racegate_bin):
    started, release = tmp_path / "started", tmp_path / "release"
    script = (
        f"touch {started}; i=0; while [ ! -f {release} ] && [ $i -lt 6000 ]; "
        "do sleep 0.01; i=$((i+1)); done"
    )
    run = subprocess.Popen(
        [racegate_bin, "run", "--gate", "gpu", "--label", "shell-job", "--", "sh", "-c", script]
    )
    try:
        until(started.exists, what="`racegate run` to hold the gate")
        gate = racegate.MachineGate("gpu")
        with pytest.raises(racegate.AcquireTimeout) as info:
            gate.acquire(label="py-late", timeout=0.1)
        message = str(info.value)
        assert f"pid {run.pid}" in message and "shell-job" in message, message
        with pytest.raises(racegate.WouldBlock, match="shell-job"):
            gate.try_acquire()

        got = []
        t = threading.Thread(target=lambda: got.append(gate.acquire(label="py-waiter", timeout=30)))
        t.start()
        until(lambda: [w.label for w in gate.status().waiters] == ["py-waiter"],
              what="the Python waiter in the machine-wide queue")
        g = status_json(racegate_bin, "gpu")
        assert [w["label"] for w in g["waiters"]] == ["py-waiter"]
        assert not got
        release.touch()
        assert run.wait(30) == 0
        t.join(30)
        assert got and got[0].held
        assert [h.label for h in gate.status().holders] == ["py-waiter"]
        got[0].release()
    finally:
        release.touch()
        run.wait(30)


def run_jobs(racegate_bin, log, gated, hold_ms):
    """Four Python jobs and two `racegate run` jobs started together; returns when all ended."""
    py = [sys.executable, str(HELPERS / "worker.py"), str(log)]
    cmds = [py + [f"gpu-py-{i}", str(hold_ms)] + ([] if gated else ["--no-gate"]) for i in range(4)]
    for i in range(2):
        job = py + [f"gpu-run-{i}", str(hold_ms), "--no-gate"]
        cmds.append([racegate_bin, "run", "--gate", "gpu", "--label", f"run-{i}", "--"] + job if gated else job)
    procs = [subprocess.Popen(c) for c in cmds]
    codes = [p.wait(120) for p in procs]
    assert codes == [0] * len(cmds)


def test_python_and_racegate_run_jobs_never_overlap_under_the_gate(lock_dir, tmp_path, racegate_bin):
    log = tmp_path / "events.log"
    run_jobs(racegate_bin, log, gated=True, hold_ms=150)
    most, seen = max_inside(log)
    assert len(seen) == 6
    assert most == 1, log.read_text()


def test_control_without_the_gate_the_same_jobs_overlap(lock_dir, tmp_path, racegate_bin):
    log = tmp_path / "events.log"
    # Without the gate each job waits (up to 3 s) to meet another: the check above can fail.
    run_jobs(racegate_bin, log, gated=False, hold_ms=3000)
    most, seen = max_inside(log)
    assert len(seen) == 6
    assert most >= 2, log.read_text()


def test_status_from_python_reads_every_process(lock_dir, tmp_path):
    holder, ready, release = spawn_holder("gpu", "other-process", tmp_path, "holder")
    try:
        until(ready.exists, what="the holder")
        s = racegate.MachineGate("gpu").status()
        assert (s.name, s.capacity) == ("gpu", 1)
        [h] = s.holders
        assert (h.lane, h.pid, h.label) == (0, holder.pid, "other-process")
        assert h.elapsed >= 0 and h.since > 0 and h.command
    finally:
        release.touch()
        assert holder.wait(30) == 0
    assert racegate.MachineGate("gpu").status().history.count == 1


def test_budgets_and_devices(lock_dir, tmp_path, racegate_bin):
    vram = racegate.MachineGate("vram", capacity=4)
    big = vram.acquire(units=3, label="big")
    with pytest.raises(racegate.AcquireTimeout, match="big"):
        vram.acquire(units=2, label="too-big", timeout=0.05)
    small = vram.acquire(units=1, label="small")
    s = vram.status()
    assert (s.units_used, s.units_total) == (4, 4)
    assert sorted((h.label, h.units) for h in s.holders) == [("big", 3), ("small", 1)]
    # Another process sees the Python holders' shares.
    g = status_json(racegate_bin, "vram")
    assert sorted(h["units"] for h in g["holders"]) == [1, 3], g
    big.release()
    small.release()

    gpus = racegate.MachineGate("gpus", capacity=2, devices=["0", "1"])
    assert gpus.devices == ["0", "1"]
    a = gpus.acquire(units=2, label="a")  # a whole device
    b = gpus.acquire(units=2, label="b")
    assert sorted(a.devices + b.devices) == ["0", "1"]
    s = gpus.status()
    assert [(d.id, d.used, d.capacity) for d in s.devices] == [("0", 2, 2), ("1", 2, 2)]
    assert sorted(tuple(h.devices) for h in s.holders) == [("0",), ("1",)]
    with pytest.raises(racegate.WouldBlock):
        gpus.try_acquire(units=1)
    a.release()
    one = gpus.acquire(units=1, timeout=5)
    assert one.devices == a.devices or one.devices == [d for d in ["0", "1"] if d not in b.devices]
    with pytest.raises(racegate.MachineGateError):
        gpus.acquire(units=3, timeout=5)  # neither one device's share nor whole devices
    one.release()
    b.release()
