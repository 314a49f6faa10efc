"""pytest plugin (registered as ``racegate`` through the ``pytest11`` entry point).

``@pytest.mark.racegate("gpu")`` holds the machine-wide gate ``gpu`` across the test's setup,
call and teardown. The gate is the one ``racegate::test_guard("gpu")`` takes in Rust tests and
``racegate run --gate gpu`` takes in the shell: marked tests never overlap with one another,
across pytest-xdist workers, other pytest runs and Rust test processes of the same user on the
machine, while every other test stays parallel.

Options:

- ``@pytest.mark.racegate("gpu", "net", timeout=30, units=None, capacity=None)``: several gates
  are taken in name order (no deadlock between tests that take several); ``timeout`` in seconds
  overrides the default; ``units`` is the test's share of each gate (default: all units of one
  device, i.e. the whole gate when it declares no devices; one unit when the mark gives
  ``capacity``, so ``capacity=2`` lets two such tests run at once); ``capacity`` is the gate's
  units per device (every user of a gate must agree).
- As with ``racegate::test_guard_with`` in Rust, the environment variables
  ``RACEGATE_TEST_GUARD_CAPACITY`` (default capacity, default 1) and
  ``RACEGATE_TEST_GUARD_DEVICES`` (``0,1,2,3``, or ``auto``: ``CUDA_VISIBLE_DEVICES``, else
  ``nvidia-smi -L``; unset: no devices) configure the gates, so marked tests share out the same
  budget as Rust tests. The fixture ``racegate_guards`` gives a test its guards by gate name, e.g.
  ``racegate_guards["gpu"].devices`` to point its work at the devices it holds.
- ini ``racegate_timeout`` (``600``, ``90s``, ``1500ms``, ``10m``): the default timeout. The
  environment variable ``RACEGATE_TEST_GUARD_TIMEOUT`` (the Rust test guard's) overrides it for
  a run; without either it is 600 s. A test whose gate is not granted in time fails at setup,
  naming the holder (pid, command, test id) and how long it has held.
- ini ``racegate_groups``: lines ``PATTERN = GROUP[, GROUP...]`` that mark the tests whose node id
  matches PATTERN (exact, or a glob with ``*``/``?``) as if they carried
  ``@pytest.mark.racegate(GROUP, ...)``. The environment variable ``RACEGATE_PYTEST_GROUPS``
  does the same from JSON, ``{"PATTERN": "GROUP" or ["GROUP", ...]}``: how ``racegate hunt
  --verify`` applies a serialization without editing the suite.
- The lock directory is racegate's (``RACEGATE_DIR``, else ``$XDG_RUNTIME_DIR/racegate``, else
  ``/tmp/racegate-<uid>``).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from typing import Dict, Generator, List, Optional, Sequence, Tuple, TypeVar

import pytest

import racegate

DEFAULT_TIMEOUT = 600.0
TIMEOUT_ENV = "RACEGATE_TEST_GUARD_TIMEOUT"
CAPACITY_ENV = "RACEGATE_TEST_GUARD_CAPACITY"
DEVICES_ENV = "RACEGATE_TEST_GUARD_DEVICES"
GROUPS_ENV = "RACEGATE_PYTEST_GROUPS"
TIMEOUT_INI = "racegate_timeout"
GROUPS_INI = "racegate_groups"
SPREAD_INI = "racegate_spread"

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")


def parse_duration(text: str) -> Optional[float]:
    """Seconds from ``90``, ``90s``, ``1.5s``, ``1500ms``, ``10m``; ``None`` if it is none of
    those."""
    m = _DURATION.match(str(text))
    if not m:
        return None
    value = float(m.group(1))
    return value * {None: 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0}[m.group(2)]


class _Groups:
    """Node-id patterns and the gates the tests they match take."""

    def __init__(self) -> None:
        self.rules: List[Tuple[str, Optional["re.Pattern[str]"], Tuple[str, ...]]] = []

    def add(self, pattern: str, groups: Sequence[str]) -> None:
        matcher = None
        if "*" in pattern or "?" in pattern:
            # `[` is common in node ids (parametrized tests): literal, not a character class.
            escaped = pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
            matcher = re.compile(fnmatch.translate(escaped))
        self.rules.append((pattern, matcher, tuple(groups)))

    def of(self, nodeid: str) -> List[str]:
        out: List[str] = []
        for pattern, matcher, groups in self.rules:
            if nodeid == pattern or (matcher is not None and matcher.match(nodeid)):
                out.extend(groups)
        return out


def _split_groups(text: str) -> List[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def parse_ini_groups(lines: Sequence[str]) -> _Groups:
    groups = _Groups()
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, names = line.rpartition("=")
        pattern = pattern.strip()
        if not sep or not pattern or not _split_groups(names):
            raise pytest.UsageError(
                f"ini `{GROUPS_INI}` line {n}: `{line}` is not `PATTERN = GROUP[, GROUP...]`; "
                f"hint: e.g. `tests/test_gpu.py::* = gpu`"
            )
        groups.add(pattern, _split_groups(names))
    return groups


def parse_env_groups(text: str, into: _Groups) -> None:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise pytest.UsageError(
            f"`{GROUPS_ENV}` is not JSON ({e}); hint: "
            '`{"tests/test_gpu.py::test_a": "gpu"}`'
        ) from None
    if not isinstance(doc, dict):
        raise pytest.UsageError(
            f"`{GROUPS_ENV}` must be a JSON object of node id (or glob) to group name(s), "
            f"not `{type(doc).__name__}`"
        )
    for pattern, names in doc.items():
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(g, str) and g for g in names):
            raise pytest.UsageError(
                f"`{GROUPS_ENV}`: the value for `{pattern}` must be a group name or a list of them"
            )
        into.add(pattern, names)


class _Settings:
    def __init__(self, timeout: float, groups: _Groups, capacity: int, devices: List[str]) -> None:
        self.timeout = timeout
        self.groups = groups
        self.capacity = capacity
        self.devices = devices


_SETTINGS = pytest.StashKey[_Settings]()
_GUARDS = pytest.StashKey[List[racegate.Guard]]()


def _default_timeout(config: pytest.Config) -> float:
    env = os.environ.get(TIMEOUT_ENV)
    if env is not None:
        secs = parse_duration(env)
        if secs is None:
            raise pytest.UsageError(
                f"`{TIMEOUT_ENV}` is `{env}`, not a duration; hint: write e.g. `90s`, `1500ms`, `10m`"
            )
        return secs
    ini = config.getini(TIMEOUT_INI)
    if ini:
        secs = parse_duration(ini)
        if secs is None:
            raise pytest.UsageError(
                f"ini `{TIMEOUT_INI}` is `{ini}`, not a duration; hint: write e.g. `90s`, `1500ms`, `10m`"
            )
        return secs
    return DEFAULT_TIMEOUT


def parse_capacity(text: str) -> Optional[int]:
    """A capacity (units per device, at least 1) from ``80``; ``None`` if it is not one."""
    text = str(text).strip()
    if not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if 1 <= value <= 0xFFFF_FFFF else None


def _capacity_and_devices() -> Tuple[int, List[str]]:
    """The gates' capacity and devices from the Rust test guard's variables (blank: unset)."""
    raw = os.environ.get(CAPACITY_ENV, "").strip()
    capacity = 1
    if raw:
        parsed = parse_capacity(raw)
        if parsed is None:
            raise pytest.UsageError(
                f"`{CAPACITY_ENV}` is `{raw}`, not a capacity; hint: write the units of one "
                "device, e.g. `80` or `100`"
            )
        capacity = parsed
    raw = os.environ.get(DEVICES_ENV, "").strip()
    if not raw:
        return capacity, []
    if raw == "auto":
        return capacity, racegate.discover_devices()
    try:
        return capacity, racegate.parse_device_list(raw)
    except racegate.ConfigError as e:
        raise pytest.UsageError(f"`{DEVICES_ENV}`: {e}") from None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        TIMEOUT_INI,
        "default timeout of @pytest.mark.racegate (e.g. 600, 90s, 1500ms, 10m); "
        f"{TIMEOUT_ENV} overrides it",
        default="",
    )
    parser.addini(
        SPREAD_INI,
        "under pytest-xdist's load or worksteal scheduling, spread marked tests evenly through "
        "the collection so workers reach the gate one at a time (default false: pytest's order)",
        type="bool",
        default=False,
    )
    parser.addini(
        GROUPS_INI,
        "lines `PATTERN = GROUP[, GROUP...]`: tests whose node id matches PATTERN take the "
        "machine-wide gate(s) GROUP as if marked @pytest.mark.racegate(GROUP)",
        type="linelist",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "racegate(name, *names, timeout=None, units=None, capacity=None): hold the machine-wide "
        "racegate gate(s) (a share of `units`, default one whole device) across the test's "
        "setup, call and teardown (shared with xdist workers, other processes, "
        "`racegate run --gate` and Rust `racegate::test_guard`)",
    )
    groups = parse_ini_groups(config.getini(GROUPS_INI))
    env = os.environ.get(GROUPS_ENV)
    if env:
        parse_env_groups(env, groups)
    capacity, devices = _capacity_and_devices()
    config.stash[_SETTINGS] = _Settings(_default_timeout(config), groups, capacity, devices)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    groups = config.stash[_SETTINGS].groups
    if groups.rules:
        for item in items:
            names = groups.of(item.nodeid)
            if names:
                item.add_marker(pytest.mark.racegate(*names))
    if config.getini(SPREAD_INI) and _xdist_load_worker(config):
        items[:] = spread(items, [item.get_closest_marker("racegate") is not None for item in items])


def _xdist_load_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker fed test by test from one shared queue (the
    `load` and `worksteal` modes), where the collection order decides when workers reach the
    gate. Every worker collects, and reorders the same way, so the collections still agree."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return False
    return _dist_mode(config.getoption("dist", "no"), workerinput.get("mainargv", [])) in ("load", "worksteal")


def _dist_mode(own: str, mainargv: Sequence[str]) -> str:
    """The controller's `--dist` mode, as a worker can know it: xdist does not pass `--dist`
    from the command line on to its workers (only ini `addopts` reach them, as `own`), so it is
    read from the controller's argv; `-n` alone means `load`."""
    mode = own if own != "no" else "load"
    args = list(mainargv)
    for i, arg in enumerate(args):
        if arg == "--dist" and i + 1 < len(args):
            mode = args[i + 1]
        elif arg.startswith("--dist="):
            mode = arg.split("=", 1)[1]
        elif arg == "-d":
            mode = "load"
    return mode


