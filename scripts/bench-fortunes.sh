#!/usr/bin/env bash
# TechEmpower's Fortunes, chirp beside the ext peers (../shared/peers: axum-ext-peer and
# actix-ext-peer render the same page with minijinja by hand): GET /fortunes, the 12 fortunes
# from memory plus one added per request, sorted, rendered as HTML. instructions.sh checks every
# body against ../shared/bench/fortunes.html.
#
#   instructions   ../shared/bench/instructions.sh, SCENARIOS=fortunes (chirp through
#                  chirp::templates; the peers through minijinja directly)
#   throughput     ../shared/bench/alternate.sh on /fortunes (its `static` scenario), PIN=1
#
# The ext peers want a Redis at start (their session stores), so one runs here on a free
# loopback port, nothing on disk, stopped by its PID; chirp's bench_app, built without the
# `redis` feature, runs without REDIS_URL. Build the ext peers first (see
# scripts/bench-static.sh's header).
# Environment: PEERS_TARGET_DIR [../shared/peers/target], OUT [bench-out/fortunes], SLICES
# [20], SKIP [] (any of "instructions alternate").
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-../shared/bench}
PEERS=${PEERS_TARGET_DIR:-../shared/peers/target}/release
OUT=${OUT:-bench-out/fortunes}
SLICES=${SLICES:-20}
SKIP=${SKIP:-}
skip() { [[ " $SKIP " == *" $1 "* ]]; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
source scripts/lib.sh
need_ext_peers "$PEERS"
need_tool redis-server redis-server

cargo build --release --example bench_app
APP=$PWD/target/release/examples/bench_app

REDIS_DIR=$(mktemp -d)
start_redis "$REDIS_DIR"
trap 'kill $REDIS_PID 2>/dev/null || true; rm -rf "$REDIS_DIR"' EXIT
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export STATIC_DIR=$OUT/files
mkdir -p "$STATIC_DIR"
printf 'Hello, World!' > "$STATIC_DIR/hello.txt"

SERVERS=("chirp=env -u REDIS_URL CHIRP_WORKERS=1 $APP" "axumr={peers}/axum-ext-peer" "actixr={peers}/actix-ext-peer")
export PEERS_BUILD=${PEERS_BUILD:-0}
skip instructions || BENCH_OUT=$OUT/instructions SCENARIOS=fortunes REPEAT="chirp:fortunes" \
    PEERS_TARGET_DIR=${PEERS_TARGET_DIR:-} "$BENCH_DIR"/instructions.sh "${SERVERS[@]}" > "$OUT/instructions.txt"
# alternate.sh has no fortunes scenario: its `static` one with STATIC_PATH=/fortunes checks the
# body against $STATIC_DIR/fortunes, a copy of fortunes.html.
cp "$BENCH_DIR/fortunes.html" "$STATIC_DIR/fortunes"
skip alternate || BENCH_OUT=$OUT/alternate SCENARIOS=static STATIC_PATH=/fortunes SLICES=$SLICES \
    PIN=1 REF=chirp "$BENCH_DIR"/alternate.sh "${SERVERS[@]}" > "$OUT/alternate.txt"
echo "results in $OUT"
