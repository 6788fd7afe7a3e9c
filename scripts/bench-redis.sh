#!/usr/bin/env bash
# Redis sessions, chirp beside the ext peers (../shared/peers: axum-ext-peer with
# tower-sessions' RedisStore, actix-ext-peer with actix-session's RedisSessionStore), all on
# one Redis started here (free loopback port, nothing on disk, stopped by its PID):
#
#   Redis commands per request   INFO commandstats before and after N_COMMANDS requests that
#                                send the session cookie of a first one, on GET /dashboard
#                                (changes the session) and, for chirp, GET /dashboard/read
#                                (leaves it unchanged; the peers have no such route)
#   instructions                 ../shared/bench/instructions.sh, SCENARIOS=dashboard (the
#                                server process alone: Redis's own work is not counted); chirp
#                                in PASSES passes (default 3), each a fresh server, every pass's
#                                figure and their min, max and spread in instructions-passes.txt;
#                                a pass after which Redis holds more than a few sessions failed
#                                to keep its one session (every request made a new one): the
#                                script says so and exits 1
#   throughput                   ../shared/bench/alternate.sh, SCENARIOS=dashboard, PIN=1
#
# bench_app is built with `--features redis` into target/bench-redis (so the cookie build in
# target/release stays as it is); with REDIS_URL set it keeps /dashboard's session in Redis.
# Build the ext peers first (see scripts/bench-static.sh's header).
# Environment: PEERS_TARGET_DIR [../shared/peers/target], OUT [bench-out/redis], N_COMMANDS
# [200], SLICES [20], SKIP [] (any of "commands instructions alternate").
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(...) stops the script too
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-../shared/bench}
PEERS=${PEERS_TARGET_DIR:-../shared/peers/target}/release
OUT=${OUT:-bench-out/redis}
N_COMMANDS=${N_COMMANDS:-200}
SLICES=${SLICES:-20}
PASSES=${PASSES:-3}
SKIP=${SKIP:-}
skip() { [[ " $SKIP " == *" $1 "* ]]; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
source scripts/lib.sh
need_ext_peers "$PEERS"
need_tool redis-server redis-server

CARGO_TARGET_DIR=target/bench-redis cargo build --release --features redis --example bench_app
APP=$PWD/target/bench-redis/release/examples/bench_app

REDIS_DIR=$(mktemp -d)
start_redis "$REDIS_DIR"
trap 'kill $REDIS_PID 2>/dev/null || true; rm -rf "$REDIS_DIR"' EXIT
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
# The ext peers serve static files too and want the folder at start.
export STATIC_DIR=$OUT/files
mkdir -p "$STATIC_DIR"
printf 'Hello, World!' > "$STATIC_DIR/hello.txt"

declare -A CMD=([chirp]="env CHIRP_WORKERS=1 $APP" [axum]="$PEERS/axum-ext-peer" [actix]="$PEERS/actix-ext-peer")

# The calls of each command Redis ran since the last reset, as "name=calls ..." (the INFO and
# CONFIG of this script left out).
redis_calls() {
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' \
        | sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\),.*/\1=\2/p' | grep -v '^info=\|^config' | paste -sd ' '
}

# commands <name> <path>: Redis commands per request on <path> with the session cookie.
commands() {
    local name=$1 path=$2 port pid cookie
    port=$(free_port)
    ${CMD[$name]} "$port" > "$OUT/server.$name.log" 2>&1 &
    pid=$!
    wait_port "$port"
    cookie=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/dashboard" | tr -d '\r' \
        | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | head -1)
    redis-cli -p "$REDIS_PORT" config resetstat > /dev/null
    local urls=()
    for _ in $(seq 1 "$N_COMMANDS"); do urls+=("http://127.0.0.1:$port$path"); done
    curl -s -H "Cookie: $cookie" "${urls[@]}" > "$OUT/bodies.$name${path//\//.}"
    local calls
    calls=$(redis_calls)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$name" "$path" "$N_COMMANDS" "$calls" <<'PY'
import sys
name, path, n, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
per = {k: int(v) / n for k, v in (c.split("=") for c in calls)}
total = sum(per.values())
print(f"{name}\t{path}\t{total:.2f}\t" + " ".join(f"{k.upper()}={v:.2f}" for k, v in sorted(per.items())))
PY
}

if ! skip commands; then
    printf '# server\tpath\tcommands_per_request\tby command (%s requests with one cookie)\n' "$N_COMMANDS" > "$OUT/commands.txt"
    for name in chirp axum actix; do
        commands "$name" /dashboard | tee -a "$OUT/commands.txt"
    done
    commands chirp /dashboard/read | tee -a "$OUT/commands.txt"
fi

SERVERS=("chirp=env CHIRP_WORKERS=1 $APP" "axumr={peers}/axum-ext-peer" "actixr={peers}/actix-ext-peer")
export PEERS_BUILD=${PEERS_BUILD:-0}
# The sessions Redis holds: one per server started (a figure past a few means requests made
# new sessions instead of counting one on).
sessions_in_redis() { redis-cli -p "$REDIS_PORT" dbsize | tr -d '\r'; }
check_sessions() {
    local n
    n=$(sessions_in_redis)
    if (( n > 20 )); then
        echo "pass $1: Redis holds $n sessions: the session stopped counting (requests made new ones)" >&2
        exit 1
    fi
}
if ! skip instructions; then
    redis-cli -p "$REDIS_PORT" flushall > /dev/null
    BENCH_OUT=$OUT/instructions SCENARIOS=dashboard PEERS_TARGET_DIR=${PEERS_TARGET_DIR:-} \
        "$BENCH_DIR"/instructions.sh "${SERVERS[@]}" > "$OUT/instructions.txt"
    check_sessions 1
    # chirp's figure pass after pass (a fresh server each time): the same work every run.
    figures=("$(awk '$1 == "chirp" && $2 == "dashboard" { print $3 }' "$OUT/instructions.txt")")
    for pass in $(seq 2 "$PASSES"); do
        redis-cli -p "$REDIS_PORT" flushall > /dev/null
        BENCH_OUT=$OUT/instructions-$pass SCENARIOS=dashboard \
            "$BENCH_DIR"/instructions.sh "${SERVERS[0]}" > "$OUT/instructions-$pass.txt"
        check_sessions "$pass"
        figures+=("$(awk '$1 == "chirp" && $2 == "dashboard" { print $3 }' "$OUT/instructions-$pass.txt")")
    done
    python3 - "${figures[@]}" <<'PY' | tee "$OUT/instructions-passes.txt"
import sys
figures = [float(f) for f in sys.argv[1:]]
lo, hi = min(figures), max(figures)
print("chirp dashboard passes: " + " ".join(f"{f:.1f}" for f in figures))
print(f"min {lo:.1f} max {hi:.1f} spread {(hi - lo) / lo * 100:.2f}%")
PY
fi
skip alternate || BENCH_OUT=$OUT/alternate SCENARIOS=dashboard SLICES=$SLICES PIN=1 REF=chirp \
    "$BENCH_DIR"/alternate.sh "${SERVERS[@]}" > "$OUT/alternate.txt"
echo "results in $OUT"