def spread(items: List[T], marked: List[bool]) -> List[T]:
    """`items` with the marked ones spread evenly among the others, each group in its own order:
    the k-th of m marked items lands at about (k + 1/2) n / m. Under xdist's load scheduling the
    workers then meet marked tests at a steady rate instead of all at once (pytest's order often
    puts a GPU test module in one block), which keeps them busy instead of queued at the gate."""
    chosen = [i for i, m in zip(items, marked) if m]
    others = [i for i, m in zip(items, marked) if not m]
    if not chosen or not others:
        return list(items)
    n, m = len(items), len(chosen)
    out: List[T] = []
    rest = iter(others)
    for k, item in enumerate(chosen):
        target = (2 * k + 1) * n // (2 * m)
        while len(out) < target:
            nxt = next(rest, None)
            if nxt is None:
                break
            out.append(nxt)
        out.append(item)
    out.extend(rest)
    return out


def _positive(item: pytest.Item, mark: pytest.Mark, key: str) -> Optional[int]:
    raw = mark.kwargs.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 0xFFFF_FFFF:
        pytest.fail(
            f"{item.nodeid}: `@pytest.mark.racegate({key}={raw!r})` is not a positive whole "
            f"number; hint: e.g. `{key}=2`",
            pytrace=False,
        )
    return raw


