#!/usr/bin/env bash
# WebSocket echo (GET /ws/echo), chirp's bench_app beside the ext peers (../shared/peers:
# axum-ext-peer on axum's `ws` / tokio-tungstenite 0.29, actix-ext-peer on actix-ws 0.4). Every
# server sends each text message back; the client is scripts/bench-ws.py (raw sockets, outside
# valgrind and on the other core, so its cost is in no figure). One measurement at a time:
#
#   instructions  user-space instructions per echoed message, as ../shared/bench/instructions.sh
#                 counts them per request: a fresh server under `taskset -c 0 valgrind
#                 --tool=callgrind`, ONE connection, WARM round trips, callgrind_control --zero,
#                 N round trips of one 32-byte text message (each echo read and checked before
#                 the next is sent), callgrind_control --dump, the dump's total Ir / N. Cells:
#                 plain for all three; for chirp also `deflate` (permessage-deflate offered,
#                 context takeover both ways, the client compressing its messages too) and
#                 `nocontext` (offered with server_ and client_no_context_takeover). The peers
#                 decline the offer (neither library does permessage-deflate), so they have
#                 plain cells only.
#   idle          resident memory per idle socket: a fresh server (pinned to core 0), 64
#                 sockets opened and closed (one-off growth), VmRSS read, COUNT sockets opened,
#                 one message echoed on each (so lazily made state exists), 1 s idle, VmRSS read
#                 again: (after - before) / COUNT, from /proc/PID/status. Cells as above, one
#                 fresh server per cell.
#   throughput    all three servers at once, pinned to core 0, the client on core 1; SLICES
#                 rounds, in each a SLICE-second run per server in a rotating order (as
#                 ../shared/bench/alternate.sh interleaves wrk), so that the machine's drift hits
#                 all three alike; medians [min..max] over rounds. Scenarios: `rtt` (one
#                 connection, one message at a time: round trips/s), `flood1` (64 connections,
#                 one message in flight on each: messages/s; the Python client is the
#                 bottleneck here, so read the server's CPU time per message) and `floodDEPTH`
#                 (64 connections, DEPTH in flight on each, sent in one write: the server
#                 busy). Flood cells also give the server's CPU µs per message
#                 (/proc/PID/stat, whole process).
#
# Caveat (instructions): glibc's memset clears a large buffer with `rep stosb`, which callgrind
# counts as one instruction per byte, so a server that zeroes big buffers per message (axum's
# tungstenite read buffer; zlib state made per message) looks dearer there than a CPU finds it:
# the flood cells' CPU µs per message are the check.
# chirp runs as examples/bench_app (its /ws/echo is chat's echo) rather than examples/chat:
# bench_app is the binary the other comparisons run, and needs no Redis or login set-up.
#
# The ext peers want a Redis at start (their session stores): one runs here on a free loopback
# port, nothing on disk, stopped by its PID; chirp's bench_app, built without the `redis`
# feature, runs without REDIS_URL. Build the ext peers first (see scripts/bench-static.sh's
# header). Output: $OUT/instructions.txt, idle.txt, throughput.txt (and the callgrind dumps,
# for callgrind_annotate).
# Environment: PEERS_TARGET_DIR [../shared/peers/target], OUT [bench-out/ws], N [2000], WARM
# [200], COUNT [1000], SLICES [10], SLICE [2], DEPTH [8], SIZE [32], SKIP [] (any of
# "instructions idle throughput").
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
PEERS=${PEERS_TARGET_DIR:-../shared/peers/target}/release
OUT=${OUT:-bench-out/ws}
N=${N:-2000}
WARM=${WARM:-200}
COUNT=${COUNT:-1000}
SLICES=${SLICES:-10}
SLICE=${SLICE:-2}
DEPTH=${DEPTH:-8}
SIZE=${SIZE:-32}
SKIP=${SKIP:-}
skip() { [[ " $SKIP " == *" $1 "* ]]; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
source scripts/lib.sh
need_ext_peers "$PEERS"
PEERS=$(cd "$PEERS" && pwd)
need_tool redis-server redis-server
need_tool valgrind valgrind
CLIENT=(taskset -c 1 python3 scripts/bench-ws.py)

CARGO_INCREMENTAL=0 cargo build --release --example bench_app
APP=$PWD/target/release/examples/bench_app

REDIS_DIR=$(mktemp -d)
start_redis "$REDIS_DIR"
SERVER_PIDS=()
cleanup() {
    for pid in "${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    kill "$REDIS_PID" 2>/dev/null || true
    rm -rf "$REDIS_DIR"
}
trap cleanup EXIT
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export STATIC_DIR=$OUT/files
mkdir -p "$STATIC_DIR"
# The open sockets of the idle cells, with room to spare (server and client alike).
ulimit -n "$((COUNT * 2 + 1024))" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"

NAMES=(chirp axumr actixr)
declare -A CMD=(
    [chirp]="env -u REDIS_URL CHIRP_WORKERS=1 $APP"
    [axumr]="$PEERS/axum-ext-peer"
    [actixr]="$PEERS/actix-ext-peer"
)
# name -> the client options of each cell (the peers decline deflate: plain only).
cells() { if [[ $1 == chirp ]]; then echo "plain deflate nocontext"; else echo plain; fi; }
cell_opts() { case $1 in plain) ;; deflate) echo --deflate ;; nocontext) echo --no-context ;; esac; }

