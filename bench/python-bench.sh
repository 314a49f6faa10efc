#!/usr/bin/env bash
# The Python benchmarks of BENCHMARKS.md: builds the release wheel of crates/racegate-py into its
# own venv (target/py-bench-venv, with filelock, pytest and pytest-xdist) and runs
# bench/python-bench.py there. Arguments go to python-bench.py (e.g. --rounds 15 --suite-runs 5).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-bench-venv
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    maturin==1.16.0 filelock==3.20.3 pytest==8.4.2 pytest-xdist==3.8.0
rm -rf target/py-wheels/bench
VIRTUAL_ENV=$PWD/$venv "$venv/bin/maturin" build --release -m crates/racegate-py/Cargo.toml \
    --target-dir target/py-build --out target/py-wheels/bench -i "$venv/bin/python" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
    target/py-wheels/bench/*.whl
exec "$venv/bin/python" bench/python-bench.py "$@"
