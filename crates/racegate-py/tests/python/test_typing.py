"""The type stubs ship in the wheel and match the extension module (mypy's stubtest), and typical
use type-checks under `mypy --strict`."""

from __future__ import annotations

import subprocess
import sys

from conftest import HELPERS


def mypy(*args):
    out = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, cwd=HELPERS
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_the_stubs_match_the_extension_module():
    # PEP 800's @disjoint_base markers are left out: they tell checkers nothing users need.
    mypy("mypy.stubtest", "--ignore-disjoint-bases", "racegate._native")


def test_the_package_and_its_typical_use_type_check_strictly():
    import racegate

    mypy("mypy", "--strict", "--no-incremental", "-p", "racegate")
    mypy("mypy", "--strict", "--no-incremental", str(HELPERS / "typed_usage.py"))
    assert racegate.__file__
