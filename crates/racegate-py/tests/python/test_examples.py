"""The README's Python examples (crates/racegate-py/examples) run as written: the threaded and
the asyncio server answer concurrent clients on loopback with the GPU entered by one request at
a time (and, without the gate, the same load enters it concurrently: the control), and the
example pytest suite passes under xdist."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLIENTS, REQUESTS = 8, 3


def start(script, gated, monkeypatch):
    # Without the gate, a dispatch waits (up to 3 s) to meet another: the race shows for sure.
    monkeypatch.setenv("FAKE_GPU_SECONDS", "0.01" if gated else "3")
    args = [sys.executable, str(EXAMPLES / script), "--port", "0"] + ([] if gated else ["--no-gate"])
    proc = subprocess.Popen(args, cwd=EXAMPLES, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on 127.0.0.1:"), line
    return proc, int(line.rsplit(":", 1)[1])


def in_threads(fn):
    errors, barrier = [], threading.Barrier(CLIENTS)

    def client(i):
        try:
            barrier.wait(30)
            fn(i)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "control"])
def test_threaded_server(gated, monkeypatch):
    proc, port = start("threaded_server.py", gated, monkeypatch)
    try:
        def client(i):
            for k in range(REQUESTS):
                req = urllib.request.Request(f"http://127.0.0.1:{port}/c{i}", data=f"p{i}-{k}".encode())
                with urllib.request.urlopen(req, timeout=30) as r:
                    assert r.status == 200 and r.read() == f"P{i}-{k}".encode()

        in_threads(client)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=30) as r:
            body = json.load(r)
    finally:
        proc.kill()
        proc.wait(30)
    if gated:
        assert body["most_inside"] == 1
        assert body["stats"]["acquisitions"] == CLIENTS * REQUESTS
        assert {l["label"] for l in body["stats"]["labels"]} == {f"/c{i}" for i in range(CLIENTS)}
    else:
        assert body["most_inside"] >= 2


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "control"])
def test_asyncio_server(gated, monkeypatch):
    proc, port = start("asyncio_server.py", gated, monkeypatch)
    try:
        def client(i):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                f = s.makefile("rwb")
                for k in range(REQUESTS):
                    f.write(f"p{i}-{k}\n".encode())
                    f.flush()
                    assert f.readline() == f"P{i}-{k}\n".encode()

        in_threads(client)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            f = s.makefile("rwb")
            f.write(b"stats\n")
            f.flush()
            body = json.loads(f.readline())
    finally:
        proc.kill()
        proc.wait(30)
    if gated:
        assert body["most_inside"] == 1
        assert body["stats"]["acquisitions"] == CLIENTS * REQUESTS
    else:
        assert body["most_inside"] >= 2


def test_pytest_suite_example(lock_dir):
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"],
        cwd=EXAMPLES / "pytest_suite", capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "9 passed" in out.stdout
