#!/usr/bin/env bash
# The cost of the timeline and of `--html`: `racegate stress` at full speed (one pipeline,
# WORKERS workers, `GET /healthz` of `racegate sim-serve --dispatch gated`, the cheapest
# endpoint, so the engine and its per-response bookkeeping are the bottleneck) for SECONDS,
# alternating runs with and without `--html` (and, with BASELINE=/path/to/racegate, a build
# without the timeline) against one server. Prints per run: req/s, the wall time past the
# load phase (startup + reports), and the HTML report's size.
#
#   bench/html-cost.sh [SECONDS] [WORKERS]        (ROUNDS=N pairs, default 1; BASELINE=binary)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-600}"
WORKERS="${2:-8}"
ROUNDS="${ROUNDS:-1}"

cargo build --release -p racegate-cli >&2
RG=target/release/racegate
work="$(mktemp -d)"
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$RG" sim-serve --listen 127.0.0.1:0 --dispatch gated >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/server.out" 2>/dev/null && break
  sleep 0.05
done
url="$(sed -n 's/^listening on //p' "$work/server.out" | head -1)"
[ -n "$url" ] || { echo "server did not start" >&2; exit 1; }
echo "endpoint: $url/healthz, $WORKERS workers, ${SECS}s per run, $ROUNDS round(s), $(nproc) cores" >&2

cat >"$work/scenario.toml" <<TOML
target = "$url"
duration = "${SECS}s"
[[pipeline]]
name = "healthz"
workers = $WORKERS
path = "/healthz"
TOML

run() { # variant binary [extra flags]
  local variant=$1 bin=$2
  shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$bin" stress "$work/scenario.toml" --quiet \
    --json "$work/r.json" "$@" >/dev/null || true
  python3 - "$variant" "$work/r.json" "$work/time" "$work/r.html" <<'PY'
import json, os, sys
variant, report, timing, html = sys.argv[1:]
d = json.load(open(report))
wall, user, sys_, rss_kib = open(timing).read().split()
size = os.path.getsize(html) if variant == "html" and os.path.exists(html) else 0
points = sum(len(p["intervals"]) for p in d.get("timeline", {}).get("pipelines", []))
print(f"{variant:<9} {d['requests']:>11} {d['requests']/d['duration_s']:>9.0f} "
      f"{float(wall) - d['duration_s']:>9.2f} {(float(user)+float(sys_))*1e6/d['requests']:>9.2f} "
      f"{int(rss_kib)/1024:>8.1f} {size/1024:>9.1f} {points:>7}")
PY
  rm -f "$work/r.html"
}

printf '%-9s %11s %9s %9s %9s %8s %9s %7s\n' variant requests "req/s" "after s" "CPU us/r" "RSS MiB" "HTML KiB" points
for i in $(seq 1 "$ROUNDS"); do
  # ABBA across rounds, so neither variant always runs first.
  if [ $((i % 2)) = 1 ]; then order="plain html"; else order="html plain"; fi
  [ -n "${BASELINE:-}" ] && order="baseline $order"
  for v in $order; do
    case $v in
      plain) run plain "$RG" ;;
      html) run html "$RG" --html "$work/r.html" ;;
      baseline) run baseline "$BASELINE" ;;
    esac
  done
done
