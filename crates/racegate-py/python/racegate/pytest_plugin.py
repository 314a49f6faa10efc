"""pytest plugin (registered as ``racegate`` through the ``pytest11`` entry point).

``@pytest.mark.racegate("gpu")`` holds the machine-wide gate ``gpu`` across the test's setup,
call and teardown. The gate is the one ``racegate::test_guard("gpu")`` takes in Rust tests and
``racegate run --gate gpu`` takes in the shell: marked tests never overlap with one another,
across pytest-xdist workers, other pytest runs and Rust test processes of the same user on the
machine, while every other test stays parallel.

Options:

- ``@pytest.mark.racegate("gpu", "net", timeout=30, capacity=1)``: several gates are taken in
  name order (no deadlock between tests that take several); ``timeout`` in seconds overrides the
  default; ``capacity`` is the gate's (every user of a gate must agree; default 1).
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
    def __init__(self, timeout: float, groups: _Groups) -> None:
        self.timeout = timeout
        self.groups = groups


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
        "racegate(name, *names, timeout=None, capacity=1): hold the machine-wide racegate "
        "gate(s) across the test's setup, call and teardown (shared with xdist workers, other "
        "processes, `racegate run --gate` and Rust `racegate::test_guard`)",
    )
    groups = parse_ini_groups(config.getini(GROUPS_INI))
    env = os.environ.get(GROUPS_ENV)
    if env:
        parse_env_groups(env, groups)
    config.stash[_SETTINGS] = _Settings(_default_timeout(config), groups)


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


def _wanted(item: pytest.Item) -> Tuple[List[Tuple[str, int]], Optional[float]]:
    """The gates a test takes (name order) with their capacities, and its timeout (the nearest
    mark's, if it gives one)."""
    gates: Dict[str, int] = {}
    timeout: Optional[float] = None
    for mark in item.iter_markers("racegate"):
        if not mark.args or not all(isinstance(a, str) and a for a in mark.args):
            pytest.fail(
                f"{item.nodeid}: `@pytest.mark.racegate` needs gate names, e.g. "
                f'`@pytest.mark.racegate("gpu")`, got {mark.args!r}',
                pytrace=False,
            )
        unknown = set(mark.kwargs) - {"timeout", "capacity"}
        if unknown:
            pytest.fail(
                f"{item.nodeid}: `@pytest.mark.racegate` got unknown option(s) {sorted(unknown)}; "
                "hint: it takes `timeout=` and `capacity=`",
                pytrace=False,
            )
        capacity = mark.kwargs.get("capacity", 1)
        for name in mark.args:
            gates.setdefault(name, capacity)
        if timeout is None and mark.kwargs.get("timeout") is not None:
            raw = mark.kwargs["timeout"]
            timeout = raw if isinstance(raw, (int, float)) else parse_duration(raw)
            if timeout is None or timeout < 0:
                pytest.fail(
                    f"{item.nodeid}: `@pytest.mark.racegate(timeout={raw!r})` is not a duration; "
                    "hint: seconds, or e.g. `90s`, `1500ms`",
                    pytrace=False,
                )
    return sorted(gates.items()), timeout


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
    if timeout is None:
        timeout = item.config.stash[_SETTINGS].timeout
    held: List[racegate.Guard] = []
    item.stash[_GUARDS] = held
    failure = None
    try:
        for name, capacity in gates:
            gate = racegate.configure_machine_wide(name, capacity)
            held.append(gate.acquire(label=item.nodeid, timeout=timeout))
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