def _wanted(item: pytest.Item) -> Tuple[List[Tuple[str, Optional[int], Optional[int]]], Optional[float]]:
    """The gates a test takes (name order) with their capacities and the test's units (`None`:
    the defaults), and its timeout (the nearest mark's, if it gives one)."""
    gates: Dict[str, Tuple[Optional[int], Optional[int]]] = {}
    timeout: Optional[float] = None
    for mark in item.iter_markers("racegate"):
        if not mark.args or not all(isinstance(a, str) and a for a in mark.args):
            pytest.fail(
                f"{item.nodeid}: `@pytest.mark.racegate` needs gate names, e.g. "
                f'`@pytest.mark.racegate("gpu")`, got {mark.args!r}',
                pytrace=False,
            )
        unknown = set(mark.kwargs) - {"timeout", "capacity", "units"}
        if unknown:
            pytest.fail(
                f"{item.nodeid}: `@pytest.mark.racegate` got unknown option(s) {sorted(unknown)}; "
                "hint: it takes `timeout=`, `units=` and `capacity=`",
                pytrace=False,
            )
        share = (_positive(item, mark, "capacity"), _positive(item, mark, "units"))
        for name in mark.args:
            gates.setdefault(name, share)
        if timeout is None and mark.kwargs.get("timeout") is not None:
            raw = mark.kwargs["timeout"]
            timeout = raw if isinstance(raw, (int, float)) else parse_duration(raw)
            if timeout is None or timeout < 0:
                pytest.fail(
                    f"{item.nodeid}: `@pytest.mark.racegate(timeout={raw!r})` is not a duration; "
                    "hint: seconds, or e.g. `90s`, `1500ms`",
                    pytrace=False,
                )
    return sorted((name, c, u) for name, (c, u) in gates.items()), timeout


