#!/usr/bin/env bash
# chirp beside its peers (../shared/peers: axum, actix-web, and the raw tokio floor), measured
# with the shared scripts in ../shared/bench, then written up as docs/benchmarks.md and
# docs/benchmarks.svg (make bench-peers). Loopback only; takes about 25 minutes.
#
#   instructions.sh  callgrind instructions per request (deterministic: the code-cost figure)
#   alternate.sh     interleaved wrk slices, within-round throughput ratios (plaintext, json,
#                    dashboard, pipeline), servers pinned to one core, wrk to the other
#   peers.sh         memory per idle keep-alive connection (10 000) and peak RSS
#   allocations      heap allocations per request (cargo bench --bench allocations)
#   static           scripts/bench-static.sh: static files (13 B, 64 KiB) beside the ext peers
#                    (tower-http ServeDir, actix-files): instructions, syscalls, throughput; and
#                    Server-Sent Events (events per second, bytes per idle stream). Needs the
#                    ext peers built (see that script's header) and redis-server.
#   redis            scripts/bench-redis.sh: /dashboard with Redis sessions beside the ext peers
#                    (tower-sessions' and actix-session's Redis stores): instructions,
#                    throughput, Redis commands per request.
#   fortunes         scripts/bench-fortunes.sh: TechEmpower's Fortunes (GET /fortunes) beside the
#                    ext peers (minijinja by hand): instructions and throughput.
#   ws               scripts/bench-ws.sh: WebSocket echo (GET /ws/echo) beside the ext peers
#                    (axum's ws on tokio-tungstenite, actix-ws): instructions per message,
#                    memory per idle socket (plain and permessage-deflate), round trips/s and
#                    messages/s over 64 connections.
#
# Environment: BENCH_DIR [../shared/bench], OUT [bench-out], SLICES [20], SKIP [] (any of
# "instructions alternate peers allocations static redis fortunes ws", to reuse an earlier run's output).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-../shared/bench}
OUT=${OUT:-bench-out}
SLICES=${SLICES:-20}
SKIP=${SKIP:-}
[[ -x $BENCH_DIR/instructions.sh ]] || { echo "no benchmark scripts at $BENCH_DIR" >&2; exit 1; }
command -v valgrind >/dev/null || apt-get install -y valgrind >&2

cargo build --release --example bench_app
APP=$PWD/target/release/examples/bench_app
SERVERS=("chirp=$APP" 'axum={peers}/axum-peer' 'actix={peers}/actix-peer' 'raw={peers}/raw-peer')
mkdir -p "$OUT"/instructions "$OUT"/alternate "$OUT"/peers
skip() { [[ " $SKIP " == *" $1 "* ]]; }

skip instructions || BENCH_OUT=$OUT/instructions REPEAT="chirp:plaintext chirp:dashboard" \
    "$BENCH_DIR"/instructions.sh "${SERVERS[@]}" > "$OUT"/instructions.txt
skip alternate || BENCH_OUT=$OUT/alternate PIN=1 SLICES=$SLICES REF=chirp \
    SCENARIOS="plaintext json dashboard pipeline" \
    "$BENCH_DIR"/alternate.sh "${SERVERS[@]}" > "$OUT"/alternate.txt
skip peers || BENCH_OUT=$OUT/peers PIN=1 SCENARIOS="plaintext idle" \
    "$BENCH_DIR"/peers.sh "${SERVERS[@]}" > "$OUT"/peers.txt
skip allocations || cargo bench --bench allocations > "$OUT"/allocations.txt
skip static || OUT=$OUT/static SLICES=$SLICES bash scripts/bench-static.sh
skip redis || OUT=$OUT/redis SLICES=$SLICES bash scripts/bench-redis.sh
skip fortunes || OUT=$OUT/fortunes SLICES=$SLICES bash scripts/bench-fortunes.sh
skip ws || OUT=$OUT/ws SLICES=$SLICES bash scripts/bench-ws.sh

python3 scripts/report.py "$OUT" docs
echo "wrote docs/benchmarks.md and docs/benchmarks.svg" >&2
