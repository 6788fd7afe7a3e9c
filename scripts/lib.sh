# Helpers the scripts here share (source it): free loopback ports, waiting for a server to
# listen, and a redis-server of the script's own.

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_port <port> [what]: waits up to 10 s for something to listen on <port>; returns 1,
# saying so, when nothing does.
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "${2:-nothing} did not start listening on port $1" >&2
    return 1
}

# need_ext_peers <dir>: fails, saying how to build them, unless ../shared/peers' ext peers
# (axum-ext-peer, actix-ext-peer) are built in <dir>.
need_ext_peers() {
    for bin in axum-ext-peer actix-ext-peer; do
        [[ -x $1/$bin ]] || { echo "no $1/$bin: build the ext peers (see scripts/bench-static.sh's header)" >&2; return 1; }
    done
}

# need_tool <command> <Debian package>: installs the package (scripts/apt-install.sh) unless
# the command is there.
need_tool() { command -v "$1" >/dev/null || bash scripts/apt-install.sh "$2" >&2; }

# start_redis <dir>: starts a redis-server on a free loopback port, with nothing on disk and
# its files and log (redis.log) in <dir>, and waits for it. Sets REDIS_PORT and REDIS_PID: the
# caller stops it by that PID.
start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$1" \
        > "$1/redis.log" 2>&1 &
    REDIS_PID=$!
    wait_port "$REDIS_PORT" redis-server
}
