#!/usr/bin/env bash
# Wall time of fixtures/budget-suite (12 GPU tests taking `test_guard_with` shares of a
# 100-unit budget, 4 CPU tests) three ways, interleaved round by round so that a loaded machine
# slows all three alike:
#   serial   cargo test -- --test-threads=1   (what a suite without racegate falls back to)
#   threads  cargo test -- --test-threads=8   (GPU tests share the GPU by budget, in-process)
#   nextest  cargo nextest run --test-threads 8 (a process per test, shares across processes)
# Every run gets its own lock directory and event log; a run whose GPU tests held more than
# 100 units at once counts as a budget violation. Numbers go to BENCHMARKS.md.
#
#   bash bench/budget-suite.sh                # ROUNDS=50
#   ROUNDS=10 WORK_MS=300 bash bench/budget-suite.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ws=$(pwd)
command -v cargo-nextest >/dev/null || { echo "needs cargo-nextest" >&2; exit 2; }
export CARGO_TARGET_DIR="$ws/target/fixtures"
cd fixtures/budget-suite
cargo test -q --no-run 2>/dev/null
cargo nextest list >/dev/null 2>&1
dir=$(mktemp -d /tmp/racegate-budget-suite.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export BUDGET_SUITE_WORK_MS="${WORK_MS:-300}"
unset RACEGATE_TEST_GUARD_DEVICES BUDGET_SUITE_NO_GUARD

run() { # variant round -> "variant seconds peak_units"
  local v=$1 r=$2 log="$dir/$1.$2.log" t0 t1
  export RACEGATE_DIR="$dir/locks.$v.$r" BUDGET_SUITE_LOG="$log"
  t0=$(date +%s.%N)
  case $v in
    serial) cargo test -q -- --test-threads=1 >/dev/null 2>&1 ;;
    threads) cargo test -q -- --test-threads=8 >/dev/null 2>&1 ;;
    nextest) cargo nextest run --test-threads 8 --status-level none --final-status-level none >/dev/null 2>&1 ;;
  esac
  t1=$(date +%s.%N)
  python3 - "$v" "$t0" "$t1" "$log" <<'EOF'
import sys
v, t0, t1, log = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
inside, peak = {}, 0
for line in open(log):
    w = line.split()
    if w[0] == "enter" and w[1].startswith("gpu"):
        inside[w[1]] = int(w[2]); peak = max(peak, sum(inside.values()))
    elif w[0] == "leave":
        inside.pop(w[1], None)
print(v, f"{t1 - t0:.3f}", peak)
EOF
}

variants=(serial threads nextest)
for r in $(seq 1 "${ROUNDS:-50}"); do
  # Rotate the order each round.
  for k in 0 1 2; do
    run "${variants[$(( (r + k) % 3 ))]}" "$r"
  done
done | tee "$dir/all.txt" >&2

python3 - "$dir/all.txt" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for v, s, peak in rows:
    by.setdefault(v, []).append((float(s), int(peak)))
med = {v: statistics.median(s for s, _ in xs) for v, xs in by.items()}
print("| variant | runs | median s | min s | max s | peak units (max) | runs over 100 units |")
print("|---|---|---|---|---|---|---|")
for v in ("serial", "threads", "nextest"):
    xs = by.get(v, [])
    if not xs:
        continue
    t = [s for s, _ in xs]
    over = sum(1 for _, p in xs if p > 100)
    print(f"| {v} | {len(xs)} | {med[v]:.2f} | {min(t):.2f} | {max(t):.2f} | {max(p for _, p in xs)} | {over} |")
for v in ("threads", "nextest"):
    if v in med:
        print(f"\n{v}: {med['serial'] / med[v]:.2f}x faster than --test-threads=1 (ratio of medians)")
EOF