@pytest.fixture
def racegate_guards(request: pytest.FixtureRequest) -> Dict[str, racegate.Guard]:
    """The guards the test's racegate marks hold, by gate name (empty for an unmarked test)."""
    guards = request.node.stash.get(_GUARDS, [])
    return {g.gate_name or "": g for g in guards}


def _release(item: pytest.Item) -> None:
    guards = item.stash.get(_GUARDS, None)
    if guards:
        item.stash[_GUARDS] = []
        for guard in reversed(guards):
            guard.release()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A plain implementation: it runs after every wrapper has started (so failing here is an
    # ordinary setup failure for the other plugins) and after `skipif`/`skip` marks were
    # evaluated (tryfirst), but before the runner sets up any fixture.
    gates, timeout = _wanted(item)
    if not gates:
        return
    settings = item.config.stash[_SETTINGS]
    if timeout is None:
        timeout = settings.timeout
    held: List[racegate.Guard] = []
    item.stash[_GUARDS] = held
    failure = None
    try:
        for name, capacity, units in gates:
            if units is None:
                # `capacity=N` on the mark: N tests at once; else, as `test_guard`, one device.
                units = 1 if capacity else settings.capacity
            capacity = capacity or settings.capacity
            gate = racegate.configure_machine_wide(name, capacity, devices=settings.devices)
            held.append(gate.acquire(label=item.nodeid, timeout=timeout, units=units))
    except racegate.RacegateError as e:
        _release(item)
        failure = f"racegate: {e}"
    if failure is not None:
        pytest.fail(failure, pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: Optional[pytest.Item]
) -> Generator[None, None, None]:
    # Released after every teardown implementation ran, also when one of them raised.
    try:
        yield
    finally:
        _release(item)
