"""The pytest plugin on real pytest-xdist runs (`pytester`, a subprocess per run): marked tests
never overlap while unmarked ones do; the control without the plugin overlaps; timeouts name the
holder; `racegate_groups` / `RACEGATE_PYTEST_GROUPS` apply the same serialization without marks;
and marked tests exclude Rust tests that take `racegate::test_guard("gpu")` at the same time."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time

import pytest

import racegate
from conftest import RUST_HOMES, WORKSPACE, max_inside, until

# A mixed suite: GPU and CPU tests alternate. Each logs `enter`/`leave` to SUITE_LOG and stays
# inside until another test of its kind is inside, or SUITE_HOLD seconds pass (SUITE_CPU_HOLD for
# CPU tests): under the gate no other GPU test can be, so each holds the full time; without it
# (the control) they meet and the overlap shows.
SUITE = textwrap.dedent(
    """
    import os
    import time

    import pytest

    LOG = os.environ["SUITE_LOG"]
    MARK = os.environ.get("SUITE_MARK", "1") == "1"
    gpu = pytest.mark.racegate("gpu") if MARK else (lambda f: f)


    def write(what, name):
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{what} {name}\\n".encode())
        finally:
            os.close(fd)


    def others_inside(me, prefix):
        inside = []
        with open(LOG) as f:
            for line in f:
                what, _, n = line.strip().partition(" ")
                if what == "enter":
                    inside.append(n)
                elif what == "leave" and n in inside:
                    inside.remove(n)
        return any(n != me and n.startswith(prefix) for n in inside)


    def job(name, prefix, hold):
        write("enter", name)
        end = time.monotonic() + hold
        while time.monotonic() < end and not others_inside(name, prefix):
            time.sleep(0.002)
        write("leave", name)


    HOLD = float(os.environ.get("SUITE_HOLD", "0.3"))
    CPU_HOLD = float(os.environ.get("SUITE_CPU_HOLD", "3"))
    PREFIX = os.environ.get("SUITE_PREFIX", "gpu-py")
    """
)


def suite(n_gpu=4, n_cpu=4):
    tests = []
    for i in range(max(n_gpu, n_cpu)):
        if i < n_gpu:
            tests.append(f"@gpu\ndef test_gpu_{i}():\n    job(f'{{PREFIX}}-{i}', 'gpu', HOLD)\n")
        if i < n_cpu:
            tests.append(f"def test_cpu_{i}():\n    job('cpu-{i}', 'cpu', CPU_HOLD)\n")
    return SUITE + "\n\n" + "\n\n".join(tests)


@pytest.fixture
def suite_log(pytester, lock_dir, monkeypatch):
    log = pytester.path / "events.log"
    monkeypatch.setenv("SUITE_LOG", str(log))
    monkeypatch.delenv("RACEGATE_PYTEST_GROUPS", raising=False)
    monkeypatch.delenv("RACEGATE_TEST_GUARD_TIMEOUT", raising=False)
    return log


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=300)


def test_marked_tests_never_overlap_across_xdist_workers_and_the_rest_stays_parallel(pytester, suite_log):
    pytester.makepyfile(test_suite=suite())
    result = run(pytester, "-n", "4")
    result.assert_outcomes(passed=8)
    most_gpu, gpu = max_inside(suite_log, "gpu")
    most_cpu, cpu = max_inside(suite_log, "cpu")
    assert len(gpu) == 4 and len(cpu) == 4
    assert most_gpu == 1, suite_log.read_text()
    assert most_cpu >= 2, suite_log.read_text()


def test_control_without_the_plugin_marked_tests_overlap(pytester, suite_log, monkeypatch):
    monkeypatch.setenv("SUITE_HOLD", "3")
    pytester.makepyfile(test_suite=suite())
    result = run(pytester, "-n", "4", "-p", "no:racegate", "-W", "ignore::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=8)
    most_gpu, gpu = max_inside(suite_log, "gpu")
    assert len(gpu) == 4
    assert most_gpu >= 2, suite_log.read_text()


def test_a_timed_out_test_fails_naming_the_holder(pytester, suite_log):
    pytester.makeini("[pytest]\nracegate_timeout = 300ms\n")
    pytester.makepyfile(test_suite=suite(n_gpu=1, n_cpu=1))
    holder = racegate.MachineGate("gpu").acquire(label="outer-holder")
    try:
        result = run(pytester, "-n", "2")
    finally:
        holder.release()
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "racegate: timed out after" in out, out
    assert "outer-holder" in out and f"pid {os.getpid()}" in out, out
    assert "test_gpu_0" in out


def test_the_mark_timeout_overrides_the_ini(pytester, suite_log):
    pytester.makeini("[pytest]\nracegate_timeout = 10m\n")
    pytester.makepyfile(
        test_t=SUITE
        + "\n@pytest.mark.racegate('gpu', timeout='200ms')\ndef test_quick():\n    job('gpu-q', 'gpu', 0)\n"
    )
    with racegate.MachineGate("gpu").acquire(label="outer-holder"):
        result = run(pytester)
    # Bounded by the mark's 200 ms, not the ini's 10 minutes (the run is given 5 at most).
    result.assert_outcomes(errors=1)
    assert "timed out after" in result.stdout.str()


def test_groups_from_the_ini_serialize_unmarked_tests(pytester, suite_log, monkeypatch):
    monkeypatch.setenv("SUITE_MARK", "0")
    pytester.makeini("[pytest]\nracegate_groups =\n    test_suite.py::test_gpu_* = gpu\n")
    pytester.makepyfile(test_suite=suite())
    result = run(pytester, "-n", "4")
    result.assert_outcomes(passed=8)
    most_gpu, gpu = max_inside(suite_log, "gpu")
    assert len(gpu) == 4 and most_gpu == 1, suite_log.read_text()


def test_groups_from_the_environment_serialize_unmarked_tests(pytester, suite_log, monkeypatch):
    # What `racegate hunt --verify` does: node ids (here with parameters, `[` included) to groups.
    monkeypatch.setenv("SUITE_MARK", "0")
    pytester.makepyfile(
        test_p=SUITE
        + "\n@pytest.mark.parametrize('i', range(4))\ndef test_gpu(i):\n    job(f'gpu-p-{i}', 'gpu', HOLD)\n"
    )
    ids = {f"test_p.py::test_gpu[{i}]": "gpu" for i in range(4)}
    monkeypatch.setenv("RACEGATE_PYTEST_GROUPS", __import__("json").dumps(ids))
    result = run(pytester, "-n", "4")
    result.assert_outcomes(passed=4)
    most_gpu, gpu = max_inside(suite_log, "gpu")
    assert len(gpu) == 4 and most_gpu == 1, suite_log.read_text()


@pytest.mark.parametrize(
    "ini, env, message",
    [
        ("racegate_groups =\n    no-equals-sign\n", None, "ini `racegate_groups` line 1"),
        ("racegate_timeout = soon\n", None, "ini `racegate_timeout` is `soon`"),
        ("", "{not json", "`RACEGATE_PYTEST_GROUPS` is not JSON"),
        ("", '{"t.py::a": 3}', "must be a group name"),
    ],
)
def test_bad_configuration_is_a_usage_error(pytester, suite_log, monkeypatch, ini, env, message):
    pytester.makeini("[pytest]\n" + ini)
    if env is not None:
        monkeypatch.setenv("RACEGATE_PYTEST_GROUPS", env)
    pytester.makepyfile(test_suite=suite(1, 1))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str() + result.stdout.str()


def test_bad_marks_fail_the_test_with_a_hint(pytester, suite_log):
    pytester.makepyfile(
        test_m=SUITE
        + "\n@pytest.mark.racegate()\ndef test_no_name():\n    pass\n"
        + "\n@pytest.mark.racegate('../x')\ndef test_bad_name():\n    pass\n"
        + "\n@pytest.mark.racegate('gpu', tmeout=3)\ndef test_typo():\n    pass\n"
    )
    result = run(pytester)
    result.assert_outcomes(errors=3)
    out = result.stdout.str()
    assert "needs gate names" in out and "is invalid" in out and "unknown option" in out


def rust_suite(cargo, log, lock_dir, guard):
    env = dict(
        os.environ,
        **RUST_HOMES,
        CARGO_TARGET_DIR=str(WORKSPACE / "target" / "fixtures"),
        RACEGATE_DIR=str(lock_dir),
        GUARD_SUITE_LOG=str(log),
        RACEGATE_TEST_GUARD_TIMEOUT="60s",
        GUARD_SUITE_HOLD_MS="300" if guard else "3000",
    )
    env.pop("RUSTFLAGS", None)
    if not guard:
        env["GUARD_SUITE_NO_GUARD"] = "1"
    manifest = str(WORKSPACE / "fixtures" / "test-guard-suite" / "Cargo.toml")
    built = subprocess.run(
        [cargo, "test", "-q", "--manifest-path", manifest, "--no-run"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    return lambda: subprocess.Popen(
        [cargo, "test", "-q", "--manifest-path", manifest, "--", "--test-threads=4"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "control"])
def test_marked_tests_and_rust_test_guard_tests_share_the_gate(pytester, suite_log, lock_dir, cargo, monkeypatch, gated):
    start_rust = rust_suite(cargo, suite_log, lock_dir, guard=gated)
    monkeypatch.setenv("SUITE_HOLD", "0.3" if gated else "3")
    pytester.makepyfile(test_suite=suite(n_gpu=4, n_cpu=2))
    args = ["-p", "no:cacheprovider", "-n", "2"]
    if not gated:
        args += ["-p", "no:racegate", "-W", "ignore::pytest.PytestUnknownMarkWarning"]
    py = subprocess.Popen(
        [__import__("sys").executable, "-m", "pytest", *args],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # The Rust suite starts once a Python GPU test is inside, so the two runs meet.
        until(lambda: suite_log.exists() and "enter gpu-py" in suite_log.read_text(), 120,
              "a Python GPU test to start")
        rust = start_rust()
        rust_out, _ = rust.communicate(timeout=300)
        py_out, _ = py.communicate(timeout=300)
    finally:
        py.kill()
    assert rust.returncode == 0, rust_out
    assert py.returncode == 0, py_out
    most, seen = max_inside(suite_log, "gpu")
    assert sorted(n for n in seen if n.startswith("gpu_")) == ["gpu_a", "gpu_b", "gpu_c", "gpu_d"]
    assert len([n for n in seen if n.startswith("gpu-py")]) == 4
    if gated:
        assert most == 1, suite_log.read_text()
    else:
        assert cross_language_overlap(suite_log), suite_log.read_text()


def cross_language_overlap(log):
    inside = []
    for line in log.read_text().splitlines():
        what, _, name = line.partition(" ")
        if what == "enter":
            inside.append(name)
            if any(n.startswith("gpu_") for n in inside) and any(n.startswith("gpu-py") for n in inside):
                return True
        elif what == "leave" and name in inside:
            inside.remove(name)
    return False


def test_spread_reorders_only_xdist_load_workers_and_keeps_the_gate(pytester, suite_log):
    body = SUITE + "".join(
        f"\n@gpu\ndef test_gpu_{i}():\n    job('gpu-py-{i}', 'gpu', 0.05)\n" for i in range(3)
    ) + "".join(f"\ndef test_cpu_{i}():\n    job('cpu-{i}', 'cpu', 0)\n" for i in range(6))
    pytester.makepyfile(test_s=body)
    pytester.makeini("[pytest]\nracegate_spread = true\n")
    # Without xdist nothing moves: pytest's order.
    collected = run(pytester, "-p", "no:xdist", "--collect-only", "-q").stdout.lines
    ids = [line.split("::")[1] for line in collected if "::" in line]
    assert ids == [f"test_gpu_{i}" for i in range(3)] + [f"test_cpu_{i}" for i in range(6)]
    # One xdist worker runs its collection in order: the marked tests at (2k+1)*9//6 = 1, 4, 7.
    run(pytester, "-n", "1").assert_outcomes(passed=9)
    order = [l.split()[1] for l in suite_log.read_text().splitlines() if l.startswith("enter")]
    assert [i for i, name in enumerate(order) if name.startswith("gpu")] == [1, 4, 7], order
    # Several workers reorder the same way (xdist aborts on differing collections).
    suite_log.unlink()
    run(pytester, "-n", "3").assert_outcomes(passed=9)
    most, seen = max_inside(suite_log, "gpu")
    assert len(seen) == 3 and most == 1
    # The grouping modes keep pytest's order: loadgroup decides by its own groups.
    suite_log.unlink()
    run(pytester, "-n", "1", "--dist", "loadgroup").assert_outcomes(passed=9)
    order = [l.split()[1] for l in suite_log.read_text().splitlines() if l.startswith("enter")]
    assert [i for i, name in enumerate(order) if name.startswith("gpu")] == [0, 1, 2], order


@pytest.mark.parametrize(
    "capacity, mark, units",
    [("4", "units=2", 2), ("", "capacity=2", 1)],
    ids=["environment-capacity-and-units", "mark-capacity"],
)
def test_shares_of_a_budget_like_rust_test_guard_with(pytester, suite_log, monkeypatch, capacity, mark, units):
    # RACEGATE_TEST_GUARD_CAPACITY=4 and `units=2`, or `capacity=2` on the mark: two marked
    # tests at once, never three (each stays until another is inside, so the pairs meet; a
    # third would be seen inside with them).
    monkeypatch.setenv("RACEGATE_TEST_GUARD_CAPACITY", capacity)
    pytester.makepyfile(
        test_b=SUITE
        + "".join(
            f"\n@pytest.mark.racegate('vram', {mark})\ndef test_gpu_{i}(racegate_guards):\n"
            f"    assert racegate_guards['vram'].units == {units}\n    job('gpu-{i}', 'gpu', 10)\n"
            for i in range(4)
        )
    )
    run(pytester, "-n", "4").assert_outcomes(passed=4)
    most, seen = max_inside(suite_log, "gpu")
    assert len(seen) == 4 and most == 2, suite_log.read_text()


def test_devices_from_the_environment_give_each_test_its_own_device(pytester, suite_log, monkeypatch):
    # Two devices of one unit: a marked test holds a whole device, so two run at once, each on
    # the device its guard names, and never two on one device.
    monkeypatch.setenv("RACEGATE_TEST_GUARD_DEVICES", "0,1")
    pytester.makepyfile(
        test_d=SUITE
        + "".join(
            f"\n@pytest.mark.racegate('gpus')\ndef test_gpu_{i}(racegate_guards):\n"
            f"    (dev,) = racegate_guards['gpus'].devices\n    job(f'gpu-{{dev}}-{i}', 'gpu', 10)\n"
            for i in range(4)
        )
    )
    run(pytester, "-n", "4").assert_outcomes(passed=4)
    most, seen = max_inside(suite_log, "gpu")
    assert len(seen) == 4 and most == 2, suite_log.read_text()
    inside = []
    for line in suite_log.read_text().splitlines():
        what, _, name = line.partition(" ")
        if what == "enter":
            dev = name.split("-")[1]
            assert dev in ("0", "1") and all(n.split("-")[1] != dev for n in inside), suite_log.read_text()
            inside.append(name)
        elif name in inside:
            inside.remove(name)


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("RACEGATE_TEST_GUARD_CAPACITY", "lots", "`RACEGATE_TEST_GUARD_CAPACITY` is `lots`, not a capacity"),
        ("RACEGATE_TEST_GUARD_CAPACITY", "0", "not a capacity"),
        ("RACEGATE_TEST_GUARD_DEVICES", "0,,1", "`RACEGATE_TEST_GUARD_DEVICES`: device list `0,,1` has an empty entry"),
    ],
)
def test_bad_test_guard_variables_are_a_usage_error(pytester, suite_log, monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    pytester.makepyfile(test_suite=suite(1, 1))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str() + result.stdout.str()


def test_a_share_that_cannot_be_placed_fails_the_test_naming_why(pytester, suite_log, monkeypatch):
    monkeypatch.setenv("RACEGATE_TEST_GUARD_CAPACITY", "2")
    monkeypatch.setenv("RACEGATE_TEST_GUARD_DEVICES", "0,1")
    pytester.makepyfile(
        test_u=SUITE
        + "\n@pytest.mark.racegate('gpus', units=3)\ndef test_three():\n    pass\n"
        + "\n@pytest.mark.racegate('gpus', units=0)\ndef test_zero():\n    pass\n"
    )
    result = run(pytester)
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert "cannot place `3` units" in out, out
    assert "units=0" in out and "positive whole number" in out, out
