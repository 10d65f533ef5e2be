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
# BENCH_ATTACK_SWITCH_RATE (2000, the legitimate client of switch-attacked),
# BENCH_SCENARIOS ("idle-ws switch switch-auth switch-rate get fanout timeouts limits switch-attacked",
# plus "audit" with BENCH_DATABASE_URL), BENCH_SKIP_BUILD=1,
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
ATTACK_SWITCH_RATE=${BENCH_ATTACK_SWITCH_RATE:-2000}
DEFAULT_SCENARIOS="idle-ws switch switch-auth switch-rate get fanout timeouts limits switch-attacked"
[[ -n ${BENCH_DATABASE_URL:-} ]] && DEFAULT_SCENARIOS+=" audit"
SCENARIOS=${BENCH_SCENARIOS:-$DEFAULT_SCENARIOS}
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

# start_server NAME [DATABASE_URL] [VAR=VALUE...] [FLAGS...]: starts an
# instance (with the audit trail when a postgres:// URL is given, and those
# extra environment variables); sets URL and SERVER_PID.
# Every load here comes from one address, so the per-address limit is raised
# out of the way (the limiter still runs); `limits` measures it on vs off.
start_server() {
  local name=$1 db= out=$WORK/$1.stdout err=$WORK/$1.stderr line
  shift
  if [[ ${1:-} == postgres* ]]; then db=$1; shift; fi
  local envs=() flags=(--max-ws-connections 50000)
  while (($#)) && [[ $1 != --* && $1 == *=* ]]; do envs+=("$1"); shift; done
  if (($#)); then flags+=("$@"); else flags+=(--rate-limit-per-address 10000000); fi
  if [[ -n $db ]]; then
    env ${BENCH_REDIS_URL:+REDIS_URL=$BENCH_REDIS_URL} DATABASE_URL="$db" RUST_LOG=${RUST_LOG:-warn} "${envs[@]}" \
      "$SERVER" serve --port 0 --bind 127.0.0.1 "${flags[@]}" >"$out" 2>"$err" &
  elif [[ -n ${BENCH_REDIS_URL:-} ]]; then
    env -u DATABASE_URL REDIS_URL=$BENCH_REDIS_URL RUST_LOG=${RUST_LOG:-warn} "${envs[@]}" "$SERVER" serve --port 0 --bind 127.0.0.1 "${flags[@]}" >"$out" 2>"$err" &
  else
    env -u REDIS_URL -u REDIS_CLUSTER_NODES -u DATABASE_URL -u API_KEYS -u TOKEN_SECRET RUST_LOG=${RUST_LOG:-warn} "${envs[@]}" \
      "$SERVER" serve --port 0 --bind 127.0.0.1 "${flags[@]}" >"$out" 2>"$err" &
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

# stop_one PID: graceful stop of one extra server.
stop_one() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# json_field NAME FILE: a number from the last scenario's JSON line.
json_field() {
  grep -o '^{"scenario".*' "$2" | grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2
}

# The cost of the limits (issue 13: at most 5% of switch throughput): closed-loop
# switch against a server with every rate limit off, then one with them on
# (per-session default, per-address raised so it never refuses), twice each,
# alternating, on fresh servers.
limits_cost() {
  local round mode rps_off=() rps_on=()
  for round in 1 2; do
    for mode in off on; do
      if [[ $mode == off ]]; then
        start_server "limits-$mode-$round" --rate-limit-per-address 0 --rate-limit-per-session 0 --ws-messages-per-second 0
      else
        start_server "limits-$mode-$round" --rate-limit-per-address 10000000
      fi
      local pid=$SERVER_PID saved=$PID_A
      PID_A=$pid
      scenario switch --sessions "$SESSIONS" --concurrency "$CONCURRENCY" --duration "$DURATION"
      PID_A=$saved
      if [[ $mode == off ]]; then rps_off+=("$(json_field rps "$WORK/last.out")"); else rps_on+=("$(json_field rps "$WORK/last.out")"); fi
      stop_one "$pid"
    done
  done
  local off on cost
  off=$(printf '%s\n' "${rps_off[@]}" | awk '{ s += $1 } END { printf "%.1f", s / NR }')
  on=$(printf '%s\n' "${rps_on[@]}" | awk '{ s += $1 } END { printf "%.1f", s / NR }')
  cost=$(awk -v a="$off" -v b="$on" 'BEGIN { printf "%.2f", (a - b) / a * 100 }')
  echo "limits off ${rps_off[*]} switches/s, on ${rps_on[*]}: mean $off vs $on, cost $cost% (target <= 5%)"
  printf '{"scenario":"limits-cost","off_rps":%s,"on_rps":%s,"cost_pct":%s}\n' "$off" "$on" "$cost" >>"$SUMMARY"
}

# A legitimate client's paced switch p99 with and without a slowloris +
# junk-method attack from this machine (issue 13: within 2x).
switch_attacked() {
  local base attacked ratio
  scenario switch --sessions 100 --concurrency 8 --duration "$DURATION" --rate "$ATTACK_SWITCH_RATE"
  base=$(json_field p99_us "$WORK/last.out")
  scenario switch --sessions 100 --concurrency 8 --duration "$DURATION" --rate "$ATTACK_SWITCH_RATE" --attack
  attacked=$(json_field p99_us "$WORK/last.out")
  [[ -n $base && -n $attacked ]] || return 0
  ratio=$(awk -v a="$attacked" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
  echo "switch p99 at $ATTACK_SWITCH_RATE/s: ${base} us unattacked, ${attacked} us under attack: ${ratio}x (target <= 2x)"
  printf '{"scenario":"switch-attacked","p99_us":%s,"attacked_p99_us":%s,"ratio":%s}\n' "$base" "$attacked" "$ratio" >>"$SUMMARY"
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

# CPU ticks (1/100 s) used so far by every local `postgres` process.
postgres_ticks() {
  local t=0 p f
  for p in $(pgrep -x postgres); do
    f=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${f:-0}))
  done
  echo "$t"
}

# The audit trail's cost (issue 14): the switch scenario on a server without
# DATABASE_URL, then on a fresh one with it, same Redis, same run. Waits for
# the backlog to drain so PostgreSQL's CPU covers every event of the run.
audit_scenario() {
  local off_rps on_rps on_us off_us pg0 pg1 rows0 rows1 events ratio pg_us i b
  stop_servers
  start_server audit-off
  PID_A=$SERVER_PID
  scenario switch --sessions "$SESSIONS" --concurrency "$CONCURRENCY" --duration "$DURATION"
  off_rps=$(grep -o '"rps":[0-9.]*' "$WORK/last.out" | cut -d: -f2)
  off_us=$(grep -o '"server_cpu_us_per_req":[0-9.]*' "$WORK/last.out" | cut -d: -f2)
  stop_servers
  DATABASE_URL=$BENCH_DATABASE_URL "$SERVER" migrate >/dev/null
  start_server audit-on "$BENCH_DATABASE_URL"
  PID_A=$SERVER_PID
  rows0=$(psql -tAq "$BENCH_DATABASE_URL" -c "SELECT count(*) FROM sync_events")
  pg0=$(postgres_ticks)
  scenario switch --sessions "$SESSIONS" --concurrency "$CONCURRENCY" --duration "$DURATION"
  on_rps=$(grep -o '"rps":[0-9.]*' "$WORK/last.out" | cut -d: -f2)
  on_us=$(grep -o '"server_cpu_us_per_req":[0-9.]*' "$WORK/last.out" | cut -d: -f2)
  for ((i = 0; i < 600; i++)); do
    b=$(curl -fsS "$URL/ready" | grep -o '"backlog":[0-9]*' | cut -d: -f2) || b=1
    [[ ${b:-1} == 0 ]] && break
    sleep 0.1
  done
  pg1=$(postgres_ticks)
  rows1=$(psql -tAq "$BENCH_DATABASE_URL" -c "SELECT count(*) FROM sync_events")
  events=$((rows1 - rows0))
  ratio=$(awk -v a="$on_rps" -v b="$off_rps" 'BEGIN { printf "%.3f", a / b }')
  pg_us=$(awk -v t="$((pg1 - pg0))" -v n="$events" 'BEGIN { printf "%.1f", n ? t * 10000 / n : 0 }')
  echo "audit: switches/s off $off_rps on $on_rps (ratio $ratio, target >= 0.8); server CPU us/switch" \
    "off $off_us on $on_us (audit path $(awk -v a="$on_us" -v b="$off_us" 'BEGIN { printf "%.1f", a - b }')," \
    "target <= 10); postgres CPU $pg_us us/event over $events events (target <= 15)"
  printf '{"scenario":"audit","off_rps":%s,"on_rps":%s,"ratio":%s,"server_us_off":%s,"server_us_on":%s,"postgres_us_per_event":%s,"events":%s}\n' \
    "$off_rps" "$on_rps" "$ratio" "$off_us" "$on_us" "$pg_us" "$events" >>"$SUMMARY"
  URL_A=$URL
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
  limits) limits_cost ;;
  switch-attacked) switch_attacked ;;
  audit)
    if [[ -z ${BENCH_DATABASE_URL:-} ]]; then
      echo "bench: the audit scenario needs BENCH_DATABASE_URL" >&2
      exit 2
    fi
    audit_scenario
    ;;
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
