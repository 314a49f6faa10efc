"""The suite of the Python wall-time benchmark (bench/python-bench.py): 8 GPU tests and 24 CPU
tests, ~0.2 s each. `SUITE_MODE` says how test_gpu.py keeps its tests apart: `mark`
(@pytest.mark.racegate("gpu")), `xdist_group` (@pytest.mark.xdist_group("gpu"), run with
`--dist loadgroup`), or `none` (serial runs, and the unserialized reference). Every test logs
`enter`/`leave` and the time to `SUITE_LOG`, so the benchmark can check that GPU tests never
overlapped and measure the span of the tests themselves (first enter to last leave)."""

import os
import time

import pytest

LOG = os.environ.get("SUITE_LOG")
WORK = float(os.environ.get("SUITE_WORK", "0.2"))


def _log(what, name):
    if LOG:
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{what} {name} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)


@pytest.fixture
def work(request):
    name = request.node.name
    _log("enter", name)
    # The work itself: a fixed duration, as a GPU kernel or a CPU step would take.
    time.sleep(WORK)
    yield
    _log("leave", name)
