#!/usr/bin/env bash
# Static files and Server-Sent Events, chirp beside the ext peers (../shared/peers:
# axum-ext-peer with tower-http ServeDir, actix-ext-peer with actix-files), loopback only:
#
#   syscalls per request   strace -f -c on the server while one keep-alive connection makes N
#                          GETs (two runs, N1 and N2 requests: (calls2 - calls1) / (N2 - N1),
#                          so start-up and shut-down cancel out), for a 13-byte and a 64 KiB
#                          file; the servers run on one core (taskset), one worker each
#   instructions           ../shared/bench/instructions.sh, SCENARIOS="static static64k"
#   throughput             ../shared/bench/alternate.sh, the same scenarios, interleaved slices
#   SSE                    scripts/bench-sse.py: events per second on one connection, memory
#                          per idle event-stream connection (chirp only: the peers have no SSE)
#
# The ext peers need Redis at start (their /dashboard); one is started here on a free port,
# with nothing on disk, and stopped by its PID. Build the peers first:
#   cd ../shared/peers && CARGO_TARGET_DIR=$PEERS_TARGET_DIR cargo build --release --locked \
#       --features ext --bin axum-ext-peer --bin actix-ext-peer
# Environment: PEERS_TARGET_DIR [../shared/peers/target], OUT [bench-out/static], N1 [1000],
# N2 [3000], SLICES [10], SKIP [] (any of "syscalls instructions alternate sse").
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(...) stops the script too
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-../shared/bench}
PEERS=${PEERS_TARGET_DIR:-../shared/peers/target}/release
OUT=${OUT:-bench-out/static}
N1=${N1:-1000}
N2=${N2:-3000}
SLICES=${SLICES:-10}
SKIP=${SKIP:-}
skip() { [[ " $SKIP " == *" $1 "* ]]; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
source scripts/lib.sh
need_ext_peers "$PEERS"
need_tool redis-server redis-server
need_tool strace strace

cargo build --release --example bench_app
APP=$PWD/target/release/examples/bench_app

REDIS_DIR=$(mktemp -d)
start_redis "$REDIS_DIR"
trap 'kill $REDIS_PID 2>/dev/null || true; rm -rf "$REDIS_DIR"' EXIT
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT

# The files: a 13-byte and a 64 KiB one, as ../shared/bench/lib.sh makes them.
export STATIC_DIR=$OUT/files
mkdir -p "$STATIC_DIR"
printf 'Hello, World!' > "$STATIC_DIR/hello.txt"
head -c 65536 /dev/urandom > "$STATIC_DIR/64k.bin"

# chirp runs without REDIS_URL (exported for the ext peers): with it, bench_app would keep its
# sessions in Redis, and the cookie build here refuses to start.
declare -A CMD=([chirp]="env -u REDIS_URL CHIRP_WORKERS=1 $APP" [axum]="$PEERS/axum-ext-peer" [actix]="$PEERS/actix-ext-peer")
declare -A FILE=([static]=hello.txt [static64k]=64k.bin)

# Syscalls made by the server over n requests of `path` on one connection.
syscalls() {
    local name=$1 sc=$2 n=$3 port
    port=$(free_port)
    taskset -c 0 strace -f -c -o "$OUT/strace.$name.$sc.$n" ${CMD[$name]} "$port" > "$OUT/server.$name.log" 2>&1 &
    local pid=$!
    wait_port "$port"
    printf '\n\n' | python3 "$BENCH_DIR/seq_client.py" 127.0.0.1 "$port" "/static/${FILE[$sc]}" 0 "$n" \
        --expect-file "$STATIC_DIR/${FILE[$sc]}" > "$OUT/client.$name.$sc.$n.log"
    # strace's pid is $pid; stop the server it runs (its child), then strace writes its table.
    pkill -INT -P "$pid" 2>/dev/null || true
    sleep 0.3
    pkill -TERM -P "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    awk '$NF == "total" { print $(NF-2) }' "$OUT/strace.$name.$sc.$n"
}

if ! skip syscalls; then
    echo "# server scenario syscalls_per_request (strace -f -c, ($N2 - $N1) requests)" > "$OUT/syscalls.txt"
    for sc in static static64k; do
        for name in chirp axum actix; do
            a=$(syscalls "$name" "$sc" "$N1")
            b=$(syscalls "$name" "$sc" "$N2")
            per=$(python3 -c "print(f'{($b - $a) / ($N2 - $N1):.2f}')")
            echo "$name $sc $per" | tee -a "$OUT/syscalls.txt"
            # Which calls, per request (from the two tables).
            python3 - "$OUT/strace.$name.$sc.$N1" "$OUT/strace.$name.$sc.$N2" "$((N2 - N1))" >> "$OUT/syscalls-detail.txt" <<'PY'
import sys
def table(p):
    t = {}
    for line in open(p):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            t[f[-1]] = int(f[3])
    return t
a, b, n = table(sys.argv[1]), table(sys.argv[2]), int(sys.argv[3])
parts = {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}
print(sys.argv[2].rsplit("/", 1)[1], " ".join(f"{k}={v:.2f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v >= 0.05))
PY
        done
    done
fi

SERVERS=("chirp=env -u REDIS_URL CHIRP_WORKERS=1 $APP" "axumr={peers}/axum-ext-peer" "actixr={peers}/actix-ext-peer")
export PEERS_BUILD=${PEERS_BUILD:-0}
skip instructions || BENCH_OUT=$OUT/instructions SCENARIOS="static static64k" PEERS_TARGET_DIR=${PEERS_TARGET_DIR:-} \
    "$BENCH_DIR"/instructions.sh "${SERVERS[@]}" > "$OUT/instructions.txt"
skip alternate || BENCH_OUT=$OUT/alternate SCENARIOS="static static64k" SLICES=$SLICES PIN=1 REF=chirp \
    "$BENCH_DIR"/alternate.sh "${SERVERS[@]}" > "$OUT/alternate.txt"
if ! skip sse; then
    port=$(free_port)
    taskset -c 0 env -u REDIS_URL CHIRP_WORKERS=1 "$APP" "$port" > "$OUT/server.sse.log" 2>&1 &
    pid=$!
    wait_port "$port"
    python3 scripts/bench-sse.py "$port" "$pid" | tee "$OUT/sse.txt"
    kill "$pid"; wait "$pid" 2>/dev/null || true
fi
echo "results in $OUT"
