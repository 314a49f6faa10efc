#!/usr/bin/env bash
# racegate stress vs oha vs wrk against the same loopback endpoint, same connection count and
# duration. Reports requests/s and CPU time per request (user+sys of the load generator only,
# from /usr/bin/time), one run each, peers side by side.
#
#   bench/stress-vs-oha.sh [CONNECTIONS] [SECONDS]      (PIN=1 to pin server and client cores;
#                                                      ROUNDS=N to alternate racegate and oha N times)
#
# Needs: a release build of racegate (built here), oha (`cargo install oha --locked`, or
# OHA=/path/to/oha), wrk (`apt-get install wrk`), /usr/bin/time. The endpoint is
# `GET /healthz` of `racegate sim-serve --dispatch gated` (a cheap axum handler), started once
# and shared by the three tools. racegate runs with crash watching on (the OS default folders
# plus one --crash-dir, polled every 150 ms) and its default response handling (whole bodies
# read, status checked).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS="${1:-8}"
SECS="${2:-10}"
OHA="${OHA:-$(command -v oha || echo /tmp/oha-install/bin/oha)}"
WRK="${WRK:-$(command -v wrk || true)}"

cargo build --release -p racegate-cli >&2
RG=target/release/racegate
work="$(mktemp -d)"
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# By default every process shares the machine, as a user would run them. PIN=1 puts the
# server on core 0 and the load generator on the others (taskset); on a busy machine that
# measures each tool's share of a contended core as much as its efficiency (tools with more
# threads get more of it), so CPU per request is the figure to compare there.
taskset_server=()
taskset_client=()
if [ "${PIN:-0}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  taskset_server=(taskset -c 0)
  taskset_client=(taskset -c 1-$(($(nproc) - 1)))
fi

"${taskset_server[@]}" "$RG" sim-serve --listen 127.0.0.1:0 --dispatch gated >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/server.out" 2>/dev/null && break
  sleep 0.05
done
url="$(sed -n 's/^listening on //p' "$work/server.out" | head -1)"
[ -n "$url" ] || { echo "server did not start" >&2; exit 1; }
echo "endpoint: $url/healthz, $CONNS connections, ${SECS}s, $(nproc) cores" >&2

cat >"$work/scenario.toml" <<TOML
target = "$url"
duration = "${SECS}s"
[[pipeline]]
name = "healthz"
workers = $CONNS
path = "/healthz"
TOML
mkdir -p "$work/crashes"

cpu() { awk '{printf "%.3f", $1 + $2}' "$1"; }

# ROUNDS=N: alternate racegate and oha N times (same server, no CPU accounting) and print the
# median req/s of each: on a busy machine single runs swing by tens of percent.
if [ "${ROUNDS:-1}" -gt 1 ]; then
  : >"$work/rounds"
  for i in $(seq 1 "$ROUNDS"); do
    "${taskset_client[@]}" "$RG" stress "$work/scenario.toml" --crash-dir "$work/crashes" --quiet --json - |
      python3 -c "import json,sys;d=json.load(sys.stdin);print('racegate', round(d['requests']/d['duration_s']))" | tee -a "$work/rounds"
    if [ -x "$OHA" ]; then
      "${taskset_client[@]}" "$OHA" -z "${SECS}s" -c "$CONNS" --no-tui --output-format json "$url/healthz" |
        python3 -c "import json,sys;d=json.load(sys.stdin);print('oha', round(d['summary']['requestsPerSec']))" | tee -a "$work/rounds"
    fi
  done
  python3 - "$work/rounds" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, rps = line.split()
    runs.setdefault(tool, []).append(int(rps))
for tool, v in runs.items():
    print(f"{tool:<10} median {statistics.median(v):>8.0f} req/s  (min {min(v)}, max {max(v)}, {len(v)} runs)")
PY
  exit 0
fi

printf '%-10s %12s %12s %16s\n' tool requests req/s "CPU us/request"

# racegate
/usr/bin/time -f "%U %S" -o "$work/rg.time" "${taskset_client[@]}" "$RG" stress "$work/scenario.toml" \
  --crash-dir "$work/crashes" --json "$work/rg.json" --quiet >/dev/null
rg_req=$(python3 -c "import json;d=json.load(open('$work/rg.json'));print(d['requests'])")
rg_rps=$(python3 -c "import json;d=json.load(open('$work/rg.json'));print(round(d['requests']/d['duration_s']))")
rg_cpu=$(cpu "$work/rg.time")
printf '%-10s %12s %12s %16s\n' racegate "$rg_req" "$rg_rps" "$(python3 -c "print(round($rg_cpu*1e6/$rg_req, 2))")"

# oha
if [ -x "$OHA" ]; then
  /usr/bin/time -f "%U %S" -o "$work/oha.time" "${taskset_client[@]}" "$OHA" -z "${SECS}s" -c "$CONNS" \
    --no-tui --output-format json "$url/healthz" >"$work/oha.json"
  oha_req=$(python3 -c "import json;d=json.load(open('$work/oha.json'));print(sum(d['statusCodeDistribution'].values()))")
  oha_rps=$(python3 -c "import json;d=json.load(open('$work/oha.json'));print(round(d['summary']['requestsPerSec']))")
  oha_cpu=$(cpu "$work/oha.time")
  printf '%-10s %12s %12s %16s\n' oha "$oha_req" "$oha_rps" "$(python3 -c "print(round($oha_cpu*1e6/$oha_req, 2))")"
else
  echo "oha: not found (cargo install oha --locked)" >&2
fi

# wrk (one thread per client core)
if [ -n "$WRK" ]; then
  threads=$(( $(nproc) > 2 ? $(nproc) - 1 : 1 ))
  [ "$threads" -gt "$CONNS" ] && threads=$CONNS
  /usr/bin/time -f "%U %S" -o "$work/wrk.time" "${taskset_client[@]}" "$WRK" -t"$threads" -c"$CONNS" \
    -d"${SECS}s" "$url/healthz" >"$work/wrk.out"
  wrk_req=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  wrk_rps=$(awk '/Requests\/sec/ {printf "%d", $2}' "$work/wrk.out")
  wrk_cpu=$(cpu "$work/wrk.time")
  printf '%-10s %12s %12s %16s\n' wrk "$wrk_req" "$wrk_rps" "$(python3 -c "print(round($wrk_cpu*1e6/$wrk_req, 2))")"
else
  echo "wrk: not found (apt-get install wrk)" >&2
fi
