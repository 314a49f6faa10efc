#!/usr/bin/env bash
# `racegate run -- true` against `flock(1)` (and the library's minimal `machine_run` example),
# as whole processes, side by side in one hyperfine
# run (uncontended: each command takes and releases its lock once). Numbers go to BENCHMARKS.md
# ("Machine-wide gate").
#
#   bash bench/machine-vs-flock.sh            # RUNS=1000 by default
#   RUNS=300 OUT=machine-vs-flock.md bash bench/machine-vs-flock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 2; }
command -v flock >/dev/null || { echo "needs flock(1) (util-linux)" >&2; exit 2; }
cargo build --release -q -p racegate-cli
# The same lock protocol in a small binary, to separate the lock's cost from the CLI's startup.
cargo build --release -q -p racegate --example machine_run
dir=$(mktemp -d /tmp/racegate-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
# Both lock files on the same file system (/tmp), as `flock /tmp/x` in the issue.
export RACEGATE_DIR="$dir/locks"
hyperfine -N --warmup 50 --runs "${RUNS:-1000}" ${OUT:+--export-markdown "$OUT"} \
  "target/release/racegate run --gate gpu -- true" \
  "target/release/examples/machine_run true" \
  "flock $dir/x true"
