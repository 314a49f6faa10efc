"""Shared fixtures of racegate's Python tests (run by crates/racegate-py/tests/python.rs in the
venv it provisions, or by hand: `target/py-venv/bin/python -m pytest crates/racegate-py/tests/python`).

Every test bounds its waits (`until` raises after a deadline), and synchronizes on observed state
(files, `stats().waiters`, `status()`), never on sleeps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent
WORKSPACE = Path(os.environ.get("RACEGATE_WORKSPACE", HERE.parents[3]))
HELPERS = HERE / "helpers"
# pytester points HOME at a temporary directory: cargo run from a test keeps the toolchain's
# homes as they were at start (cargo test sets them; by hand they come from HOME).
RUST_HOMES = {
    key: os.environ.get(key) or os.path.expanduser(default)
    for key, default in (("CARGO_HOME", "~/.cargo"), ("RUSTUP_HOME", "~/.rustup"))
}


def until(cond, limit=30.0, what="condition"):
    """Polls `cond` until it is true; fails the test after `limit` seconds."""
    end = time.monotonic() + limit
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    """A private racegate lock directory, also for child processes."""
    d = tmp_path / "locks"
    monkeypatch.setenv("RACEGATE_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def racegate_bin():
    """The `racegate` binary (the Rust driver passes the one it built)."""
    b = os.environ.get("RACEGATE_BIN") or shutil.which("racegate")
    if not b:
        b = str(WORKSPACE / "target" / "debug" / "racegate")
    assert Path(b).is_file(), f"no racegate binary at {b}: set RACEGATE_BIN"
    return b


@pytest.fixture(scope="session")
def cargo():
    return os.environ.get("CARGO", "cargo")


def spawn_holder(gate, label, tmp_path, name, *extra):
    """A child Python process that holds the machine-wide `gate` (see helpers/hold.py)."""
    ready = tmp_path / f"{name}.ready"
    release = tmp_path / f"{name}.release"
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "hold.py"), gate, label, str(ready), str(release), *extra],
    )
    return proc, ready, release


def max_inside(log: Path, prefix: str = "gpu"):
    """The most tests whose name starts with `prefix` inside at once, from an enter/leave log."""
    inside, most, seen = [], 0, []
    for line in log.read_text().splitlines():
        what, _, name = line.partition(" ")
        if not name.startswith(prefix):
            continue
        if what == "enter":
            inside.append(name)
            seen.append(name)
            most = max(most, len(inside))
        elif what == "leave" and name in inside:
            inside.remove(name)
    return most, seen