# start <name> <port> <log> [prefix...]: the server in the background; sets PID (its own, via
# exec) and waits for the port (valgrind starts slowly).
start() {
    local name=$1 port=$2 logf=$3
    shift 3
    # shellcheck disable=SC2086 # the command is a word list on purpose
    bash -c "exec $* ${CMD[$name]} $port" >"$logf" 2>&1 &
    PID=$!
    SERVER_PIDS+=("$PID")
    for _ in $(seq 1 1200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || { echo "$name exited, see $logf" >&2; return 1; }
        sleep 0.05
    done
    echo "$name did not listen on $port" >&2
    return 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# median <number>...: "M [min..max]".
median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%g [%g..%g]", m, a[1], a[NR] }'
}

if ! skip instructions; then
    {
        echo "# server cell instructions_per_message (callgrind, N=$N after WARM=$WARM, $SIZE-byte text, one connection)"
        for name in "${NAMES[@]}"; do
            for cell in $(cells "$name"); do
                port=$(free_port)
                base=$OUT/callgrind.$name.$cell
                rm -f "$base" "$base".*
                start "$name" "$port" "$OUT/$name.$cell.callgrind.log" \
                    taskset -c 0 valgrind --tool=callgrind --trace-children=yes \
                    "--callgrind-out-file=$base"
                # shellcheck disable=SC2046
                "${CLIENT[@]}" rtt --port "$port" --n "$N" --warm "$WARM" --size "$SIZE" \
                    --zero "callgrind_control --zero $PID" --dump "callgrind_control --dump $PID" \
                    $(cell_opts "$cell") >"$OUT/$name.$cell.rtt.txt"
                stop "$PID"
                dump=$(ls "$base".* | grep -v '\.log$' | head -1)
                ir=$(awk '/^summary:/ { print $2; exit } /^totals:/ { t = $2 } END { if (t) print t }' "$dump" | head -1)
                echo "$name $cell $(awk -v ir="$ir" -v n="$N" 'BEGIN { printf "%.0f", ir / n }')  # $(cat "$OUT/$name.$cell.rtt.txt"), dump $dump"
            done
        done
    } | tee "$OUT/instructions.txt"
fi

if ! skip idle; then
    {
        echo "# server cell kib_per_idle_socket (VmRSS delta / $COUNT sockets, one $SIZE-byte message echoed on each)"
        for name in "${NAMES[@]}"; do
            for cell in $(cells "$name"); do
                port=$(free_port)
                start "$name" "$port" "$OUT/$name.$cell.idle.log" taskset -c 0
                # shellcheck disable=SC2046
                line=$("${CLIENT[@]}" idle --port "$port" --pid "$PID" --count "$COUNT" --size "$SIZE" $(cell_opts "$cell"))
                stop "$PID"
                echo "$name $cell $(sed 's/.*kib_per_socket=//' <<<"$line")  # $line"
            done
        done
    } | tee "$OUT/idle.txt"
fi

if ! skip throughput; then
    declare -A PORT SPID
    for name in "${NAMES[@]}"; do
        PORT[$name]=$(free_port)
        start "$name" "${PORT[$name]}" "$OUT/$name.throughput.log" taskset -c 0
        SPID[$name]=$PID
    done
    {
        echo "# throughput: $SLICES rounds x ${SLICE}s per server, rotating order; servers on core 0, client on core 1"
        echo "# server scenario median [min..max] of: rate (round trips/s or messages/s), the server's cpu_us_per_msg"
        for scenario in rtt flood1 "flood$DEPTH"; do
            declare -A RATE=() CPU=()
            for r in $(seq 0 $((SLICES - 1))); do
                order=("${NAMES[@]:$((r % 3))}" "${NAMES[@]:0:$((r % 3))}")
                for name in "${order[@]}"; do
                    if [[ $scenario == rtt ]]; then
                        # About SLICE seconds at the ~10k round trips/s this machine does.
                        line=$("${CLIENT[@]}" rtt --port "${PORT[$name]}" --n "$((SLICE * 10000))" --warm 200 --size "$SIZE")
                        RATE[$name]+="$(sed 's/.*round_trips_per_sec=//' <<<"$line") "
                    else
                        line=$("${CLIENT[@]}" flood --port "${PORT[$name]}" --pid "${SPID[$name]}" --conns 64 \
                            --depth "${scenario#flood}" --seconds "$SLICE" --size "$SIZE")
                        RATE[$name]+="$(sed 's/.*msgs_per_sec=\([0-9]*\).*/\1/' <<<"$line") "
                        CPU[$name]+="$(sed 's/.*cpu_us_per_msg=\([0-9.]*\).*/\1/' <<<"$line") "
                    fi
                    echo "# round $((r + 1)) $scenario $name $line"
                done
            done
            for name in "${NAMES[@]}"; do
                echo "$name $scenario $(median ${RATE[$name]})${CPU[$name]:+ cpu_us_per_msg $(median ${CPU[$name]})}"
            done
            unset RATE CPU
        done
    } | tee "$OUT/throughput.txt"
fi
echo "results in $OUT"
