#!/usr/bin/env bash
# Runs every synckairos-bench scenario against a freshly started server (`make bench`).
#
# Builds the server and the load generator in release, starts the server on a
# free loopback port (memory engine, or REDIS_URL=$BENCH_REDIS_URL for the Redis
# engine), runs each scenario sized for a 2-core machine (~10 s each), stops the
# server. With BENCH_REDIS_URL a second instance is started as well and the
# fan-out is run again with the WebSocket clients on the other instance
# (cross-instance delivery through Redis).
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_CONCURRENCY (64),
# BENCH_SESSIONS (1000), BENCH_FANOUT_SESSIONS (10), BENCH_FANOUT_CLIENTS (100),
# BENCH_FANOUT_RATE (200), BENCH_SWITCH_RATE (30000, the paced switch run),
# BENCH_TIMEOUT_SESSIONS (1000), BENCH_IDLE_WS (10000),
# BENCH_THREADS (load generator threads, default: all CPUs),
# BENCH_SCENARIOS ("idle-ws switch switch-auth switch-rate get fanout timeouts"), BENCH_SKIP_BUILD=1,
# BENCH_SERVER_BIN / BENCH_BIN (binaries to use), BENCH_REDIS_URL,
# BENCH_TARGET_DIR (default: $CARGO_TARGET_DIR or ./target).
# Every JSON summary line is also appended to $BENCH_TARGET_DIR/bench/summary-<engine>.jsonl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
TARGET_DIR=${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
DURATION=${BENCH_DURATION:-10s}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
SESSIONS=${BENCH_SESSIONS:-1000}
FANOUT_SESSIONS=${BENCH_FANOUT_SESSIONS:-10}
FANOUT_CLIENTS=${BENCH_FANOUT_CLIENTS:-100}
FANOUT_RATE=${BENCH_FANOUT_RATE:-200}
TIMEOUT_SESSIONS=${BENCH_TIMEOUT_SESSIONS:-1000}
IDLE_WS=${BENCH_IDLE_WS:-10000}
SWITCH_RATE=${BENCH_SWITCH_RATE:-30000}
SCENARIOS=${BENCH_SCENARIOS:-idle-ws switch switch-auth switch-rate get fanout timeouts}
# switch-auth: the switch run again against an instance with auth on (API key
# for setup, an HS256 controller token per session on every switch), then
# the cost of auth against the last auth-off switch run of this invocation.
AUTH_API_KEY=bench-api-key-0123456789
AUTH_ENV=(API_KEYS="bench=$AUTH_API_KEY" TOKEN_SECRET=bench-token-secret-0123456789abcdef)
ENGINE=memory
[[ -n ${BENCH_REDIS_URL:-} ]] && ENGINE=redis

if [[ -z ${BENCH_SKIP_BUILD:-} ]]; then
  echo "== building release binaries (server + load generator)"
  CARGO_TARGET_DIR=$TARGET_DIR $CARGO build --release -p synckairos --bin synckairos
  CARGO_TARGET_DIR=$TARGET_DIR $CARGO build --release -p synckairos-bench --bin synckairos-bench
fi
SERVER=${BENCH_SERVER_BIN:-$TARGET_DIR/release/synckairos}
BENCH=${BENCH_BIN:-$TARGET_DIR/release/synckairos-bench}
THREADS_ARG=()
[[ -n ${BENCH_THREADS:-} ]] && THREADS_ARG=(--threads "$BENCH_THREADS")

# Thousands of sockets on each side: raise the descriptor limit (inherited by the server).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

OUT_DIR=$TARGET_DIR/bench
mkdir -p "$OUT_DIR"
SUMMARY=$OUT_DIR/summary-$ENGINE.jsonl
: >"$SUMMARY"
WORK=$(mktemp -d)
PIDS=()

stop_servers() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    # Graceful shutdown should take well under 10 s; then force it.
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() {
  stop_servers
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME [VAR=VALUE...]: starts an instance (with those extra
# environment variables); sets URL and SERVER_PID.
start_server() {
  local name=$1 out=$WORK/$1.stdout err=$WORK/$1.stderr line
  shift
  if [[ -n ${BENCH_REDIS_URL:-} ]]; then
    env REDIS_URL="$BENCH_REDIS_URL" RUST_LOG="${RUST_LOG:-warn}" "$@" "$SERVER" serve --port 0 --bind 127.0.0.1 >"$out" 2>"$err" &
  else
    env -u REDIS_URL -u REDIS_CLUSTER_NODES -u DATABASE_URL -u API_KEYS -u TOKEN_SECRET RUST_LOG="${RUST_LOG:-warn}" "$@" \
      "$SERVER" serve --port 0 --bind 127.0.0.1 >"$out" 2>"$err" &
  fi
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  local deadline=$((SECONDS + 30))
  # `read` succeeds only on a complete line, so a half-written port is never taken.
  until IFS= read -r line 2>/dev/null <"$out" && [[ $line =~ ^listening\ on\ (http://127\.0\.0\.1:[0-9]+)$ ]]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "bench: server $name exited before listening; its stderr:" >&2
      cat "$err" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "bench: server $name did not print 'listening on ...' within 30 s" >&2
      exit 1
    fi
    sleep 0.05
  done
  URL=${BASH_REMATCH[1]}
  echo "== server $name ($ENGINE engine): $URL pid $SERVER_PID"
}

# scenario ARGS...: runs the load generator, shows its output, keeps its JSON line.
# A failing scenario is reported and the others still run; the script then exits 1.
FAILED=()
scenario() {
  echo
  local pid=${SCENARIO_PID:-$PID_A}
  echo "\$ synckairos-bench --url $URL --server-pid $pid ${THREADS_ARG[*]} $*"
  if "$BENCH" --url "$URL" --server-pid "$pid" "${THREADS_ARG[@]}" "$@" | tee "$WORK/last.out"; then
    grep '^{"scenario"' "$WORK/last.out" >>"$SUMMARY" || true
  else
    echo "bench: scenario '$1' FAILED" >&2
    FAILED+=("$1")
  fi
}

# The Redis engine's yardstick (issue 3): the closed-loop switch rate against
# what redis-benchmark reaches with a single EVALSHA (`return 1`) on the same
# Redis and the same cores, at the same concurrency. Prints both and the ratio.
evalsha_ratio() {
  [[ $ENGINE == redis ]] || return 0
  if ! command -v redis-benchmark >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "bench: redis-benchmark/redis-cli not installed: no EVALSHA ratio" >&2
    return 0
  fi
  local switch_rps sha evalsha_rps ratio
  switch_rps=$(grep -o '^{"scenario":"switch".*' "$WORK/last.out" | grep -o '"rps":[0-9.]*' | cut -d: -f2)
  [[ -n $switch_rps ]] || return 0
  sha=$(redis-cli -u "$BENCH_REDIS_URL" script load "return 1")
  evalsha_rps=$(redis-benchmark -u "$BENCH_REDIS_URL" -c "$CONCURRENCY" -n 200000 -q evalsha "$sha" 0 |
    tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  [[ -n $evalsha_rps ]] || { echo "bench: redis-benchmark gave no rate" >&2; return 0; }
  ratio=$(awk -v a="$switch_rps" -v b="$evalsha_rps" 'BEGIN { printf "%.3f", a / b }')
  echo "switch $switch_rps/s vs redis-benchmark EVALSHA (return 1, -c $CONCURRENCY) $evalsha_rps/s: ratio $ratio (target >= 0.333)"
  printf '{"scenario":"evalsha-ratio","switch_rps":%s,"evalsha_rps":%s,"ratio":%s}\n' \
    "$switch_rps" "$evalsha_rps" "$ratio" >>"$SUMMARY"
}

# The auth-off switch run's numbers, for switch-auth to compare against.
OPEN_SWITCH=""
# auth_cost: prints auth on vs off (throughput and server CPU per switch) from
# the last auth-off switch line and the switch-auth run just made.
auth_cost() {
  local on
  on=$(grep -o '^{"scenario":"switch".*' "$WORK/last.out" || true)
  if [[ -z $OPEN_SWITCH || -z $on ]]; then
    echo "bench: switch-auth needs a 'switch' run before it in BENCH_SCENARIOS to compare against" >&2
    return 0
  fi
  local field
  field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | head -1 | cut -d: -f2; }
  local rps_off rps_on cpu_off cpu_on
  rps_off=$(field rps "$OPEN_SWITCH")
  rps_on=$(field rps "$on")
  cpu_off=$(field server_cpu_us_per_req "$OPEN_SWITCH")
  cpu_on=$(field server_cpu_us_per_req "$on")
  [[ -n $rps_off && -n $rps_on ]] || return 0
  awk -v a="$rps_off" -v b="$rps_on" -v c="${cpu_off:-0}" -v d="${cpu_on:-0}" 'BEGIN {
    printf "auth off: %.0f switches/s, %.1f us server CPU/switch\n", a, c
    printf "auth on (HS256 controller token): %.0f switches/s, %.1f us server CPU/switch\n", b, d
    printf "auth cost: %.1f%% throughput (target <= 10%%), %+.1f us CPU/switch (target <= 20)\n", (a - b) / a * 100, d - c
  }'
  printf '{"scenario":"auth-cost","rps_off":%s,"rps_on":%s,"cpu_us_off":%s,"cpu_us_on":%s}\n' \
    "$rps_off" "$rps_on" "${cpu_off:-null}" "${cpu_on:-null}" >>"$SUMMARY"
}

echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') cpus $(nproc) load $(cut -d' ' -f1-3 /proc/loadavg)"
start_server a
URL_A=$URL
PID_A=$SERVER_PID
for s in $SCENARIOS; do
  case $s in
  idle-ws) scenario idle-ws --connections "$IDLE_WS" --sessions 100 ;;
  switch)
    scenario switch --sessions "$SESSIONS" --concurrency "$CONCURRENCY" --duration "$DURATION"
    OPEN_SWITCH=$(grep -o '^{"scenario":"switch".*' "$WORK/last.out" || true)
    evalsha_ratio
    ;;
  switch-auth)
    if [[ -z ${URL_AUTH:-} ]]; then
      start_server auth "${AUTH_ENV[@]}"
      URL_AUTH=$URL
      PID_AUTH=$SERVER_PID
    fi
    URL=$URL_AUTH
    SCENARIO_PID=$PID_AUTH scenario switch --sessions "$SESSIONS" --concurrency "$CONCURRENCY" \
      --duration "$DURATION" --api-key "$AUTH_API_KEY" --session-tokens
    auth_cost
    ;;
  # Latency at the target load (issue 2: >= 30,000 switches/s) rather than at saturation.
  switch-rate) scenario switch --sessions "$SESSIONS" --concurrency "$CONCURRENCY" --duration "$DURATION" --rate "$SWITCH_RATE" ;;
  get) scenario get --sessions "$SESSIONS" --concurrency "$CONCURRENCY" --duration "$DURATION" ;;
  fanout)
    scenario fanout --sessions "$FANOUT_SESSIONS" --clients "$FANOUT_CLIENTS" --rate "$FANOUT_RATE" --duration "$DURATION"
    if [[ $ENGINE == redis ]]; then
      # Cross-instance: the driver switches through A, the clients listen on B.
      if [[ -z ${URL_B:-} ]]; then
        start_server b
        URL_B=$URL
      fi
      URL=$URL_A
      scenario fanout --sessions "$FANOUT_SESSIONS" --clients "$FANOUT_CLIENTS" --rate "$FANOUT_RATE" \
        --duration "$DURATION" --ws-url-base "$URL_B"
    fi
    ;;
  timeouts) scenario timeouts --sessions "$TIMEOUT_SESSIONS" --min-bank-ms 1000 --max-bank-ms 2000 ;;
  *)
    echo "bench: unknown scenario $s" >&2
    exit 2
    ;;
  esac
  URL=$URL_A
done
stop_servers

echo
echo "== summary ($ENGINE engine), also in $SUMMARY"
cat "$SUMMARY"
if ((${#FAILED[@]})); then
  echo "bench: failed scenarios: ${FAILED[*]}" >&2
  exit 1
fi
