"""Property tests of what the pytest plugin reads from outside (ini values, the
RACEGATE_PYTEST_GROUPS and RACEGATE_TEST_GUARD_* variables, marks' durations) and of its collection reordering: bad input
is a usage error naming the key, never a crash; good input means what it says."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racegate.pytest_plugin import (
    _Groups,
    parse_capacity,
    parse_duration,
    parse_env_groups,
    parse_ini_groups,
    spread,
)

names = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=20)
nodeids = st.text(string.ascii_letters + string.digits + "_/.:[]-", min_size=1, max_size=40).filter(
    lambda s: "*" not in s and "?" not in s and "=" not in s and "," not in s and s.strip() == s
)


@given(st.text(max_size=40))
def test_any_text_is_a_duration_or_none(text):
    secs = parse_duration(text)
    assert secs is None or secs >= 0


@given(st.integers(0, 10**6), st.sampled_from(["", "s", "ms", "m"]))
def test_durations_mean_what_they_say(n, unit):
    factor = {"": 1, "s": 1, "ms": 1e-3, "m": 60}[unit]
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * factor)


@given(st.text(max_size=20))
def test_any_text_is_a_capacity_or_none(text):
    c = parse_capacity(text)
    assert c is None or 1 <= c <= 0xFFFF_FFFF


@given(st.integers(-5, 2**33))
def test_capacities_mean_what_they_say(n):
    assert parse_capacity(f" {n} ") == (n if 1 <= n <= 0xFFFF_FFFF else None)


@given(st.text(max_size=40))
def test_any_device_list_parses_or_is_a_config_error(text):
    import racegate

    try:
        ids = racegate.parse_device_list(text)
    except racegate.ConfigError as e:
        assert "hint:" in str(e)
    else:
        assert ids and len(set(ids)) == len(ids) and all(i and "," not in i for i in ids)


@given(st.lists(st.text(max_size=60), max_size=8))
def test_any_ini_lines_parse_or_are_a_usage_error(lines):
    try:
        groups = parse_ini_groups(lines)
    except pytest.UsageError as e:
        assert "racegate_groups" in str(e) and "line" in str(e)
    else:
        assert isinstance(groups, _Groups)


@given(st.text(max_size=80))
def test_any_environment_value_parses_or_is_a_usage_error(text):
    try:
        parse_env_groups(text, _Groups())
    except pytest.UsageError as e:
        assert "RACEGATE_PYTEST_GROUPS" in str(e)


@given(st.dictionaries(nodeids, st.one_of(names, st.lists(names, min_size=1, max_size=3)), max_size=5))
def test_environment_groups_apply_to_exactly_their_node_ids(doc):
    groups = _Groups()
    parse_env_groups(json.dumps(doc), groups)
    for nodeid, wanted in doc.items():
        wanted = [wanted] if isinstance(wanted, str) else wanted
        assert groups.of(nodeid) == wanted
        assert groups.of(nodeid + "x") == [] or any(k == nodeid + "x" for k in doc)


@given(st.lists(st.tuples(nodeids, st.lists(names, min_size=1, max_size=3)), max_size=5))
def test_ini_groups_round_trip(rules):
    lines = [f"{nodeid} = {', '.join(gs)}" for nodeid, gs in rules]
    groups = parse_ini_groups(lines)
    for nodeid, _ in rules:
        expected = [g for n, gs in rules if n == nodeid for g in gs]
        assert groups.of(nodeid) == expected


def test_globs_treat_brackets_literally():
    groups = _Groups()
    groups.add("tests/test_gpu.py::test_a[*]", ["gpu"])
    assert groups.of("tests/test_gpu.py::test_a[1-2]") == ["gpu"]
    assert groups.of("tests/test_gpu.py::test_a1") == []
    groups.add("tests/test_gpu.py::*", ["all"])
    assert groups.of("tests/test_gpu.py::test_b") == ["all"]
    assert groups.of("tests/test_cpu.py::test_b") == []


@settings(max_examples=300)
@given(st.lists(st.booleans(), max_size=60))
def test_spread_keeps_every_item_and_each_group_in_order(marked):
    items = list(range(len(marked)))
    out = spread(items, marked)
    assert sorted(out) == items
    chosen = [i for i in out if marked[i]]
    others = [i for i in out if not marked[i]]
    assert chosen == sorted(chosen) and others == sorted(others)


@given(st.integers(1, 20), st.integers(1, 60))
def test_spread_places_marked_items_evenly(m, rest):
    marked = [True] * m + [False] * rest
    out = spread(list(range(len(marked))), marked)
    positions = [p for p, i in enumerate(out) if marked[i]]
    n = len(marked)
    # The k-th marked item sits at (2k+1)n/(2m), rounded down: gaps differ by at most one slot.
    assert positions == [(2 * k + 1) * n // (2 * m) for k in range(m)]


def test_the_dist_mode_a_worker_sees():
    from racegate.pytest_plugin import _dist_mode

    assert _dist_mode("no", ["pytest", "-n", "4"]) == "load"
    assert _dist_mode("no", ["pytest", "-n", "4", "--dist", "loadgroup"]) == "loadgroup"
    assert _dist_mode("no", ["pytest", "--dist=worksteal", "-n", "2"]) == "worksteal"
    assert _dist_mode("loadscope", ["pytest", "-n", "2"]) == "loadscope"  # from ini addopts
    assert _dist_mode("no", ["pytest", "-n", "2", "-d"]) == "load"


@given(st.lists(st.text(max_size=12), max_size=8), st.sampled_from(["no", "load", "loadgroup"]))
def test_any_argv_gives_a_mode(argv, own):
    from racegate.pytest_plugin import _dist_mode

    assert isinstance(_dist_mode(own, argv), str)
