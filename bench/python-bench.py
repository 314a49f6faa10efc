"""racegate from Python against the peers users reach for, side by side in one run.

1. Uncontended acquire+release: `with gate.acquire()` vs `with threading.Lock()`,
   `async with gate.acquire_async()` vs `async with asyncio.Lock()`, and `with MachineGate
   .acquire()` vs `with filelock.FileLock(...)` (both on files in the same directory). Variants
   run in interleaved rounds; per round, the mean ns per acquire+release; reported: the minimum
   and the median over the rounds (on a shared machine interference only adds time), and the
   median of the per-round ratios to the peer.
2. Wall time of bench/python-suite (8 GPU + 24 CPU tests, ~0.2 s each) under `pytest -n 4`:
   the racegate mark, `xdist_group` + `--dist loadgroup`, and serial (no xdist), plus the
   unserialized run as the floor; modes interleaved, each run checked for overlapping GPU tests.

Run by bench/python-bench.sh (which builds the release wheel into its own venv)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import filelock

import racegate

HERE = Path(__file__).resolve().parent


def per_op_ns(fn, n):
    t0 = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t0) / n


def micro(rounds, n, lock_dir):
    lock = threading.Lock()
    gate = racegate.Gate("bench")
    gate_nostats = racegate.Gate("bench-nostats", stats=False)
    machine = racegate.MachineGate("bench-machine", dir=lock_dir)
    flock = filelock.FileLock(os.path.join(lock_dir, "bench-filelock.lock"))
    alock = asyncio.Lock()
    loop = asyncio.new_event_loop()

    def b_lock(k):
        for _ in range(k):
            with lock:
                pass

    def b_gate(k):
        for _ in range(k):
            with gate.acquire():
                pass

    def b_gate_label(k):
        for _ in range(k):
            with gate.acquire(label="vision"):
                pass

    def b_gate_nostats(k):
        for _ in range(k):
            with gate_nostats.acquire():
                pass

    def b_try(k):
        for _ in range(k):
            with gate.try_acquire():
                pass

    async def a_lock(k):
        for _ in range(k):
            async with alock:
                pass

    async def a_gate(k):
        for _ in range(k):
            async with gate.acquire_async():
                pass

    def b_alock(k):
        loop.run_until_complete(a_lock(k))

    def b_agate(k):
        loop.run_until_complete(a_gate(k))

    m = max(n // 50, 200)

    def b_machine(k):
        for _ in range(k):
            with machine.acquire():
                pass

    def b_filelock(k):
        for _ in range(k):
            with flock:
                pass

    variants = [
        ("threading.Lock", b_lock, n, None),
        ("Gate.acquire (stats on)", b_gate, n, "threading.Lock"),
        ("Gate.acquire(label=...)", b_gate_label, n, "threading.Lock"),
        ("Gate.acquire (stats off)", b_gate_nostats, n, "threading.Lock"),
        ("Gate.try_acquire", b_try, n, "threading.Lock"),
        ("asyncio.Lock", b_alock, n, None),
        ("Gate.acquire_async", b_agate, n, "asyncio.Lock"),
        ("filelock.FileLock", b_filelock, m, None),
        ("MachineGate.acquire", b_machine, m, "filelock.FileLock"),
    ]
    for _, fn, k, _ in variants:  # warm up
        fn(max(k // 10, 10))
    results = {name: [] for name, *_ in variants}
    for _ in range(rounds):
        for name, fn, k, _ in variants:
            results[name].append(per_op_ns(fn, k))
    loop.close()
    rows = []
    for name, _, k, peer in variants:
        v = results[name]
        ratio = None
        if peer:
            ratio = statistics.median(a / b for a, b in zip(v, results[peer]))
        rows.append((name, k, min(v), statistics.median(v), ratio, peer))
    return rows


def read_log(log):
    """(most GPU tests inside at once, seconds from the first enter to the last leave)."""
    inside, most, stamps = 0, 0, []
    for line in log.read_text().splitlines():
        what, name, t = line.split(" ")
        stamps.append(float(t))
        if name.startswith("test_gpu"):
            inside += 1 if what == "enter" else -1
            most = max(most, inside)
    return most, max(stamps) - min(stamps)


MODES = {
    "racegate mark (-n 4)": ("mark", ["-n", "4"]),
    "racegate mark, racegate_spread = true (-n 4)": ("mark", ["-n", "4", "-o", "racegate_spread=true"]),
    "xdist_group + --dist loadgroup (-n 4)": ("xdist_group", ["-n", "4", "--dist", "loadgroup"]),
    "serial (no xdist)": ("none", ["-p", "no:xdist"]),
    "unserialized (-n 4, GPU tests overlap)": ("none", ["-n", "4"]),
}


def suite(runs, lock_dir):
    times = {m: [] for m in MODES}
    spans = {m: [] for m in MODES}
    overlap = {m: 0 for m in MODES}
    for _ in range(runs):
        for mode, (suite_mode, args) in MODES.items():
            with tempfile.TemporaryDirectory() as tmp:
                log = Path(tmp) / "events.log"
                env = dict(os.environ, SUITE_MODE=suite_mode, SUITE_LOG=str(log), RACEGATE_DIR=lock_dir)
                t0 = time.monotonic()
                out = subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                    cwd=HERE / "python-suite", env=env, capture_output=True, text=True, timeout=600,
                )
                times[mode].append(time.monotonic() - t0)
                if out.returncode != 0:
                    raise SystemExit(f"{mode}: pytest failed\n{out.stdout}\n{out.stderr}")
                most, span = read_log(log)
                overlap[mode] = max(overlap[mode], most)
                spans[mode].append(span)
    return [
        (m, min(t), statistics.median(t), max(t), statistics.median(spans[m]), overlap[m])
        for m, t in times.items()
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("-n", type=int, default=100_000, help="acquisitions per round (in-process)")
    ap.add_argument("--suite-runs", type=int, default=5)
    ap.add_argument("--dir", default=None, help="lock directory (default: a temp dir in /tmp)")
    a = ap.parse_args()
    lock_dir = a.dir or tempfile.mkdtemp(prefix="racegate-bench-")
    os.chmod(lock_dir, 0o700)
    print(f"python {sys.version.split()[0]}, racegate {racegate.__version__}, filelock {filelock.__version__}, "
          f"lock dir {lock_dir}, load average {os.getloadavg()[0]:.1f}")
    if a.rounds:
        print("\n| acquire+release, uncontended | per round | min ns | median ns | ratio to peer (median of rounds) |")
        print("|---|---|---|---|---|")
        for name, k, lo, med, ratio, peer in micro(a.rounds, a.n, lock_dir):
            r = f"{ratio:.2f}x {peer}" if ratio else "(peer)"
            print(f"| {name} | {k} | {lo:.0f} | {med:.0f} | {r} |")
    if a.suite_runs:
        print(f"\n| bench/python-suite, {a.suite_runs} runs interleaved | wall min s | wall median s | wall max s "
              "| tests' span, median s | most GPU tests at once |")
        print("|---|---|---|---|---|---|")
        for mode, lo, med, hi, span, most in suite(a.suite_runs, lock_dir):
            print(f"| {mode} | {lo:.2f} | {med:.2f} | {hi:.2f} | {span:.2f} | {most} |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
